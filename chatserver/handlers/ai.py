"""AI endpoints: the reply as Server-Sent Events, asking for a retry, and the agents' copilot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ..errors import forbidden
from ..jsonutil import dumps_bytes, json_response
from ..keys import ACCESS_WATCHER, AI_SERVICE, DB_POOL
from ..services import tickets as ticket_service
from ..services.access import CLOSE_REASON, RevocableStream
from ..validation import parse_uuid
from .identity import require_identity


async def retry_reply(request: web.Request) -> web.Response:
    """POST /tickets/{id}/ai/retry: the ticket's customer or staff."""
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    ticket = await ticket_service.load_visible_ticket(request.app[DB_POOL], who, ticket_id)
    result = await request.app[AI_SERVICE].request_retry(ticket, who, client_address=request.remote)
    return json_response(result, status=202)


async def request_copilot(request: web.Request) -> web.Response:
    """POST /tickets/{id}/copilot: agents only; the suggestion streams as staff-only events."""
    who = require_identity(request)
    if not who.is_staff:
        raise forbidden("Only agents can ask the copilot")
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    ticket = await ticket_service.load_visible_ticket(request.app[DB_POOL], who, ticket_id)
    result = await request.app[AI_SERVICE].request_copilot(ticket, who)
    return json_response(result, status=202)


def sse_frame(event: str, data: object) -> bytes:
    """One event: `event:` and `data:` lines, then a blank line. JSON has no raw newlines."""
    if not event:
        return b": keep-alive\n\n"
    return b"event: " + event.encode() + b"\ndata: " + dumps_bytes(data) + b"\n\n"


async def reply_stream(request: web.Request) -> web.StreamResponse:
    """GET /tickets/{id}/ai-response: the reply to the latest customer message as SSE.

    started, delta (text with its offset)..., then completed | failed | cancelled, and the stream
    ends. Attaches to a reply already being generated (the text so far comes first), sends a
    stored reply at once, or starts one.
    """
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    ticket = await ticket_service.load_visible_ticket(request.app[DB_POOL], who, ticket_id)
    stream = await request.app[AI_SERVICE].open_reply_stream(ticket, client_address=request.remote)
    # Watched like a socket: revoking the account's access (disabled, role changed, logged out)
    # ends this stream at once too, on every instance (services/access.py).
    watched = RevocableStream(who)
    streams = request.app[ACCESS_WATCHER].streams
    streams.add(watched)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            # nginx would otherwise buffer the stream.
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        if await _relay_until_revoked(response, stream.events(), watched.revoked):
            await response.write(sse_frame("revoked", {"code": "access_revoked", "message": CLOSE_REASON}))
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client left; the generation goes on for everyone else
    finally:
        streams.discard(watched)
        stream.close()
    return response


async def _relay_until_revoked(
    response: web.StreamResponse, events: AsyncIterator[tuple[str, Any]], revoked: asyncio.Event
) -> bool:
    """Write the reply's events until it ends (False) or access is revoked (True)."""
    relay = asyncio.ensure_future(_relay(response, events))
    waiter = asyncio.ensure_future(revoked.wait())
    try:
        await asyncio.wait((relay, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Also when this handler is cancelled (the client left, or shutdown).
        for task in (relay, waiter):
            if not task.done():
                task.cancel()
        await asyncio.wait((relay, waiter))
    if relay.cancelled():
        return True
    relay.result()  # its error, if it failed (e.g. the client left: ConnectionResetError)
    return False


async def _relay(response: web.StreamResponse, events: AsyncIterator[tuple[str, Any]]) -> None:
    async for event, data in events:
        await response.write(sse_frame(event, data))
