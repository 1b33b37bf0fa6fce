"""GET /events: the event feed for integrators (docs/integrations.md)."""

from __future__ import annotations

from aiohttp import web

from ..errors import forbidden, validation_error
from ..jsonutil import json_response
from ..keys import DB_POOL, EVENT_SIGNAL
from ..services import outbox
from ..services.webhooks import EVENT_TYPES
from ..validation import query_choice, query_int, reject_unknown_query
from .identity import require_identity

QUERY = ("after", "types", "include_internal", "limit", "wait")


async def list_events(request: web.Request) -> web.Response:
    """Events after the cursor, in order, with the next cursor; waits up to `wait` seconds
    (default 30) when there are none yet. Agents, admins, and API keys with events:read."""
    who = require_identity(request)
    if not who.is_staff or not who.has_scope("events:read"):
        raise forbidden("The event feed is for agents, admins and API keys with events:read")
    reject_unknown_query(request, QUERY)
    types = None
    raw_types = request.query.get("types")
    if raw_types:
        types = sorted({t.strip() for t in raw_types.split(",") if t.strip()})
        unknown = [t for t in types if t not in EVENT_TYPES]
        if unknown:
            raise validation_error(
                f"Unknown event type(s): {', '.join(unknown)[:200]}",
                details={"fields": {"types": f"must be among {', '.join(EVENT_TYPES)}"}},
            )
    page = await outbox.read_feed(
        request.app[DB_POOL],
        request.app[EVENT_SIGNAL],
        after=request.query.get("after") or None,
        types=types or None,
        include_internal=query_choice(request, "include_internal", ("true", "false")) == "true",
        limit=query_int(request, "limit", 100, 1, outbox.MAX_PAGE) or 100,
        wait=float(query_int(request, "wait", int(outbox.MAX_WAIT_SECONDS), 0, int(outbox.MAX_WAIT_SECONDS)) or 0),
    )
    return json_response(page)
