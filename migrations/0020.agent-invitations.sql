-- Invitations (docs/web.md, "Agents"): an admin invites an agent or admin by email; the account
-- exists from then on but cannot sign in until its owner sets a password through the emailed link.
-- depends: 0019.ticket-search-documents

-- invited_at: when the account was (last) invited; NULL once it has a password of its own.
ALTER TABLE users ADD COLUMN invited_at timestamptz;

-- Mail jobs of kind 'invitation' name an account instead of a ticket, and the account's session
-- generation the invitation was made for: a job whose generation is gone (a newer invitation, the
-- account disabled or its password set) is skipped instead of sending a link that cannot work.
ALTER TABLE mail_jobs
    ALTER COLUMN ticket_id DROP NOT NULL,
    ADD COLUMN user_id uuid REFERENCES users (id) ON DELETE CASCADE,
    ADD COLUMN user_generation integer,
    DROP CONSTRAINT mail_jobs_kind_check,
    ADD CONSTRAINT mail_jobs_kind_check CHECK (kind IN ('reply', 'transcript', 'invitation')),
    ADD CONSTRAINT mail_jobs_subject_check CHECK (
        CASE WHEN kind = 'invitation' THEN user_id IS NOT NULL AND user_generation IS NOT NULL AND recipient IS NOT NULL
             ELSE ticket_id IS NOT NULL END
    );
CREATE INDEX mail_jobs_user_idx ON mail_jobs (user_id, created_at) WHERE user_id IS NOT NULL;
