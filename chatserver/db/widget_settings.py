"""SQL for the admin's widget settings: one row, its JSON document and a version."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from . import Executor

SELECT_SETTINGS = "SELECT settings, version, updated_by, updated_at FROM widget_settings WHERE singleton"

# The row exists from the migration on; the upsert only guards against it having been deleted by hand.
SAVE_SETTINGS = """
INSERT INTO widget_settings (singleton, settings, version, updated_by, updated_at)
VALUES (true, $1::jsonb, 1, $2, now())
ON CONFLICT (singleton) DO UPDATE
SET settings = EXCLUDED.settings, version = widget_settings.version + 1,
    updated_by = EXCLUDED.updated_by, updated_at = now()
RETURNING settings, version, updated_by, updated_at
"""


async def load(conn: Executor) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_SETTINGS)


async def save(conn: Executor, settings: dict[str, Any], by: uuid.UUID | None) -> asyncpg.Record:
    return await conn.fetchrow(SAVE_SETTINGS, settings, by)
