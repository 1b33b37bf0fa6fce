"""SQL for the users table: accounts, their access state, and account management."""

from __future__ import annotations

import uuid

import asyncpg

from . import Executor

# session_generation goes into every token issued for the account (services/access.py).
USER_COLUMNS = "id, email, role, display_name, created_at, updated_at, session_generation"
# What an admin sees of an account (invited_at: invited, no password of its own yet).
ADMIN_USER_COLUMNS = f"{USER_COLUMNS}, disabled_at, invited_at"

INSERT_USER = f"""
INSERT INTO users (email, password_hash, role, display_name)
VALUES ($1, $2, $3, $4)
RETURNING {ADMIN_USER_COLUMNS}
"""

# An invited account: it cannot sign in (its password hash is unusable) until its owner sets a
# password through the invitation link (services/invitations.py).
INSERT_INVITED_USER = f"""
INSERT INTO users (email, password_hash, role, display_name, invited_at)
VALUES ($1, $2, $3, $4, now())
RETURNING {ADMIN_USER_COLUMNS}
"""

SELECT_BY_EMAIL = f"SELECT {ADMIN_USER_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)"

SELECT_BY_ID = f"SELECT {ADMIN_USER_COLUMNS} FROM users WHERE id = $1"

SELECT_FOR_UPDATE = f"SELECT {ADMIN_USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE"

SELECT_WITH_HASH = f"SELECT {ADMIN_USER_COLUMNS}, password_hash FROM users WHERE id = $1"

SELECT_MANY = f"SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1::uuid[])"

# The account check every authenticated request makes (through a cache: services/access.py).
SELECT_ACCESS = """
SELECT id, role, session_generation, disabled_at IS NOT NULL AS disabled FROM users WHERE id = ANY($1::uuid[])
"""

# Each change that must end existing sessions raises the generation in the same statement.
UPDATE_ROLE = f"""
UPDATE users SET role = $2, session_generation = session_generation + 1, updated_at = now()
WHERE id = $1 RETURNING {ADMIN_USER_COLUMNS}
"""
DISABLE = f"""
UPDATE users SET disabled_at = coalesce(disabled_at, now()), session_generation = session_generation + 1,
    updated_at = now()
WHERE id = $1 RETURNING {ADMIN_USER_COLUMNS}
"""
ENABLE = f"UPDATE users SET disabled_at = NULL, updated_at = now() WHERE id = $1 RETURNING {ADMIN_USER_COLUMNS}"
# A password set by anyone ends a pending invitation: the account has a password of its own now.
UPDATE_PASSWORD = f"""
UPDATE users SET password_hash = $2, invited_at = NULL, session_generation = session_generation + 1,
    updated_at = now()
WHERE id = $1 RETURNING {ADMIN_USER_COLUMNS}
"""
# A new invitation: raising the generation is what refuses every earlier link (they carry theirs).
REINVITE = f"""
UPDATE users SET invited_at = now(), session_generation = session_generation + 1, updated_at = now()
WHERE id = $1 AND invited_at IS NOT NULL AND disabled_at IS NULL
RETURNING {ADMIN_USER_COLUMNS}
"""
# Accepting an invitation, in one statement so that a link works once: only for the generation the
# link was made for, still invited and enabled; the generation goes up with the password.
ACCEPT_INVITATION = f"""
UPDATE users SET password_hash = $3, invited_at = NULL, session_generation = session_generation + 1,
    updated_at = now()
WHERE id = $1 AND session_generation = $2 AND invited_at IS NOT NULL AND disabled_at IS NULL
RETURNING {ADMIN_USER_COLUMNS}
"""
END_SESSIONS = """
UPDATE users SET session_generation = session_generation + 1 WHERE id = $1 AND session_generation = $2
RETURNING session_generation
"""

# Serialises the changes that could leave no enabled admin (two admins demoting each other at once).
ADMIN_CHANGE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('chatserver.users.admins'))"
# An invited admin who has not set a password yet cannot manage accounts: not counted.
OTHER_ENABLED_ADMINS = """
SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL AND invited_at IS NULL AND id <> $1
"""

