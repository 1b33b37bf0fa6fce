"""/admin/users: account management, for admins only (docs/security.md)."""

from __future__ import annotations

import uuid

from aiohttp import web

from ..errors import forbidden, validation_error
from ..jsonutil import json_response
from ..keys import BCRYPT_ROUNDS, DB_POOL, MAILER, PUBLISHER, SETTINGS
from ..security import Identity
from ..services import invitations as invitations_service
from ..services import users as users_service
from ..settings import ROLES
from ..validation import Choice, Str, parse_uuid, query_choice, query_int, read_body, reject_unknown_query
from .identity import require_identity

CREATE_SCHEMA = {
    "email": Str(max_len=254),
    "password": Str(max_len=1000, strip=False),
    "role": Choice(*ROLES),
    "name": Str(required=False, nullable=True, min_len=0, max_len=100),
}
INVITE_SCHEMA = {
    "email": Str(max_len=254),
    "role": Choice(*invitations_service.INVITED_ROLES),
    "name": Str(required=False, nullable=True, min_len=0, max_len=100),
}
ROLE_SCHEMA = {"role": Choice(*ROLES)}
PASSWORD_SCHEMA = {"password": Str(max_len=1000, strip=False)}
LIST_QUERY = ("role", "email", "disabled", "invited", "after", "limit")


def require_admin(request: web.Request) -> Identity:
    who = require_identity(request)
    # An API key reaches admin routes only with the admin scope (services/api_keys.py).
    if who.role != "admin" and not (who.scopes is not None and who.has_scope("admin")):
        raise forbidden("Account management is for admins")
    return who


def _user_id(request: web.Request) -> uuid.UUID:
    return parse_uuid(request.match_info["user_id"], "User")


async def list_users(request: web.Request) -> web.Response:
    """GET /admin/users: accounts, newest first; filter by role, email prefix, disabled."""
    require_admin(request)
    reject_unknown_query(request, LIST_QUERY)
    disabled = query_choice(request, "disabled", ("true", "false"))
    invited = query_choice(request, "invited", ("true", "false"))
    after = request.query.get("after") or None
    try:
        after_id = uuid.UUID(after) if after else None
    except ValueError:
        raise validation_error("after must be a user id", details={"fields": {"after": "must be a user id"}}) from None
    page = await users_service.list_accounts(
        request.app[DB_POOL],
        role=query_choice(request, "role", ROLES),
        email_prefix=(request.query.get("email") or "")[:254] or None,
        disabled=None if disabled is None else disabled == "true",
        invited=None if invited is None else invited == "true",
        after_id=after_id,
        limit=query_int(request, "limit", 50, 1, users_service.MAX_PAGE) or 50,
    )
    return json_response(page)


async def create_user(request: web.Request) -> web.Response:
    """POST /admin/users: a new account of any role."""
    require_admin(request)
    body = await read_body(request, CREATE_SCHEMA)
    user = await users_service.create_account(
        request.app[DB_POOL],
        email=body["email"],
        password=body["password"],
        role=body["role"],
        name=body.get("name") or "",
        bcrypt_rounds=request.app[BCRYPT_ROUNDS],
    )
    return json_response({"user": user}, status=201)


async def invite_user(request: web.Request) -> web.Response:
    """POST /admin/invitations: a new agent or admin account, "invited" until its owner sets a
    password through the link they are emailed (or, without email, that the admin passes on)."""
    require_admin(request)
    body = await read_body(request, INVITE_SCHEMA)
    app = request.app
    result = await invitations_service.invite(
        app[DB_POOL],
        app[SETTINGS],
        app[MAILER].nudge,
        email=body["email"],
        role=body["role"],
        name=body.get("name") or "",
    )
    return json_response(result, status=201)


async def resend_invitation(request: web.Request) -> web.Response:
    """POST /admin/users/{user_id}/invitation: a new invitation; the earlier links stop working."""
    require_admin(request)
    app = request.app
    result = await invitations_service.resend(
        app[DB_POOL], app[PUBLISHER], app[SETTINGS], app[MAILER].nudge, _user_id(request)
    )
    return json_response(result)


async def get_user(request: web.Request) -> web.Response:
    """GET /admin/users/{user_id}."""
    require_admin(request)
    return json_response({"user": await users_service.get_account(request.app[DB_POOL], _user_id(request))})


async def set_role(request: web.Request) -> web.Response:
    """POST /admin/users/{user_id}/role: the account's sessions end; it signs in again."""
    require_admin(request)
    body = await read_body(request, ROLE_SCHEMA)
    user = await users_service.set_role(request.app[DB_POOL], request.app[PUBLISHER], _user_id(request), body["role"])
    return json_response({"user": user})


async def disable_user(request: web.Request) -> web.Response:
    """POST /admin/users/{user_id}/disable: no more sign-ins; every session ends within seconds."""
    require_admin(request)
    user = await users_service.disable(request.app[DB_POOL], request.app[PUBLISHER], _user_id(request))
    return json_response({"user": user})


async def enable_user(request: web.Request) -> web.Response:
    """POST /admin/users/{user_id}/enable: the account may sign in again."""
    require_admin(request)
    user = await users_service.enable(request.app[DB_POOL], request.app[PUBLISHER], _user_id(request))
    return json_response({"user": user})


async def reset_password(request: web.Request) -> web.Response:
    """POST /admin/users/{user_id}/password: a new password; every session of the account ends."""
    require_admin(request)
    body = await read_body(request, PASSWORD_SCHEMA)
    user = await users_service.reset_password(
        request.app[DB_POOL], request.app[PUBLISHER], _user_id(request), body["password"], request.app[BCRYPT_ROUNDS]
    )
    return json_response({"user": user})
