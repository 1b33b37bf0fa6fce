"""The agent console's browser session: an encrypted cookie (aiohttp-session), CSRF tokens, and the
security headers of our HTML pages.

The session key is derived from SECRET_KEY with HKDF, so one secret is enough to deploy and the
cookie key is never the key that signs access tokens. The cookie is HttpOnly, SameSite=Lax, Secure
in production, and expires after SESSION_MAX_AGE.

CSRF: a random token lives in the session (synchronizer token pattern); every state-changing form
carries it in a hidden field and every state-changing fetch in the X-CSRF-Token header. The check
also refuses a foreign Origin header when one is sent (defence in depth).

Only the requests that can use the session run aiohttp-session (see console_session_middleware):
the REST API, the widget, the probes and token-authenticated sockets never read the cookie, so
they need not pay for it on every request, nor keep its frame alive for a socket's whole life.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Awaitable, Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp_session import Session, get_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ApiError
from .handlers.identity import SESSION_GENERATION, SESSION_ROLE, SESSION_USER_ID
from .settings import Settings

SESSION_COOKIE = "chatserver_session"
# A working day: an agent logs in once in the morning. Fernet refuses older cookies too.
SESSION_MAX_AGE = 12 * 3600
CSRF_SESSION_KEY = "csrf"
CSRF_FORM_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# A fixed label: changing it rotates every session key (and logs everyone out).
_HKDF_INFO = b"chatserver console session cookie v1"


def session_key(secret_key: str) -> bytes:
    """The session cookie's 32-byte Fernet key, derived from SECRET_KEY."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret_key.encode())


def session_storage(settings: Settings) -> EncryptedCookieStorage:
    return EncryptedCookieStorage(
        Fernet(base64.urlsafe_b64encode(session_key(settings.secret_key))),
        cookie_name=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        # Lax: the cookie is not sent on cross-site subrequests (fetches, frames, sockets), but
        # following a link to the console from an e-mail still finds the agent logged in.
        samesite="Lax",
        secure=settings.production,
    )


# The routes (names from routes.py) whose handlers use the session: the console's pages, which read
# it, create it (CSRF token, login) or end it, and its token endpoint (session + CSRF check).
SESSION_ROUTES = frozenset(
    {
        "console",
        "console-ticket",
        "console-admin",
        "console-admin-section",
        "console-login",
        "console-login-submit",
        "console-logout",
        "console-token",
        # Reports and the account page (handlers/console_reports.py, console_account.py).
        "console-reports",
        "console-reports-export",
        "console-account",
        "console-account-password",
        # The invitation page (handlers/console_invite.py): CSRF, then a fresh login.
        "console-invite",
        "console-invite-accept",
    }
)
# The sockets read the session cookie only when the client sent neither a Bearer header nor a
# ?ticket= (handlers/ws.py, socket_identity), and never write it: without the cookie there is
# nothing to read.
COOKIE_SOCKET_ROUTES = frozenset({"ticket-ws", "inbox-ws"})


def uses_session(request: web.Request) -> bool:
    """Whether this request's handler can use the session. Every other request runs without
    aiohttp-session: its handlers get no session (session_identity answers None, get_session
    raises), so a route missing here fails closed rather than open."""
    route = request.match_info.route.name
    if route in SESSION_ROUTES:
        return True
    return route in COOKIE_SOCKET_ROUTES and SESSION_COOKIE in request.cookies


def console_session_middleware(settings: Settings) -> Middleware:
    """aiohttp-session's middleware, run only for the requests that can use the session."""
    with_session = session_middleware(session_storage(settings))

    # A plain function, not a coroutine: it returns the awaitable of whichever path it picks, so it
    # adds no frame of its own to a request (or to an open socket).
    @web.middleware
    def console_session(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        if uses_session(request):
            return with_session(request, handler)
        return handler(request)

    return console_session


async def csrf_token(request: web.Request) -> str:
    """This session's CSRF token, created on first use."""
    session = await get_session(request)
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


def own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def origin_allowed(request: web.Request, allowed: Iterable[str]) -> bool:
    """A request without an Origin header (not a browser, or a same-origin GET) passes; one with an
    Origin must be our own or listed."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    allowed = set(allowed)
    return origin == own_origin(request) or origin in allowed or "*" in allowed


async def check_csrf(request: web.Request, submitted: str | None) -> None:
    """Refuse (403) a state-changing request whose CSRF token does not match the session's, or that
    comes from another site. Only our own origin counts here: ALLOWED_ORIGINS is for the widget."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/") != own_origin(request):
        raise ApiError(403, "csrf_failed", "Cross-site request refused")
    session = await get_session(request)
    expected = session.get(CSRF_SESSION_KEY)
    if not isinstance(expected, str) or not expected or not submitted:
        raise ApiError(403, "csrf_failed", "Missing CSRF token; reload the page and try again")
    if not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise ApiError(403, "csrf_failed", "CSRF token does not match; reload the page and try again")


def start_login(session: Session, user_id: str, role: str, generation: int) -> None:
    """Log a user in: a fresh session (no state carried over from before login) and a new CSRF
    token. `generation` is the account's session generation: logout raises it on the account, so
    every copy of this cookie stops working (handlers/identity.py)."""
    session.invalidate()
    session[SESSION_USER_ID] = user_id
    session[SESSION_ROLE] = role
    session[SESSION_GENERATION] = generation
    session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)


def content_security_policy(frame_ancestors: str = "'none'") -> str:
    """Our pages load scripts, styles and sockets from this origin only and never run inline script,
    so an injected <script> or onerror= attribute does nothing even if escaping failed somewhere."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


def secure_page_headers(response: web.StreamResponse, frame_ancestors: str = "'none'") -> None:
    response.headers["Content-Security-Policy"] = content_security_policy(frame_ancestors)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if frame_ancestors == "'none'":
        response.headers["X-Frame-Options"] = "DENY"
    # Pages carry CSRF tokens and conversation data: never store them in shared caches.
    response.headers["Cache-Control"] = "no-store"
