-- Each article's own embedding (its title and all its sections), stored when it is indexed. The
-- vector ranking judges a section in its article's context; the article vectors used to be
-- computed by every instance on every reload of the knowledge base, which was free with
-- WordLlama alone but costs ~0.25 s an article with all-MiniLM-L6-v2 (docs/ai.md). NULL until
-- the article is indexed by a version that stores it: the first instance to notice re-indexes.
-- depends: 0022.ticket-texts

ALTER TABLE kb_articles ADD COLUMN embedding bytea;
