"""SQL for the outbox of domain events (the `events` table): the fragments that other statements
embed to record an event in their own statement, the feed's reads, and retention.

A position is (xid, id): the writing transaction's id, then the row id. Readers only see events
whose transaction is older than every transaction still running (`pg_snapshot_xmin`), so the set
of events at or before any position served is final: nothing can commit behind a cursor.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from . import Executor

# Event types (docs/integrations.md). rating.created: services/ratings.py records it with
# record_event below, in the transaction that stores the rating.
TICKET_CREATED = "ticket.created"
TICKET_UPDATED = "ticket.updated"
MESSAGE_CREATED = "message.created"
TICKET_HANDOFF = "ticket.handoff"
AI_REPLY_COMPLETED = "ai.reply.completed"
RATING_CREATED = "rating.created"
WEBHOOK_ENDPOINT_DISABLED = "webhook.endpoint_disabled"
EVENT_TYPES = (
    TICKET_CREATED,
    TICKET_UPDATED,
    MESSAGE_CREATED,
    TICKET_HANDOFF,
    AI_REPLY_COMPLETED,
    RATING_CREATED,
    WEBHOOK_ENDPOINT_DISABLED,
)


def json_object(source: str, fields: list[str], prefix: str = "") -> str:
    """jsonb_build_object over `source`'s columns: the same keys views.py gives the row (the views
    of tickets and messages are their columns, by name; tests/test_integrations_events.py checks
    they stay so)."""
    return "jsonb_build_object(" + ", ".join(f"'{f}', {_json_value(f'{source}.{prefix}{f}', f)}" for f in fields) + ")"


def _json_value(column: str, field: str) -> str:
    """A column as the REST answer writes it. Timestamps (the `*_at` columns) are spelled as orjson
    spells a UTC datetime, `2026-12-03T12:00:00.154820+00:00` (the fraction left out when it is
    zero), not as PostgreSQL's JSON does (`.15482`, trailing zeros trimmed): the same instant must
    read the same in a webhook, the event feed and REST."""
    if not field.endswith("_at"):
        return column
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"CASE WHEN {column} IS NULL THEN NULL ELSE to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN date_part('microseconds', {column})::bigint % 1000000 = 0 THEN '' "
        f"ELSE to_char({utc}, '.US') END || '+00:00' END"
    )


# The horizon: transactions below it have all ended, so the events below it are final.
_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())"

LIST_EVENTS = f"""
SELECT id, xid::text AS xid, type, ticket_id, internal, data, created_at FROM events
WHERE (xid, id) > ($1::text::xid8, $2::bigint) AND xid < {_HORIZON}
  AND ($3::text[] IS NULL OR type = ANY($3)) AND ($4::boolean OR NOT internal)
ORDER BY xid, id
LIMIT $5
"""

LATEST_POSITION = f"""
SELECT xid::text AS xid, id FROM events WHERE xid < {_HORIZON} ORDER BY xid DESC, id DESC LIMIT 1
"""

PURGED_POSITION = "SELECT purged_xid::text AS xid, purged_id AS id FROM event_positions"

# Retention: the oldest events, in position order, a batch at a time; the purged position moves
# to the last one deleted, so a cursor before it is known to have lost events.
PURGE_EVENTS = f"""
WITH doomed AS (
    SELECT id, xid FROM events WHERE created_at < $1 AND xid < {_HORIZON}
    ORDER BY xid, id LIMIT $2
),
gone AS (
    DELETE FROM events USING doomed WHERE events.id = doomed.id RETURNING events.xid, events.id
),
last AS (
    SELECT xid, id FROM gone ORDER BY xid DESC, id DESC LIMIT 1
)
UPDATE event_positions SET purged_xid = last.xid, purged_id = last.id FROM last
WHERE (last.xid, last.id) > (event_positions.purged_xid, event_positions.purged_id)
RETURNING (SELECT count(*) FROM gone) AS deleted
"""

RECORD_EVENT = """
INSERT INTO events (type, ticket_id, internal, data) VALUES ($1, $2, $3, $4)
RETURNING id, xid::text AS xid, type, ticket_id, internal, data, created_at
"""


async def list_events(
    conn: Executor,
    after: tuple[int, int],
    types: list[str] | None,
    include_internal: bool,
    limit: int,
) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_EVENTS, str(after[0]), after[1], types, include_internal, limit)


async def latest_position(conn: Executor) -> tuple[int, int] | None:
    """The position of the newest servable event; None when there is none."""
    row = await conn.fetchrow(LATEST_POSITION)
    return None if row is None else (int(row["xid"]), int(row["id"]))


async def purged_position(conn: Executor) -> tuple[int, int]:
    row = await conn.fetchrow(PURGED_POSITION)
    return int(row["xid"]), int(row["id"])


async def purge_events(conn: Executor, older_than: dt.datetime, batch: int) -> int:
    """Delete up to `batch` events older than `older_than`; returns how many."""
    row = await conn.fetchrow(PURGE_EVENTS, older_than, batch)
    return 0 if row is None else int(row["deleted"])


async def record_event(
    conn: Executor, type_: str, data: dict[str, Any], *, ticket_id: uuid.UUID | None = None, internal: bool = False
) -> asyncpg.Record:
    """Record an event on its own (inside the caller's transaction when `conn` is one): for
    changes whose statement does not embed the event itself (e.g. rating.created)."""
    return await conn.fetchrow(RECORD_EVENT, type_, ticket_id, internal, data)
