"""orjson-based JSON helpers: UUIDs and datetimes serialise natively, bytes encoded once."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web


def _default(value: Any) -> Any:
    # asyncpg returns its own UUID subclass, which orjson does not recognise as a UUID.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps_bytes(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


def dumps(value: Any) -> str:
    return orjson.dumps(value, default=_default).decode()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps_bytes(data), status=status, headers=headers, content_type="application/json")
