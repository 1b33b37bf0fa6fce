"""SQL for the messages table, including the one-round-trip insert that hands out `seq`."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from . import Executor

MESSAGE_COLUMNS = "id, ticket_id, seq, author_id, author_kind, body, client_id, visibility, metadata, created_at"

# One statement, one round trip: bump the ticket's last_seq (which row-locks the ticket, so seqs
# are handed out in commit order) and insert the message with it. A resend with a client_id that
# is already stored returns the original row with created = false and bumps nothing.
INSERT_MESSAGE = f"""
WITH existing AS (
    SELECT {MESSAGE_COLUMNS} FROM messages
    WHERE $5::text IS NOT NULL AND ticket_id = $1 AND author_id IS NOT DISTINCT FROM $2
      AND client_id = $5
),
bumped AS (
    UPDATE tickets SET last_seq = last_seq + 1, last_activity_at = now(), updated_at = now()
    WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM existing)
    RETURNING last_seq
),
inserted AS (
    INSERT INTO messages (ticket_id, seq, author_id, author_kind, body, client_id, visibility, metadata)
    SELECT $1, bumped.last_seq, $2, $3, $4, $5, $6, $7 FROM bumped
    RETURNING {MESSAGE_COLUMNS}
)
SELECT {MESSAGE_COLUMNS}, true AS created FROM inserted
UNION ALL
SELECT {MESSAGE_COLUMNS}, false AS created FROM existing
"""

# History pages: visibility filter "NULL means all" so agents see internal notes, customers not.
LIST_MESSAGES_AFTER = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE ticket_id = $1 AND seq > $2 AND ($3::text IS NULL OR visibility = $3)
ORDER BY seq ASC
LIMIT $4
"""

LIST_MESSAGES_BEFORE = f"""
SELECT * FROM (
    SELECT {MESSAGE_COLUMNS} FROM messages
    WHERE ticket_id = $1 AND seq < $2 AND ($3::text IS NULL OR visibility = $3)
    ORDER BY seq DESC
    LIMIT $4
) page ORDER BY seq ASC
"""


async def insert_message(
    conn: Executor,
    *,
    ticket_id: uuid.UUID,
    author_id: uuid.UUID | None,
    author_kind: str,
    body: str,
    client_id: str | None,
    visibility: str = "public",
    metadata: dict[str, Any] | None = None,
) -> tuple[asyncpg.Record, bool] | None:
    """Store a message; returns (row, created) or None when the ticket does not exist.

    Two racing sends with one client_id: the loser's insert violates the unique index, which
    rolls back its seq bump too; it then finds the winner's row on the retry.
    """
    for _attempt in range(2):
        try:
            row = await conn.fetchrow(
                INSERT_MESSAGE, ticket_id, author_id, author_kind, body, client_id, visibility, metadata or {}
            )
        except asyncpg.UniqueViolationError:
            if client_id is None:
                raise
            continue
        if row is None:
            return None
        return row, row["created"]
    raise RuntimeError("message insert kept conflicting on client_id")


async def list_after(
    conn: Executor, ticket_id: uuid.UUID, after_seq: int, visibility: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_MESSAGES_AFTER, ticket_id, after_seq, visibility, limit)


async def list_before(
    conn: Executor, ticket_id: uuid.UUID, before_seq: int, visibility: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_MESSAGES_BEFORE, ticket_id, before_seq, visibility, limit)
