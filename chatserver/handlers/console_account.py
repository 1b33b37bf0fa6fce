"""The console's account page (/console/account): every agent and admin changes their own password
here. An HTML form under the console session: the session that made the change carries on (its
generation is renewed in place), every other session and token of the account ends."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_session import get_session

from ..errors import ApiError, validation_error
from ..keys import ACCESS_CACHE, BCRYPT_ROUNDS, DB_POOL, LOGIN_THROTTLE, PASSWORD_LANES, PUBLISHER
from ..services import auth as auth_service
from ..services import users as users_service
from ..validation import read_form
from ..web_session import CSRF_FORM_FIELD, check_csrf, csrf_token
from .identity import SESSION_GENERATION, session_identity
from .pages import LOGIN_PATH, MAX_PASSWORD, render

ACCOUNT_PATH = "/console/account"


async def _context(request: web.Request, user_id: Any) -> dict[str, Any]:
    user = await auth_service.current_user(request.app[DB_POOL], user_id)
    return {
        "csrf_token": await csrf_token(request),
        "me": {"id": str(user["id"]), "name": user["display_name"] or user["email"], "role": user["role"]},
        "email": user["email"],
        "error": None,
        "field": None,
        "done": False,
        "page": "account",
    }


def _to_login() -> web.Response:
    return web.Response(status=303, headers={"Location": LOGIN_PATH, "Cache-Control": "no-store"})


async def account_page(request: web.Request) -> web.Response:
    """GET /console/account: the password form."""
    who = await session_identity(request)
    if who is None:
        return _to_login()
    if not who.is_staff:
        return render(request, "console_forbidden.html", {}, status=403)
    context = await _context(request, who.user_id)
    context["done"] = request.query.get("changed") == "1"
    return render(request, "console_account.html", context)


# The form's fields (templates/console_account.html).
FORM_FIELDS = (CSRF_FORM_FIELD, "current_password", "new_password", "repeat_password")


async def change_password(request: web.Request) -> web.Response:
    """POST /console/account/password: current and new password (twice), CSRF-checked."""
    form = await read_form(request)
    who = await session_identity(request)
    if who is None:
        # A form without its fields is refused as such before the redirect: junk earns no redirect.
        missing = [name for name in FORM_FIELDS if not isinstance(form.get(name), str)]
        unknown = sorted(set(form) - set(FORM_FIELDS))
        if missing or unknown:
            fields = {**dict.fromkeys(missing, "is required"), **dict.fromkeys(unknown, "is not a field of this form")}
            raise validation_error(f"Invalid form: {', '.join(fields)}", details={"fields": fields})
        return _to_login()
    if not who.is_staff:
        return render(request, "console_forbidden.html", {}, status=403)
    context = await _context(request, who.user_id)

    def field(name: str) -> str:
        value = form.get(name)
        return value[:MAX_PASSWORD] if isinstance(value, str) else ""

    def refuse(status: int, message: str, which: str | None) -> web.Response:
        context.update(error=message, field=which)
        return render(request, "console_account.html", context, status=status)

    try:
        await check_csrf(request, form.get(CSRF_FORM_FIELD) if isinstance(form.get(CSRF_FORM_FIELD), str) else None)
    except ApiError:
        return refuse(403, "This form has expired. Reload the page and try again.", None)
    current, new, repeat = field("current_password"), field("new_password"), field("repeat_password")
    if not current or not new:
        return refuse(
            422, "Enter your current password and a new one.", "current_password" if not current else "new_password"
        )
    if new != repeat:
        return refuse(422, "The two new passwords differ.", "repeat_password")
    app = request.app
    try:
        user = await users_service.change_own_password(
            app[DB_POOL],
            app[PUBLISHER],
            app[LOGIN_THROTTLE],
            app[PASSWORD_LANES],
            app[ACCESS_CACHE],
            who,
            current_password=current,
            new_password=new,
            client_address=request.remote or "unknown",
            bcrypt_rounds=app[BCRYPT_ROUNDS],
        )
    except ApiError as err:
        if err.status == 429:
            return refuse(429, "Too many failed attempts. Wait a few minutes and try again.", "current_password")
        if err.code == "invalid_credentials":
            return refuse(403, "The current password is incorrect.", "current_password")
        if err.status == 422:
            return refuse(422, err.message, "new_password")
        raise
    # This session carries on at the account's new generation; every other one has ended.
    session = await get_session(request)
    session[SESSION_GENERATION] = user["session_generation"]
    # Post/redirect/get: a reload does not post the form again.
    return web.Response(status=303, headers={"Location": f"{ACCOUNT_PATH}?changed=1", "Cache-Control": "no-store"})
