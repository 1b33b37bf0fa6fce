"""Liveness and readiness probes.

/readyz: can this instance serve now? It runs a query; during a database outage it answers 503
and recovers by itself when the database is back. /healthz: is this process still able to
recover by itself? Only a pool that has handed out no connection for DB_STUCK_SECONDS while
PostgreSQL accepts a direct connection fails it: waiting will not fix that, a restart will. A
database that is simply down does not fail it (restarting would not help). A wedged event loop
cannot answer at all, so the probe's own timeout catches that.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
from aiohttp import web

from ..db.pool import is_unavailable
from ..errors import DATABASE_RETRY_AFTER, ApiError
from ..jsonutil import json_response
from ..keys import DB_HEALTH, DB_POOL, DB_URL, SETTINGS

# The direct connection /healthz opens to tell a stuck pool from a database that is down.
DIRECT_CONNECT_TIMEOUT = 3.0


async def _database_answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=DIRECT_CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    try:
        await conn.fetchval("SELECT 1", timeout=DIRECT_CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    finally:
        conn.terminate()
    return True


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    failing_since = app[DB_HEALTH].acquire_failing_since
    if failing_since is not None and time.monotonic() - failing_since >= app[SETTINGS].db_stuck_seconds:
        url = app.get(DB_URL)
        if url is not None and await _database_answers(url):
            raise ApiError(
                503,
                "pool_stuck",
                f"No pooled database connection for {time.monotonic() - failing_since:.0f}s"
                " while the database accepts connections",
            )
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(2):
            await request.app[DB_POOL].fetchval("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        if is_unavailable(exc):
            request.app[DB_HEALTH].unavailable(exc)
        raise ApiError(
            503,
            "not_ready",
            f"Database is not reachable: {type(exc).__name__}",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        ) from None
    return json_response({"status": "ready", "database": "ok"})
