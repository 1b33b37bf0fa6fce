"""SQL for the widget's conversation history: the newest public message of each ticket."""

from __future__ import annotations

import uuid

import asyncpg

from . import Executor
from .messages import MESSAGE_COLUMNS

# Public messages only: this list is the customer's, and internal notes are never theirs to see.
LAST_PUBLIC_MESSAGES = f"""
SELECT DISTINCT ON (ticket_id) {MESSAGE_COLUMNS} FROM messages
WHERE ticket_id = ANY($1::uuid[]) AND visibility = 'public'
ORDER BY ticket_id, seq DESC
"""


async def last_public_messages(conn: Executor, ticket_ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(LAST_PUBLIC_MESSAGES, ticket_ids)
