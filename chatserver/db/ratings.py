"""SQL for ticket ratings: the rating columns of the tickets table (migrations/0010)."""

from __future__ import annotations

import uuid

import asyncpg

from . import Executor
from .tickets import TICKET_COLUMNS

# Inside the rating transaction: the ticket, locked, so the checks and the write see one state
# (two tabs rating at once: the second waits, then finds the rating and gets 409).
LOCK_TICKET = f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1 FOR UPDATE"

# A rating is not conversation activity: last_activity_at (the lists' order) stays.
SET_RATING = f"""
UPDATE tickets SET rating = $2, rating_comment = $3, rated_at = now(), updated_at = now()
WHERE id = $1 AND rating IS NULL
RETURNING {TICKET_COLUMNS}
"""


async def lock_ticket(conn: asyncpg.Connection, ticket_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(LOCK_TICKET, ticket_id)


async def set_rating(conn: Executor, ticket_id: uuid.UUID, score: int, comment: str | None) -> asyncpg.Record | None:
    """None when the ticket is gone or already rated."""
    return await conn.fetchrow(SET_RATING, ticket_id, score, comment)
