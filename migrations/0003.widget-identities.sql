-- Widget visitors whom the host site identified (an external user id signed with
-- WIDGET_IDENTITY_SECRET): one customer account per external id, so a returning user continues
-- their tickets on any device.
-- depends: 0002.ai-replies-and-knowledge-base

CREATE TABLE widget_identities (
    external_id text PRIMARY KEY CHECK (length(external_id) BETWEEN 1 AND 200),
    user_id     uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    -- As the host site last gave it, shown to agents; never used to find or merge accounts
    -- (the signature covers the external id only).
    email       text CHECK (email IS NULL OR length(email) <= 254),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
