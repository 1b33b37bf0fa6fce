"""Accounts: sign-up, login (throttled), and resolving a token to a user."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..db import users as users_db
from ..errors import ApiError, account_gone, conflict, too_many_requests, validation_error
from ..security import check_password_rules, hash_password, issue_token, verify_password
from ..views import user_view
from .access import account_disabled
from .passwords import PasswordLanes
from .throttle import LoginThrottle, Throttle

# Deliberately loose: one @, something on each side, a dot in the domain. Mail delivery is
# the only real check, and over-strict patterns refuse valid addresses.
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Compared against when the email is unknown, so a login takes as long either way and does
# not reveal which emails have accounts. (A real bcrypt hash of a throwaway string.)
_DUMMY_HASH = "$2b$12$6rI8T.ykNWhn6KFIlXDAe.o061wAPj9crS.KeIs/l/H3T5YyYgcPm"


@dataclass(frozen=True)
class TokenConfig:
    secret: str
    # Customers' token lifetime; staff tokens get staff_ttl (shorter: docs/security.md).
    ttl: int
    bcrypt_rounds: int
    staff_ttl: int | None = None

    def ttl_for(self, role: str) -> int:
        if role in STAFF_ROLES and self.staff_ttl is not None:
            return min(self.ttl, self.staff_ttl)
        return self.ttl


STAFF_ROLES = ("agent", "admin")


def check_email(email: str) -> str:
    email = email.strip()
    if not EMAIL_RE.match(email):
        raise validation_error("Email address is not valid", details={"fields": {"email": "is not a valid email"}})
    return email


def token_response(
    user: asyncpg.Record, tokens: TokenConfig, *, signed_in_at: int | None = None, expires_at: int | None = None
) -> dict[str, Any]:
    """A token for `user` at its current role and session generation. A fresh sign-in unless
    `signed_in_at` says when the session being renewed began; `expires_at` caps its expiry."""
    ttl = tokens.ttl_for(user["role"])
    now = int(time.time())
    exp = now + ttl if expires_at is None else min(now + ttl, expires_at)
    token = issue_token(
        tokens.secret,
        user["id"],
        user["role"],
        ttl,
        generation=user["session_generation"],
        signed_in_at=signed_in_at,
        expires_at=exp,
    )
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": exp - now,
        "user": user_view(user),
    }


async def create_user(
    pool: asyncpg.Pool,
    *,
    email: str,
    password: str,
    role: str,
    name: str,
    bcrypt_rounds: int,
    lanes: PasswordLanes | None = None,
) -> asyncpg.Record:
    """`lanes`: the server's bcrypt lanes (services/passwords.py); None (the CLI) hashes in the
    loop's default executor."""
    email = check_email(email)
    check_password_rules(password)
    if lanes is None:
        hashed = await hash_password(password, bcrypt_rounds)
    else:
        hashed = await lanes.hash(password, bcrypt_rounds)
    try:
        return await users_db.insert_user(pool, email, hashed, role, name.strip())
    except asyncpg.UniqueViolationError:
        raise conflict("An account with this email already exists") from None


async def signup(
    pool: asyncpg.Pool,
    tokens: TokenConfig,
    *,
    lanes: PasswordLanes,
    throttle: Throttle,
    client_address: str,
    email: str,
    password: str,
    name: str | None,
) -> dict[str, Any]:
    """Create a customer account and sign it in.

    Every attempt counts against the client address (SIGNUP_LIMIT_PER_ADDRESS), failed ones
    included: a taken email answers 409, which tells whether an account exists, so the throttle
    is also what bounds probing for accounts (docs/operations.md, "Limits")."""
    wait = throttle.hit(client_address)
    if wait > 0:
        raise too_many_requests("Too many sign-ups from this address; try again later", wait)
    user = await create_user(
        pool,
        email=email,
        password=password,
        role="customer",
        name=name or "",
        bcrypt_rounds=tokens.bcrypt_rounds,
        lanes=lanes,
    )
    return token_response(user, tokens)


async def login(
    pool: asyncpg.Pool,
    tokens: TokenConfig,
    throttle: LoginThrottle,
    *,
    email: str,
    password: str,
    client_address: str,
    lanes: PasswordLanes | None = None,
) -> dict[str, Any]:
    user = await authenticate(
        pool, throttle, email=email, password=password, client_address=client_address, lanes=lanes
    )
    return token_response(user, tokens)


async def authenticate(
    pool: asyncpg.Pool,
    throttle: LoginThrottle,
    *,
    email: str,
    password: str,
    client_address: str,
    lanes: PasswordLanes | None = None,
) -> asyncpg.Record:
    """The enabled account these credentials belong to (throttled per account and address).
    `lanes` None checks the password in the loop's default executor."""
    account = email.strip().lower()
    wait = throttle.retry_after(account, client_address)
    if wait > 0:
        raise too_many_requests("Too many failed logins; try again later", wait)
    user = await users_db.get_by_email(pool, email.strip())
    # An invited account has no password yet (services/invitations.py): it answers as an unknown
    # email does, at the same cost.
    invited = user is not None and user["invited_at"] is not None
    stored_hash = user["password_hash"] if user and not invited else _DUMMY_HASH
    if lanes is None:
        ok = await verify_password(password, stored_hash)
    else:
        ok = await lanes.verify(password, stored_hash)
    if user is None or invited or not ok:
        throttle.record_failure(account, client_address)
        raise ApiError(401, "invalid_credentials", "Email or password is incorrect")
    throttle.record_success(account, client_address)
    if user["disabled_at"] is not None:
        # Said only to whoever knows the password: it tells them why, and nobody else anything.
        raise account_disabled()
    return user


async def current_user(pool: asyncpg.Pool, user_id: uuid.UUID) -> asyncpg.Record:
    user = await users_db.get_by_id(pool, user_id)
    if user is None:
        # A valid signature for a deleted account.
        raise account_gone()
    return user
