"""The outbox read side: the event feed (GET /events) and retention.

Events are written by the statements that make the changes (db/events.py). The feed serves them
in position order (xid, id) with an opaque cursor, long-polling when nothing is new; retention
deletes events older than EVENT_RETENTION_DAYS and remembers how far it went, so a cursor from
before that gets 410 and is told to resync.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import asyncpg

from ..db import events as events_db
from ..db import webhooks as webhooks_db
from ..errors import ApiError, validation_error
from ..realtime.events import Event

log = logging.getLogger(__name__)

# A long poll waits at most this long (GET /events?wait=); a proxy's read timeout must be longer.
MAX_WAIT_SECONDS = 30.0
# While a long poll waits, it reads again at least this often: an event becomes servable when
# the transactions older than it end, which no notification announces (db/events.py).
POLL_SECONDS = 1.0
MAX_PAGE = 500
# Retention runs this often, deleting at most PURGE_BATCH events per statement.
PURGE_EVERY_SECONDS = 600.0
PURGE_BATCH = 5000

# GET /events?after=latest: start at the end (the next cursor is the newest event's).
LATEST = "latest"
_CURSOR = re.compile(r"^(\d{1,20})\.(\d{1,20})$")
# Realtime events after which new outbox events are likely: they wake the long polls at once.
_WAKE_TYPES = frozenset({"inbox.ticket_created", "inbox.ticket_updated", "inbox.message_created", "message.created"})


def encode_cursor(position: tuple[int, int]) -> str:
    return f"{position[0]}.{position[1]}"


def decode_cursor(cursor: str) -> tuple[int, int]:
    match = _CURSOR.match(cursor)
    if match is None or int(match[1]) >= 2**63 or int(match[2]) >= 2**63:
        raise validation_error(
            "after must be a cursor from a previous response", details={"fields": {"after": "is not valid"}}
        )
    return int(match[1]), int(match[2])


def cursor_expired() -> ApiError:
    return ApiError(
        410,
        "cursor_expired",
        "Events after this cursor are past retention and were deleted; resync: read the current "
        "state over REST, then follow the feed again without a cursor",
    )


def event_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """An event as the feed and webhooks show it. `data` holds the objects as REST shows them."""
    return {"id": f"evt_{row['id']}", "type": row["type"], "created_at": row["created_at"], "data": row["data"]}


class EventSignal:
    """Wakes the long polls of this instance when realtime traffic suggests new events (a hub
    observer: events from every instance arrive through the backplane)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def observe(self, event: Event) -> None:
        if event.frame.get("type") in _WAKE_TYPES:
            self.notify()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            pass  # time to read again anyway


async def read_feed(
    pool: asyncpg.Pool,
    signal: EventSignal,
    *,
    after: str | None,
    types: list[str] | None,
    include_internal: bool,
    limit: int,
    wait: float,
) -> dict[str, Any]:
    """The events after `after` (None: the oldest kept; "latest": only events from now on), at
    most `limit`, waiting up to `wait` seconds for some when there are none yet. `next_cursor` is
    where to continue."""
    purged = await events_db.purged_position(pool)
    if after == LATEST:
        position = await events_db.latest_position(pool) or purged
    else:
        position = decode_cursor(after) if after is not None else purged
    if position < purged:
        raise cursor_expired()
    deadline = time.monotonic() + min(wait, MAX_WAIT_SECONDS)
    while True:
        rows = await events_db.list_events(pool, position, types, include_internal, limit)
        remaining = deadline - time.monotonic()
        if rows or remaining <= 0:
            break
        await signal.wait(min(remaining, POLL_SECONDS))
    if rows:
        last = rows[-1]
        position = (int(last["xid"]), int(last["id"]))
    return {"events": [event_view(r) for r in rows], "next_cursor": encode_cursor(position)}


async def purge_expired(pool: asyncpg.Pool, retention_days: float) -> int:
    """Delete the events past retention (and settled webhook deliveries as old); returns how many
    events."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=retention_days)
    await webhooks_db.purge_deliveries(pool, cutoff)
    total = 0
    while True:
        deleted = await events_db.purge_events(pool, cutoff, PURGE_BATCH)
        total += deleted
        if deleted < PURGE_BATCH:
            return total


async def retention_loop(pool: asyncpg.Pool, retention_days: float, every: float = PURGE_EVERY_SECONDS) -> None:
    """Runs on every instance (concurrent purges only wait for each other's row locks)."""
    while True:
        try:
            deleted = await purge_expired(pool, retention_days)
            if deleted:
                log.info("deleted %d events past retention", deleted)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("event retention failed (%s); trying again later", type(exc).__name__)
        await asyncio.sleep(every)
