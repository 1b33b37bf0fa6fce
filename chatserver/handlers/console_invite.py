"""The invitation page (/console/invite): an invited agent or admin chooses their first password
through the link they were sent, and is signed in to the console (services/invitations.py).

The link's token is in the URL's fragment, which browsers never send: the page's script copies it
into the form, so it travels in a POST body and never appears in an access log."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_session import new_session

from ..errors import ApiError
from ..keys import ACCESS_CACHE, BCRYPT_ROUNDS, DB_POOL, PASSWORD_LANES, PUBLISHER, SETTINGS
from ..services import invitations as invitations_service
from ..services.auth import STAFF_ROLES
from ..validation import read_form
from ..web_session import CSRF_FORM_FIELD, check_csrf, csrf_token, start_login
from .pages import CONSOLE_PATH, LOGIN_PATH, MAX_PASSWORD, render

# A JWT; generous, but bounded (the REST endpoint's limit).
MAX_TOKEN = 4000
# The link cannot be used again or at all: the page says why and offers no form.
DEAD_LINK_CODES = (
    "invitation_invalid",
    "invitation_expired",
    "invitation_used",
    "invitation_revoked",
    "account_disabled",
)


def _context(csrf: str, **extra: Any) -> dict[str, Any]:
    return {"csrf_token": csrf, "error": None, "field": None, "token": "", "dead": False, **extra}


async def invite_page(request: web.Request) -> web.Response:
    """GET /console/invite#token=...: the form; its script reads the token from the fragment."""
    response = render(request, "console_invite.html", _context(await csrf_token(request)))
    response.headers["Cache-Control"] = "no-store"
    return response


async def accept(request: web.Request) -> web.Response:
    """POST /console/invite: token, new password twice, CSRF-checked; signs the account in."""
    form = await read_form(request)

    def field(name: str, limit: int) -> str:
        value = form.get(name)
        return value[:limit] if isinstance(value, str) else ""

    token = field("token", MAX_TOKEN).strip()

    async def refuse(status: int, message: str, which: str | None, *, dead: bool = False) -> web.Response:
        csrf = await csrf_token(request)
        context = _context(csrf, error=message, field=which, token="" if dead else token, dead=dead)
        response = render(request, "console_invite.html", context, status=status)
        response.headers["Cache-Control"] = "no-store"
        return response

    try:
        await check_csrf(request, field(CSRF_FORM_FIELD, 200) or None)
    except ApiError:
        return await refuse(403, "This form has expired. Open the link from your email again.", None)
    if not token:
        return await refuse(400, "This page needs the link from your invitation email.", None, dead=True)
    new, repeat = field("new_password", MAX_PASSWORD), field("repeat_password", MAX_PASSWORD)
    if not new:
        return await refuse(422, "Choose a password.", "new_password")
    if new != repeat:
        return await refuse(422, "The two passwords differ.", "repeat_password")
    app = request.app
    try:
        user = await invitations_service.accept(
            app[DB_POOL],
            app[PUBLISHER],
            app[PASSWORD_LANES],
            app[ACCESS_CACHE],
            secret=app[SETTINGS].secret_key,
            token=token,
            password=new,
            bcrypt_rounds=app[BCRYPT_ROUNDS],
        )
    except ApiError as err:
        if err.code in DEAD_LINK_CODES:
            message = "This account is disabled. Ask an admin." if err.code == "account_disabled" else err.message
            return await refuse(err.status, message + ".", None, dead=True)
        if err.status == 422:
            return await refuse(422, err.message + ".", "new_password")
        raise
    if user["role"] not in STAFF_ROLES:
        # Made a customer since the invitation: the password is set, but the console is not theirs.
        return web.Response(status=303, headers={"Location": LOGIN_PATH, "Cache-Control": "no-store"})
    session = await new_session(request)
    start_login(session, str(user["id"]), user["role"], user["session_generation"])
    return web.Response(status=303, headers={"Location": CONSOLE_PATH, "Cache-Control": "no-store"})
