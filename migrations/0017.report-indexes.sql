-- Reports (docs/web.md, "Reports"): when a ticket was resolved, and when and by whom it was first
-- answered, kept on the ticket by triggers so that every path that changes a status or writes a
-- message records them (REST, sockets, the AI, routing, a customer closing), and the indexes the
-- report queries read by period. A report then reads tickets, not each ticket's messages.
-- depends: 0016.kb-suggestions

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

-- The first reply (a public message by the AI or an agent), the first human reply and its author,
-- the first handoff notice, and whether the AI or a person ever replied.
ALTER TABLE tickets
    ADD COLUMN first_reply_at       timestamptz,
    ADD COLUMN first_human_reply_at timestamptz,
    ADD COLUMN first_human_reply_by uuid,
    ADD COLUMN first_handoff_at     timestamptz,
    ADD COLUMN ai_replied           boolean NOT NULL DEFAULT false,
    ADD COLUMN human_replied        boolean NOT NULL DEFAULT false;

CREATE FUNCTION tickets_track_replies() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.author_kind = 'system' THEN
        UPDATE tickets SET first_handoff_at = NEW.created_at
        WHERE id = NEW.ticket_id AND (first_handoff_at IS NULL OR first_handoff_at > NEW.created_at);
    ELSIF NEW.author_kind = 'ai' THEN
        UPDATE tickets SET first_reply_at = least(first_reply_at, NEW.created_at), ai_replied = true
        WHERE id = NEW.ticket_id AND (NOT ai_replied OR first_reply_at IS NULL OR first_reply_at > NEW.created_at);
    ELSE
        UPDATE tickets SET first_reply_at = least(first_reply_at, NEW.created_at), human_replied = true,
            first_human_reply_by = CASE WHEN first_human_reply_at IS NULL OR first_human_reply_at > NEW.created_at
                                        THEN NEW.author_id ELSE first_human_reply_by END,
            first_human_reply_at = least(first_human_reply_at, NEW.created_at)
        WHERE id = NEW.ticket_id
          AND (first_human_reply_at IS NULL OR first_human_reply_at > NEW.created_at
               OR first_reply_at > NEW.created_at);
    END IF;
    RETURN NULL;
END
$$;

-- Only the messages that can change them call the function: customer messages, notes and other
-- system lines cost the message path nothing but the WHEN test; a reply after the first ones
-- costs one update that finds nothing to change.
CREATE TRIGGER messages_track_replies AFTER INSERT ON messages FOR EACH ROW
    WHEN ((NEW.visibility = 'public' AND NEW.author_kind IN ('agent', 'ai'))
          OR (NEW.author_kind = 'system' AND NEW.metadata ? 'handoff'))
    EXECUTE FUNCTION tickets_track_replies();

-- The same figures for the tickets that exist already.
UPDATE tickets t SET first_reply_at = r.first_reply_at, first_human_reply_at = r.first_human_reply_at,
    first_human_reply_by = r.first_human_reply_by, first_handoff_at = r.first_handoff_at,
    ai_replied = r.ai_replied, human_replied = r.human_replied
FROM (
    SELECT m.ticket_id,
           min(m.created_at) FILTER (WHERE m.visibility = 'public' AND m.author_kind IN ('agent', 'ai')) AS first_reply_at,
           min(m.created_at) FILTER (WHERE m.visibility = 'public' AND m.author_kind = 'agent') AS first_human_reply_at,
           (array_agg(m.author_id ORDER BY m.created_at, m.seq)
               FILTER (WHERE m.visibility = 'public' AND m.author_kind = 'agent'))[1] AS first_human_reply_by,
           min(m.created_at) FILTER (WHERE m.author_kind = 'system' AND m.metadata ? 'handoff') AS first_handoff_at,
           coalesce(bool_or(m.visibility = 'public' AND m.author_kind = 'ai'), false) AS ai_replied,
           coalesce(bool_or(m.visibility = 'public' AND m.author_kind = 'agent'), false) AS human_replied
    FROM messages m
    GROUP BY m.ticket_id
) r
WHERE r.ticket_id = t.id;

-- Reports select tickets by when they were opened or resolved.
CREATE INDEX tickets_created_idx ON tickets (created_at);
CREATE INDEX tickets_resolved_idx ON tickets (resolved_at) WHERE resolved_at IS NOT NULL;
-- Agents' replies in a period, with who wrote them and where (index-only).
CREATE INDEX messages_agent_replies_idx ON messages (created_at) INCLUDE (author_id, ticket_id)
    WHERE visibility = 'public' AND author_kind = 'agent';
-- Handoff notices in a period (their reasons).
CREATE INDEX messages_handoffs_idx ON messages (created_at)
    WHERE author_kind = 'system' AND metadata ? 'handoff';
-- Busiest hours: customer messages by when they arrived.
CREATE INDEX messages_customer_created_idx ON messages (created_at) WHERE author_kind = 'customer';
