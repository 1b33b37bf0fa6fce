-- depends: 0019.ticket-search-documents
DELETE FROM mail_jobs WHERE kind = 'invitation';
DROP INDEX mail_jobs_user_idx;
ALTER TABLE mail_jobs
    DROP CONSTRAINT mail_jobs_subject_check,
    DROP CONSTRAINT mail_jobs_kind_check,
    ADD CONSTRAINT mail_jobs_kind_check CHECK (kind IN ('reply', 'transcript')),
    DROP COLUMN user_generation,
    DROP COLUMN user_id,
    ALTER COLUMN ticket_id SET NOT NULL;
ALTER TABLE users DROP COLUMN invited_at;
