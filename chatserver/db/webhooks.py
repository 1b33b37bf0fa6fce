"""SQL for webhook endpoints and deliveries: fan-out of outbox events into deliveries, claiming
due deliveries across instances (FOR UPDATE SKIP LOCKED and a lease), and recording outcomes."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from . import Executor

ENDPOINT_COLUMNS = (
    "id, url, event_types, include_internal, active, description, disabled_reason, created_at, updated_at"
)
DELIVERY_COLUMNS = (
    "id, endpoint_id, event_id, ticket_id, status, attempts, next_attempt_at, last_status_code, last_error, "
    "response_excerpt, last_attempt_at, delivered_at, created_at"
)

INSERT_ENDPOINT = f"""
INSERT INTO webhook_endpoints (url, event_types, include_internal, active, secret, description)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {ENDPOINT_COLUMNS}
"""
LIST_ENDPOINTS = f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at DESC, id DESC LIMIT $1"
GET_ENDPOINT = f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
DELETE_ENDPOINT = """
WITH gone AS (DELETE FROM webhook_endpoints WHERE id = $1 RETURNING id),
deliveries AS (DELETE FROM webhook_deliveries WHERE endpoint_id IN (SELECT id FROM gone))
SELECT id FROM gone
"""
ENDPOINT_UPDATABLE = ("url", "event_types", "include_internal", "active", "description")

# One instance at a time (the position row's lock; the others skip it) turns the events past the
# fan-out position into deliveries, one per matching active endpoint, and moves the position: in
# one statement, so a crash loses nothing and repeats nothing. Only events below the horizon are
# taken (db/events.py), so none is skipped by committing later. Deliveries are numbered in event
# order, which is the order each endpoint gets one ticket's events in; all but the first pending
# delivery of an endpoint and ticket are `blocked` until the one before them is settled.
FAN_OUT = """
WITH state AS (
    SELECT dispatched_xid, dispatched_id FROM event_positions FOR UPDATE SKIP LOCKED
),
batch AS (
    SELECT e.id, e.xid, e.type, e.ticket_id, e.internal FROM events e, state
    WHERE (e.xid, e.id) > (state.dispatched_xid, state.dispatched_id)
      AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY e.xid, e.id
    LIMIT $1
),
matched AS (
    SELECT w.id AS endpoint_id, b.id AS event_id, b.xid, b.ticket_id,
        row_number() OVER (PARTITION BY w.id, b.ticket_id ORDER BY b.xid, b.id) AS nth
    FROM batch b JOIN webhook_endpoints w
        ON w.active AND b.type = ANY (w.event_types) AND (NOT b.internal OR w.include_internal)
),
inserted AS (
    INSERT INTO webhook_deliveries (endpoint_id, event_id, ticket_id, blocked)
    SELECT m.endpoint_id, m.event_id, m.ticket_id,
        m.ticket_id IS NOT NULL AND (m.nth > 1 OR EXISTS (
            SELECT 1 FROM webhook_deliveries p
            WHERE p.endpoint_id = m.endpoint_id AND p.ticket_id = m.ticket_id AND p.status = 'pending'
        ))
    FROM matched m
    ORDER BY m.xid, m.event_id, m.endpoint_id
    RETURNING 1
),
last AS (
    SELECT xid, id FROM batch ORDER BY xid DESC, id DESC LIMIT 1
),
moved AS (
    UPDATE event_positions SET dispatched_xid = last.xid, dispatched_id = last.id FROM last RETURNING 1
)
SELECT (SELECT count(*) FROM batch) AS events, (SELECT count(*) FROM inserted) AS deliveries,
       (SELECT count(*) FROM moved) AS moved
"""

# Due deliveries of active endpoints, claimed for `$2` seconds: no other instance sends them
# meanwhile, and a claim whose instance died lapses and is sent again (same event id). Only
# unblocked deliveries are candidates (the first pending one of each endpoint and ticket), so
# one ticket's events reach an endpoint in order and the scan never wades through a backlog.
CLAIM_DUE = """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.status = 'pending' AND NOT d.blocked AND d.next_attempt_at <= now()
      AND (d.locked_until IS NULL OR d.locked_until < now())
      AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = d.endpoint_id AND w.active)
    ORDER BY d.next_attempt_at, d.id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE webhook_deliveries d
    SET locked_until = now() + make_interval(secs => $2), attempts = d.attempts + 1, last_attempt_at = now()
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.endpoint_id, d.event_id, d.payload, d.attempts, d.created_at
)
SELECT c.id, c.endpoint_id, c.event_id, c.payload, c.attempts, c.created_at AS delivery_created_at,
       extract(epoch FROM now() - c.created_at)::float8 AS age_seconds,
       w.url, w.secret, e.type, e.data, e.created_at
