DROP TABLE mail_jobs;
ALTER TABLE tickets DROP COLUMN reply_mailed_seq, DROP COLUMN visitor_left_at, DROP COLUMN contact_email;
DROP TABLE widget_settings;
