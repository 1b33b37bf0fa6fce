"""Who is calling: the bearer token on the request, verified."""

from __future__ import annotations

import uuid

from aiohttp import web

from ..errors import unauthorized
from ..keys import BCRYPT_ROUNDS, SETTINGS
from ..security import Identity, decode_token
from ..services.auth import TokenConfig

IDENTITY_KEY = "chatserver.identity"


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def optional_identity(request: web.Request) -> Identity | None:
    token = bearer_token(request)
    if token is None:
        return None
    return decode_token(request.app[SETTINGS].secret_key, token)


def require_identity(request: web.Request) -> Identity:
    identity = optional_identity(request)
    if identity is None:
        raise unauthorized("Send an Authorization: Bearer <token> header")
    return identity


def token_config(app: web.Application) -> TokenConfig:
    settings = app[SETTINGS]
    return TokenConfig(settings.secret_key, settings.access_token_ttl, app[BCRYPT_ROUNDS])


# Keys the console login stores in the aiohttp-session cookie.
SESSION_USER_ID = "uid"
SESSION_ROLE = "role"


async def session_identity(request: web.Request) -> Identity | None:
    """The identity in the encrypted session cookie, when the session middleware is installed."""
    from aiohttp_session import STORAGE_KEY, get_session

    if request.get(STORAGE_KEY) is None:
        return None
    session = await get_session(request)
    uid, role = session.get(SESSION_USER_ID), session.get(SESSION_ROLE)
    if not uid or role not in ("customer", "agent", "admin"):
        return None
    try:
        return Identity(uuid.UUID(uid), role)
    except ValueError:
        return None
