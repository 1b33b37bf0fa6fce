-- AI replies: the knowledge base (full-text searched), one generation claim per ticket and kind,
-- per-ticket AI usage (the budget), and per-user AI reply counters (the rate limit).
-- depends: 0001.initial-schema

CREATE TABLE kb_articles (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The source file's name without .md: load-kb upserts by it.
    slug       text NOT NULL UNIQUE CHECK (length(slug) BETWEEN 1 AND 200),
    title      text NOT NULL,
    body       text NOT NULL,
    -- Titles weigh more than bodies; 'english' stems "refunds" and "refund" alike.
    search     tsvector GENERATED ALWAYS AS (
                   setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body), 'B')
               ) STORED,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kb_articles_search_idx ON kb_articles USING gin (search);

-- At most one generation per (ticket, kind) across every instance. A row is a lease: the owner
-- extends expires_at while it streams; a crashed owner's row expires and can be claimed again.
CREATE TABLE ai_generations (
    ticket_id   uuid NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('reply', 'copilot')),
    reply_id    uuid NOT NULL,
    instance_id text NOT NULL,
    in_reply_to bigint,
    started_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (ticket_id, kind)
);

CREATE TABLE ticket_ai_usage (
    ticket_id         uuid PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,
    replies           integer NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    total_tokens      bigint NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- A fixed-window counter per user: one row, updated atomically by every instance.
CREATE TABLE ai_user_rate (
    user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    window_start timestamptz NOT NULL,
    count        integer NOT NULL
);
