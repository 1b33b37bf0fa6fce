"""What the agent console reads beyond the REST API: inbox rows (ticket, customer, last message) and
the staff list for the assignee picker."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from ..db import widget as widget_db
from ..errors import forbidden
from ..security import Identity
from ..views import message_view, ticket_view
from . import tickets as ticket_service
from .widget import VISITOR_EMAIL_DOMAIN


def require_staff(who: Identity) -> None:
    if not who.is_staff:
        raise forbidden("The console is for agents and admins")


def customer_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A customer as agents see them. Widget visitors' generated addresses are not shown."""
    generated = row["email"].endswith("@" + VISITOR_EMAIL_DOMAIN)
    return {
        "id": row["id"],
        "name": row["display_name"],
        "email": row["external_email"] if generated else row["email"],
        "external_id": row["external_id"],
        "anonymous": generated and row["external_id"] is None,
    }


def staff_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["display_name"], "email": row["email"], "role": row["role"]}


async def summarize(pool: asyncpg.Pool, tickets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Inbox rows for `tickets`, in the same order: two queries, whatever the page size."""
    if not tickets:
        return []
    last = {
        row["ticket_id"]: message_view(row) for row in await widget_db.last_messages(pool, [t["id"] for t in tickets])
    }
    customer_ids = list({t["customer_id"] for t in tickets})
    customers = {row["id"]: customer_view(row) for row in await widget_db.customer_profiles(pool, customer_ids)}
    return [
        {"ticket": t, "customer": customers.get(t["customer_id"]), "last_message": last.get(t["id"])} for t in tickets
    ]


async def inbox_page(pool: asyncpg.Pool, who: Identity, **filters: Any) -> dict[str, Any]:
    """One page of the inbox, filtered (and searched: `q`) as GET /tickets is. A search's `match`
    moves from the ticket to the row."""
    require_staff(who)
    page = await ticket_service.list_tickets(pool, who, **filters)
    matches = {t["id"]: t.pop("match") for t in page["tickets"] if "match" in t}
    rows = await summarize(pool, page["tickets"])
    if "terms" in page:
        for row in rows:
            row["match"] = matches.get(row["ticket"]["id"])
        return {"tickets": rows, "next_cursor": page["next_cursor"], "terms": page["terms"]}
    return {"tickets": rows, "next_cursor": page["next_cursor"]}


async def inbox_item(pool: asyncpg.Pool, who: Identity, ticket_id: uuid.UUID) -> dict[str, Any]:
    require_staff(who)
    row = await ticket_service.load_visible_ticket(pool, who, ticket_id)
    return (await summarize(pool, [ticket_view(row)]))[0]


async def staff_list(pool: asyncpg.Pool, who: Identity) -> list[dict[str, Any]]:
    require_staff(who)
    return [staff_view(row) for row in await widget_db.staff_members(pool)]
