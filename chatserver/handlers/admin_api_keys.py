"""/admin/api-keys: API keys for server-to-server clients, for admins (docs/integrations.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from ..errors import validation_error
from ..jsonutil import json_response
from ..keys import DB_POOL, PUBLISHER
from ..services import api_keys as keys_service
from ..validation import Str, parse_uuid, read_json, validate
from .admin import require_admin

CREATE_SCHEMA = {
    "name": Str(max_len=100),
    "expires_at": Str(required=False, nullable=True, max_len=64),
}


def string_list(data: dict[str, Any], name: str, *, required: bool = True, max_items: int = 50) -> list[str] | None:
    """Take a list of strings out of a JSON body (validation.py has no list field)."""
    if name not in data:
        if required:
            raise validation_error(f"Invalid request: {name} is required", details={"fields": {name: "is required"}})
        return None
    value = data.pop(name)
    if not isinstance(value, list) or len(value) > max_items or not all(isinstance(v, str) for v in value):
        raise validation_error(
            f"Invalid request: {name} must be a list of at most {max_items} strings",
            details={"fields": {name: "must be a list of strings"}},
        )
    return value


def parse_time(raw: str | None, name: str) -> dt.datetime | None:
    if raw is None:
        return None
    try:
        stamp = dt.datetime.fromisoformat(raw)
    except ValueError:
        stamp = None
    if stamp is None or stamp.tzinfo is None:
        raise validation_error(
            f"{name} must be an ISO 8601 time with a UTC offset",
            details={"fields": {name: "must be an ISO 8601 time with an offset"}},
        )
    return stamp


async def create_key(request: web.Request) -> web.Response:
    """POST /admin/api-keys: a new key; `key` is in this answer only."""
    who = require_admin(request)
    data = await read_json(request)
    if not isinstance(data, dict):
        raise validation_error("Request body must be a JSON object")
    scopes = string_list(data, "scopes") or []
    body = validate(data, CREATE_SCHEMA)
    key = await keys_service.create_key(
        request.app[DB_POOL],
        name=body["name"],
        scopes=scopes,
        expires_at=parse_time(body.get("expires_at"), "expires_at"),
        created_by=who.user_id,
    )
    return json_response({"api_key": key}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    """GET /admin/api-keys: every key (never the secret), newest first."""
    require_admin(request)
    keys = await keys_service.list_keys(request.app[DB_POOL])
    # The scopes a key may have, so a client (the console's admin page) never hard-codes them.
    return json_response({"api_keys": keys, "available_scopes": list(keys_service.SCOPES)})


async def get_key(request: web.Request) -> web.Response:
    """GET /admin/api-keys/{key_id}."""
    require_admin(request)
    key_id = parse_uuid(request.match_info["key_id"], "API key")
    return json_response({"api_key": await keys_service.get_key(request.app[DB_POOL], key_id)})


async def revoke_key(request: web.Request) -> web.Response:
    """POST /admin/api-keys/{key_id}/revoke: refused on every instance at once."""
    require_admin(request)
    key_id = parse_uuid(request.match_info["key_id"], "API key")
    key = await keys_service.revoke_key(request.app[DB_POOL], request.app[PUBLISHER], key_id)
    return json_response({"api_key": key})
