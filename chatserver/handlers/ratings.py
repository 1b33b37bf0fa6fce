"""POST /tickets/{ticket_id}/rating: the customer rates a resolved or closed ticket."""

from __future__ import annotations

from aiohttp import web

from ..jsonutil import json_response
from ..keys import DB_POOL, PUBLISHER
from ..services import ratings as rating_service
from ..validation import Int, Str, parse_uuid, read_body
from ..views import ticket_for
from .identity import require_identity

RATING_SCHEMA = {
    "score": Int(lo=rating_service.MIN_SCORE, hi=rating_service.MAX_SCORE),
    "comment": Str(required=False, nullable=True, min_len=0, max_len=rating_service.MAX_COMMENT_CHARS),
}


async def rate_ticket(request: web.Request) -> web.Response:
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    body = await read_body(request, RATING_SCHEMA)
    rating, ticket = await rating_service.rate_ticket(
        request.app[DB_POOL],
        request.app[PUBLISHER],
        who,
        ticket_id,
        score=body["score"],
        comment=body.get("comment"),
    )
    # A customer rated it: they see their ticket without the agents' labels.
    return json_response({"rating": rating, "ticket": ticket_for(ticket, who.is_staff)}, status=201)
