"""The agent console's JSON endpoints: a short-lived API token for the logged-in session, inbox rows,
and the staff list. Everything else the console does goes through the ordinary REST API and the
WebSockets."""

from __future__ import annotations

from aiohttp import web

from ..errors import unauthorized
from ..jsonutil import json_response
from ..keys import DB_POOL, SETTINGS
from ..security import issue_token
from ..services import auth as auth_service
from ..services import console as console_service
from ..validation import parse_uuid
from ..views import user_view
from ..web_session import CSRF_HEADER, check_csrf
from .identity import require_identity, session_identity
from .tickets import ticket_list_filters

# Console API tokens are short-lived: the page asks for a new one when it gets a 401, so a token
# outlives a logout by at most this long.
CONSOLE_TOKEN_TTL = 15 * 60


async def issue_console_token(request: web.Request) -> web.Response:
    """POST /console/api/token: the session's bearer token for the REST API (CSRF-checked)."""
    who = await session_identity(request)
    if who is None:
        raise unauthorized("Log in to the console first")
    await check_csrf(request, request.headers.get(CSRF_HEADER))
    console_service.require_staff(who)
    user = await auth_service.current_user(request.app[DB_POOL], who.user_id)
    # The session's generation, not the account's: session_identity checked they are equal, and a
    # logout in between must not be outlived by a token made from the old session.
    token = issue_token(
        request.app[SETTINGS].secret_key, user["id"], who.role, CONSOLE_TOKEN_TTL, generation=who.generation
    )
    body = {"access_token": token, "token_type": "bearer", "expires_in": CONSOLE_TOKEN_TTL, "user": user_view(user)}
    return json_response(body, headers={"Cache-Control": "no-store"})


async def inbox(request: web.Request) -> web.Response:
    """GET /console/api/inbox: GET /tickets with each ticket's customer and newest message."""
    who = require_identity(request)
    page = await console_service.inbox_page(request.app[DB_POOL], who, **ticket_list_filters(request, 30))
    return json_response(page)


async def inbox_item(request: web.Request) -> web.Response:
    """GET /console/api/inbox/{ticket_id}: one inbox row (for tickets that arrive live)."""
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    return json_response(await console_service.inbox_item(request.app[DB_POOL], who, ticket_id))


async def staff(request: web.Request) -> web.Response:
    """GET /console/api/agents: agents and admins, for the assignee picker."""
    who = require_identity(request)
    return json_response({"agents": await console_service.staff_list(request.app[DB_POOL], who)})
