"""GET /widget/conversations: the visitor's earlier conversations, for the widget's history list."""

from __future__ import annotations

from aiohttp import web

from ..jsonutil import json_response
from ..keys import DB_POOL
from ..services import conversations as conversation_service
from ..validation import query_int, reject_unknown_query
from .identity import require_identity

QUERY = ("cursor", "limit")
DEFAULT_LIMIT = 20
MAX_LIMIT = 50


async def list_conversations(request: web.Request) -> web.Response:
    who = require_identity(request)
    reject_unknown_query(request, QUERY)
    page = await conversation_service.conversation_page(
        request.app[DB_POOL],
        who,
        cursor=request.query.get("cursor") or None,
        limit=query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT,
    )
    return json_response(page, headers={"Cache-Control": "no-store"})
