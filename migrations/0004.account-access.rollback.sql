-- depends: 0003.widget-identities
ALTER TABLE users DROP COLUMN session_generation, DROP COLUMN disabled_at;