FROM claimed c JOIN webhook_endpoints w ON w.id = c.endpoint_id LEFT JOIN events e ON e.id = c.event_id
ORDER BY c.id
"""

# Each outcome applies only to the attempt it answers (`attempts`): a claim that lapsed while its
# request was slow must not overwrite what the instance that took it over recorded.
# Settling a delivery unblocks the next pending one of its endpoint and ticket. (This statement's
# snapshot still shows the settled rows as pending, hence `p.id > settled.id`.)
_UNBLOCK_NEXT = """
nexts AS (
    SELECT DISTINCT ON (p.endpoint_id, p.ticket_id) p.id
    FROM webhook_deliveries p JOIN settled ON p.endpoint_id = settled.endpoint_id AND p.ticket_id = settled.ticket_id
    WHERE p.status = 'pending' AND p.id > settled.id
    ORDER BY p.endpoint_id, p.ticket_id, p.id
),
unblocked AS (
    UPDATE webhook_deliveries SET blocked = false FROM nexts WHERE webhook_deliveries.id = nexts.id
)"""

MARK_DELIVERED_MANY = f"""
WITH settled AS (
    UPDATE webhook_deliveries d
    SET status = 'delivered', delivered_at = now(), locked_until = NULL, last_status_code = u.code,
        last_error = NULL, response_excerpt = u.excerpt
    FROM unnest($1::bigint[], $2::integer[], $3::integer[], $4::text[]) AS u (id, attempt, code, excerpt)
    WHERE d.id = u.id AND d.status = 'pending' AND d.attempts = u.attempt
    RETURNING d.id, d.endpoint_id, d.ticket_id
),
{_UNBLOCK_NEXT}
SELECT count(*) FROM settled
"""

# The safety net: a delivery inserted while the one before it was being settled (the two
# statements could not see each other) is unblocked here, a few seconds late at worst.
UNBLOCK_HEADS = """
UPDATE webhook_deliveries d SET blocked = false
FROM (
    SELECT DISTINCT ON (endpoint_id, ticket_id) id, blocked FROM webhook_deliveries
    WHERE status = 'pending' AND ticket_id IS NOT NULL
    ORDER BY endpoint_id, ticket_id, id
) heads
WHERE d.id = heads.id AND heads.blocked
"""

MARK_RETRY = """
UPDATE webhook_deliveries
SET next_attempt_at = now() + make_interval(secs => $4), locked_until = NULL, last_status_code = $2,
    last_error = $3, response_excerpt = $5
WHERE id = $1 AND status = 'pending' AND attempts = $6
"""

# A delivery out of retries fails; its endpoint is disabled when nothing reached it since that
# delivery was created (it failed for the whole retry period). Returns the endpoint when it was
# disabled by this statement.
MARK_FAILED = f"""
WITH settled AS (
    UPDATE webhook_deliveries
    SET status = 'failed', locked_until = NULL, last_status_code = $2, last_error = $3, response_excerpt = $4
    WHERE id = $1 AND status = 'pending' AND attempts = $6
    RETURNING id, endpoint_id, ticket_id, created_at
),
{_UNBLOCK_NEXT}
UPDATE webhook_endpoints w
SET active = false, disabled_reason = $5, updated_at = now()
FROM settled AS failed
WHERE w.id = failed.endpoint_id AND w.active
  AND NOT EXISTS (
      SELECT 1 FROM webhook_deliveries ok
      WHERE ok.endpoint_id = w.id AND ok.status = 'delivered' AND ok.delivered_at > failed.created_at
  )
RETURNING w.id, w.url
"""

LIST_DELIVERIES = f"""
SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
WHERE endpoint_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::bigint IS NULL OR id < $3)
ORDER BY id DESC LIMIT $4
"""

GET_DELIVERY = f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2"

# "Send again": a new delivery of the same event (or test payload), due now.
# (Not for an event past retention: there is nothing to send.)
RESEND = f"""
INSERT INTO webhook_deliveries (endpoint_id, event_id, ticket_id, payload, blocked)
SELECT d.endpoint_id, d.event_id, d.ticket_id, d.payload,
    d.ticket_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM webhook_deliveries p
        WHERE p.endpoint_id = d.endpoint_id AND p.ticket_id = d.ticket_id AND p.status = 'pending'
    )
