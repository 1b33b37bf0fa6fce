-- Hybrid retrieval: articles split into sections (chunks), each with a full-text vector and an
-- embedding; a version every instance compares to know when to reload its in-memory vectors;
-- and one-time flags (the sample knowledge base is loaded once, never again after a deletion).
-- depends: 0007.attachments

CREATE TABLE kb_chunks (
    id         bigserial PRIMARY KEY,
    article_id uuid NOT NULL REFERENCES kb_articles (id) ON DELETE CASCADE,
    position   integer NOT NULL,
    heading    text NOT NULL,
    body       text NOT NULL,
    search     tsvector GENERATED ALWAYS AS (
                   setweight(to_tsvector('english', heading), 'A') || setweight(to_tsvector('english', body), 'B')
               ) STORED,
    -- Little-endian float32, unit length (bytea: pgvector cannot be required on the system
    -- PostgreSQL); similarity is computed in the process. `model` names the embedding model, so
    -- a different model re-embeds instead of comparing incomparable vectors.
    embedding  bytea NOT NULL,
    model      text NOT NULL,
    UNIQUE (article_id, position)
);
CREATE INDEX kb_chunks_search_idx ON kb_chunks USING gin (search);

-- One row. Every change to articles or chunks bumps it (statement triggers), so each instance
-- learns of any change, made anywhere, from the version its next search reads.
CREATE TABLE kb_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint NOT NULL DEFAULT 0
);
INSERT INTO kb_state (singleton, version) VALUES (true, 0);

CREATE FUNCTION kb_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE kb_state SET version = version + 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER kb_articles_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kb_articles
    FOR EACH STATEMENT EXECUTE FUNCTION kb_bump_version();
CREATE TRIGGER kb_chunks_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kb_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION kb_bump_version();

CREATE TABLE app_flags (
    name   text PRIMARY KEY,
    set_at timestamptz NOT NULL DEFAULT now()
);
