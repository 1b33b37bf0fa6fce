"""/auth: sign-up, login, and the current account."""

from __future__ import annotations

from aiohttp import web

from ..jsonutil import json_response
from ..keys import DB_POOL, LOGIN_THROTTLE, PASSWORD_LANES, SIGNUP_THROTTLE
from ..services import auth as auth_service
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
