DROP TABLE canned_responses;
DROP TABLE ticket_activity;
DROP INDEX tickets_labels_idx;
ALTER TABLE tickets DROP COLUMN labels;
DROP TABLE labels;
