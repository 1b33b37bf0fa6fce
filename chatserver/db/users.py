"""SQL for the users table."""

from __future__ import annotations

import uuid

import asyncpg

from . import Executor

USER_COLUMNS = "id, email, role, display_name, created_at, updated_at"

INSERT_USER = f"""
INSERT INTO users (email, password_hash, role, display_name)
VALUES ($1, $2, $3, $4)
RETURNING {USER_COLUMNS}
"""

SELECT_BY_EMAIL = f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)"

SELECT_BY_ID = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1"

SELECT_MANY = f"SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1::uuid[])"


async def insert_user(conn: Executor, email: str, password_hash: str, role: str, display_name: str) -> asyncpg.Record:
    """Raises asyncpg.UniqueViolationError when the email (any case) is taken."""
    return await conn.fetchrow(INSERT_USER, email, password_hash, role, display_name)


async def get_by_email(conn: Executor, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_BY_EMAIL, email)


async def get_by_id(conn: Executor, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_BY_ID, user_id)


async def get_many(conn: Executor, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(SELECT_MANY, ids)
