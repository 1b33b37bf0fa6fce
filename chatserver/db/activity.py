"""SQL for the activity log of tickets (ticket_activity): who changed a ticket's status, priority,
assignee, labels or AI, and when. The lines are written by db/tickets.py `update_ticket`, in the
update's own statement; this module reads them and defines their JSON shape once."""

from __future__ import annotations

import uuid

import asyncpg

from . import Executor
from .events import _json_value

ACTIVITY_COLUMNS = "id, ticket_id, actor_id, kind, data, created_at"

# One line as JSON, from `activity` (a ticket_activity row) and `actor` (the users row of
# actor_id, LEFT JOINed: null for the system and the AI, or an account since deleted). Built in
# SQL so that the statement that writes lines returns them in the shape REST serves.
ACTIVITY_VIEW = (
    "jsonb_build_object('id', activity.id, 'ticket_id', activity.ticket_id, 'kind', activity.kind, "
    "'data', activity.data, 'actor', CASE WHEN actor.id IS NULL THEN NULL ELSE "
    "jsonb_build_object('id', actor.id, 'name', actor.display_name, 'role', actor.role) END, "
    f"'created_at', {_json_value('activity.created_at', 'created_at')})"
)

LIST_ACTIVITY = f"""
SELECT {ACTIVITY_VIEW} AS entry FROM ticket_activity activity
LEFT JOIN users actor ON actor.id = activity.actor_id
WHERE activity.ticket_id = $1 AND activity.id > $2
ORDER BY activity.id
LIMIT $3
"""


async def list_activity(conn: Executor, ticket_id: uuid.UUID, after_id: int, limit: int) -> list[asyncpg.Record]:
    """The ticket's lines after `after_id`, oldest first."""
    return await conn.fetch(LIST_ACTIVITY, ticket_id, after_id, limit)
