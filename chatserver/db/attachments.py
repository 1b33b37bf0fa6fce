"""SQL for attachments: uploads into a ticket, their link to one message, who may read them, and
the sweep of uploads never attached to a message."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg

from . import Executor

ATTACHMENT_COLUMNS = (
    "id, ticket_id, uploader_id, message_id, state, filename, content_type, size_bytes, storage_key, created_at"
)

# A new upload, only into a ticket the uploader may see ($4 NULL: staff, any ticket): the
# visibility check and the insert are one round trip. No row: no such ticket for this caller.
INSERT_UPLOAD = f"""
INSERT INTO attachments (ticket_id, uploader_id, filename, storage_key)
SELECT id, $2, $3, $5 FROM tickets WHERE id = $1 AND ($4::uuid IS NULL OR customer_id = $4)
RETURNING {ATTACHMENT_COLUMNS}
"""

MARK_STORED = f"""
UPDATE attachments SET state = 'stored', content_type = $2, size_bytes = $3
WHERE id = $1 RETURNING {ATTACHMENT_COLUMNS}
"""

DELETE_ATTACHMENT = "DELETE FROM attachments WHERE id = $1"

# What a message may reference: the author's own stored uploads into this ticket, locked until
# the message's transaction ends (the orphan sweep skips locked rows; a sweep that got there
# first has deleted them, and they are missing here).
LOCK_FOR_MESSAGE = """
SELECT id, filename, content_type, size_bytes, message_id FROM attachments
WHERE id = ANY($1::uuid[]) AND ticket_id = $2 AND uploader_id = $3 AND state = 'stored'
FOR UPDATE
"""

LINK_TO_MESSAGE = "UPDATE attachments SET message_id = $1 WHERE id = ANY($2::uuid[]) AND message_id IS NULL"

# An attachment with what decides who may read it: the ticket's customer and, once linked, the
# message's visibility.
READABLE = f"""
SELECT {", ".join("a." + c.strip() for c in ATTACHMENT_COLUMNS.split(","))},
    t.customer_id, m.visibility
FROM attachments a
JOIN tickets t ON t.id = a.ticket_id
LEFT JOIN messages m ON m.id = a.message_id
WHERE a.id = $1
"""

# The orphan sweep: the oldest uploads never linked to a message, locked so that another
# instance's sweep skips them (SKIP LOCKED) and a message linking one waits for this one.
CLAIM_ORPHANS = """
SELECT id, storage_key FROM attachments
WHERE message_id IS NULL AND created_at < now() - $1::interval
ORDER BY created_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""

DELETE_ORPHANS = "DELETE FROM attachments WHERE id = ANY($1::uuid[]) AND message_id IS NULL"


async def insert_upload(
    conn: Executor,
    *,
    ticket_id: uuid.UUID,
    uploader_id: uuid.UUID,
    owner_id: uuid.UUID | None,
    filename: str,
    storage_key: str,
) -> asyncpg.Record | None:
    return await conn.fetchrow(INSERT_UPLOAD, ticket_id, uploader_id, filename, owner_id, storage_key)


async def mark_stored(conn: Executor, attachment_id: uuid.UUID, content_type: str, size: int) -> asyncpg.Record | None:
    return await conn.fetchrow(MARK_STORED, attachment_id, content_type, size)


async def delete(conn: Executor, attachment_id: uuid.UUID) -> None:
    await conn.execute(DELETE_ATTACHMENT, attachment_id)


async def lock_for_message(
    conn: asyncpg.Connection, ids: list[uuid.UUID], ticket_id: uuid.UUID, uploader_id: uuid.UUID | None
) -> list[asyncpg.Record]:
    return await conn.fetch(LOCK_FOR_MESSAGE, ids, ticket_id, uploader_id)


async def link_to_message(conn: asyncpg.Connection, message_id: uuid.UUID, ids: list[uuid.UUID]) -> int:
    status = await conn.execute(LINK_TO_MESSAGE, message_id, ids)
    return int(status.split()[-1])


async def get_readable(conn: Executor, attachment_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(READABLE, attachment_id)


async def claim_orphans(conn: asyncpg.Connection, older_than: timedelta, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(CLAIM_ORPHANS, older_than, limit)]


async def delete_orphans(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> None:
    await conn.execute(DELETE_ORPHANS, ids)
