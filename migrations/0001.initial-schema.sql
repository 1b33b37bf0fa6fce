-- Users, tickets and messages: the foundation schema.
-- depends:

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('customer', 'agent', 'admin')),
    display_name  text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Emails are unique regardless of case: Alice@x.com and alice@x.com are one account.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE INDEX users_role_idx ON users (role) WHERE role <> 'customer';

CREATE TABLE tickets (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    subject          text NOT NULL,
    description      text NOT NULL DEFAULT '',
    status           text NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'pending', 'resolved', 'closed')),
    priority         text NOT NULL DEFAULT 'normal'
                     CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    assignee_id      uuid REFERENCES users (id) ON DELETE SET NULL,
    ai_enabled       boolean NOT NULL DEFAULT true,
    -- Set when the customer asked for a person (or the AI handed off): shown in the agent inbox.
    waiting_for_agent boolean NOT NULL DEFAULT false,
    -- The highest message seq handed out; bumped in the same statement that inserts a message.
    last_seq         bigint NOT NULL DEFAULT 0,
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- Lists are "newest activity first" with keyset pagination on (last_activity_at, id).
CREATE INDEX tickets_customer_activity_idx ON tickets (customer_id, last_activity_at DESC, id DESC);
CREATE INDEX tickets_activity_idx ON tickets (last_activity_at DESC, id DESC);
CREATE INDEX tickets_status_activity_idx ON tickets (status, last_activity_at DESC, id DESC);
CREATE INDEX tickets_assignee_activity_idx ON tickets (assignee_id, last_activity_at DESC, id DESC);
CREATE INDEX tickets_priority_activity_idx ON tickets (priority, last_activity_at DESC, id DESC);

CREATE TABLE messages (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ticket_id   uuid NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    author_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    author_kind text NOT NULL CHECK (author_kind IN ('customer', 'agent', 'ai', 'system')),
    body        text NOT NULL,
    client_id   text CHECK (client_id IS NULL OR length(client_id) BETWEEN 1 AND 100),
    visibility  text NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'internal')),
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_ticket_seq_key UNIQUE (ticket_id, seq)
);
-- Idempotent sends: one author cannot store two messages with one client_id in a ticket.
CREATE UNIQUE INDEX messages_client_id_key ON messages (ticket_id, author_id, client_id)
    WHERE client_id IS NOT NULL;
