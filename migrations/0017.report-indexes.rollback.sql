-- depends: 0009.integrations
DROP INDEX messages_customer_created_idx;
DROP INDEX messages_handoffs_idx;
DROP INDEX messages_agent_replies_idx;
DROP INDEX tickets_resolved_idx;
DROP INDEX tickets_created_idx;
DROP TRIGGER messages_track_replies ON messages;
DROP FUNCTION tickets_track_replies();
ALTER TABLE tickets DROP COLUMN first_reply_at, DROP COLUMN first_human_reply_at,
    DROP COLUMN first_human_reply_by, DROP COLUMN first_handoff_at, DROP COLUMN ai_replied,
    DROP COLUMN human_replied;
DROP TRIGGER tickets_track_resolution ON tickets;
DROP FUNCTION tickets_track_resolution();
ALTER TABLE tickets DROP COLUMN resolved_at;
