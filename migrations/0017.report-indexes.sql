-- Reports (docs/web.md, "Reports"): when a ticket was resolved, kept by a trigger so that every
-- path that changes a status (REST, sockets, routing, a customer closing) records it, and the
-- indexes the report queries read by period.
-- depends: 0009.integrations

-- The moment the ticket last became resolved or closed; NULL while it is open or pending (a
-- customer writing again reopens it, and a later resolution counts from then).
ALTER TABLE tickets ADD COLUMN resolved_at timestamptz;

CREATE FUNCTION tickets_track_resolution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('resolved', 'closed') THEN
        -- resolved -> closed keeps the first moment: the conversation ended then. An insert may
        -- say when (imports, the benchmark's dataset).
        IF TG_OP = 'INSERT' THEN
            NEW.resolved_at := coalesce(NEW.resolved_at, now());
        ELSIF OLD.status NOT IN ('resolved', 'closed') THEN
            NEW.resolved_at := now();
        END IF;
    ELSE
        NEW.resolved_at := NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER tickets_track_resolution BEFORE INSERT OR UPDATE OF status ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_track_resolution();

-- Tickets resolved before this migration: their last update is the best known moment.
UPDATE tickets SET resolved_at = updated_at WHERE status IN ('resolved', 'closed');

-- Reports select tickets by when they were opened or resolved.
CREATE INDEX tickets_created_idx ON tickets (created_at);
CREATE INDEX tickets_resolved_idx ON tickets (resolved_at) WHERE resolved_at IS NOT NULL;
-- A ticket's replies by the AI or agents, read index-only (who and when, in order).
CREATE INDEX messages_replies_idx ON messages (ticket_id, created_at, seq) INCLUDE (author_kind, author_id)
    WHERE visibility = 'public' AND author_kind IN ('agent', 'ai');
-- Agents' replies in a period, with who wrote them and where (index-only).
CREATE INDEX messages_agent_replies_idx ON messages (created_at) INCLUDE (author_id, ticket_id)
    WHERE visibility = 'public' AND author_kind = 'agent';
-- Handoff notices (system messages whose metadata names the reason).
CREATE INDEX messages_handoffs_idx ON messages (ticket_id, created_at)
    WHERE author_kind = 'system' AND metadata ? 'handoff';
-- Busiest hours: customer messages by when they arrived.
CREATE INDEX messages_customer_created_idx ON messages (created_at) WHERE author_kind = 'customer';