FROM webhook_deliveries d
WHERE d.id = $1 AND d.endpoint_id = $2 AND (d.event_id IS NULL OR EXISTS (SELECT 1 FROM events WHERE id = d.event_id))
RETURNING {DELIVERY_COLUMNS}
"""

# Retention: settled deliveries older than the cutoff, and anything left of deleted endpoints.
PURGE_DELIVERIES = """
DELETE FROM webhook_deliveries d
WHERE (d.created_at < $1 AND d.status <> 'pending')
   OR NOT EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = d.endpoint_id)
"""

INSERT_TEST = f"""
INSERT INTO webhook_deliveries (endpoint_id, payload) VALUES ($1, $2)
RETURNING {DELIVERY_COLUMNS}
"""


async def insert_endpoint(
    conn: Executor,
    url: str,
    event_types: list[str],
    include_internal: bool,
    active: bool,
    secret: str,
    description: str,
) -> asyncpg.Record:
    return await conn.fetchrow(INSERT_ENDPOINT, url, event_types, include_internal, active, secret, description)


async def list_endpoints(conn: Executor, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_ENDPOINTS, limit)


async def get_endpoint(conn: Executor, endpoint_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_ENDPOINT, endpoint_id)


async def update_endpoint(conn: Executor, endpoint_id: uuid.UUID, changes: dict[str, Any]) -> asyncpg.Record | None:
    columns = [name for name in changes if name in ENDPOINT_UPDATABLE]
    if len(columns) != len(changes):
        raise ValueError(f"not updatable: {set(changes) - set(ENDPOINT_UPDATABLE)}")
    # Column names come from the allow-list above; values are $n. Re-activating clears the
    # reason an endpoint was disabled for.
    assignments = "".join(f"{name} = ${i + 2}, " for i, name in enumerate(columns))
    if "active" in columns:
        # SET sees the old row: test the new value, the parameter.
        assignments += (
            f"disabled_reason = CASE WHEN ${columns.index('active') + 2} THEN NULL ELSE disabled_reason END, "
        )
    sql = f"UPDATE webhook_endpoints SET {assignments}updated_at = now() WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
    return await conn.fetchrow(sql, endpoint_id, *(changes[name] for name in columns))


async def delete_endpoint(conn: Executor, endpoint_id: uuid.UUID) -> bool:
    return await conn.fetchval(DELETE_ENDPOINT, endpoint_id) is not None


async def fan_out(conn: Executor, batch: int) -> asyncpg.Record:
    return await conn.fetchrow(FAN_OUT, batch)


async def claim_due(conn: Executor, limit: int, lease_seconds: float) -> list[asyncpg.Record]:
    return await conn.fetch(CLAIM_DUE, limit, lease_seconds)


async def mark_delivered_many(conn: Executor, done: list[tuple[int, int, int, str]]) -> None:
    """mark_delivered for many: (delivery id, attempt, status code, excerpt) each."""
    ids, attempts, codes, excerpts = (list(column) for column in zip(*done, strict=True))
    await conn.execute(MARK_DELIVERED_MANY, ids, attempts, codes, excerpts)


async def mark_retry(
    conn: Executor,
    delivery_id: int,
    attempt: int,
    status_code: int | None,
    error: str,
    delay: float,
    excerpt: str | None,
) -> None:
    await conn.execute(MARK_RETRY, delivery_id, status_code, error, delay, excerpt, attempt)


async def mark_failed(
    conn: Executor,
    delivery_id: int,
    attempt: int,
    status_code: int | None,
    error: str,
    excerpt: str | None,
    reason: str,
) -> asyncpg.Record | None:
    return await conn.fetchrow(MARK_FAILED, delivery_id, status_code, error, excerpt, reason, attempt)


async def unblock_heads(conn: Executor) -> int:
    result = await conn.execute(UNBLOCK_HEADS)
    return int(result.split()[-1])


async def purge_deliveries(conn: Executor, older_than: Any) -> int:
    result = await conn.execute(PURGE_DELIVERIES, older_than)
    return int(result.split()[-1])


async def list_deliveries(
    conn: Executor, endpoint_id: uuid.UUID, status: str | None, before: int | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_DELIVERIES, endpoint_id, status, before, limit)


async def resend(conn: Executor, endpoint_id: uuid.UUID, delivery_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(RESEND, delivery_id, endpoint_id)


async def insert_test(conn: Executor, endpoint_id: uuid.UUID, payload: dict[str, Any]) -> asyncpg.Record:
    return await conn.fetchrow(INSERT_TEST, endpoint_id, payload)
