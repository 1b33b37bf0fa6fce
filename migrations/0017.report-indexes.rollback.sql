-- depends: 0009.integrations
DROP INDEX messages_customer_created_idx;
DROP INDEX messages_handoffs_idx;
DROP INDEX messages_agent_replies_idx;
DROP INDEX messages_replies_idx;
DROP INDEX tickets_resolved_idx;
DROP INDEX tickets_created_idx;
DROP TRIGGER tickets_track_resolution ON tickets;
DROP FUNCTION tickets_track_resolution();
ALTER TABLE tickets DROP COLUMN resolved_at;
