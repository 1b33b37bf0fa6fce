"""SQL for AI actions (admin-configured tools) and the log of the tool calls replies made."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from . import Executor

ACTION_COLUMNS = (
    "id, name, description, parameters, method, url_template, label, header_names, timeout_seconds, "
    "mutating, customer_confirmation, enabled, created_at, updated_at"
)
ACTION_UPDATABLE = (
    "name",
    "description",
    "parameters",
    "method",
    "url_template",
    "label",
    "headers_encrypted",
    "header_names",
    "timeout_seconds",
    "mutating",
    "customer_confirmation",
    "enabled",
)
CALL_COLUMNS = (
    "id, ticket_id, reply_id, model_call_id, action_id, name, arguments, label, mutating, confirm_by, status, "
    "decided_by, decided_at, http_status, error, result_excerpt, created_at, finished_at"
)
# The statuses of a call that is not over yet.
OPEN_STATUSES = ("running", "awaiting_approval", "approved")

INSERT_ACTION = f"""
INSERT INTO ai_actions (name, description, parameters, method, url_template, label, headers_encrypted,
                        header_names, timeout_seconds, mutating, customer_confirmation, enabled)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (name) DO NOTHING
RETURNING {ACTION_COLUMNS}
"""
LIST_ACTIONS = f"SELECT {ACTION_COLUMNS} FROM ai_actions ORDER BY name LIMIT $1"
# What a reply needs to offer and run the actions (headers included, still encrypted).
ENABLED_ACTIONS = f"SELECT {ACTION_COLUMNS}, headers_encrypted FROM ai_actions WHERE enabled ORDER BY name LIMIT $1"
GET_ACTION = f"SELECT {ACTION_COLUMNS} FROM ai_actions WHERE id = $1"
GET_ACTION_SECRETS = "SELECT headers_encrypted FROM ai_actions WHERE id = $1"
ACTION_BY_NAME = f"SELECT {ACTION_COLUMNS} FROM ai_actions WHERE name = $1"
DELETE_ACTION = "DELETE FROM ai_actions WHERE id = $1 RETURNING id"

INSERT_CALL = f"""
INSERT INTO ai_tool_calls (ticket_id, reply_id, model_call_id, action_id, name, arguments, label, mutating,
                           confirm_by, status, instance_id, error, finished_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
        CASE WHEN $10 IN ('running', 'awaiting_approval') THEN NULL ELSE now() END)
RETURNING {CALL_COLUMNS}
"""
FINISH_CALL = f"""
UPDATE ai_tool_calls SET status = $2, http_status = $3, error = $4, result_excerpt = $5, finished_at = now()
WHERE id = $1 AND status IN ('running', 'approved')
RETURNING {CALL_COLUMNS}
"""
# A person decides on a waiting call: only while it waits and while its reply still holds the
# ticket's generation claim (a reply that was cancelled, or whose instance died, has none).
DECIDE_CALL = f"""
UPDATE ai_tool_calls c SET status = $3, decided_by = $4, decided_at = now(),
    finished_at = CASE WHEN $3 = 'refused' THEN now() ELSE NULL END
WHERE c.id = $1 AND c.ticket_id = $2 AND c.status = 'awaiting_approval'
  AND EXISTS (SELECT 1 FROM ai_generations g
              WHERE g.ticket_id = c.ticket_id AND g.kind = 'reply' AND g.reply_id = c.reply_id)
