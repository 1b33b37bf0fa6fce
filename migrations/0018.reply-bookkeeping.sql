-- Reports' reply bookkeeping (first_reply_at, first_human_reply_at/by, first_handoff_at,
-- ai_replied, human_replied on the ticket, migration 0017) moves out of the row trigger on messages
-- and into the statements that store messages (chatserver/db/messages.py: INSERT_MESSAGES,
-- INSERT_MESSAGE), which already update each ticket they write to (last_seq). The trigger cost
-- each AI or agent reply a PL/pgSQL call and a second lookup and update of its ticket inside the
-- hottest statement there is (docs/performance.md, "The message path after the workspace
-- tranche"). Every writer of messages now keeps the figures itself: the server through those
-- statements; a bulk writer (an import, the benchmarks' datasets, a test's fixture) by calling
-- tickets_recount_replies() over the tickets it wrote to.
-- depends: 0017.report-indexes

DROP TRIGGER messages_track_replies ON messages;
DROP FUNCTION tickets_track_replies();

-- The figures of the given tickets (every ticket when NULL), computed again from their messages
-- with the meanings of chatserver/db/reports.py (REPLY, HUMAN_REPLY, HANDOFF); ties on created_at
-- go to the lower seq. Idempotent. Returns the number of tickets updated.
CREATE FUNCTION tickets_recount_replies(ticket_ids uuid[]) RETURNS bigint LANGUAGE sql AS $$
    WITH r AS (
        SELECT m.ticket_id,
               min(m.created_at) FILTER (WHERE m.visibility = 'public' AND m.author_kind IN ('agent', 'ai')) AS first_reply_at,
               min(m.created_at) FILTER (WHERE m.visibility = 'public' AND m.author_kind = 'agent') AS first_human_reply_at,
               (array_agg(m.author_id ORDER BY m.created_at, m.seq)
                   FILTER (WHERE m.visibility = 'public' AND m.author_kind = 'agent'))[1] AS first_human_reply_by,
               min(m.created_at) FILTER (WHERE m.author_kind = 'system' AND m.metadata ? 'handoff') AS first_handoff_at,
               coalesce(bool_or(m.visibility = 'public' AND m.author_kind = 'ai'), false) AS ai_replied,
               coalesce(bool_or(m.visibility = 'public' AND m.author_kind = 'agent'), false) AS human_replied
        FROM messages m
        WHERE ticket_ids IS NULL OR m.ticket_id = ANY (ticket_ids)
        GROUP BY m.ticket_id
    ),
    updated AS (
        UPDATE tickets t SET first_reply_at = r.first_reply_at, first_human_reply_at = r.first_human_reply_at,
            first_human_reply_by = r.first_human_reply_by, first_handoff_at = r.first_handoff_at,
            ai_replied = r.ai_replied, human_replied = r.human_replied
        FROM r
        WHERE r.ticket_id = t.id
          AND (t.first_reply_at, t.first_human_reply_at, t.first_human_reply_by, t.first_handoff_at,
               t.ai_replied, t.human_replied)
              IS DISTINCT FROM (r.first_reply_at, r.first_human_reply_at, r.first_human_reply_by,
                                r.first_handoff_at, r.ai_replied, r.human_replied)
        RETURNING 1
    )
    SELECT count(*) FROM updated
$$;
