"""A ticket's email side: the visitor's contact address and the transcript by email
(docs/web.md, "Away mode and email")."""

from __future__ import annotations

from aiohttp import web

from ..jsonutil import json_response
from ..keys import DB_POOL, MAILER, PUBLISHER, SETTINGS
from ..services import mail as mail_service
from ..validation import Str, parse_uuid, read_body
from .identity import require_identity

CONTACT_SCHEMA = {"email": Str(nullable=True, min_len=0, max_len=254)}
TRANSCRIPT_SCHEMA = {"email": Str(required=False, nullable=True, min_len=0, max_len=254)}


async def set_contact_email(request: web.Request) -> web.Response:
    """PUT /tickets/{ticket_id}/contact-email: the owner (or staff) sets the address replies and
    transcripts go to; null or "" clears it."""
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    body = await read_body(request, CONTACT_SCHEMA)
    app = request.app
    ticket = await mail_service.set_contact_email(app[DB_POOL], app[PUBLISHER], who, ticket_id, body.get("email"))
    return json_response({"ticket": ticket})


async def request_transcript(request: web.Request) -> web.Response:
    """POST /tickets/{ticket_id}/transcript: the owner asks for the conversation by email (to the
    address given, else the ticket's contact address); sent in the background."""
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    body = await read_body(request, TRANSCRIPT_SCHEMA)
    app = request.app
    result = await mail_service.request_transcript(
        app[DB_POOL], app[SETTINGS], who, ticket_id, body.get("email") or None, app[MAILER].nudge
    )
    return json_response(result, status=202)
