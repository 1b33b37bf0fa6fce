"""/tickets REST endpoints."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ..db.pool import is_unavailable
from ..errors import too_many_requests, validation_error
from ..jsonutil import json_response
from ..keys import DB_POOL, MESSAGE_HOOK, MESSAGE_WRITER, PUBLISHER, SEND_BUDGET, SETTINGS
from ..services import customer_panel as panel_service
from ..services import messages as message_service
from ..services import routing
from ..services import tickets as ticket_service
from ..services.attachments import parse_attachment_ids
from ..settings import Settings
from ..validation import (
    Bool,
    Choice,
    Obj,
    Str,
    Uuid,
    parse_uuid,
    query_choice,
    query_int,
    read_body,
    read_json,
    reject_unknown_query,
    validate,
)
from ..views import ticket_for, ticket_view
from .identity import require_identity

log = logging.getLogger(__name__)

CREATE_SCHEMA = {
    "subject": Str(max_len=200),
    "description": Str(required=False, min_len=0, max_len=10_000),
    "message": Str(required=False, max_len=message_service.MAX_BODY_CHARS),
    "client_id": Str(required=False, max_len=message_service.MAX_CLIENT_ID_CHARS),
    # What the widget knew: page URL, referrer, user agent, language, time zone (customer panel).
    "context": Obj(required=False),
}
UPDATE_SCHEMA = {
    "status": Choice(*ticket_service.STATUSES, required=False),
    "priority": Choice(*ticket_service.PRIORITIES, required=False),
    "assignee_id": Uuid(required=False, nullable=True),
    "ai_enabled": Bool(required=False),
}
MESSAGE_SCHEMA = {
    "body": Str(max_len=message_service.MAX_BODY_CHARS),
    "client_id": Str(required=False, max_len=message_service.MAX_CLIENT_ID_CHARS),
    "internal": Bool(required=False),
}
# A message that carries attachments may have no text.
MESSAGE_WITH_FILES_SCHEMA = {
    **MESSAGE_SCHEMA,
    "body": Str(required=False, min_len=0, max_len=message_service.MAX_BODY_CHARS),
}
LIST_QUERY = ("status", "priority", "assignee", "waiting", "q", "label", "cursor", "limit")
MESSAGES_QUERY = ("after_seq", "before_seq", "limit")
MAX_SEQ = 2**62


def ticket_caps(settings: Settings) -> ticket_service.TicketCaps:
    return ticket_service.TicketCaps(settings.tickets_per_customer_per_hour, settings.open_tickets_per_customer)


def ticket_list_filters(request: web.Request, default_limit: int = 20) -> dict[str, Any]:
    """The query string of a ticket list (GET /tickets and the console inbox), checked."""
    reject_unknown_query(request, LIST_QUERY)
    waiting = query_choice(request, "waiting", ("true", "false"))
    return {
        "status": query_choice(request, "status", ticket_service.STATUSES),
        "priority": query_choice(request, "priority", ticket_service.PRIORITIES),
        "assignee": request.query.get("assignee") or None,
        "waiting": None if waiting is None else waiting == "true",
        "label": request.query.get("label") or None,
        "cursor": request.query.get("cursor") or None,
        "limit": query_int(request, "limit", default_limit, 1, 100) or default_limit,
        # Blank is "no search"; what is searchable is checked by services/search.py.
        "q": request.query.get("q", "").strip() or None,
    }


async def list_tickets(request: web.Request) -> web.Response:
    who = require_identity(request)
    page = await ticket_service.list_tickets(request.app[DB_POOL], who, **ticket_list_filters(request))
    return json_response(page)


async def create_ticket(request: web.Request) -> web.Response:
    who = require_identity(request)
    body = await read_body(request, CREATE_SCHEMA)
    context = panel_service.clean_context(body.get("context"))
    ticket, message = await ticket_service.create_ticket(
        request.app[DB_POOL],
        request.app[PUBLISHER],
        who,
        subject=body["subject"],
        description=body.get("description", ""),
        ai_enabled=request.app[SETTINGS].ai_default_enabled,
        first_message=body.get("message"),
        client_id=body.get("client_id"),
        after_post=request.app[MESSAGE_HOOK],
        client_address=request.remote,
        caps=ticket_caps(request.app[SETTINGS]),
        visitor_context=context,
    )
    ticket = await route_new_ticket(request.app, ticket)
    return json_response({"ticket": ticket_for(ticket, who.is_staff), "message": message}, status=201)


async def customer_panel(request: web.Request) -> web.Response:
    """GET /tickets/{ticket_id}/customer: the console's customer panel (agents and admins)."""
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    return json_response(await panel_service.customer_panel(request.app[DB_POOL], who, ticket_id))


