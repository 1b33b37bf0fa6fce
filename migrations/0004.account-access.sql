-- Account access that can be taken back: a disabled account signs nothing in, and every token
-- and console session carries the account's session generation, so raising it (logout, role
-- change, disable, password reset) ends them all at once (docs/security.md).
-- depends: 0003.widget-identities

ALTER TABLE users
    ADD COLUMN disabled_at        timestamptz,
    ADD COLUMN session_generation integer NOT NULL DEFAULT 0 CHECK (session_generation >= 0);
