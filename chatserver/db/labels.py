"""SQL for labels: the catalogue (`labels`) and the copies tickets carry (`tickets.labels`, a
jsonb list of {id, name, color} sorted by name, kept in step here when a label changes)."""

from __future__ import annotations

import uuid

import asyncpg

from . import Executor

LABEL_COLUMNS = "id, name, color, created_at, updated_at"
# Every list of labels, the catalogue and a ticket's, is in this order.
LABEL_ORDER = "lower(name), id"

LIST_LABELS = f"SELECT {LABEL_COLUMNS} FROM labels ORDER BY {LABEL_ORDER}"

INSERT_LABEL = f"INSERT INTO labels (name, color) VALUES ($1, $2) RETURNING {LABEL_COLUMNS}"

UPDATE_LABEL = f"""
UPDATE labels SET name = coalesce($2, name), color = coalesce($3, color), updated_at = now()
WHERE id = $1 RETURNING {LABEL_COLUMNS}
"""

FIND_BY_NAME = "SELECT id FROM labels WHERE lower(name) = lower($1)"

DELETE_LABEL = "DELETE FROM labels WHERE id = $1 RETURNING id"

# The labels a ticket is given, locked against a concurrent rename or delete until the ticket's
# copy is written (which then rewrites it after us).
LOCK_LABELS = f"SELECT id, name, color FROM labels WHERE id = ANY($1::uuid[]) ORDER BY {LABEL_ORDER} FOR SHARE"

_CARRYING = "labels @> jsonb_build_array(jsonb_build_object('id', $1::text))"

# A renamed or recoloured label, in every ticket that carries it (re-sorted: the name may have
# moved). Not a ticket update: no activity line, no event, updated_at kept.
REWRITE_LABEL = f"""
UPDATE tickets SET labels = (
    SELECT jsonb_agg(CASE WHEN e->>'id' = $1::text
                          THEN jsonb_build_object('id', $1::text, 'name', $2::text, 'color', $3::text) ELSE e END
                     ORDER BY lower(CASE WHEN e->>'id' = $1::text THEN $2::text ELSE e->>'name' END), e->>'id')
    FROM jsonb_array_elements(labels) e)
WHERE {_CARRYING}
"""

REMOVE_LABEL = f"""
UPDATE tickets SET labels = (
    SELECT coalesce(jsonb_agg(e ORDER BY lower(e->>'name'), e->>'id'), '[]'::jsonb)
    FROM jsonb_array_elements(labels) e WHERE e->>'id' <> $1::text)
WHERE {_CARRYING}
"""


async def list_labels(conn: Executor) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_LABELS)


async def find_by_name(conn: Executor, name: str) -> uuid.UUID | None:
    return await conn.fetchval(FIND_BY_NAME, name)


async def insert_label(conn: Executor, name: str, color: str) -> asyncpg.Record:
    """Raises asyncpg.UniqueViolationError when the name is taken (regardless of case)."""
    return await conn.fetchrow(INSERT_LABEL, name, color)


async def update_label(
    conn: asyncpg.Connection, label_id: uuid.UUID, name: str | None, color: str | None
) -> asyncpg.Record | None:
    """Inside a transaction: the label and every ticket's copy of it."""
    row = await conn.fetchrow(UPDATE_LABEL, label_id, name, color)
    if row is not None:
        await conn.execute(REWRITE_LABEL, str(label_id), row["name"], row["color"])
    return row


async def delete_label(conn: asyncpg.Connection, label_id: uuid.UUID) -> bool:
    """Inside a transaction: the label, and its copy on every ticket."""
    if await conn.fetchval(DELETE_LABEL, label_id) is None:
        return False
    await conn.execute(REMOVE_LABEL, str(label_id))
    return True


async def lock_labels(conn: asyncpg.Connection, label_ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(LOCK_LABELS, label_ids)
