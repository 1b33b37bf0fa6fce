"""SQL for the knowledge base: upsert articles, full-text search (tsvector + GIN)."""

from __future__ import annotations

import asyncpg

from . import Executor

UPSERT_ARTICLE = """
INSERT INTO kb_articles (slug, title, body, url)
VALUES ($1, $2, $3, $4)
ON CONFLICT (slug) DO UPDATE SET title = EXCLUDED.title, body = EXCLUDED.body, url = EXCLUDED.url, updated_at = now()
WHERE (kb_articles.title, kb_articles.body, kb_articles.url)
      IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.body, EXCLUDED.url)
RETURNING id, (xmax = 0) AS inserted
"""

DELETE_OTHER_ARTICLES = "DELETE FROM kb_articles WHERE NOT (slug = ANY($1::text[]))"

# A customer's question rarely contains every word of an article, so the words are OR-ed
# (plainto_tsquery ANDs them; its output's " & " become " | ") and ranking decides: articles
# matching more, and rarer, words in the title come first.
SEARCH_ARTICLES = """
WITH q AS (
    SELECT to_tsquery('english', replace(plainto_tsquery('english', $1)::text, ' & ', ' | ')) AS query
)
SELECT a.id, a.slug, a.title, a.body, a.url, ts_rank_cd(a.search, q.query) AS rank
FROM kb_articles a, q
WHERE a.search @@ q.query
ORDER BY rank DESC, a.title
LIMIT $2
"""

COUNT_ARTICLES = "SELECT count(*) FROM kb_articles"


async def upsert_article(conn: Executor, slug: str, title: str, body: str, url: str | None = None) -> str:
    """Insert or update one article by slug; returns "inserted", "updated" or "unchanged"."""
    row = await conn.fetchrow(UPSERT_ARTICLE, slug, title, body, url)
    if row is None:
        return "unchanged"
    return "inserted" if row["inserted"] else "updated"


async def delete_articles_except(conn: Executor, slugs: list[str]) -> int:
    status = await conn.execute(DELETE_OTHER_ARTICLES, slugs)
    return int(status.split()[-1])


async def search_articles(conn: Executor, text: str, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(SEARCH_ARTICLES, text, limit)


async def count_articles(conn: Executor) -> int:
    return int(await conn.fetchval(COUNT_ARTICLES))
