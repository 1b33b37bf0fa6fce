"""Who is calling: the bearer token on the request (or the console session), verified, and its
account checked: it exists, is enabled, and still has the token's role and session generation.

The check needs the database (through a short cache), so it cannot happen inside the synchronous
`require_identity` every handler calls: `bearer_identity_middleware` resolves the bearer token
of each request before its handler runs and leaves the outcome (the identity, or the error to
answer with) on the request. A request whose handler never asks for an identity never sees the
error, as before. Sockets resolve theirs in the handler (`checked_bearer_identity`), so that no
middleware frame stays alive for a socket's whole life.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..errors import ApiError, unauthorized
from ..keys import ACCESS_CACHE, API_KEYS, BCRYPT_ROUNDS, DB_POOL, IDENTITY_KEY, SETTINGS
from ..security import Identity, decode_token
from ..services.access import check_access
from ..services.api_keys import KEY_PREFIX
from ..services.auth import TokenConfig

# Sockets check their own credentials (handlers/ws.py); see the module docstring.
SOCKET_ROUTES = frozenset({"ticket-ws", "inbox-ws"})


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def checked_identity(request: web.Request, who: Identity) -> Identity:
    """`who` if its account still lets it act; else raises (services/access.py)."""
    app = request.app
    return await check_access(app[DB_POOL], app[ACCESS_CACHE], who)


async def checked_bearer_identity(request: web.Request) -> Identity | None:
    """The request's bearer token, verified and its account checked; None without one. An API
    key (csk_...) acts as its integration account, on the routes its scopes allow only
    (services/api_keys.py); keys are read from this header alone, never from a URL."""
    token = bearer_token(request)
    if token is None:
        return None
    if token.startswith(KEY_PREFIX):
        return await request.app[API_KEYS].identify(token, request.match_info.route.name)
    return await checked_identity(request, decode_token(request.app[SETTINGS].secret_key, token))


def bearer_identity_middleware() -> Middleware:
    # A plain function for requests without a bearer token (and for sockets): it returns the
    # handler's awaitable, adding no frame of its own.
    @web.middleware
    def bearer_identity(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        if "Authorization" not in request.headers or request.match_info.route.name in SOCKET_ROUTES:
            return handler(request)
        return _with_identity(request, handler)

    return bearer_identity


async def _with_identity(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        who = await checked_bearer_identity(request)
    except ApiError as err:
        request[IDENTITY_KEY] = err
    else:
        if who is not None:
            request[IDENTITY_KEY] = who
    return await handler(request)


def optional_identity(request: web.Request) -> Identity | None:
    """The caller's checked identity, None without a bearer token; raises for a token that is
    invalid, expired, or whose account may no longer act."""
    resolved = request.get(IDENTITY_KEY)
    if resolved is None:
        if bearer_token(request) is not None:
            # Only a route the middleware skipped gets here: it must resolve its own.
            raise RuntimeError("bearer identity not resolved for this route; use checked_bearer_identity")
        return None
    if isinstance(resolved, ApiError):
        raise resolved
    return resolved


def require_identity(request: web.Request) -> Identity:
    identity = optional_identity(request)
    if identity is None:
        raise unauthorized("Send an Authorization: Bearer <token> header")
    return identity


def token_config(app: web.Application) -> TokenConfig:
    settings = app[SETTINGS]
    return TokenConfig(settings.secret_key, settings.access_token_ttl, app[BCRYPT_ROUNDS], settings.staff_token_ttl)


# Keys the console login stores in the aiohttp-session cookie.
SESSION_USER_ID = "uid"
SESSION_ROLE = "role"
# The account's session generation at login: logout raises it on the account, so a copy of the
# cookie stops working everywhere (docs/security.md).
SESSION_GENERATION = "gen"


def unchecked_session_identity(session: Mapping[str, Any]) -> Identity | None:
    uid, role, gen = session.get(SESSION_USER_ID), session.get(SESSION_ROLE), session.get(SESSION_GENERATION, 0)
    if not isinstance(uid, str) or role not in ("customer", "agent", "admin") or type(gen) is not int:
        return None
    try:
        return Identity(uuid.UUID(uid), str(role), gen)
    except ValueError:
        return None


async def session_identity(request: web.Request) -> Identity | None:
    """The identity in the encrypted session cookie, when the session middleware is installed and
    the session's account may still act (a logged-out, disabled or changed account's cookie
    counts as no session)."""
    from aiohttp_session import STORAGE_KEY, get_session

    if request.get(STORAGE_KEY) is None:
        return None
    session = await get_session(request)
    who = unchecked_session_identity(session)
    if who is None:
        return None
    try:
        return await checked_identity(request, who)
    except ApiError:
        return None
