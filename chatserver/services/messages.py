"""Messages: posting (idempotent by client_id) and reading history, for REST and WebSocket alike."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from ..db import messages as messages_db
from ..db import tickets as tickets_db
from ..db.message_writer import MessageWriter
from ..errors import account_gone, forbidden, not_found
from ..realtime import events
from ..realtime.publisher import Publisher
from ..security import Identity
from ..views import attachment_summary, message_view
from .activity import publish_ticket_change
from .attachments import attachments_unavailable
from .hooks import MessageHook
from .tickets import load_visible_ticket

MAX_BODY_CHARS = 10_000
MAX_CLIENT_ID_CHARS = 100


async def post_message(
    pool: asyncpg.Pool,
    writer: MessageWriter,
    publisher: Publisher,
    who: Identity,
    ticket_id: uuid.UUID,
    *,
    body: str,
    client_id: str | None,
    internal: bool = False,
    ticket: asyncpg.Record | None = None,
    after_post: MessageHook | None = None,
    client_address: str | None = None,
    attachment_ids: list[uuid.UUID] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store a message and broadcast it. Returns (message, created); created is False for a resend
    of a client_id already stored, in which case nothing is stored or broadcast again. The insert
    goes through `writer`, which stores it together with others posted at the same moment.
    `client_address` (the poster's, `request.remote`) is handed to `after_post`: the AI layer
    budgets replies per address. `attachment_ids` (the author's uploads into this ticket,
    checked by the caller for count) are linked to the message in the same transaction."""
    if internal and not who.is_staff:
        if ticket is None:
            # As for every post, a ticket the caller may not see is "not found" first.
            await load_visible_ticket(pool, who, ticket_id)
        raise forbidden("Only agents can write internal notes")
    # An API key's messages are the integration's, and say so (docs/security.md).
    author_kind = who.role if who.role in ("customer", "integration") else "agent"
    # Who may post where is checked by the insert itself (one round trip per message, not a
    # ticket read and then the insert; docs/performance.md): a customer only in their own
    # tickets, staff anywhere; a ticket handed in by the caller was checked by the caller.
    owner_id = None if ticket is not None or who.is_staff else who.user_id
    item = messages_db.VisibleMessage(
        ticket_id=ticket_id,
        owner_id=owner_id,
        author_id=who.user_id,
        author_kind=author_kind,
        body=body,
        client_id=client_id,
        visibility="internal" if internal else "public",
    )
    try:
        if attachment_ids:
            # Only messages with files take this path (a transaction of their own); every other
            # message goes through the group commit exactly as before.
            stored = await messages_db.insert_visible_message_with_attachments(
                pool, item, attachment_ids, attachment_summary
            )
        else:
            stored = await writer.insert_visible(item)
    except messages_db.AttachmentsUnavailable:
        raise attachments_unavailable() from None
    except asyncpg.ForeignKeyViolationError:
        # The only foreign key a caller controls is the author: a token outliving its account.
        raise account_gone() from None
    if stored is None:
        raise not_found("Ticket")
    row, created, bumped = stored
    message = message_view(row)
    if created:
        # The ticket as this message left it (seq and activity times bumped, nothing else).
        ticket = ticket if ticket is not None else bumped
        assert ticket is not None  # a stored message always comes with the ticket it bumped
        await publisher.publish(events.message_created(message))
        await publisher.publish(events.inbox_message_created(message))
        follow_up: dict[str, Any] = {}
        if who.role == "customer" and ticket["status"] in ("resolved", "closed"):
            # A customer writing again reopens the conversation, as support desks do.
            follow_up["status"] = "open"
        if who.role in ("agent", "admin") and not internal and ticket["waiting_for_agent"]:
            # A person has answered: the ticket no longer waits for one.
            follow_up["waiting_for_agent"] = False
        if follow_up:
            updated = await tickets_db.update_ticket(pool, ticket_id, follow_up, by=who.user_id)
            if updated is not None:
                await publish_ticket_change(publisher, updated, sorted(follow_up), who.user_id)
        if after_post is not None:
            await after_post(message, ticket, who, client_address=client_address)
    return message, created


async def list_messages(
    pool: asyncpg.Pool,
    who: Identity,
    ticket_id: uuid.UUID,
    *,
    after_seq: int | None,
    before_seq: int | None,
    limit: int,
) -> dict[str, Any]:
    ticket = await load_visible_ticket(pool, who, ticket_id)
    visibility = None if who.is_staff else "public"
    if before_seq is not None:
        rows = await messages_db.list_before(pool, ticket_id, before_seq, visibility, limit + 1)
        has_more = len(rows) > limit
        rows = rows[-limit:] if has_more else rows
    else:
        rows = await messages_db.list_after(pool, ticket_id, after_seq or 0, visibility, limit + 1)
        has_more = len(rows) > limit
        rows = rows[:limit]
    return {"messages": [message_view(r) for r in rows], "has_more": has_more, "last_seq": ticket["last_seq"]}
