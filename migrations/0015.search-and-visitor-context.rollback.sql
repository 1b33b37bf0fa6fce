ALTER TABLE tickets DROP COLUMN visitor_context;
DROP INDEX widget_identities_search_idx;
DROP INDEX users_customer_search_idx;
DROP INDEX messages_search_idx;
DROP INDEX tickets_search_idx;
ALTER TABLE messages DROP COLUMN search_vector;
ALTER TABLE tickets DROP COLUMN search_vector;
