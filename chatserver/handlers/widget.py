"""The embeddable widget: its loader script, the chat panel page it frames, and the visitor endpoints
(anonymous visitor, identified visitor, token refresh).

The panel runs in a frame served from this origin, so it calls the API same-origin and needs no
CORS. ALLOWED_ORIGINS says which sites may frame it (CSP frame-ancestors), which parent pages
the panel talks to, and which Origin headers the visitor endpoints accept.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import forbidden
from ..jsonutil import dumps, json_response
from ..keys import DB_POOL, SETTINGS, WIDGET_THROTTLE
from ..services import mail as mail_service
from ..services import widget as widget_service
from ..validation import Str, read_body
from ..web_session import origin_allowed
from ..widget_setup import widget_config
from .identity import require_identity, token_config
from .pages import STATIC_DIR, render

VISITOR_SCHEMA = {"name": Str(required=False, nullable=True, min_len=0, max_len=100)}
IDENTIFY_SCHEMA = {
    "external_id": Str(max_len=200),
    "signature": Str(max_len=128),
    "name": Str(required=False, nullable=True, min_len=0, max_len=100),
    "email": Str(required=False, nullable=True, min_len=0, max_len=254),
}
REOPEN_SCHEMA = {"token": Str(max_len=2000)}
# The loader may be cached briefly by browsers and CDNs; a fix still reaches every site within minutes.
LOADER_CACHE = "public, max-age=300"


def frame_ancestors(allowed: tuple[str, ...]) -> str:
    if "*" in allowed:
        return "*"
    return " ".join(["'self'", *allowed])


def _check_origin(request: web.Request) -> None:
    if not origin_allowed(request, request.app[SETTINGS].allowed_origins):
        raise forbidden("This site is not allowed to use the chat widget (see ALLOWED_ORIGINS)")


async def loader_script(request: web.Request) -> web.FileResponse:
    """GET /widget.js: the script a site adds to its pages."""
    return web.FileResponse(
        STATIC_DIR / "widget.js",
        headers={
            "Content-Type": "text/javascript; charset=utf-8",
            "Cache-Control": LOADER_CACHE,
            "X-Content-Type-Options": "nosniff",
        },
    )


async def frame_page(request: web.Request) -> web.Response:
    """GET /widget/frame: the chat panel, framed by the loader on the host page."""
    allowed = request.app[SETTINGS].allowed_origins
    # The admin's settings and the away status, so the panel is right from its first paint
    # (docs/web.md, "Widget settings"); GET /widget/config gives the same, fresh.
    context = {"allowed_origins": list(allowed), "widget_config": dumps(await widget_config(request.app))}
    return render(request, "widget_frame.html", context, frame_ancestors=frame_ancestors(allowed))


async def config(request: web.Request) -> web.Response:
    """GET /widget/config: the admin's widget settings, whether the team is away right now, and
    whether the widget asks for an email address. Public: the widget needs it before sign-in."""
    return json_response(await widget_config(request.app), headers={"Cache-Control": "no-store"})


async def reopen(request: web.Request) -> web.Response:
    """POST /widget/reopen: exchange the signed link of a reply email for the visitor's token and
    the ticket it reopens."""
    _check_origin(request)
    body = await read_body(request, REOPEN_SCHEMA)
    result = await mail_service.reopen_visitor(request.app[DB_POOL], token_config(request.app), body["token"])
    return json_response(result)


async def create_visitor(request: web.Request) -> web.Response:
    """POST /widget/visitors: an anonymous visitor's customer account and token (on their first message)."""
    _check_origin(request)
    body = await read_body(request, VISITOR_SCHEMA)
    result = await widget_service.create_anonymous_visitor(
        request.app[DB_POOL],
        token_config(request.app),
        request.app[WIDGET_THROTTLE],
        client_address=request.remote or "unknown",
        name=body.get("name"),
    )
    return json_response(result, status=201)


async def identify_visitor(request: web.Request) -> web.Response:
    """POST /widget/identify: a visitor the host site signed in, with its HMAC signature."""
    _check_origin(request)
    body = await read_body(request, IDENTIFY_SCHEMA)
    result = await widget_service.identify_visitor(
        request.app[DB_POOL],
        token_config(request.app),
        request.app[SETTINGS].widget_identity_secret,
        external_id=body["external_id"],
        signature=body["signature"],
        name=body.get("name"),
        email=body.get("email") or None,
        allow_demo_ids=not request.app[SETTINGS].production,
    )
    return json_response(result)


async def refresh_token(request: web.Request) -> web.Response:
    """POST /widget/token: swap a widget visitor's still-valid token for a fresh one (capped at
    VISITOR_SESSION_MAX_SECONDS after the visitor's sign-in)."""
    _check_origin(request)
    who = require_identity(request)
    result = await widget_service.refresh_token(
        request.app[DB_POOL],
        token_config(request.app),
        who,
        max_session_age=request.app[SETTINGS].visitor_session_max_age,
    )
    return json_response(result)
