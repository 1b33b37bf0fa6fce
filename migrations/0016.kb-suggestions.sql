-- Agents' suggestions for the knowledge base (docs/ai.md): a new article, or a new text for an
-- existing one (article_id). They are never searched: only kb_articles are chunked and indexed.
-- An admin publishes one (it becomes, or replaces the text of, an article, re-indexed at once)
-- or rejects it; either way the suggestion row is deleted.
-- depends: 0015.search-and-visitor-context

CREATE TABLE kb_suggestions (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    article_id uuid REFERENCES kb_articles (id) ON DELETE CASCADE,
    title      text NOT NULL,
    body       text NOT NULL,
    url        text,
    note       text NOT NULL DEFAULT '',
    author_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kb_suggestions_created_idx ON kb_suggestions (created_at, id);
CREATE INDEX kb_suggestions_author_idx ON kb_suggestions (author_id);
