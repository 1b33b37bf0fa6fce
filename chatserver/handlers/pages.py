"""HTML pages: the home page, the agent console (login, logout, inbox and ticket views) and the widget demo site.

The console is a page that loads /static/js/console.js; everything it shows comes over the REST
API (with a short-lived token from POST /console/api/token) and the WebSockets (with the session
cookie, Origin-checked). Only agents and admins get a console session.
"""

from __future__ import annotations

import hashlib
import logging
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import get_session, new_session

from ..errors import ApiError, not_found
from ..keys import DB_POOL, LOGIN_THROTTLE, PASSWORD_LANES, PUBLISHER, SETTINGS
from ..services import auth as auth_service
from ..services import users as users_service
from ..services.widget import DEMO_ID_PREFIX, demo_external_id, identity_signature
from ..validation import parse_uuid, read_form
from ..web_session import (
    CSRF_FORM_FIELD,
    check_csrf,
    content_security_policy,
    csrf_token,
    secure_page_headers,
    start_login,
)
from .identity import session_identity, unchecked_session_identity

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
STATIC_DIR = WEB_DIR / "static"
STATIC_PREFIX = "/static"
LOGIN_PATH = "/console/login"
CONSOLE_PATH = "/console"
# Field sizes the login form accepts (the REST login's limits).
MAX_EMAIL = 254
MAX_PASSWORD = 1000


@cache
def _asset_version(path: str) -> str:
    """A short content hash, so a deploy changes asset URLs and browsers never run stale code."""
    try:
        return hashlib.sha256((STATIC_DIR / path).read_bytes()).hexdigest()[:12]
    except OSError:
        return "missing"


def static_url(path: str) -> str:
    return f"{STATIC_PREFIX}/{path}?v={_asset_version(path)}"


def setup_templates(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        # Every {{ value }} in an .html template is HTML-escaped.
        autoescape=jinja2.select_autoescape(["html"]),
        default_helpers=False,
    )
    env.globals["static_url"] = static_url


def render(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200, frame_ancestors: str = "'none'"
) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    secure_page_headers(response, frame_ancestors)
    return response


def _redirect(location: str) -> web.Response:
    # 303: after a POST the browser follows with a GET.
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


# ---- the home page -----------------------------------------------------------------------


async def home_page(request: web.Request) -> web.Response:
    """GET /: where to go from here (demo, console, API docs, health), for someone who just
    started the server and opened its address."""
    context = {
        "demo": not request.app[SETTINGS].production,
        "server": f"{request.scheme}://{request.host}",
    }
    return render(request, "home.html", context)


# ---- login and logout --------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    who = await session_identity(request)
    if who is not None and who.is_staff:
        return _redirect(CONSOLE_PATH)
    return render(request, "console_login.html", {"csrf_token": await csrf_token(request), "error": None, "email": ""})


async def login_submit(request: web.Request) -> web.Response:
    form = await read_form(request)
    email = _form_str(form, "email")[:MAX_EMAIL].strip()
    password = _form_str(form, "password")[:MAX_PASSWORD]

    async def refuse(status: int, message: str) -> web.Response:
        context = {"csrf_token": await csrf_token(request), "error": message, "email": email}
        return render(request, "console_login.html", context, status=status)

    try:
        await check_csrf(request, _form_str(form, CSRF_FORM_FIELD))
    except ApiError as err:
        log.info("console login refused: %s", err.message)
        return await refuse(403, "This form has expired or did not come from this site. Please try again.")
    if not email or not password:
        return await refuse(422, "Enter your email and password.")
    try:
        user = await auth_service.authenticate(
            request.app[DB_POOL],
            request.app[LOGIN_THROTTLE],
            email=email,
            password=password,
            client_address=request.remote or "unknown",
            lanes=request.app[PASSWORD_LANES],
        )
    except ApiError as err:
        if err.status == 429:
            return await refuse(429, "Too many failed attempts. Wait a few minutes and try again.")
        if err.code == "account_disabled":
            return await refuse(403, "This account is disabled. Ask an admin.")
        return await refuse(401, "Email or password is incorrect.")
    if user["role"] not in ("agent", "admin"):
        log.info("console login refused for customer %s", user["id"])
        return await refuse(403, "This console is for support agents. Customers can reach us through the chat.")
    session = await new_session(request)
    start_login(session, str(user["id"]), user["role"], user["session_generation"])
    return _redirect(CONSOLE_PATH)


async def logout(request: web.Request) -> web.Response:
    """End the session on the server too: the account's session generation goes up, so a copy of
    this cookie, and every token issued under it, stops working (on every instance)."""
    form = await read_form(request)
    await check_csrf(request, _form_str(form, CSRF_FORM_FIELD))
    session = await get_session(request)
    who = unchecked_session_identity(session)
    if who is not None:
        await users_service.end_sessions(request.app[DB_POOL], request.app[PUBLISHER], who)
    session.invalidate()
    return _redirect(LOGIN_PATH)


