-- Ticket ratings and read cursors (docs/web.md, docs/protocol.md "Read cursors").
-- depends: 0009.integrations

-- The customer's rating of a resolved or closed ticket, on the ticket itself: one per ticket,
-- set once (services/ratings.py), so reports read it with the ticket and need no join.
-- rating is 1 (bad) to 5 (great); the comment is optional and bounded.
ALTER TABLE tickets
    ADD COLUMN rating smallint CHECK (rating BETWEEN 1 AND 5),
    ADD COLUMN rating_comment text CHECK (rating_comment IS NULL OR length(rating_comment) <= 1000),
    ADD COLUMN rated_at timestamptz,
    ADD CONSTRAINT tickets_rating_complete CHECK ((rating IS NULL) = (rated_at IS NULL));
CREATE INDEX tickets_rated_at_idx ON tickets (rated_at) WHERE rated_at IS NOT NULL;

-- One read cursor per participant and ticket (not per message): the last public message seq
-- the user has seen. It only moves forward (the upsert in db/reads.py).
CREATE TABLE ticket_reads (
    ticket_id  uuid NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq        bigint NOT NULL CHECK (seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ticket_id, user_id)
);
