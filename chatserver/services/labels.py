"""Labels: admins manage the catalogue, agents put labels on tickets (docs/web.md, "Labels").

A ticket carries copies of its labels (tickets.labels) so that every read of a ticket has them;
putting labels on a ticket is an ordinary ticket update (event, activity line, ticket.updated
with changes ["labels"]), and a catalogue change rewrites the copies in the same transaction."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg

from ..db import labels as labels_db
from ..db import tickets as tickets_db
from ..errors import conflict, forbidden, not_found, validation_error
from ..realtime import events
from ..realtime.publisher import Publisher
from ..security import Identity
from ..views import label_view, ticket_view
from .activity import publish_ticket_change
from .tickets import load_visible_ticket

MAX_NAME_CHARS = 50
# More labels than this on one ticket is a tagging habit, not triage.
MAX_LABELS_PER_TICKET = 20
COLOR = re.compile(r"#[0-9a-fA-F]{6}")


def check_color(color: str) -> str:
    """`#rrggbb`, stored in lower case."""
    if not COLOR.fullmatch(color):
        raise validation_error(
            "color must be a #rrggbb hex colour", details={"fields": {"color": "must be a #rrggbb hex colour"}}
        )
    return color.lower()


def require_agent(who: Identity) -> None:
    if not who.is_staff:
        raise forbidden("Labels are for agents")


def _name_taken() -> Exception:
    return conflict("A label with this name exists")


async def list_labels(pool: asyncpg.Pool, who: Identity) -> list[dict[str, Any]]:
    require_agent(who)
    return [label_view(row) for row in await labels_db.list_labels(pool)]


async def _publish_catalogue(pool: asyncpg.Pool, publisher: Publisher) -> None:
    labels = [label_view(row) for row in await labels_db.list_labels(pool)]
    await publisher.publish(events.inbox_labels_changed(labels))


async def create_label(pool: asyncpg.Pool, publisher: Publisher, name: str, color: str) -> dict[str, Any]:
    """Admins only (the handler checks)."""
    try:
        row = await labels_db.insert_label(pool, name, check_color(color))
    except asyncpg.UniqueViolationError:
        raise _name_taken() from None
    await _publish_catalogue(pool, publisher)
    return label_view(row)


async def update_label(
    pool: asyncpg.Pool, publisher: Publisher, label_id: uuid.UUID, name: str | None, color: str | None
) -> dict[str, Any]:
    """Rename or recolour (admins only): the tickets that carry the label show the change."""
    color = None if color is None else check_color(color)
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await labels_db.update_label(conn, label_id, name, color)
    except asyncpg.UniqueViolationError:
        raise _name_taken() from None
    if row is None:
        raise not_found("Label")
    await _publish_catalogue(pool, publisher)
    return label_view(row)


async def delete_label(pool: asyncpg.Pool, publisher: Publisher, label_id: uuid.UUID) -> None:
    """Admins only: the label goes from every ticket too."""
    async with pool.acquire() as conn, conn.transaction():
        deleted = await labels_db.delete_label(conn, label_id)
    if not deleted:
        raise not_found("Label")
    await _publish_catalogue(pool, publisher)


async def set_ticket_labels(
    pool: asyncpg.Pool, publisher: Publisher, who: Identity, ticket_id: uuid.UUID, label_ids: list[uuid.UUID]
) -> dict[str, Any]:
    """Replace the ticket's labels with `label_ids` (agents and admins). A customer gets 404 for a
    ticket not theirs (as everywhere) and 403 for their own."""
    if not who.is_staff:
        await load_visible_ticket(pool, who, ticket_id)
        raise forbidden("Labels are for agents")
    wanted = list(dict.fromkeys(label_ids))
    if len(wanted) > MAX_LABELS_PER_TICKET:
        raise validation_error(
            f"A ticket has at most {MAX_LABELS_PER_TICKET} labels",
            details={"fields": {"label_ids": f"must list at most {MAX_LABELS_PER_TICKET} labels"}},
        )
    row: Any
    async with pool.acquire() as conn, conn.transaction():
        rows = await labels_db.lock_labels(conn, wanted)
        if len(rows) != len(wanted):
            raise validation_error(
                "label_ids names a label that does not exist",
                details={"fields": {"label_ids": "names a label that does not exist"}},
            )
        current = await tickets_db.get_ticket(conn, ticket_id)
        if current is None:
            raise not_found("Ticket")
        labels = [{"id": str(r["id"]), "name": r["name"], "color": r["color"]} for r in rows]
        if {label["id"] for label in current["labels"]} == {label["id"] for label in labels}:
            return ticket_view(current)
        row = await tickets_db.update_ticket(conn, ticket_id, {"labels": labels}, by=who.user_id)
        if row is None:
            raise not_found("Ticket")
    return await publish_ticket_change(publisher, row, ["labels"], who.user_id)
