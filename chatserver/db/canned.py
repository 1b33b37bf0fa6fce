"""SQL for canned responses: shared ones (owner_id NULL) and each agent's personal ones."""

from __future__ import annotations

import uuid

import asyncpg

from . import Executor

CANNED_COLUMNS = "id, owner_id, shortcut, body, created_at, updated_at"

# What one agent may use: the shared responses and their own, shortcut order (shared first on a
# tie). `q` matches the shortcut or the text, case-insensitively ($2 is a LIKE pattern, escaped).
LIST_VISIBLE = f"""
SELECT {CANNED_COLUMNS} FROM canned_responses
WHERE (owner_id IS NULL OR owner_id = $1)
  AND ($2::text IS NULL OR shortcut ILIKE $2 OR body ILIKE $2)
ORDER BY shortcut, owner_id NULLS FIRST
LIMIT $3
"""

SELECT_ONE = f"SELECT {CANNED_COLUMNS} FROM canned_responses WHERE id = $1"

INSERT = f"""
INSERT INTO canned_responses (owner_id, shortcut, body) VALUES ($1, $2, $3) RETURNING {CANNED_COLUMNS}
"""

UPDATE = f"""
UPDATE canned_responses SET shortcut = coalesce($2, shortcut), body = coalesce($3, body), updated_at = now()
WHERE id = $1 RETURNING {CANNED_COLUMNS}
"""

DELETE = "DELETE FROM canned_responses WHERE id = $1 RETURNING id"


def like_pattern(text: str) -> str:
    """`text` anywhere, with LIKE's wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_visible(conn: Executor, user_id: uuid.UUID, q: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_VISIBLE, user_id, like_pattern(q) if q else None, limit)


async def get(conn: Executor, canned_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_ONE, canned_id)


async def insert(conn: Executor, owner_id: uuid.UUID | None, shortcut: str, body: str) -> asyncpg.Record:
    """Raises asyncpg.UniqueViolationError when the owner (or the shared set) has the shortcut."""
    return await conn.fetchrow(INSERT, owner_id, shortcut, body)


async def update(conn: Executor, canned_id: uuid.UUID, shortcut: str | None, body: str | None) -> asyncpg.Record | None:
    return await conn.fetchrow(UPDATE, canned_id, shortcut, body)


async def delete(conn: Executor, canned_id: uuid.UUID) -> bool:
    return await conn.fetchval(DELETE, canned_id) is not None
