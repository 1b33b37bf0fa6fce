"""/admin/webhooks: webhook endpoints, their delivery log, "send again" and test events (admins)."""

from __future__ import annotations

import uuid

from aiohttp import web

from ..errors import validation_error
from ..jsonutil import json_response
from ..keys import DB_POOL, WEBHOOKS
from ..services import webhooks as webhooks_service
from ..validation import Bool, Str, parse_uuid, query_choice, query_int, read_json, reject_unknown_query, validate
from .admin import require_admin
from .admin_api_keys import string_list

CREATE_SCHEMA = {
    "url": Str(max_len=webhooks_service.MAX_URL_CHARS),
    "include_internal": Bool(required=False),
    "active": Bool(required=False),
    "description": Str(required=False, nullable=True, min_len=0, max_len=500),
}
UPDATE_SCHEMA = {
    name: Str(required=False, max_len=webhooks_service.MAX_URL_CHARS) if name == "url" else field
    for name, field in CREATE_SCHEMA.items()
}
DELIVERY_QUERY = ("status", "before", "limit")
DELIVERY_STATUSES = ("pending", "delivered", "failed")


def _endpoint_id(request: web.Request) -> uuid.UUID:
    return parse_uuid(request.match_info["endpoint_id"], "Webhook endpoint")


async def _fields(request: web.Request, *, creating: bool) -> dict[str, object]:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise validation_error("Request body must be a JSON object")
    types = string_list(data, "event_types", required=creating)
    fields: dict[str, object] = validate(data, CREATE_SCHEMA if creating else UPDATE_SCHEMA)
    if types is not None:
        fields["event_types"] = types
    return fields


async def create_endpoint(request: web.Request) -> web.Response:
    """POST /admin/webhooks: a new endpoint; its signing `secret` is in this answer only."""
    require_admin(request)
    fields = await _fields(request, creating=True)
    endpoint = await webhooks_service.create_endpoint(request.app[DB_POOL], request.app[WEBHOOKS].guard, fields)
    return json_response({"webhook": endpoint}, status=201)


async def list_endpoints(request: web.Request) -> web.Response:
    """GET /admin/webhooks."""
    require_admin(request)
    endpoints = await webhooks_service.list_endpoints(request.app[DB_POOL])
    # The event types an endpoint may ask for, so a client never hard-codes them.
    return json_response({"webhooks": endpoints, "available_event_types": list(webhooks_service.EVENT_TYPES)})


async def get_endpoint(request: web.Request) -> web.Response:
    """GET /admin/webhooks/{endpoint_id}."""
    require_admin(request)
    return json_response({"webhook": await webhooks_service.get_endpoint(request.app[DB_POOL], _endpoint_id(request))})


async def update_endpoint(request: web.Request) -> web.Response:
    """PATCH /admin/webhooks/{endpoint_id}: any of url, event_types, include_internal, active,
    description. Setting active true again re-enables an endpoint that was disabled."""
    require_admin(request)
    fields = await _fields(request, creating=False)
    endpoint = await webhooks_service.update_endpoint(
        request.app[DB_POOL], request.app[WEBHOOKS].guard, _endpoint_id(request), fields
    )
    return json_response({"webhook": endpoint})


async def delete_endpoint(request: web.Request) -> web.Response:
    """DELETE /admin/webhooks/{endpoint_id}: the endpoint and its delivery log."""
    require_admin(request)
    await webhooks_service.delete_endpoint(request.app[DB_POOL], _endpoint_id(request))
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    """GET /admin/webhooks/{endpoint_id}/deliveries: the delivery log, newest first."""
    require_admin(request)
    reject_unknown_query(request, DELIVERY_QUERY)
    page = await webhooks_service.list_deliveries(
        request.app[DB_POOL],
        _endpoint_id(request),
        status=query_choice(request, "status", DELIVERY_STATUSES),
        before=query_int(request, "before", None, 1, 2**63 - 1),
        limit=query_int(request, "limit", 50, 1, 200) or 50,
    )
    return json_response(page)


async def resend(request: web.Request) -> web.Response:
    """POST /admin/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend: send that event again
    (a new delivery, same event id)."""
    require_admin(request)
    raw = request.match_info["delivery_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise validation_error("Delivery not found")
    delivery = await webhooks_service.resend(request.app[DB_POOL], _endpoint_id(request), int(raw))
    request.app[WEBHOOKS].nudge()
    return json_response({"delivery": delivery}, status=202)


async def send_test(request: web.Request) -> web.Response:
    """POST /admin/webhooks/{endpoint_id}/test: queue a signed `webhook.test` delivery."""
    require_admin(request)
    delivery = await webhooks_service.send_test(request.app[DB_POOL], _endpoint_id(request))
    request.app[WEBHOOKS].nudge()
    return json_response({"delivery": delivery}, status=202)
