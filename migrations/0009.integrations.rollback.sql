DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE api_keys;
DROP TABLE event_positions;
DROP TABLE events;
-- Messages of integrations stay, as agent messages without an author.
UPDATE messages SET author_kind = 'agent' WHERE author_kind = 'integration';
DELETE FROM users WHERE role = 'integration';
ALTER TABLE messages DROP CONSTRAINT messages_author_kind_check,
    ADD CONSTRAINT messages_author_kind_check CHECK (author_kind IN ('customer', 'agent', 'ai', 'system'));
ALTER TABLE users DROP CONSTRAINT users_role_check,
    ADD CONSTRAINT users_role_check CHECK (role IN ('customer', 'agent', 'admin'));
