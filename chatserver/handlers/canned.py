"""/canned-responses: shared and personal snippets for the console's composer (agents)."""

from __future__ import annotations

from aiohttp import web

from ..errors import validation_error
from ..jsonutil import json_response
from ..keys import DB_POOL
from ..services import canned as canned_service
from ..validation import Bool, Str, parse_uuid, read_body, reject_unknown_query
from .identity import require_identity

CREATE_SCHEMA = {
    "shortcut": Str(max_len=canned_service.MAX_SHORTCUT_CHARS),
    "body": Str(max_len=canned_service.MAX_BODY_CHARS),
    "shared": Bool(required=False),
}
UPDATE_SCHEMA = {
    "shortcut": Str(required=False, max_len=canned_service.MAX_SHORTCUT_CHARS),
    "body": Str(required=False, max_len=canned_service.MAX_BODY_CHARS),
}
MAX_QUERY_CHARS = 100


async def list_responses(request: web.Request) -> web.Response:
    """GET /canned-responses[?q=]: the shared ones and your own, by shortcut."""
    who = require_identity(request)
    reject_unknown_query(request, ("q",))
    raw = request.query.get("q") or ""
    if len(raw) > MAX_QUERY_CHARS:
        raise validation_error(
            f"q must be at most {MAX_QUERY_CHARS} characters", details={"fields": {"q": f"at most {MAX_QUERY_CHARS}"}}
        )
    q = raw.strip() or None
    items = await canned_service.list_responses(request.app[DB_POOL], who, q)
    return json_response({"canned_responses": items})


async def create_response(request: web.Request) -> web.Response:
    """POST /canned-responses: personal, or shared (`"shared": true`, admins)."""
    who = require_identity(request)
    body = await read_body(request, CREATE_SCHEMA)
    item = await canned_service.create_response(
        request.app[DB_POOL], who, shortcut=body["shortcut"], body=body["body"], shared=body.get("shared", False)
    )
    return json_response({"canned_response": item}, status=201)


async def update_response(request: web.Request) -> web.Response:
    """PATCH or PUT /canned-responses/{id}: your own, or a shared one (admins)."""
    who = require_identity(request)
    canned_id = parse_uuid(request.match_info["canned_id"], "Canned response")
    body = await read_body(request, UPDATE_SCHEMA)
    item = await canned_service.update_response(
        request.app[DB_POOL], who, canned_id, shortcut=body.get("shortcut"), body=body.get("body")
    )
    return json_response({"canned_response": item})


async def delete_response(request: web.Request) -> web.Response:
    """DELETE /canned-responses/{id}: your own, or a shared one (admins)."""
    who = require_identity(request)
    canned_id = parse_uuid(request.match_info["canned_id"], "Canned response")
    await canned_service.delete_response(request.app[DB_POOL], who, canned_id)
    return web.Response(status=204)
