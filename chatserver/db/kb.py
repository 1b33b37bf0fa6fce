"""SQL for the knowledge base: articles (upsert, list, view, delete), their chunks with embeddings,
full-text search over chunks, the change version, and one-time flags."""

from __future__ import annotations

import uuid

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

ARTICLE_COLUMNS = "id, slug, title, body, url, created_at, updated_at"
LIST_ARTICLES = f"SELECT {ARTICLE_COLUMNS} FROM kb_articles ORDER BY title, slug LIMIT $1 OFFSET $2"
GET_ARTICLE = f"SELECT {ARTICLE_COLUMNS} FROM kb_articles WHERE id = $1"
GET_ARTICLE_BY_SLUG = f"SELECT {ARTICLE_COLUMNS} FROM kb_articles WHERE slug = $1"
INSERT_ARTICLE = f"""
INSERT INTO kb_articles (slug, title, body, url) VALUES ($1, $2, $3, $4) RETURNING {ARTICLE_COLUMNS}
"""
UPDATE_ARTICLE = f"""
UPDATE kb_articles SET slug = $2, title = $3, body = $4, url = $5, updated_at = now() WHERE id = $1
RETURNING {ARTICLE_COLUMNS}
"""
DELETE_ARTICLE = "DELETE FROM kb_articles WHERE id = $1"

DELETE_CHUNKS = "DELETE FROM kb_chunks WHERE article_id = $1"
SET_ARTICLE_VECTOR = "UPDATE kb_articles SET embedding = $2 WHERE id = $1"
INSERT_CHUNK = """
INSERT INTO kb_chunks (article_id, position, heading, body, embedding, model) VALUES ($1, $2, $3, $4, $5, $6)
"""

# Articles whose chunks are missing or were embedded by another model (after migration 0008, or
# a model change), or without their own vector (before 0023): the instance that notices
# re-indexes them.
ARTICLES_TO_INDEX = """
SELECT a.id, a.slug, a.title, a.body FROM kb_articles a
WHERE a.embedding IS NULL
   OR NOT EXISTS (SELECT 1 FROM kb_chunks c WHERE c.article_id = a.id)
   OR EXISTS (SELECT 1 FROM kb_chunks c WHERE c.article_id = a.id AND c.model <> $1)
ORDER BY a.slug
"""

LOAD_CHUNKS = """
SELECT c.id, c.article_id, a.slug, a.title, a.url, c.position, c.heading, c.body, c.embedding, c.model,
       a.embedding AS article_embedding
FROM kb_chunks c JOIN kb_articles a ON a.id = c.article_id
ORDER BY c.id
"""
KB_VERSION = "SELECT version FROM kb_state"

# A customer's question rarely contains every word of a section, so the words are OR-ed
# (plainto_tsquery ANDs them; its output's " & " become " | ") and ranking decides. The version
# rides along so a search tells the caller whether its in-memory vectors are still current,
# without a second round trip.
SEARCH_CHUNKS = """
WITH q AS (
    SELECT to_tsquery('english', replace(plainto_tsquery('english', $1)::text, ' & ', ' | ')) AS query
), hits AS (
    SELECT c.id, ts_rank_cd(c.search, q.query) AS rank
    FROM kb_chunks c, q
    WHERE c.search @@ q.query
    ORDER BY rank DESC, c.id
    LIMIT $2
)
SELECT (SELECT version FROM kb_state) AS version,
       array(SELECT id FROM hits ORDER BY rank DESC, id) AS ids
"""

COUNT_ARTICLES = "SELECT count(*) FROM kb_articles"
SET_FLAG = "INSERT INTO app_flags (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING name"


async def upsert_article(
    conn: Executor, slug: str, title: str, body: str, url: str | None = None
) -> tuple[str, uuid.UUID | None]:
    """Insert or update one article by slug; ("inserted" | "updated" | "unchanged", id if changed)."""
    row = await conn.fetchrow(UPSERT_ARTICLE, slug, title, body, url)
    if row is None:
        return "unchanged", None
    return ("inserted" if row["inserted"] else "updated"), row["id"]


async def delete_articles_except(conn: Executor, slugs: list[str]) -> int:
    status = await conn.execute(DELETE_OTHER_ARTICLES, slugs)
    return int(status.split()[-1])


async def list_articles(conn: Executor, limit: int, offset: int) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_ARTICLES, limit, offset)


async def get_article(conn: Executor, article_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_ARTICLE, article_id)


async def get_article_by_slug(conn: Executor, slug: str) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_ARTICLE_BY_SLUG, slug)


async def insert_article(conn: Executor, slug: str, title: str, body: str, url: str | None) -> asyncpg.Record:
    row = await conn.fetchrow(INSERT_ARTICLE, slug, title, body, url)
    assert row is not None  # INSERT … RETURNING always returns the row
    return row


async def update_article(
    conn: Executor, article_id: uuid.UUID, slug: str, title: str, body: str, url: str | None
) -> asyncpg.Record | None:
    return await conn.fetchrow(UPDATE_ARTICLE, article_id, slug, title, body, url)


