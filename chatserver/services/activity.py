"""The activity log of tickets (agents only): publishing a ticket change with its lines, and
reading a ticket's lines. The lines themselves are written by db/tickets.py `update_ticket`, in
the statement that changes the ticket, so every path that changes a ticket records them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from ..db import activity as activity_db
from ..db import tickets as tickets_db
from ..errors import forbidden, not_found
from ..realtime import events
from ..realtime.publisher import Publisher
from ..security import Identity
from ..views import ticket_view


async def publish_ticket_change(
    publisher: Publisher, row: Mapping[str, Any], names: list[str], by: uuid.UUID | None
) -> dict[str, Any]:
    """After the commit of tickets_db.update_ticket: ticket.updated to the room, the inbox's
    frame, and an activity.created (agents only) per line the update wrote."""
    ticket = ticket_view(row)
    await publisher.publish(events.ticket_updated(ticket, names, by))
    await publisher.publish(events.inbox_ticket_updated(ticket, names))
    for entry in row["activity"]:
        await publisher.publish(events.activity_created(entry))
    return ticket


async def list_activity(
    pool: asyncpg.Pool, who: Identity, ticket_id: uuid.UUID, *, after_id: int, limit: int
) -> dict[str, Any]:
    """The ticket's lines, oldest first. A customer gets 404 for a ticket not theirs (as everywhere)
    and 403 for their own."""
    ticket = await tickets_db.get_ticket(pool, ticket_id)
    if ticket is None or (not who.is_staff and ticket["customer_id"] != who.user_id):
        raise not_found("Ticket")
    if not who.is_staff:
        raise forbidden("The activity log is for agents")
    rows = await activity_db.list_activity(pool, ticket_id, after_id, limit + 1)
    entries = [row["entry"] for row in rows[:limit]]
    return {"activity": entries, "has_more": len(rows) > limit}
