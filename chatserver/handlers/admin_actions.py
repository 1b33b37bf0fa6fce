"""/admin/actions: the actions the AI may call during replies (admins). Header values are
write-only: answers show their names only."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from aiohttp import web

from ..ai.tools import ToolRunner
from ..errors import validation_error
from ..jsonutil import json_response
from ..keys import AI_SERVICE, DB_POOL
from ..services import actions as actions_service
from ..validation import Bool, Choice, Obj, Str, parse_uuid, read_json, validate
from .admin import require_admin

CREATE_SCHEMA = {
    "name": Str(max_len=64),
    "description": Str(max_len=2000),
    "parameters": Obj(required=True),
    "method": Choice(*actions_service.METHODS),
    "url_template": Str(max_len=actions_service.MAX_URL_CHARS),
    "label": Str(required=False, min_len=0, max_len=actions_service.LABEL_CHARS),
    "headers": Obj(required=False),
    "mutating": Bool(required=False),
    "customer_confirmation": Bool(required=False),
    "enabled": Bool(required=False),
}
UPDATE_SCHEMA = {name: dataclasses.replace(field, required=False) for name, field in CREATE_SCHEMA.items()}


def _action_id(request: web.Request) -> uuid.UUID:
    return parse_uuid(request.match_info["action_id"], "Action")


def _tools(request: web.Request) -> ToolRunner:
    return request.app[AI_SERVICE].tools


async def _fields(request: web.Request, *, creating: bool) -> dict[str, Any]:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise validation_error("Request body must be a JSON object")
    data = dict(data)
    timeout = data.pop("timeout_seconds", None)
    fields: dict[str, Any] = validate(data, CREATE_SCHEMA if creating else UPDATE_SCHEMA)
    if timeout is not None:
        fields["timeout_seconds"] = actions_service.check_timeout(timeout)
    if "headers" in fields:
        fields["headers"] = actions_service.check_headers(fields["headers"])
    return fields


async def create_action(request: web.Request) -> web.Response:
    """POST /admin/actions."""
    require_admin(request)
    fields = await _fields(request, creating=True)
    tools = _tools(request)
    action = await actions_service.create_action(request.app[DB_POOL], tools.guard, tools.box, fields)
    tools.invalidate()
    return json_response({"action": action}, status=201)


async def list_actions(request: web.Request) -> web.Response:
    """GET /admin/actions."""
    require_admin(request)
    return json_response({"actions": await actions_service.list_actions(request.app[DB_POOL])})


async def get_action(request: web.Request) -> web.Response:
    """GET /admin/actions/{action_id}."""
    require_admin(request)
    return json_response({"action": await actions_service.get_action(request.app[DB_POOL], _action_id(request))})


async def update_action(request: web.Request) -> web.Response:
    """PATCH /admin/actions/{action_id}: any field; `headers` replaces them all."""
    require_admin(request)
    fields = await _fields(request, creating=False)
    tools = _tools(request)
    action = await actions_service.update_action(
        request.app[DB_POOL], tools.guard, tools.box, _action_id(request), fields
    )
    tools.invalidate()
    return json_response({"action": action})


async def delete_action(request: web.Request) -> web.Response:
    """DELETE /admin/actions/{action_id}: calls already logged keep their name."""
    require_admin(request)
    await actions_service.delete_action(request.app[DB_POOL], _action_id(request))
    _tools(request).invalidate()
    return web.Response(status=204)
