"""/auth: sign-up, login, and the current account."""

from __future__ import annotations

from aiohttp import web

from ..errors import forbidden
from ..jsonutil import json_response
from ..keys import (
    ACCESS_CACHE,
    BCRYPT_ROUNDS,
    DB_POOL,
    LOGIN_THROTTLE,
    PASSWORD_LANES,
    PUBLISHER,
    SETTINGS,
    SIGNUP_THROTTLE,
)
from ..services import auth as auth_service
from ..services import invitations as invitations_service
from ..services import users as users_service
from ..validation import Str, read_body
from ..views import user_view
from .identity import require_identity, token_config

SIGNUP_SCHEMA = {
    "email": Str(max_len=254),
    # Passwords are not stripped: spaces are characters too.
    "password": Str(max_len=1000, strip=False),
    "name": Str(required=False, nullable=True, min_len=0, max_len=100),
}
LOGIN_SCHEMA = {"email": Str(max_len=254), "password": Str(max_len=1000, strip=False)}
INVITATION_SCHEMA = {
    # A JWT; generous, but bounded.
    "token": Str(max_len=4000),
    "password": Str(max_len=1000, strip=False),
}
PASSWORD_SCHEMA = {
    "current_password": Str(max_len=1000, strip=False),
    "new_password": Str(max_len=1000, strip=False),
}


async def signup(request: web.Request) -> web.Response:
    body = await read_body(request, SIGNUP_SCHEMA)
    result = await auth_service.signup(
        request.app[DB_POOL],
        token_config(request.app),
        lanes=request.app[PASSWORD_LANES],
        throttle=request.app[SIGNUP_THROTTLE],
        client_address=request.remote or "unknown",
        email=body["email"],
        password=body["password"],
        name=body.get("name"),
    )
    return json_response(result, status=201)


async def login(request: web.Request) -> web.Response:
    body = await read_body(request, LOGIN_SCHEMA)
    result = await auth_service.login(
        request.app[DB_POOL],
        token_config(request.app),
        request.app[LOGIN_THROTTLE],
        email=body["email"],
        password=body["password"],
        client_address=request.remote or "unknown",
        lanes=request.app[PASSWORD_LANES],
    )
    return json_response(result)


async def me(request: web.Request) -> web.Response:
    who = require_identity(request)
    user = await auth_service.current_user(request.app[DB_POOL], who.user_id)
    return json_response({"user": user_view(user)})


async def change_password(request: web.Request) -> web.Response:
    """POST /auth/password: change your own password. Every other session and token of the account
    ends; the answer carries a fresh token for the caller (the one it sent has ended too)."""
    who = require_identity(request)
    if who.role == "integration":
        raise forbidden("An API key has no password")
    body = await read_body(request, PASSWORD_SCHEMA)
    app = request.app
    user = await users_service.change_own_password(
        app[DB_POOL],
        app[PUBLISHER],
        app[LOGIN_THROTTLE],
        app[PASSWORD_LANES],
        app[ACCESS_CACHE],
        who,
        current_password=body["current_password"],
        new_password=body["new_password"],
        client_address=request.remote or "unknown",
        bcrypt_rounds=app[BCRYPT_ROUNDS],
    )
    return json_response(auth_service.token_response(user, token_config(app)))


async def accept_invitation(request: web.Request) -> web.Response:
    """POST /auth/invitation: the invitation link's token and a first password; the account is
    active from now on, and the answer signs it in as POST /auth/login does."""
    body = await read_body(request, INVITATION_SCHEMA)
    app = request.app
    user = await invitations_service.accept(
        app[DB_POOL],
        app[PUBLISHER],
        app[PASSWORD_LANES],
        app[ACCESS_CACHE],
        secret=app[SETTINGS].secret_key,
        token=body["token"],
        password=body["password"],
        bcrypt_rounds=app[BCRYPT_ROUNDS],
    )
    return json_response(auth_service.token_response(user, token_config(app)))
