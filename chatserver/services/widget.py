"""Widget visitors: anonymous visitors (a throwaway customer account per browser) and visitors the
host site identified with an HMAC signature (one customer account per external user id)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any

import asyncpg

from ..db import users as users_db
from ..db import widget as widget_db
from ..errors import ApiError, too_many_requests
from ..security import Identity, unusable_password_hash
from .access import account_disabled
from .auth import TokenConfig, check_email, current_user, token_response
from .throttle import Throttle

# .invalid is reserved (RFC 2606): these addresses can never belong to a real mailbox, so they
# never collide with an account someone signs up for, and no mail is ever sent to them.
VISITOR_EMAIL_DOMAIN = "visitors.invalid"
ANONYMOUS_NAME = "Visitor"


class _LostRace(Exception):
    """Raised inside a transaction to roll it back."""


# External ids the /demo page signs (outside production only): /widget/identify refuses them in
# production, so the demo can never be used to sign in as a real host-site user (docs/security.md).
DEMO_ID_PREFIX = "demo-"


def demo_external_id(requested: str) -> str:
    """The demo namespace's id for what the demo page was asked to play."""
    return requested if requested.startswith(DEMO_ID_PREFIX) else DEMO_ID_PREFIX + requested


def is_widget_visitor(user: asyncpg.Record) -> bool:
    """An account the widget made (anonymous or identified), as opposed to one signed up for."""
    return user["role"] == "customer" and str(user["email"]).endswith("@" + VISITOR_EMAIL_DOMAIN)


def identity_signature(secret: str, external_id: str) -> str:
    """What the host site computes on its server: hex HMAC-SHA256(WIDGET_IDENTITY_SECRET, external id)."""
    return hmac.new(secret.encode(), external_id.encode(), hashlib.sha256).hexdigest()


def check_identity_signature(secret: str | None, external_id: str, signature: str) -> None:
    if secret is None:
        raise ApiError(
            403, "identity_unverified", "Identified visitors are disabled: the server has no WIDGET_IDENTITY_SECRET"
        )
    expected = identity_signature(secret, external_id)
    # compare_digest: the time taken does not tell an attacker how much of a guess was right.
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise ApiError(403, "identity_unverified", "The visitor's identity signature is not valid")


async def _new_customer(conn: asyncpg.Connection | asyncpg.Pool, email: str, name: str) -> asyncpg.Record:
    # The visitor holds a token, never a password: no bcrypt work for a new conversation.
    return await users_db.insert_user(conn, email, unusable_password_hash(), "customer", name)


async def create_anonymous_visitor(
    pool: asyncpg.Pool, tokens: TokenConfig, throttle: Throttle, *, client_address: str, name: str | None
) -> dict[str, Any]:
    """A new customer account with an unguessable address, signed in. At most throttle.max_failures
    per client address per window, so a script cannot fill the users table."""
    key = f"widget-visitor:{client_address}"
    wait = throttle.retry_after(key)
    if wait > 0:
        raise too_many_requests("Too many new conversations from this address; try again later", wait)
    throttle.record_failure(key)
    email = f"visitor-{uuid.uuid4()}@{VISITOR_EMAIL_DOMAIN}"
    user = await _new_customer(pool, email, (name or "").strip() or ANONYMOUS_NAME)
    return token_response(user, tokens)


async def identify_visitor(
    pool: asyncpg.Pool,
    tokens: TokenConfig,
    secret: str | None,
    *,
    external_id: str,
    signature: str,
    name: str | None,
    email: str | None,
    allow_demo_ids: bool,
) -> dict[str, Any]:
    """Check the signature, then find or create the customer linked to `external_id`. The email
    the host passes is kept for agents to see; it is not signed, so it never selects an account."""
    if not allow_demo_ids and external_id.startswith(DEMO_ID_PREFIX):
        raise ApiError(403, "identity_unverified", "Demo identities are not accepted on this server")
    check_identity_signature(secret, external_id, signature)
    if email:
        email = check_email(email)
    display = (name or "").strip() or (email or "") or ANONYMOUS_NAME
    user = await widget_db.user_for_external_id(pool, external_id)
    if user is None:
        user = await _create_identified(pool, tokens, external_id, display, email)
    else:
        await widget_db.update_profile(pool, external_id, user["id"], (name or "").strip(), email)
        user = await current_user(pool, user["id"])
    if user["disabled_at"] is not None:
        raise account_disabled()
    return token_response(user, tokens)


async def _create_identified(
    pool: asyncpg.Pool, tokens: TokenConfig, external_id: str, display: str, email: str | None
) -> asyncpg.Record:
    # The account's login address is derived from the external id, not the host's email, which
    # may already belong to someone's own account here.
    digest = hashlib.sha256(external_id.encode()).hexdigest()[:32]
    login = f"user-{digest}-{secrets.token_hex(4)}@{VISITOR_EMAIL_DOMAIN}"
    hashed = unusable_password_hash()
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                user = await users_db.insert_user(conn, login, hashed, "customer", display)
                if await widget_db.link_external_id(conn, external_id, user["id"], email):
                    return user
                raise _LostRace
        except _LostRace:
            pass  # another request created this visitor a moment ago: ours is rolled back, use theirs
        winner = await widget_db.user_for_external_id(conn, external_id)
    if winner is None:
        raise ApiError(409, "conflict", "The visitor was being created concurrently; try again")
    return winner


async def refresh_token(
    pool: asyncpg.Pool, tokens: TokenConfig, who: Identity, *, max_session_age: int, now: int | None = None
) -> dict[str, Any]:
    """A fresh token for a widget visitor who still holds a valid one, so a visitor who comes back
    within ACCESS_TOKEN_TTL_SECONDS keeps their conversation; but never past max_session_age
    (VISITOR_SESSION_MAX_SECONDS) after the visitor's sign-in, so a stolen token cannot be kept
    alive forever. Staff and signed-up customers sign in again instead."""
    user = await current_user(pool, who.user_id)
    if not is_widget_visitor(user):
        raise ApiError(403, "renewal_refused", "Only widget visitors' tokens are renewed; sign in again")
    ends = who.signed_in_at + max_session_age
    if (now if now is not None else int(time.time())) >= ends:
        raise ApiError(
            401,
            "session_expired",
            "This visitor session is too old to renew; start a new one",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token_response(user, tokens, signed_in_at=who.signed_in_at, expires_at=ends)
