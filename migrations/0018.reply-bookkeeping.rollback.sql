-- depends: 0017.report-indexes
-- Back to migration 0017's row trigger (its exact definition).
DROP FUNCTION tickets_recount_replies(uuid[]);

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

CREATE TRIGGER messages_track_replies AFTER INSERT ON messages FOR EACH ROW
    WHEN ((NEW.visibility = 'public' AND NEW.author_kind IN ('agent', 'ai'))
          OR (NEW.author_kind = 'system' AND NEW.metadata ? 'handoff'))
    EXECUTE FUNCTION tickets_track_replies();
