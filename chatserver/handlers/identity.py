"""Who is calling: the bearer token on the request, verified."""

from __future__ import annotations

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
