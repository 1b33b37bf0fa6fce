"""Ticket ratings: the customer rates a resolved or closed ticket once (1-5, optional comment).

Check (owner, state), write the rating and its rating.created event in one transaction, then
tell the room and the inbox (ticket.updated with changes ["rating"]).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson

from ..db import events as events_db
from ..db import ratings as ratings_db
from ..errors import ApiError, forbidden, not_found
from ..jsonutil import dumps_bytes
from ..realtime import events
from ..realtime.publisher import Publisher
from ..security import Identity
from ..views import rating_view, ticket_view

# 1 = bad … 5 = great. A scale of five rather than three: reports can average it, and it maps
# onto the usual CSAT question ("satisfied" = 4 or 5).
MIN_SCORE = 1
MAX_SCORE = 5
# The comment is a sentence or two, not a second conversation (the column's CHECK agrees).
MAX_COMMENT_CHARS = 1000
RATEABLE_STATUSES = ("resolved", "closed")


def not_rateable() -> ApiError:
    return ApiError(409, "ticket_not_closed", "Only a resolved or closed ticket can be rated")


def already_rated() -> ApiError:
    return ApiError(409, "already_rated", "This ticket has already been rated")


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """As REST spells it (UUIDs and timestamps as strings), for the jsonb codec."""
    data: dict[str, Any] = orjson.loads(dumps_bytes(value))
    return data


async def rate_ticket(
    pool: asyncpg.Pool,
    publisher: Publisher,
    who: Identity,
    ticket_id: uuid.UUID,
    *,
    score: int,
    comment: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(rating, ticket). Only the ticket's customer may rate it, once, when it is resolved or closed."""
    async with pool.acquire() as conn, conn.transaction():
        current = await ratings_db.lock_ticket(conn, ticket_id)
        if current is None or (not who.is_staff and current["customer_id"] != who.user_id):
            raise not_found("Ticket")
        if who.role != "customer":
            raise forbidden("Only the ticket's customer can rate it")
        if current["rating"] is not None:
            raise already_rated()
        if current["status"] not in RATEABLE_STATUSES:
            raise not_rateable()
        row = await ratings_db.set_rating(conn, ticket_id, score, comment or None)
        if row is None:  # cannot happen under the row lock; kept as the same answer, not a 500
            raise already_rated()
        rating = rating_view(row)
        ticket = ticket_view(row)
        await events_db.record_event(
            conn, events_db.RATING_CREATED, _plain({"rating": rating, "ticket": ticket}), ticket_id=ticket_id
        )
    await publisher.publish(events.ticket_updated(ticket, ["rating"], who.user_id))
    await publisher.publish(events.inbox_ticket_updated(ticket, ["rating"]))
    return rating, ticket
