"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..errors import ApiError
from ..jsonutil import json_response
from ..keys import DB_POOL


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(2):
            await request.app[DB_POOL].fetchval("SELECT 1")
    except (TimeoutError, OSError, Exception) as exc:  # noqa: BLE001 - any failure means not ready
        raise ApiError(503, "not_ready", f"Database is not reachable: {type(exc).__name__}") from None
    return json_response({"status": "ready", "database": "ok"})
