-- The agent workspace (issue 14): labels on tickets, canned responses, and the activity log of
-- ticket changes (docs/web.md, "Labels", "Canned responses", "Activity").
-- depends: 0013.agent-availability-and-routing

-- Labels: a catalogue managed by admins. Names are unique regardless of case.
CREATE TABLE labels (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 50),
    color      text NOT NULL CHECK (color ~ '^#[0-9a-f]{6}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX labels_name_lower_key ON labels (lower(name));

-- A ticket's labels as the ticket representation shows them, [{"id", "name", "color"}] sorted by
-- name: kept on the row so that every ticket read (lists, frames, the outbox) carries them with
-- no join; a rename, recolour or delete rewrites the tickets that carry the label.
ALTER TABLE tickets ADD COLUMN labels jsonb NOT NULL DEFAULT '[]';
-- GET /tickets?label=: labels @> '[{"id": "…"}]'.
CREATE INDEX tickets_labels_idx ON tickets USING gin (labels jsonb_path_ops);

-- Activity: who changed what on a ticket, and when. Agents only (never a message, so no path that
-- serves messages to customers can carry it).
CREATE TABLE ticket_activity (
    id         bigserial PRIMARY KEY,
    ticket_id  uuid NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    actor_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    kind       text NOT NULL CHECK (kind IN ('status', 'priority', 'assignee', 'ai', 'labels')),
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_activity_ticket_idx ON ticket_activity (ticket_id, id);

-- Canned responses: shared (owner_id NULL, managed by admins) or personal (an agent's own).
CREATE TABLE canned_responses (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id   uuid REFERENCES users (id) ON DELETE CASCADE,
    shortcut   text NOT NULL CHECK (shortcut ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
    body       text NOT NULL CHECK (length(body) BETWEEN 1 AND 5000),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- One shortcut per owner, and one among the shared ones.
CREATE UNIQUE INDEX canned_responses_shortcut_key ON canned_responses (owner_id, shortcut) NULLS NOT DISTINCT;
