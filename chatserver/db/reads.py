"""SQL for read cursors: one row per (ticket, user), the last public message seq the user has seen
(migrations/0010). Never per message."""

from __future__ import annotations

import uuid

import asyncpg

from . import Executor

# Move a cursor forward, never back, in one statement. The seq stored is the newest *public*
# message at or below what the client says it has read: a customer cannot point at an internal
# note's seq, and an agent's cursor, which the customer sees, never reveals one either. No row
# comes back when nothing moved (an older or equal seq, or no public message yet).
ADVANCE_READ = """
WITH target AS (
    SELECT max(seq) AS seq FROM messages
    WHERE ticket_id = $1 AND visibility = 'public' AND seq <= $3
)
INSERT INTO ticket_reads AS r (ticket_id, user_id, seq)
SELECT $1, $2, target.seq FROM target WHERE target.seq IS NOT NULL
ON CONFLICT (ticket_id, user_id) DO UPDATE SET seq = EXCLUDED.seq, updated_at = now()
WHERE r.seq < EXCLUDED.seq
RETURNING seq
"""

LIST_READS = """
SELECT r.user_id, u.role, r.seq FROM ticket_reads r JOIN users u ON u.id = r.user_id
WHERE r.ticket_id = $1
ORDER BY r.updated_at
"""


async def advance_read(conn: Executor, ticket_id: uuid.UUID, user_id: uuid.UUID, seq: int) -> int | None:
    """The cursor's new seq, or None when it did not move (or the ticket or user is gone)."""
    try:
        value = await conn.fetchval(ADVANCE_READ, ticket_id, user_id, seq)
    except asyncpg.ForeignKeyViolationError:
        return None
    return None if value is None else int(value)


async def list_reads(conn: Executor, ticket_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_READS, ticket_id)
