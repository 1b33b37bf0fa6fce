"""SQL for the tickets table."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from . import Executor
from .activity import ACTIVITY_COLUMNS, ACTIVITY_VIEW
from .events import TICKET_CREATED, TICKET_UPDATED, json_object

# rating, rating_comment, rated_at: the customer's rating (services/ratings.py), null until rated.
TICKET_COLUMNS = """id, customer_id, subject, description, status, priority, assignee_id,
    ai_enabled, waiting_for_agent, last_seq, last_activity_at, created_at, updated_at,
    rating, rating_comment, rated_at, labels, contact_email"""
_TICKET_FIELDS = [name.strip() for name in TICKET_COLUMNS.split(",")]

# The ticket and its ticket.created event (the outbox, db/events.py) in one statement.
INSERT_TICKET = f"""
WITH inserted AS (
    INSERT INTO tickets (customer_id, subject, description, ai_enabled)
    VALUES ($1, $2, $3, $4)
    RETURNING {TICKET_COLUMNS}
),
event AS (
    INSERT INTO events (type, ticket_id, data)
    SELECT '{TICKET_CREATED}', inserted.id, jsonb_build_object('ticket', {json_object("inserted", _TICKET_FIELDS)})
    FROM inserted
)
SELECT {TICKET_COLUMNS} FROM inserted
"""

SELECT_TICKET = f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1"

# Keyset pagination, newest activity first. Each filter is "NULL means any" so one statement
# (and one prepared plan) serves every combination.
LIST_TICKETS = f"""
SELECT {TICKET_COLUMNS} FROM tickets
WHERE ($1::uuid IS NULL OR customer_id = $1)
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR priority = $3)
  AND (NOT $4::boolean OR assignee_id IS NULL)
  AND ($5::uuid IS NULL OR assignee_id = $5)
  AND ($6::timestamptz IS NULL OR (last_activity_at, id) < ($6, $7::uuid))
  AND ($9::boolean IS NULL OR waiting_for_agent = $9)
  AND ($10::jsonb IS NULL OR labels @> $10)
ORDER BY last_activity_at DESC, id DESC
LIMIT $8
"""

# Serialises ticket creation per customer (across instances too) so the caps below are counted
# and enforced in one step. NO KEY UPDATE does not block the foreign-key checks of the customer's
# other inserts (they take KEY SHARE). No row: the account is gone.
LOCK_CUSTOMER = "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE"

# What the ticket caps need: tickets opened in the last hour (and in how many seconds the oldest
# of them leaves the hour), and tickets not yet resolved or closed.
CUSTOMER_TICKET_COUNTS = """
SELECT count(*) FILTER (WHERE created_at > now() - interval '1 hour') AS opened_last_hour,
       count(*) FILTER (WHERE status IN ('open', 'pending')) AS open_now,
       extract(epoch FROM min(created_at) FILTER (WHERE created_at > now() - interval '1 hour')
                          + interval '1 hour' - now())::float8 AS hour_frees_in
FROM tickets WHERE customer_id = $1
"""

# Only the columns a caller may change; the caller builds the SET list from this allow-list.
UPDATABLE = ("status", "priority", "assignee_id", "ai_enabled", "waiting_for_agent", "labels", "contact_email")

# The activity lines (agents only, docs/web.md "Activity") an update writes, one per kind of change,
# computed in the update's own statement from the row as it was (locked) and as it is now. Labels
# record what was added and removed; an assignee is recorded with the name it had then.
_ASSIGNEE = "(SELECT jsonb_build_object('id', u.id, 'name', u.display_name) FROM users u WHERE u.id = {})"
_LABEL_DIFF = (
    "(SELECT coalesce(jsonb_agg(e ORDER BY e->>'name'), '[]'::jsonb) FROM jsonb_array_elements({a}) e "
    "WHERE NOT {b} @> jsonb_build_array(jsonb_build_object('id', e->'id')))"
)
_ACTIVITY_ROWS = f"""(VALUES
    ('status', jsonb_build_object('from', updated.old_status, 'to', updated.status),
     updated.old_status IS DISTINCT FROM updated.status),
    ('priority', jsonb_build_object('from', updated.old_priority, 'to', updated.priority),
     updated.old_priority IS DISTINCT FROM updated.priority),
    ('assignee', jsonb_build_object('from', {_ASSIGNEE.format("updated.old_assignee_id")},
                                    'to', {_ASSIGNEE.format("updated.assignee_id")}),
     updated.old_assignee_id IS DISTINCT FROM updated.assignee_id),
    ('ai', jsonb_build_object('from', updated.old_ai_enabled, 'to', updated.ai_enabled),
     updated.old_ai_enabled IS DISTINCT FROM updated.ai_enabled),
    ('labels', jsonb_build_object('added', {_LABEL_DIFF.format(a="updated.labels", b="updated.old_labels")},
                                  'removed', {_LABEL_DIFF.format(a="updated.old_labels", b="updated.labels")}),
     updated.old_labels IS DISTINCT FROM updated.labels)
) AS change (kind, data, changed)"""


async def insert_ticket(
    conn: Executor, customer_id: uuid.UUID, subject: str, description: str, ai_enabled: bool
) -> asyncpg.Record:
    return await conn.fetchrow(INSERT_TICKET, customer_id, subject, description, ai_enabled)


async def lock_customer(conn: asyncpg.Connection, customer_id: uuid.UUID) -> bool:
    """Inside a transaction: hold the customer's row until it ends. False when it does not exist."""
    return await conn.fetchval(LOCK_CUSTOMER, customer_id) is not None


