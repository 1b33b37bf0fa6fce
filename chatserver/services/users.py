"""Account management (REST /admin/users and the CLI): list, create, change role, disable, enable,
reset password, and ending an account's sessions (console logout).

Every change that takes access away raises the account's session generation in the same
statement, which ends every token and console session issued before it; and every change is
published as `account.changed`, so each instance forgets what it cached about the account and
closes its sockets at once (services/access.py, docs/security.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from ..db import users as users_db
from ..errors import ApiError, account_gone, not_found, too_many_requests, validation_error
from ..realtime import events
from ..realtime.publisher import Publisher
from ..security import Identity, check_password_rules, hash_password
from ..settings import ROLES
from ..views import user_view
from .access import AccessCache, account_disabled
from .auth import create_user
from .passwords import PasswordLanes
from .throttle import LoginThrottle

MAX_PAGE = 200


def admin_user_view(row: asyncpg.Record) -> dict[str, Any]:
    """An account as admins see it. status: "disabled", else "invited" (no password of its own
    yet: services/invitations.py), else "active"."""
    disabled = row["disabled_at"] is not None
    invited = row["invited_at"] is not None
    return {
        **user_view(row),
        "disabled": disabled,
        "disabled_at": row["disabled_at"],
        "invited_at": row["invited_at"],
        "status": "disabled" if disabled else "invited" if invited else "active",
    }


async def announce(publisher: Publisher, user_id: uuid.UUID) -> None:
    await publisher.publish(events.account_changed(user_id))


async def list_accounts(
    pool: asyncpg.Pool,
    *,
    role: str | None,
    email_prefix: str | None,
    disabled: bool | None,
    after_id: uuid.UUID | None,
    limit: int,
    invited: bool | None = None,
) -> dict[str, Any]:
    rows = await users_db.list_users(
        pool,
        role=role,
        email_prefix=email_prefix,
        disabled=disabled,
        after_id=after_id,
        limit=limit + 1,
        invited=invited,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "users": [admin_user_view(r) for r in rows],
        "next_after": str(rows[-1]["id"]) if more and rows else None,
    }


async def create_account(
    pool: asyncpg.Pool, *, email: str, password: str, role: str, name: str, bcrypt_rounds: int
) -> dict[str, Any]:
    _check_role(role)
    return admin_user_view(
        await create_user(pool, email=email, password=password, role=role, name=name, bcrypt_rounds=bcrypt_rounds)
    )


async def account_id_by_email(pool: asyncpg.Pool, email: str) -> uuid.UUID:
    row = await users_db.get_by_email(pool, email.strip())
    if row is None:
        raise not_found("User")
    return uuid.UUID(str(row["id"]))


async def get_account(pool: asyncpg.Pool, user_id: uuid.UUID) -> dict[str, Any]:
    row = await users_db.get_by_id(pool, user_id)
    if row is None:
        raise not_found("User")
    return admin_user_view(row)


async def set_role(pool: asyncpg.Pool, publisher: Publisher, user_id: uuid.UUID, role: str) -> dict[str, Any]:
    _check_role(role)

    async def change(conn: asyncpg.Connection, current: asyncpg.Record) -> asyncpg.Record | None:
        if current["role"] == role:
            return current  # nothing changes, so no session needs to end
        return await users_db.set_role(conn, user_id, role)

    return await _change(pool, publisher, user_id, change, removes_admin=role != "admin")


async def disable(pool: asyncpg.Pool, publisher: Publisher, user_id: uuid.UUID) -> dict[str, Any]:
    async def change(conn: asyncpg.Connection, current: asyncpg.Record) -> asyncpg.Record | None:
        return await users_db.disable(conn, user_id)

    return await _change(pool, publisher, user_id, change, removes_admin=True)


async def enable(pool: asyncpg.Pool, publisher: Publisher, user_id: uuid.UUID) -> dict[str, Any]:
    async def change(conn: asyncpg.Connection, current: asyncpg.Record) -> asyncpg.Record | None:
        return await users_db.enable(conn, user_id)

    return await _change(pool, publisher, user_id, change, removes_admin=False)


async def reset_password(
    pool: asyncpg.Pool, publisher: Publisher, user_id: uuid.UUID, password: str, bcrypt_rounds: int
) -> dict[str, Any]:
    """A new password, chosen by an admin; every session of the account ends."""
    check_password_rules(password)
    hashed = await hash_password(password, bcrypt_rounds)

    async def change(conn: asyncpg.Connection, current: asyncpg.Record) -> asyncpg.Record | None:
        return await users_db.set_password(conn, user_id, hashed)

    return await _change(pool, publisher, user_id, change, removes_admin=False)


async def end_sessions(pool: asyncpg.Pool, publisher: Publisher, who: Identity) -> None:
    """Log out everywhere: every token and console session of `who`'s account issued before now
    stops working. A session that had already ended changes nothing."""
    if await users_db.end_sessions(pool, who.user_id, who.generation):
        await announce(publisher, who.user_id)


async def change_own_password(
    pool: asyncpg.Pool,
    publisher: Publisher,
    throttle: LoginThrottle,
    lanes: PasswordLanes,
    cache: AccessCache,
    who: Identity,
    *,
    current_password: str,
    new_password: str,
    client_address: str,
    bcrypt_rounds: int,
) -> asyncpg.Record:
    """The caller changes their own password, proving the current one first (throttled as a login
    is: a stolen session must not become a way to guess the password). Every other session and
    token of the account ends (the generation goes up); the caller's own carries on, renewed by
    the handler from the account this returns (docs/security.md, "Changing your password")."""
    row = await users_db.get_with_password_hash(pool, who.user_id)
    if row is None:
        raise account_gone()
    account = row["email"].strip().lower()
    wait = throttle.retry_after(account, client_address)
    if wait > 0:
        raise too_many_requests("Too many failed attempts; try again later", wait)
    if not await lanes.verify(current_password, row["password_hash"]):
        throttle.record_failure(account, client_address)
        raise ApiError(
            403,
            "invalid_credentials",
            "The current password is incorrect",
            details={"fields": {"current_password": "is incorrect"}},
        )
    throttle.record_success(account, client_address)
    if row["disabled_at"] is not None:
        raise account_disabled()
    if new_password == current_password:
        raise validation_error(
            "The new password must differ from the current one",
            details={"fields": {"new_password": "must differ from the current password"}},
        )
    try:
        check_password_rules(new_password)
    except ApiError as err:
        raise validation_error(
            err.message, details={"fields": {"new_password": err.details["fields"]["password"]}}
        ) from None
    hashed = await lanes.hash(new_password, bcrypt_rounds)
    updated = await users_db.set_password(pool, who.user_id, hashed)
    if updated is None:
        raise account_gone()
    # This instance forgets the old generation now, so the caller's renewed session works on its
    # very next request; the announcement does the same on every instance.
    cache.forget(who.user_id)
    await announce(publisher, who.user_id)
    return updated


Change = Callable[[asyncpg.Connection, asyncpg.Record], Awaitable[asyncpg.Record | None]]


async def _change(
    pool: asyncpg.Pool, publisher: Publisher, user_id: uuid.UUID, change: Change, *, removes_admin: bool
) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        # One account change at a time, so that two admins demoting or disabling each other
        # at once cannot leave nobody able to manage accounts.
        await users_db.lock_admin_changes(conn)
        current = await users_db.get_by_id(conn, user_id)
        if current is None:
            raise not_found("User")
        if removes_admin and current["role"] == "admin" and await users_db.other_enabled_admins(conn, user_id) == 0:
            raise ApiError(409, "last_admin", "This is the only enabled admin: make another admin first")
        row = await change(conn, current)
        if row is None:
            raise not_found("User")
    if row is not current:  # the change callback returns the row it read when nothing changes
        # After the commit: an instance that re-reads the account on this event sees the change.
        await announce(publisher, user_id)
    return admin_user_view(row)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ApiError(
            422,
            "validation_error",
            f"role must be one of {', '.join(ROLES)}",
            details={"fields": {"role": f"must be one of {', '.join(ROLES)}"}},
        )
