DROP TABLE ticket_reads;
DROP INDEX tickets_rated_at_idx;
ALTER TABLE tickets
    DROP CONSTRAINT tickets_rating_complete,
    DROP COLUMN rated_at,
    DROP COLUMN rating_comment,
    DROP COLUMN rating;
