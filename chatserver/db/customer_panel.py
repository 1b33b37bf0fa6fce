"""SQL for the console's customer panel: a ticket's visitor context and the customer's other tickets."""

from __future__ import annotations

import uuid

import asyncpg

from . import Executor

SELECT_VISITOR_CONTEXT = "SELECT customer_id, visitor_context FROM tickets WHERE id = $1"

SET_VISITOR_CONTEXT = "UPDATE tickets SET visitor_context = $2 WHERE id = $1"

# A customer's other tickets, newest activity first, and how many there are in all.
OTHER_TICKETS = """
SELECT id, subject, status, created_at, last_activity_at, count(*) OVER () AS total
FROM tickets WHERE customer_id = $1 AND id <> $2
ORDER BY last_activity_at DESC, id DESC
LIMIT $3
"""


async def visitor_context(conn: Executor, ticket_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_VISITOR_CONTEXT, ticket_id)


async def set_visitor_context(conn: Executor, ticket_id: uuid.UUID, context: dict[str, str]) -> None:
    await conn.execute(SET_VISITOR_CONTEXT, ticket_id, context)


async def other_tickets(
    conn: Executor, customer_id: uuid.UUID, ticket_id: uuid.UUID, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(OTHER_TICKETS, customer_id, ticket_id, limit)
