"""Tickets: who may see and change what, then write, then publish."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from ..db import customer_panel as panel_db
from ..db import labels as labels_db
from ..db import messages as messages_db
from ..db import tickets as tickets_db
from ..db import users as users_db
from ..errors import ApiError, account_gone, forbidden, not_found, too_many_requests, validation_error
from ..realtime import events
from ..realtime.publisher import Publisher
from ..security import Identity
from ..views import message_view, ticket_for, ticket_view
from . import search as search_service
from .activity import publish_ticket_change
from .hooks import MessageHook

STATUSES = ("open", "pending", "resolved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
# What a customer at the open-ticket cap is told to wait: a slot frees when an agent resolves one
# of their tickets or they close one, which no clock predicts.
OPEN_CAP_RETRY_AFTER = 600.0


@dataclass(frozen=True)
class TicketCaps:
    """TICKETS_PER_CUSTOMER_PER_HOUR and OPEN_TICKETS_PER_CUSTOMER (customers only)."""

    per_hour: int
    open_at_once: int


async def check_ticket_caps(conn: asyncpg.Connection | asyncpg.Pool, customer_id: uuid.UUID, caps: TicketCaps) -> None:
    """Count the customer's tickets in the database (so the caps hold across instances) and refuse
    with 429 when over. create_ticket calls it twice: once without a lock, so a flood past the cap
    is refused without queueing on the lock (and holding pool connections while it waits), then
    inside the creating transaction after locking the customer, so concurrent requests cannot
    race past the cap."""
    counts = await tickets_db.customer_ticket_counts(conn, customer_id)
    if counts["opened_last_hour"] >= caps.per_hour:
        raise too_many_requests(
            f"You can open at most {caps.per_hour} tickets an hour; try again later",
            max(1.0, counts["hour_frees_in"] or 0.0),
        )
    if counts["open_now"] >= caps.open_at_once:
        seconds = int(OPEN_CAP_RETRY_AFTER)
        raise ApiError(
            429,
            "too_many_open_tickets",
            f"You already have {counts['open_now']} open tickets; continue in one of them or close one first",
            details={"retry_after": seconds, "open_tickets": counts["open_now"]},
            headers={"Retry-After": str(seconds)},
        )


def encode_cursor(row: asyncpg.Record) -> str:
    raw = orjson.dumps([row["last_activity_at"].isoformat(), str(row["id"])])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, ident = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        # uuid.UUID(5) raises AttributeError, not ValueError: check the types first.
        if not isinstance(at, str) or not isinstance(ident, str):
            raise ValueError("cursor parts must be strings")
        stamp = dt.datetime.fromisoformat(at)
        if stamp.tzinfo is None:
            raise ValueError("naive timestamp")
        # Normalise to UTC here: an instant outside the representable range (year 1 at +14:00)
        # raises OverflowError now, instead of in the database driver as a 500.
        return stamp.astimezone(dt.UTC), uuid.UUID(ident)
    except (ValueError, TypeError, OverflowError, orjson.JSONDecodeError):
        raise validation_error(
            "Cursor is not valid; use next_cursor from a previous page", details={"fields": {"cursor": "is not valid"}}
        ) from None


async def load_visible_ticket(pool: asyncpg.Pool, who: Identity, ticket_id: uuid.UUID) -> asyncpg.Record:
    """The ticket if `who` may see it. Another customer's ticket is 'not found', not 'forbidden',
    so ticket ids cannot be probed."""
    row = await tickets_db.get_ticket(pool, ticket_id)
    if row is None or (not who.is_staff and row["customer_id"] != who.user_id):
        raise not_found("Ticket")
    return row


async def create_ticket(
    pool: asyncpg.Pool,
    publisher: Publisher,
    who: Identity,
    *,
    subject: str,
    description: str,
    ai_enabled: bool,
    first_message: str | None,
    client_id: str | None,
    after_post: MessageHook | None = None,
    client_address: str | None = None,
    caps: TicketCaps | None = None,
    visitor_context: dict[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """`caps` None: no per-customer caps (callers that are not a customer's own request).
    `visitor_context`: checked by services/customer_panel.py clean_context; agents see it."""
    if who.role != "customer":
        raise forbidden("Only customers open tickets")
    message_row = None
    # Staff never get here, so the customer caps never apply to them.
    if caps is not None:
        await check_ticket_caps(pool, who.user_id, caps)
    # One transaction: a ticket is never left behind without the first message it was opened with.
    async with pool.acquire() as conn, conn.transaction():
        if caps is not None:
            if not await tickets_db.lock_customer(conn, who.user_id):
                raise account_gone()
            await check_ticket_caps(conn, who.user_id, caps)
        try:
            ticket_row = await tickets_db.insert_ticket(conn, who.user_id, subject, description, ai_enabled)
        except asyncpg.ForeignKeyViolationError:
            raise account_gone() from None
        if visitor_context:
            await panel_db.set_visitor_context(conn, ticket_row["id"], visitor_context)
        if first_message:
            stored = await messages_db.insert_message(
                conn,
                ticket_id=ticket_row["id"],
                author_id=who.user_id,
                author_kind="customer",
                body=first_message,
                client_id=client_id,
            )
            assert stored is not None  # the ticket was inserted just above
            message_row = stored[0]
            ticket_row = await tickets_db.get_ticket(conn, ticket_row["id"])
    ticket = ticket_view(ticket_row)
    await publisher.publish(events.inbox_ticket_created(ticket))
    message = message_view(message_row) if message_row else None
    if message:
        await publisher.publish(events.message_created(message))
        await publisher.publish(events.inbox_message_created(message))
        if after_post is not None:
            await after_post(message, ticket_row, who, client_address=client_address)
    return ticket, message


async def list_tickets(
    pool: asyncpg.Pool,
    who: Identity,
    *,
    status: str | None,
    priority: str | None,
    assignee: str | None,
    waiting: bool | None,
    cursor: str | None,
    limit: int,
    q: str | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """One page, newest activity first. With `q`, only tickets that match it (services/search.py),
    each with a `match`, and the query's `terms`; the same filters and cursor either way.
    `label`: a label's id or name (any case); agents only, since customers do not see labels."""
    label_id = await resolve_label_filter(pool, who, label) if label else None
    unassigned = False
    assignee_id = None
    if assignee == "none":
        unassigned = True
    elif assignee == "me":
        assignee_id = who.user_id
    elif assignee:
        try:
            assignee_id = uuid.UUID(assignee)
        except ValueError:
            raise validation_error(
                "assignee must be me, none or a user id",
                details={"fields": {"assignee": "must be me, none or a user id"}},
            ) from None
    filters: dict[str, Any] = {
        "customer_id": None if who.is_staff else who.user_id,
        "status": status,
        "priority": priority,
        "unassigned": unassigned,
        "assignee_id": assignee_id,
        "before": decode_cursor(cursor) if cursor else None,
        "limit": limit + 1,  # one extra row tells whether another page exists
        "waiting_for_agent": waiting,
        "label_id": label_id,
    }
    if q is None:
        rows = await tickets_db.list_tickets(pool, **filters)
        page = rows[:limit]
        return {
            "tickets": [ticket_for(ticket_view(r), who.is_staff) for r in page],
            "next_cursor": encode_cursor(page[-1]) if len(rows) > limit else None,
        }
    query, lexemes = await search_service.parse_query(pool, q)
    rows = await search_service.find_tickets(pool, query, filters)
    page = rows[:limit]
    tickets = [ticket_view(r) for r in page]
    await search_service.attach_matches(pool, who, tickets, {r["id"]: r["text_matched"] for r in page}, query, lexemes)
    return {
        "tickets": [ticket_for(t, who.is_staff) for t in tickets],
        "next_cursor": encode_cursor(page[-1]) if len(rows) > limit else None,
        "terms": lexemes,
    }


async def resolve_label_filter(pool: asyncpg.Pool, who: Identity, label: str) -> uuid.UUID:
    if not who.is_staff:
        raise forbidden("Only agents filter tickets by label")
    try:
        return uuid.UUID(label)
    except ValueError:
        pass
    # Names are short printable text (services/labels.py): anything else names no label, and
    # PostgreSQL refuses text with a NUL in it.
    if len(label) > 100 or not label.isprintable():
        raise validation_error("No label has that name", details={"fields": {"label": "no label has that name"}})
    label_id = await labels_db.find_by_name(pool, label)
    if label_id is None:
        raise validation_error("No label has that name", details={"fields": {"label": "no label has that name"}})
    return label_id


async def update_ticket(
    pool: asyncpg.Pool, publisher: Publisher, who: Identity, ticket_id: uuid.UUID, changes: dict[str, Any]
) -> dict[str, Any]:
    current = await load_visible_ticket(pool, who, ticket_id)
    # A customer may close their own ticket, and nothing else.
    customer_closing = set(changes) == {"status"} and changes["status"] == "closed"
    if not who.is_staff and not customer_closing:
        raise forbidden("Customers may only close their own ticket")
    if "assignee_id" in changes and changes["assignee_id"] is not None:
        assignee = await users_db.get_by_id(pool, changes["assignee_id"])
        if assignee is None or assignee["role"] not in ("agent", "admin"):
            raise validation_error(
                "assignee_id must be an agent or admin",
                details={"fields": {"assignee_id": "must be an agent or admin"}},
            )
    if changes.get("ai_enabled") is False:
        # A human takes over: the ticket no longer waits for one.
        changes.setdefault("waiting_for_agent", False)
    effective = {k: v for k, v in changes.items() if current[k] != v}
    if not effective:
        return ticket_view(current)
    row = await tickets_db.update_ticket(pool, ticket_id, effective, by=who.user_id)
    if row is None:
        raise not_found("Ticket")
    return await publish_ticket_change(publisher, row, sorted(effective), who.user_id)
