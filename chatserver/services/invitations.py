"""Invitations to the team (docs/web.md, "Agents"): an admin invites an agent or admin by email;
the account exists at once, "invited", and cannot sign in until its owner sets a password through
the link they were sent (POST /auth/invitation, or the console's /console/invite page).

The link is a JWT naming the account and its session generation (services/mail.py), which makes
it single-use without storing it: accepting it, a new invitation, disabling the account or any
other way of setting its password raises the generation, and a link carrying an older one is
refused. It expires after MAIL_LINK_TTL_SECONDS.

With email on, the link goes only to the invitee, through the mail jobs worker. Without SMTP_URL,
the API answers with the link instead, for the admin to pass on (as GitLab and Mattermost do when
they cannot send mail): an admin can set anyone's password already, so the link gives them nothing
more.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from ..db import mail as mail_db
from ..db import users as users_db
from ..errors import ApiError, conflict, not_found, too_many_requests, validation_error
from ..realtime.publisher import Publisher
from ..security import check_password_rules, unusable_password_hash
from ..settings import Settings
from .access import AccessCache, account_disabled
from .mail import check_contact_email, invitation_refused, invitation_token, invitation_url, read_invitation_token
from .passwords import PasswordLanes
from .users import admin_user_view, announce

# Only the team is invited: customers sign up themselves, or come through the widget.
INVITED_ROLES = ("agent", "admin")
# Invitation emails per account per hour: each re-send mails the same address again, so this
# bounds how much mail an admin's repeated clicks (or a script with an admin key) can send.
INVITATIONS_PER_HOUR = 5


async def _deliver(conn: asyncpg.Connection, settings: Settings, user: asyncpg.Record) -> dict[str, Any]:
    """Queue the invitation email (email on), or make the link the admin passes on (email off)."""
    if settings.email_enabled:
        job = await mail_db.enqueue_invitation(conn, user["id"], user["session_generation"], user["email"])
        return {"delivery": "email", "email": user["email"], "queued_at": job["created_at"]}
    ttl = settings.mail_link_ttl_seconds
    token = invitation_token(settings.secret_key, user["id"], user["session_generation"], ttl)
    expires_at = dt.datetime.fromtimestamp(int(time.time()) + ttl, dt.UTC)
    return {"delivery": "link", "link": invitation_url(settings, token), "expires_at": expires_at}


async def invite(
    pool: asyncpg.Pool, settings: Settings, nudge: Callable[[], None], *, email: str, role: str, name: str
) -> dict[str, Any]:
    """A new invited account, and its invitation."""
    if role not in INVITED_ROLES:
        raise validation_error(
            "role must be agent or admin: customers sign up themselves",
            details={"fields": {"role": "must be one of agent, admin"}},
        )
    # It becomes an email's To: header, so the recipient checks apply (no header-breaking characters).
    email = check_contact_email(email)
    async with pool.acquire() as conn, conn.transaction():
        try:
            user = await users_db.insert_invited_user(conn, email, unusable_password_hash(), role, name.strip())
        except asyncpg.UniqueViolationError:
            raise conflict("An account with this email already exists") from None
        invitation = await _deliver(conn, settings, user)
    if invitation["delivery"] == "email":
        nudge()
    return {"user": admin_user_view(user), "invitation": invitation}


async def resend(
    pool: asyncpg.Pool, publisher: Publisher, settings: Settings, nudge: Callable[[], None], user_id: uuid.UUID
) -> dict[str, Any]:
    """A new invitation for an invited account; every earlier link stops working."""
    async with pool.acquire() as conn, conn.transaction():
        current = await users_db.get_for_update(conn, user_id)
        if current is None:
            raise not_found("User")
        if current["invited_at"] is None:
            raise ApiError(409, "not_invited", "This account has set its password already: it signs in with it")
        if current["disabled_at"] is not None:
            raise ApiError(409, "account_disabled", "This account is disabled: enable it before inviting it again")
        if settings.email_enabled and await mail_db.recent_invitations(conn, user_id, 3600) >= INVITATIONS_PER_HOUR:
            raise too_many_requests("Too many invitations to this account; try again later", 3600)
        user = await users_db.reinvite(conn, user_id)
        if user is None:
            raise not_found("User")
        invitation = await _deliver(conn, settings, user)
    # The generation went up: every instance forgets what it cached about the account.
    await announce(publisher, user_id)
    if invitation["delivery"] == "email":
        nudge()
    return {"user": admin_user_view(user), "invitation": invitation}


def _why_refused(user: asyncpg.Record | None, generation: int) -> ApiError:
    if user is None:
        return invitation_refused()
    if user["disabled_at"] is not None:
        return account_disabled()
    if user["invited_at"] is None:
        return invitation_refused("invitation_used")
    if user["session_generation"] != generation:
        return invitation_refused("invitation_revoked")
    return invitation_refused()


async def accept(
    pool: asyncpg.Pool,
    publisher: Publisher,
    lanes: PasswordLanes,
    cache: AccessCache,
    *,
    secret: str,
    token: str,
    password: str,
    bcrypt_rounds: int,
) -> asyncpg.Record:
    """Set the invited account's first password; it is active from now on. Returns the account
    (at its new session generation) for the caller to sign in."""
    user_id, generation = read_invitation_token(secret, token)
    # Refused links are told apart before any bcrypt work, and before the password rules (a used
    # link should say so, not that the password is short).
    current = await users_db.get_by_id(pool, user_id)
    if (
        current is None
        or current["disabled_at"] is not None
        or current["invited_at"] is None
        or current["session_generation"] != generation
    ):
        raise _why_refused(current, generation)
    check_password_rules(password)
    hashed = await lanes.hash(password, bcrypt_rounds)
    # One statement: of two requests with the same link, one sets the password, the other is refused.
    user = await users_db.accept_invitation(pool, user_id, generation, hashed)
    if user is None:
        raise _why_refused(await users_db.get_by_id(pool, user_id), generation)
    # As for a password change: this instance forgets any cached generation now, so the session
    # the caller gets works on its very next request; the announcement does it everywhere.
    cache.forget(user_id)
    await announce(publisher, user_id)
    return user
