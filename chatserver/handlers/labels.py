"""/labels (the catalogue: agents read, admins manage) and PUT /tickets/{id}/labels (agents)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from ..errors import validation_error
from ..jsonutil import json_response
from ..keys import DB_POOL, PUBLISHER
from ..services import labels as labels_service
from ..validation import Str, parse_uuid, read_body, read_json
from .admin import require_admin
from .identity import require_identity

CREATE_SCHEMA = {
    "name": Str(max_len=labels_service.MAX_NAME_CHARS),
    "color": Str(max_len=7),
}
UPDATE_SCHEMA = {
    "name": Str(required=False, max_len=labels_service.MAX_NAME_CHARS),
    "color": Str(required=False, max_len=7),
}


def label_id_list(data: Any) -> list[uuid.UUID]:
    """{"label_ids": ["<uuid>", …]}: the body of PUT /tickets/{id}/labels."""
    if not isinstance(data, dict):
        raise validation_error("Request body must be a JSON object")
    extra = [key for key in data if key != "label_ids"]
    if extra or "label_ids" not in data:
        problems = {key: "unknown field" for key in extra}
        if "label_ids" not in data:
            problems["label_ids"] = "is required"
        raise validation_error('Invalid request: send {"label_ids": [...]}', details={"fields": problems})
    raw = data["label_ids"]
    if not isinstance(raw, list) or len(raw) > labels_service.MAX_LABELS_PER_TICKET:
        raise validation_error(
            f"label_ids must be a list of at most {labels_service.MAX_LABELS_PER_TICKET} label ids",
            details={"fields": {"label_ids": "must be a list of label ids"}},
        )
    try:
        return [uuid.UUID(item) for item in raw]
    except (ValueError, TypeError, AttributeError):
        raise validation_error(
            "label_ids must hold label ids", details={"fields": {"label_ids": "must hold label ids"}}
        ) from None


async def list_labels(request: web.Request) -> web.Response:
    """GET /labels: every label, by name (agents and admins)."""
    who = require_identity(request)
    return json_response({"labels": await labels_service.list_labels(request.app[DB_POOL], who)})


async def create_label(request: web.Request) -> web.Response:
    """POST /labels (admins)."""
    require_admin(request)
    body = await read_body(request, CREATE_SCHEMA)
    label = await labels_service.create_label(request.app[DB_POOL], request.app[PUBLISHER], body["name"], body["color"])
    return json_response({"label": label}, status=201)


async def update_label(request: web.Request) -> web.Response:
    """PATCH /labels/{label_id}: rename or recolour (admins)."""
    require_admin(request)
    label_id = parse_uuid(request.match_info["label_id"], "Label")
    body = await read_body(request, UPDATE_SCHEMA)
    label = await labels_service.update_label(
        request.app[DB_POOL], request.app[PUBLISHER], label_id, body.get("name"), body.get("color")
    )
    return json_response({"label": label})


async def delete_label(request: web.Request) -> web.Response:
    """DELETE /labels/{label_id} (admins): also taken off every ticket."""
    require_admin(request)
    label_id = parse_uuid(request.match_info["label_id"], "Label")
    await labels_service.delete_label(request.app[DB_POOL], request.app[PUBLISHER], label_id)
    return web.Response(status=204)


async def set_ticket_labels(request: web.Request) -> web.Response:
    """PUT /tickets/{ticket_id}/labels: replace the ticket's labels (agents and admins)."""
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    label_ids = label_id_list(await read_json(request))
    ticket = await labels_service.set_ticket_labels(
        request.app[DB_POOL], request.app[PUBLISHER], who, ticket_id, label_ids
    )
    return json_response({"ticket": ticket})