# Newest first, keyset-paginated by (created_at, id): $4 is the last id of the previous page.
LIST_USERS = f"""
SELECT {ADMIN_USER_COLUMNS} FROM users
WHERE ($1::text IS NULL OR role = $1)
  AND ($2::text IS NULL OR lower(email) LIKE $2 ESCAPE '\\')
  AND ($3::boolean IS NULL OR (disabled_at IS NOT NULL) = $3)
  AND ($4::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM users WHERE id = $4))
  AND ($6::boolean IS NULL OR (invited_at IS NOT NULL) = $6)
ORDER BY created_at DESC, id DESC
LIMIT $5
"""


async def insert_user(conn: Executor, email: str, password_hash: str, role: str, display_name: str) -> asyncpg.Record:
    """Raises asyncpg.UniqueViolationError when the email (any case) is taken."""
    return await conn.fetchrow(INSERT_USER, email, password_hash, role, display_name)


async def insert_invited_user(
    conn: Executor, email: str, password_hash: str, role: str, display_name: str
) -> asyncpg.Record:
    """Raises asyncpg.UniqueViolationError when the email (any case) is taken."""
    return await conn.fetchrow(INSERT_INVITED_USER, email, password_hash, role, display_name)


async def get_by_email(conn: Executor, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_BY_EMAIL, email)


async def get_by_id(conn: Executor, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_BY_ID, user_id)


async def get_for_update(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_FOR_UPDATE, user_id)


async def get_with_password_hash(conn: Executor, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_WITH_HASH, user_id)


async def get_many(conn: Executor, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(SELECT_MANY, ids)


async def access_states(conn: Executor, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    """id, role, session_generation, disabled of each existing account among `ids`."""
    return await conn.fetch(SELECT_ACCESS, ids)


async def set_role(conn: Executor, user_id: uuid.UUID, role: str) -> asyncpg.Record | None:
    return await conn.fetchrow(UPDATE_ROLE, user_id, role)


async def disable(conn: Executor, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(DISABLE, user_id)


async def enable(conn: Executor, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(ENABLE, user_id)


async def set_password(conn: Executor, user_id: uuid.UUID, password_hash: str) -> asyncpg.Record | None:
    return await conn.fetchrow(UPDATE_PASSWORD, user_id, password_hash)


async def reinvite(conn: Executor, user_id: uuid.UUID) -> asyncpg.Record | None:
    """None unless the account is invited and enabled."""
    return await conn.fetchrow(REINVITE, user_id)


async def accept_invitation(
    conn: Executor, user_id: uuid.UUID, generation: int, password_hash: str
) -> asyncpg.Record | None:
    """None when the invitation for `generation` no longer stands (used, re-sent, account disabled)."""
    return await conn.fetchrow(ACCEPT_INVITATION, user_id, generation, password_hash)


async def end_sessions(conn: Executor, user_id: uuid.UUID, generation: int) -> bool:
    """Raise the generation if it is still `generation` (a stale session ends nothing new)."""
    return await conn.fetchval(END_SESSIONS, user_id, generation) is not None


async def lock_admin_changes(conn: asyncpg.Connection) -> None:
    await conn.execute(ADMIN_CHANGE_LOCK)


async def other_enabled_admins(conn: Executor, user_id: uuid.UUID) -> int:
    return int(await conn.fetchval(OTHER_ENABLED_ADMINS, user_id))


async def list_users(
    conn: Executor,
    *,
    role: str | None,
    email_prefix: str | None,
    disabled: bool | None,
    after_id: uuid.UUID | None,
    limit: int,
    invited: bool | None = None,
) -> list[asyncpg.Record]:
    pattern = None
    if email_prefix is not None:
        # LIKE's own characters in the prefix match themselves.
        escaped = email_prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = escaped + "%"
    return await conn.fetch(LIST_USERS, role, pattern, disabled, after_id, limit, invited)