def _form_str(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


# ---- the console -------------------------------------------------------------------------


async def console_page(request: web.Request) -> web.Response:
    """GET /console and /console/tickets/{ticket_id}: the inbox and ticket views (one page)."""
    if "ticket_id" in request.match_info:
        parse_uuid(request.match_info["ticket_id"], "Ticket")  # before anything: no redirect for junk
    who = await session_identity(request)
    if who is None:
        return _redirect(LOGIN_PATH)
    if not who.is_staff:
        # Console sessions are only made for staff; this is a session from elsewhere.
        return render(request, "console_forbidden.html", {}, status=403)
    user = await auth_service.current_user(request.app[DB_POOL], who.user_id)
    context = {
        "csrf_token": await csrf_token(request),
        "me": {"id": str(user["id"]), "name": user["display_name"] or user["email"], "role": user["role"]},
        "initial_ticket": request.match_info.get("ticket_id", ""),
    }
    return render(request, "console.html", context)


# ---- the admin pages ---------------------------------------------------------------------

# The console's admin sections, in menu order: (slug, title). Each is a module
# web/static/js/admin/<slug>.js exporting render(root, ctx) (docs/web.md, "Admin pages"); the page
# only frames it, and everything it shows comes from the /admin REST API with the console token.
ADMIN_SECTIONS: tuple[tuple[str, str], ...] = (
    ("agents", "Agents"),
    ("api-keys", "API keys"),
    ("webhooks", "Webhooks"),
    ("labels", "Labels"),
    ("canned", "Canned responses"),
    ("widget", "Widget"),
    ("actions", "AI actions"),
    ("kb", "Knowledge base"),
)
# Sections agents may open too (their REST is open to agents): there they read the knowledge base
# and suggest changes, which admins review in the same section.
STAFF_SECTIONS = frozenset({"kb"})


async def admin_page(request: web.Request) -> web.Response:
    """GET /console/admin and /console/admin/{section}: the admins' pages (one page per section)."""
    slugs = [slug for slug, _ in ADMIN_SECTIONS]
    section = request.match_info.get("section", slugs[0])
    if section not in slugs:
        raise not_found("Page")
    who = await session_identity(request)
    if who is None:
        return _redirect(LOGIN_PATH)
    agent_allowed = who.role == "agent" and section in STAFF_SECTIONS
    if who.role != "admin" and not agent_allowed:
        # Agents and stray customer sessions alike: the REST calls behind it would be refused too.
        return render(request, "console_forbidden.html", {"admin_only": who.is_staff}, status=403)
    user = await auth_service.current_user(request.app[DB_POOL], who.user_id)
    context = {
        "csrf_token": await csrf_token(request),
        "me": {"id": str(user["id"]), "name": user["display_name"] or user["email"], "role": user["role"]},
        "sections": ADMIN_SECTIONS if who.role == "admin" else [s for s in ADMIN_SECTIONS if s[0] in STAFF_SECTIONS],
        "section": section,
        "section_title": dict(ADMIN_SECTIONS)[section],
        "section_script": static_url(f"js/admin/{section}.js"),
    }
    return render(request, "console_admin.html", context)


# ---- the widget demo ---------------------------------------------------------------------


async def demo_page(request: web.Request) -> web.Response:
    """A sample shop with the widget embedded, as a customer's site would do it. With ?user=<id>
    (and optionally &name=, &email=) it plays a signed-in shop user "demo-<id>": the signature is
    made here, on the server, as the host site's backend would make it. Not served in production."""
    settings = request.app[SETTINGS]
    if settings.production:
        # A stand-in for a customer's site, and it signs identities: not part of a deployment.
        raise not_found("Page")
    requested = request.query.get("user", "").strip()[: 200 - len(DEMO_ID_PREFIX)]
    # Only ids in the demo namespace are signed, which /widget/identify refuses in production:
    # asking for ?user=<someone's id> signs in as "demo-<id>", never as that user.
    user_id = demo_external_id(requested) if requested else ""
    identity = None
    if user_id and settings.widget_identity_secret:
        identity = {
            "id": user_id,
            "name": request.query.get("name", "").strip()[:100],
            "email": request.query.get("email", "").strip()[:254],
            "signature": identity_signature(settings.widget_identity_secret, user_id),
        }
    context = {
        "identity": identity,
        "identity_disabled": bool(user_id) and identity is None,
        "server": f"{request.scheme}://{request.host}",
    }
    response = aiohttp_jinja2.render_template("demo.html", request, context)
    # It stands in for someone else's site, one with a strict policy: its own stylesheet, the
    # loader script and the widget frame, all from this server, and no inline script at all, which
    # also shows that the widget works on such a site.
    response.headers["Content-Security-Policy"] = content_security_policy()
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