async def route_new_ticket(app: web.Application, ticket: dict[str, Any]) -> dict[str, Any]:
    """Assign a just-created ticket to an online agent (AUTO_ASSIGN, services/routing.py); the
    ticket as it is afterwards. A failure is logged, never the creator's: the ticket exists
    either way."""
    try:
        routed = await routing.assign(app[DB_POOL], app[PUBLISHER], app[SETTINGS], ticket["id"], "new")
    except Exception as exc:
        # The routing sweep takes it later if it waits for a person.
        if is_unavailable(exc):
            log.warning("could not route new ticket %s: database unavailable", ticket["id"])
        else:
            log.exception("could not route new ticket %s", ticket["id"])
        return ticket
    return routed or ticket


async def get_ticket(request: web.Request) -> web.Response:
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    row = await ticket_service.load_visible_ticket(request.app[DB_POOL], who, ticket_id)
    return json_response({"ticket": ticket_for(ticket_view(row), who.is_staff)})


async def update_ticket(request: web.Request) -> web.Response:
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    body = await read_body(request, UPDATE_SCHEMA)
    ticket = await ticket_service.update_ticket(request.app[DB_POOL], request.app[PUBLISHER], who, ticket_id, body)
    return json_response({"ticket": ticket_for(ticket, who.is_staff)})


async def list_messages(request: web.Request) -> web.Response:
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    reject_unknown_query(request, MESSAGES_QUERY)
    after_seq = query_int(request, "after_seq", None, 0, MAX_SEQ)
    before_seq = query_int(request, "before_seq", None, 1, MAX_SEQ)
    if after_seq is not None and before_seq is not None:
        raise validation_error("Use after_seq or before_seq, not both")
    page = await message_service.list_messages(
        request.app[DB_POOL],
        who,
        ticket_id,
        after_seq=after_seq,
        before_seq=before_seq,
        limit=query_int(request, "limit", 50, 1, 200) or 50,
    )
    return json_response(page)


async def post_message(request: web.Request) -> web.Response:
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    raw = await read_json(request)
    attachment_ids = parse_attachment_ids(
        raw.pop("attachment_ids", None) if isinstance(raw, dict) else None,
        request.app[SETTINGS].attachments_per_message,
    )
    body = validate(raw, MESSAGE_WITH_FILES_SCHEMA if attachment_ids else MESSAGE_SCHEMA)
    # The same per-user budget as message.send over a socket (WS_SEND_RATE / WS_SEND_BURST).
    wait = request.app[SEND_BUDGET].take(who.user_id)
    if wait > 0:
        raise too_many_requests("Posting too fast; retry after Retry-After seconds", wait)
    message, created = await message_service.post_message(
        request.app[DB_POOL],
        request.app[MESSAGE_WRITER],
        request.app[PUBLISHER],
        who,
        ticket_id,
        body=body.get("body", ""),
        client_id=body.get("client_id"),
        internal=body.get("internal", False),
        after_post=request.app[MESSAGE_HOOK],
        client_address=request.remote,
        attachment_ids=attachment_ids,
    )
    return json_response({"message": message, "created": created}, status=201 if created else 200)
