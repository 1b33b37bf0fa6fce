"""GET /tickets/{id}/activity: the ticket's activity log (agents only)."""

from __future__ import annotations

from aiohttp import web

from ..jsonutil import json_response
from ..keys import DB_POOL
from ..services import activity as activity_service
from ..validation import parse_uuid, query_int, reject_unknown_query
from .identity import require_identity

MAX_ID = 2**62


async def list_activity(request: web.Request) -> web.Response:
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    reject_unknown_query(request, ("after_id", "limit"))
    page = await activity_service.list_activity(
        request.app[DB_POOL],
        who,
        ticket_id,
        after_id=query_int(request, "after_id", 0, 0, MAX_ID) or 0,
        limit=query_int(request, "limit", 100, 1, 500) or 100,
    )
    return json_response(page)