async def customer_ticket_counts(conn: Executor, customer_id: uuid.UUID) -> asyncpg.Record:
    return await conn.fetchrow(CUSTOMER_TICKET_COUNTS, customer_id)


async def get_ticket(conn: Executor, ticket_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_TICKET, ticket_id)


async def list_tickets(
    conn: Executor,
    *,
    customer_id: uuid.UUID | None,
    status: str | None,
    priority: str | None,
    unassigned: bool,
    assignee_id: uuid.UUID | None,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
    waiting_for_agent: bool | None = None,
    label_id: uuid.UUID | None = None,
) -> list[asyncpg.Record]:
    before_at, before_id = before if before else (None, None)
    return await conn.fetch(
        LIST_TICKETS,
        customer_id,
        status,
        priority,
        unassigned,
        assignee_id,
        before_at,
        before_id,
        limit,
        waiting_for_agent,
        None if label_id is None else [{"id": str(label_id)}],
    )


async def update_ticket(
    conn: Executor, ticket_id: uuid.UUID, changes: dict[str, Any], by: uuid.UUID | None = None
) -> asyncpg.Record | None:
    """Apply `changes` (keys from UPDATABLE only) and bump the activity time; records the
    ticket.updated event (its `changes` and who made them, `by`) and the activity lines in the
    same statement. The row comes back with an extra `activity` column: the lines written, as
    db/activity.py's ACTIVITY_VIEW shapes them (oldest first)."""
    columns = [name for name in changes if name in UPDATABLE]
    if len(columns) != len(changes):
        raise ValueError(f"not updatable: {set(changes) - set(UPDATABLE)}")
    # Column names come from the fixed allow-list above, never from input; values are $n.
    assignments = ", ".join(f"{name} = ${i + 3}" for i, name in enumerate(columns))
    names = ", ".join(f"'{name}'" for name in sorted(columns))
    returned = ", ".join(f"t.{name}" for name in _TICKET_FIELDS)
    # The FROM subquery locks the row and keeps its values from before this update, which
    # RETURNING could not show otherwise (the activity lines need both).
    sql = (
        f"WITH updated AS (UPDATE tickets t SET {assignments}, updated_at = now(), last_activity_at = now() "
        f"FROM (SELECT id, status, priority, assignee_id, ai_enabled, labels FROM tickets WHERE id = $1 "
        f"FOR NO KEY UPDATE) old WHERE t.id = old.id "
        f"RETURNING {returned}, old.status AS old_status, old.priority AS old_priority, "
        f"old.assignee_id AS old_assignee_id, old.ai_enabled AS old_ai_enabled, old.labels AS old_labels), "
        f"event AS (INSERT INTO events (type, ticket_id, data) SELECT '{TICKET_UPDATED}', updated.id, "
        f"jsonb_build_object('ticket', {json_object('updated', _TICKET_FIELDS)}, "
        f"'changes', jsonb_build_array({names}), 'by', $2::uuid) FROM updated), "
        f"activity AS (INSERT INTO ticket_activity (ticket_id, actor_id, kind, data) "
        f"SELECT updated.id, $2::uuid, change.kind, change.data FROM updated, LATERAL {_ACTIVITY_ROWS} "
        f"WHERE change.changed RETURNING {ACTIVITY_COLUMNS}) "
        f"SELECT {', '.join(f'updated.{name}' for name in _TICKET_FIELDS)}, "
        f"(SELECT coalesce(jsonb_agg({ACTIVITY_VIEW} ORDER BY activity.id), '[]'::jsonb) FROM activity "
        f"LEFT JOIN users actor ON actor.id = activity.actor_id) AS activity FROM updated"
    )
    return await conn.fetchrow(sql, ticket_id, by, *(changes[name] for name in columns))
