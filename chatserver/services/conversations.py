"""The widget's conversation history: a customer's own tickets, newest activity first, each with
its newest public message as a preview (docs/web.md, "Conversation history")."""

from __future__ import annotations

from typing import Any

import asyncpg

from ..db import conversations as conversations_db
from ..errors import forbidden
from ..security import Identity
from ..views import message_view
from . import tickets as ticket_service


async def conversation_page(pool: asyncpg.Pool, who: Identity, *, cursor: str | None, limit: int) -> dict[str, Any]:
    """GET /tickets (which lists only the caller's own tickets for a customer) plus previews."""
    if who.role != "customer":
        raise forbidden("Conversation history is the widget's, for customers")
    page = await ticket_service.list_tickets(
        pool, who, status=None, priority=None, assignee=None, waiting=None, cursor=cursor, limit=limit
    )
    tickets = page["tickets"]
    rows = await conversations_db.last_public_messages(pool, [t["id"] for t in tickets]) if tickets else []
    last = {row["ticket_id"]: message_view(row) for row in rows}
    return {
        "conversations": [{"ticket": t, "last_message": last.get(t["id"])} for t in tickets],
        "next_cursor": page["next_cursor"],
    }
