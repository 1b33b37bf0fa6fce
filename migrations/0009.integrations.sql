-- Integrations (docs/integrations.md): the outbox of domain events (the event feed and webhooks
-- read it), API keys acting as integration accounts, webhook endpoints and their deliveries.
-- depends: 0008.kb-chunks

-- An API key acts as an account of its own (role 'integration'): messages it posts are authored
-- by that account, and revoking the key disables the account (services/access.py).
ALTER TABLE users DROP CONSTRAINT users_role_check,
    ADD CONSTRAINT users_role_check CHECK (role IN ('customer', 'agent', 'admin', 'integration'));
ALTER TABLE messages DROP CONSTRAINT messages_author_kind_check,
    ADD CONSTRAINT messages_author_kind_check
        CHECK (author_kind IN ('customer', 'agent', 'ai', 'system', 'integration'));

-- One row per domain event, inserted in the transaction of the change it describes. A reader's
-- position is (xid, id): xid is the writing transaction's id, and only events whose transaction
-- is older than every transaction still running are served, so no event can later appear
-- behind a position already handed out (docs/integrations.md, "Cursor order").
-- No foreign key to tickets: an event outlives nothing it names, and the check would cost the
-- message path a lookup.
CREATE TABLE events (
    id         bigserial PRIMARY KEY,
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    type       text NOT NULL,
    ticket_id  uuid,
    internal   boolean NOT NULL DEFAULT false,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_position_idx ON events (xid, id);

-- Single row: how far retention has deleted (older cursors get 410) and how far webhook fan-out
-- has read the events (one instance at a time, under this row's lock).
CREATE TABLE event_positions (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    purged_xid     xid8 NOT NULL DEFAULT '0',
    purged_id      bigint NOT NULL DEFAULT 0,
    dispatched_xid xid8 NOT NULL DEFAULT '0',
    dispatched_id  bigint NOT NULL DEFAULT 0
);
INSERT INTO event_positions DEFAULT VALUES;

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- The first characters of the key, shown in lists so an admin can tell keys apart.
    prefix       text NOT NULL,
    -- SHA-256 of the whole key: keys are 256-bit random, so a fast hash is enough.
    secret_hash  bytea NOT NULL UNIQUE,
    scopes       text[] NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_endpoints (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    url                  text NOT NULL,
    event_types          text[] NOT NULL,
    include_internal     boolean NOT NULL DEFAULT false,
    active               boolean NOT NULL DEFAULT true,
    -- The signing secret must be readable to sign with: it cannot be stored as a hash.
    secret               text NOT NULL,
    description          text NOT NULL DEFAULT '',
    disabled_reason      text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- One row per (event, endpoint) to send. No foreign keys: at thousands of rows a second their
-- per-row checks cost the database more than they guard; endpoint deletion removes its rows, and
-- retention removes old ones (services/outbox.py).
CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    endpoint_id      uuid NOT NULL,
    -- NULL for a test delivery, whose body is in payload.
    event_id         bigint,
    ticket_id        uuid,
    payload          jsonb,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    -- Waits behind an earlier pending delivery of the same endpoint and ticket (order per ticket);
    -- the earlier one's outcome clears it.
    blocked          boolean NOT NULL DEFAULT false,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- A worker's claim: until then no other instance sends it; a dead worker's claim lapses.
    locked_until     timestamptz,
    last_status_code integer,
    last_error       text,
    response_excerpt text,
    last_attempt_at  timestamptz,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
-- What workers claim: only the first pending delivery of each endpoint and ticket is unblocked.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending' AND NOT blocked;
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (endpoint_id, ticket_id, id) WHERE status = 'pending';
