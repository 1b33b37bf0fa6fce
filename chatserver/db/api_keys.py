"""SQL for API keys (api_keys) and the integration accounts they act as (users, role 'integration')."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from . import Executor

KEY_COLUMNS = "id, user_id, name, prefix, scopes, expires_at, revoked_at, last_used_at, created_by, created_at"

# The integration account and its key in one statement.
INSERT_KEY = f"""
WITH account AS (
    INSERT INTO users (email, password_hash, role, display_name)
    VALUES ($1, $2, 'integration', $3)
    RETURNING id
)
INSERT INTO api_keys (user_id, name, prefix, secret_hash, scopes, expires_at, created_by)
SELECT account.id, $3, $4, $5, $6, $7, $8 FROM account
RETURNING {KEY_COLUMNS}
"""

# What a request with a key needs: the key, and the session generation its account is at.
LOOKUP_KEY = """
SELECT k.id, k.user_id, k.name, k.scopes, k.expires_at, k.revoked_at, u.session_generation, u.disabled_at
FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.secret_hash = $1
"""

LIST_KEYS = f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, id DESC LIMIT $1"

GET_KEY = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"

# Revoking a key disables its account and raises the account's session generation in the same
# statement: every instance's access check then refuses it (services/access.py).
REVOKE_KEY = f"""
WITH revoked AS (
    UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
    RETURNING {KEY_COLUMNS}
),
account AS (
    UPDATE users SET disabled_at = coalesce(disabled_at, now()), session_generation = session_generation + 1,
        updated_at = now()
    FROM revoked WHERE users.id = revoked.user_id
)
SELECT {KEY_COLUMNS} FROM revoked
"""

TOUCH_KEY = "UPDATE api_keys SET last_used_at = now() WHERE id = $1"


async def insert_key(
    conn: Executor,
    *,
    email: str,
    password_hash: str,
    name: str,
    prefix: str,
    secret_hash: bytes,
    scopes: list[str],
    expires_at: dt.datetime | None,
    created_by: uuid.UUID | None,
) -> asyncpg.Record:
    return await conn.fetchrow(
        INSERT_KEY, email, password_hash, name, prefix, secret_hash, scopes, expires_at, created_by
    )


async def lookup(conn: Executor, secret_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(LOOKUP_KEY, secret_hash)


async def list_keys(conn: Executor, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_KEYS, limit)


async def get_key(conn: Executor, key_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_KEY, key_id)


async def revoke(conn: Executor, key_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(REVOKE_KEY, key_id)


async def touch(conn: Executor, key_id: uuid.UUID) -> None:
    await conn.execute(TOUCH_KEY, key_id)