RETURNING {CALL_COLUMNS}
"""
# The waiting one gives up (approval timeout): only if nobody decided meanwhile.
EXPIRE_CALL = f"""
UPDATE ai_tool_calls SET status = 'refused', error = $2, finished_at = now()
WHERE id = $1 AND status = 'awaiting_approval'
RETURNING {CALL_COLUMNS}
"""
GET_CALL = f"SELECT {CALL_COLUMNS} FROM ai_tool_calls WHERE id = $1"
# A reply that ends without finishing its calls (cancelled, crashed, its instance died).
CANCEL_OPEN_CALLS = f"""
UPDATE ai_tool_calls SET status = 'cancelled', error = $2, finished_at = now()
WHERE reply_id = $1 AND status IN ('running', 'awaiting_approval', 'approved')
RETURNING {CALL_COLUMNS}
"""
LIST_CALLS = f"""
SELECT {CALL_COLUMNS} FROM ai_tool_calls WHERE ticket_id = $1 ORDER BY created_at, id LIMIT $2
"""


async def insert_action(conn: Executor, fields: dict[str, Any]) -> asyncpg.Record | None:
    """None when the name is taken."""
    return await conn.fetchrow(
        INSERT_ACTION,
        fields["name"],
        fields["description"],
        fields["parameters"],
        fields["method"],
        fields["url_template"],
        fields.get("label", ""),
        fields.get("headers_encrypted"),
        fields.get("header_names", []),
        fields.get("timeout_seconds", 5.0),
        fields.get("mutating", False),
        fields.get("customer_confirmation", False),
        fields.get("enabled", True),
    )


async def list_actions(conn: Executor, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_ACTIONS, limit)


async def enabled_actions(conn: Executor, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(ENABLED_ACTIONS, limit)


async def get_action(conn: Executor, action_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_ACTION, action_id)


async def action_secrets(conn: Executor, action_id: uuid.UUID) -> bytes | None:
    value: bytes | None = await conn.fetchval(GET_ACTION_SECRETS, action_id)
    return value


async def action_by_name(conn: Executor, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow(ACTION_BY_NAME, name)


async def update_action(conn: Executor, action_id: uuid.UUID, changes: dict[str, Any]) -> asyncpg.Record | None:
    """Raises asyncpg.UniqueViolationError when the new name is taken."""
    columns = [name for name in changes if name in ACTION_UPDATABLE]
    if len(columns) != len(changes):
        raise ValueError(f"not updatable: {set(changes) - set(ACTION_UPDATABLE)}")
    # Column names come from the allow-list above; values are $n.
    assignments = "".join(f"{name} = ${i + 2}, " for i, name in enumerate(columns))
    sql = f"UPDATE ai_actions SET {assignments}updated_at = now() WHERE id = $1 RETURNING {ACTION_COLUMNS}"
    return await conn.fetchrow(sql, action_id, *(changes[name] for name in columns))


async def delete_action(conn: Executor, action_id: uuid.UUID) -> bool:
    return await conn.fetchval(DELETE_ACTION, action_id) is not None


async def insert_call(
    conn: Executor,
    *,
    ticket_id: uuid.UUID,
    reply_id: uuid.UUID,
    model_call_id: str,
    action_id: uuid.UUID | None,
    name: str,
    arguments: Any,
    label: str,
    mutating: bool,
    confirm_by: str | None,
    status: str,
    instance_id: str,
    error: str | None = None,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        INSERT_CALL,
        ticket_id,
        reply_id,
        model_call_id,
        action_id,
        name,
        arguments,
        label,
        mutating,
        confirm_by,
        status,
        instance_id,
        error,
    )
    return row


async def finish_call(
    conn: Executor,
    call_id: uuid.UUID,
    status: str,
    http_status: int | None,
    error: str | None,
    excerpt: str | None,
) -> asyncpg.Record | None:
    return await conn.fetchrow(FINISH_CALL, call_id, status, http_status, error, excerpt)


async def decide_call(
    conn: Executor, call_id: uuid.UUID, ticket_id: uuid.UUID, status: str, by: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(DECIDE_CALL, call_id, ticket_id, status, by)


async def expire_call(conn: Executor, call_id: uuid.UUID, error: str) -> asyncpg.Record | None:
    return await conn.fetchrow(EXPIRE_CALL, call_id, error)


async def get_call(conn: Executor, call_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_CALL, call_id)


async def cancel_open_calls(conn: Executor, reply_id: uuid.UUID, error: str) -> list[asyncpg.Record]:
    return await conn.fetch(CANCEL_OPEN_CALLS, reply_id, error)


async def list_calls(conn: Executor, ticket_id: uuid.UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_CALLS, ticket_id, limit)
