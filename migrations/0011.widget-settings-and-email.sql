-- Widget settings edited by admins (docs/web.md, "Widget settings"), the visitor's contact email
-- on tickets, and the mail jobs table that sends reply notifications and transcripts
-- (docs/operations.md, "Email").
-- depends: 0010.ticket-ratings-and-reads

-- One row: the settings every instance serves to the widget. `version` rises with each change,
-- so an instance can tell a stale cached copy from the current one.
CREATE TABLE widget_settings (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    settings   jsonb NOT NULL DEFAULT '{}'::jsonb,
    version    bigint NOT NULL DEFAULT 0,
    updated_by uuid REFERENCES users (id) ON DELETE SET NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO widget_settings DEFAULT VALUES;

-- contact_email: the address the visitor gave in the widget (optional) for replies and transcripts.
-- visitor_left_at: when the ticket's customer last closed their last socket on any instance.
-- reply_mailed_seq: the highest agent message seq already sent to contact_email.
ALTER TABLE tickets
    ADD COLUMN contact_email text CHECK (contact_email IS NULL OR length(contact_email) BETWEEN 3 AND 254),
    ADD COLUMN visitor_left_at timestamptz,
    ADD COLUMN reply_mailed_seq bigint NOT NULL DEFAULT 0;

-- Mail to send, claimed by any instance with FOR UPDATE SKIP LOCKED and a lease (locked_until).
-- kind 'reply': agent replies for a visitor who left, coalesced: at most one pending job per
-- ticket, and `dirty` says a reply came in while the job was being sent (it then runs again).
-- kind 'transcript': the conversation so far, to `recipient`.
CREATE TABLE mail_jobs (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('reply', 'transcript')),
    ticket_id       uuid NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    recipient       text,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'skipped', 'failed')),
    dirty           boolean NOT NULL DEFAULT false,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    last_error      text,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mail_jobs_due_idx ON mail_jobs (next_attempt_at) WHERE status = 'pending';
CREATE UNIQUE INDEX mail_jobs_one_reply_idx ON mail_jobs (ticket_id) WHERE status = 'pending' AND kind = 'reply';
CREATE INDEX mail_jobs_ticket_idx ON mail_jobs (ticket_id, created_at);
