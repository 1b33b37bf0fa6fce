"""SQL for the web front ends: identified widget visitors, and the console's inbox summaries."""

from __future__ import annotations

import uuid

import asyncpg

from . import Executor
from .messages import MESSAGE_COLUMNS
from .users import USER_COLUMNS

SELECT_IDENTITY_USER = """
SELECT u.id, u.email, u.role, u.display_name, u.created_at, u.updated_at, u.session_generation, u.disabled_at
FROM widget_identities w JOIN users u ON u.id = w.user_id
WHERE w.external_id = $1
"""

# ON CONFLICT: two tabs identifying the same new user at once; the loser's insert returns nothing.
INSERT_IDENTITY = """
INSERT INTO widget_identities (external_id, user_id, email) VALUES ($1, $2, $3)
ON CONFLICT (external_id) DO NOTHING
RETURNING user_id
"""

UPDATE_IDENTITY_PROFILE = """
UPDATE widget_identities SET email = $2, updated_at = now()
WHERE external_id = $1 AND email IS DISTINCT FROM $2
"""

UPDATE_DISPLAY_NAME = """
UPDATE users SET display_name = $2, updated_at = now() WHERE id = $1 AND display_name <> $2
"""

# The newest message of each ticket (internal notes included: the console is for agents).
LAST_MESSAGES = f"""
SELECT DISTINCT ON (ticket_id) {MESSAGE_COLUMNS} FROM messages
WHERE ticket_id = ANY($1::uuid[])
ORDER BY ticket_id, seq DESC
"""

CUSTOMER_PROFILES = """
SELECT u.id, u.display_name, u.email, u.role, w.external_id, w.email AS external_email
FROM users u LEFT JOIN widget_identities w ON w.user_id = u.id
WHERE u.id = ANY($1::uuid[])
"""

# Disabled staff are not offered as assignees, nor invited ones who have not joined yet.
STAFF = f"""
SELECT {USER_COLUMNS} FROM users WHERE role IN ('agent', 'admin') AND disabled_at IS NULL AND invited_at IS NULL
ORDER BY display_name, email
"""


async def user_for_external_id(conn: Executor, external_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_IDENTITY_USER, external_id)


async def link_external_id(conn: asyncpg.Connection, external_id: str, user_id: uuid.UUID, email: str | None) -> bool:
    """False when another request linked this external id first."""
    return await conn.fetchval(INSERT_IDENTITY, external_id, user_id, email) is not None


async def update_profile(conn: Executor, external_id: str, user_id: uuid.UUID, name: str, email: str | None) -> None:
    await conn.execute(UPDATE_IDENTITY_PROFILE, external_id, email)
    if name:
        await conn.execute(UPDATE_DISPLAY_NAME, user_id, name)


async def last_messages(conn: Executor, ticket_ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(LAST_MESSAGES, ticket_ids)


async def customer_profiles(conn: Executor, user_ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(CUSTOMER_PROFILES, user_ids)


async def staff_members(conn: Executor) -> list[asyncpg.Record]:
    return await conn.fetch(STAFF)