async def delete_article(conn: Executor, article_id: uuid.UUID) -> bool:
    return (await conn.execute(DELETE_ARTICLE, article_id)) != "DELETE 0"


async def replace_chunks(
    conn: asyncpg.Connection,
    article_id: uuid.UUID,
    chunks: list[tuple[str, str, bytes]],
    model: str,
    article_vector: bytes,
) -> None:
    """The article's chunks become `chunks` ((heading, body, embedding) in order), and its own
    vector `article_vector`. In a transaction."""
    await conn.execute(SET_ARTICLE_VECTOR, article_id, article_vector)
    await conn.execute(DELETE_CHUNKS, article_id)
    await conn.executemany(
        INSERT_CHUNK,
        [(article_id, i, heading, body, vector, model) for i, (heading, body, vector) in enumerate(chunks)],
    )


async def articles_to_index(conn: Executor, model: str) -> list[asyncpg.Record]:
    return await conn.fetch(ARTICLES_TO_INDEX, model)


async def load_chunks(conn: Executor) -> tuple[int, list[asyncpg.Record]]:
    """Every chunk with its article and the version it belongs to (one snapshot)."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as c:
            return await load_chunks(c)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version = int(await conn.fetchval(KB_VERSION))
        return version, await conn.fetch(LOAD_CHUNKS)


async def search_chunks(conn: Executor, text: str, limit: int) -> tuple[int, list[int]]:
    """(the current version, chunk ids ranked by full-text relevance)."""
    row = await conn.fetchrow(SEARCH_CHUNKS, text, limit)
    assert row is not None  # a SELECT without FROM returns one row
    return int(row["version"]), list(row["ids"])


async def kb_version(conn: Executor) -> int:
    return int(await conn.fetchval(KB_VERSION))


async def count_articles(conn: Executor) -> int:
    return int(await conn.fetchval(COUNT_ARTICLES))


async def set_flag(conn: Executor, name: str) -> bool:
    """Set a one-time flag; True only for the caller that set it first."""
    return await conn.fetchval(SET_FLAG, name) is not None


async def lock_article(conn: asyncpg.Connection, article_id: uuid.UUID) -> asyncpg.Record | None:
    """The article's title and body, its row locked until the transaction ends."""
    return await conn.fetchrow("SELECT title, body FROM kb_articles WHERE id = $1 FOR UPDATE", article_id)


# ---- suggestions (agents propose, admins publish or reject) ----------------------------------

SUGGESTION_COLUMNS = """
s.id, s.article_id, s.title, s.body, s.url, s.note, s.author_id, s.created_at,
a.title AS article_title, a.slug AS article_slug, u.display_name AS author_name, u.email AS author_email
"""
SUGGESTION_FROM = """
FROM kb_suggestions s
LEFT JOIN kb_articles a ON a.id = s.article_id
LEFT JOIN users u ON u.id = s.author_id
"""
INSERT_SUGGESTION = """
INSERT INTO kb_suggestions (article_id, title, body, url, note, author_id) VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
"""
# $1: only this author's (an agent's own), or NULL: everyone's (an admin).
LIST_SUGGESTIONS = f"""
SELECT {SUGGESTION_COLUMNS} {SUGGESTION_FROM}
WHERE $1::uuid IS NULL OR s.author_id = $1
ORDER BY s.created_at, s.id
LIMIT $2
"""
GET_SUGGESTION = f"SELECT {SUGGESTION_COLUMNS} {SUGGESTION_FROM} WHERE s.id = $1"
LOCK_SUGGESTION = "SELECT id, article_id, title, body, url FROM kb_suggestions WHERE id = $1 FOR UPDATE"
DELETE_SUGGESTION = "DELETE FROM kb_suggestions WHERE id = $1"


async def insert_suggestion(
    conn: Executor,
    *,
    article_id: uuid.UUID | None,
    title: str,
    body: str,
    url: str | None,
    note: str,
    author_id: uuid.UUID | None,
) -> uuid.UUID:
    suggestion_id: uuid.UUID = await conn.fetchval(INSERT_SUGGESTION, article_id, title, body, url, note, author_id)
    return suggestion_id


async def list_suggestions(conn: Executor, author_id: uuid.UUID | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_SUGGESTIONS, author_id, limit)


async def get_suggestion(conn: Executor, suggestion_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_SUGGESTION, suggestion_id)


async def lock_suggestion(conn: asyncpg.Connection, suggestion_id: uuid.UUID) -> asyncpg.Record | None:
    """The suggestion, its row locked until the transaction ends (one publish wins)."""
    return await conn.fetchrow(LOCK_SUGGESTION, suggestion_id)


async def delete_suggestion(conn: Executor, suggestion_id: uuid.UUID) -> bool:
    return (await conn.execute(DELETE_SUGGESTION, suggestion_id)) != "DELETE 0"
