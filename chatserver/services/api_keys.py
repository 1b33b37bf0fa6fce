"""API keys: created by admins, shown once, stored as a SHA-256 hash; a request with a key acts as
the key's integration account (role "integration") within the key's scopes.

Why SHA-256 and not bcrypt: a key is 256 random bits, so there is nothing to guess and no
dictionary to slow down; a slow hash only protects low-entropy secrets (passwords), and would
cost ~250 ms of CPU per request. An unsalted hash also lets the key be found by an index lookup.

Revocation reuses the account mechanism (services/access.py): revoking disables the account and
raises its session generation in one statement, then publishes `account.changed`, so every
instance refuses the key at once (and closes its sockets).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..db import api_keys as keys_db
from ..errors import ApiError, not_found, too_many_requests, validation_error
from ..realtime import events
from ..realtime.publisher import Publisher
from ..security import Identity, unusable_password_hash
from .access import AccessCache, access_problem
from .throttle import SendBudget

log = logging.getLogger(__name__)

# Recognisable by secret scanners (docs/integrations.md): "csk_" + 43 URL-safe characters.
KEY_PREFIX = "csk_"
SCOPES = ("tickets:read", "tickets:write", "messages:write", "events:read", "admin")
# How many characters of a key are kept to tell keys apart in lists: the prefix and 8 more.
SHOWN_CHARS = len(KEY_PREFIX) + 8
# last_used_at is written at most this often per key and instance: not a write per request.
TOUCH_EVERY_SECONDS = 60.0
MAX_KEYS_LISTED = 500

# The routes a key may use, and the scope each needs ("admin" grants every scope). A route not
# listed is refused to keys: new routes stay closed to them until someone decides.
ROUTE_SCOPES: dict[str, str | None] = {
    "auth-me": None,
    "tickets-list": "tickets:read",
    "ticket-get": "tickets:read",
    "messages-list": "tickets:read",
    "ticket-ws": "tickets:read",
    "ticket-update": "tickets:write",
    "messages-post": "messages:write",
    "events-list": "events:read",
}
ADMIN_ROUTE_PREFIX = "admin-"
# Room-socket frames a key may send, and the scope each needs (AI controls stay with people).
FRAME_SCOPES: dict[str, str | None] = {
    "ping": None,
    "typing": "messages:write",
    "message.send": "messages:write",
    "ticket.update": "tickets:write",
}


def key_refused(message: str) -> ApiError:
    return ApiError(401, "invalid_api_key", message, headers={"WWW-Authenticate": "Bearer"})


def scope_missing(scope: str) -> ApiError:
    return ApiError(403, "insufficient_scope", f"This API key lacks the {scope} scope")


def route_scope(route_name: str | None) -> tuple[bool, str | None]:
    """(may a key use this route at all, the scope it needs)."""
    if route_name is None:
        return False, None
    if route_name.startswith(ADMIN_ROUTE_PREFIX):
        return True, "admin"
    if route_name in ROUTE_SCOPES:
        return True, ROUTE_SCOPES[route_name]
    return False, None


def check_frame(who: Identity, frame_type: str) -> ApiError | None:
    """Why a key may not send this room-socket frame, or None. People are not limited here."""
    if who.scopes is None:
        return None
    if frame_type not in FRAME_SCOPES:
        return ApiError(403, "insufficient_scope", "API keys cannot send this frame")
    scope = FRAME_SCOPES[frame_type]
    if scope is not None and not who.has_scope(scope):
        return scope_missing(scope)
    return None


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: uuid.UUID
    user_id: uuid.UUID
    scopes: frozenset[str]
    expires_at: float | None
    generation: int


class ApiKeys:
    """Resolves keys to identities on this instance: a short cache of key lookups (the account's
    state goes through the AccessCache, which account.changed clears at once), per-key rate
    limits, and last-used times written at most once a minute."""

    def __init__(self, pool: asyncpg.Pool, access: AccessCache, *, ttl: float, rate: float, burst: int) -> None:
        self.pool = pool
        self.access = access
        self.ttl = ttl
        self.budget = SendBudget(rate, burst)
        self._cache: dict[bytes, tuple[KeyRecord | None, float]] = {}
        self._touched: dict[uuid.UUID, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def identify(self, key: str, route_name: str | None) -> Identity:
        """The identity a request with `key` acts as on `route_name`; raises 401 / 403 / 429."""
        allowed, scope = route_scope(route_name)
        record = await self._record(key)
        if record is None:
            raise key_refused("API key is not valid")
        if record.expires_at is not None and time.time() >= record.expires_at:
            raise key_refused("API key has expired")
        who = Identity(record.user_id, "integration", record.generation, 0, record.scopes)
        if access_problem(await self.access.state(self.pool, record.user_id), who) is not None:
            # Revoked (the account is disabled and its generation raised), on any instance.
            raise key_refused("API key has been revoked")
        if not allowed:
            raise ApiError(403, "insufficient_scope", "API keys cannot use this endpoint")
        if scope is not None and not who.has_scope(scope):
            raise scope_missing(scope)
        wait = self.budget.take(record.key_id)
        if wait > 0:
            raise too_many_requests("Too many requests with this API key", wait)
        self._touch(record.key_id)
        return who

    async def _record(self, key: str) -> KeyRecord | None:
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        digest = hash_key(key)
        hit = self._cache.get(digest)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        row = await keys_db.lookup(self.pool, digest)
        record = None
        if row is not None and row["revoked_at"] is None:
            expires = row["expires_at"]
            record = KeyRecord(
                row["id"],
                row["user_id"],
                frozenset(row["scopes"]),
                expires.timestamp() if expires is not None else None,
                row["session_generation"],
            )
        if len(self._cache) >= 10_000:
            self._cache.pop(next(iter(self._cache)))
        self._cache[digest] = (record, now + self.ttl)
        return record

    def _touch(self, key_id: uuid.UUID) -> None:
        now = time.monotonic()
        last = self._touched.get(key_id)
        if last is not None and now - last < TOUCH_EVERY_SECONDS:
            return
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write_touch(key_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_touch(self, key_id: uuid.UUID) -> None:
        try:
            await keys_db.touch(self.pool, key_id)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("could not record an API key's last use (%s)", type(exc).__name__)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def key_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "scopes": list(row["scopes"]),
        "integration_user_id": row["user_id"],
        "expires_at": row["expires_at"],
        "revoked_at": row["revoked_at"],
        "last_used_at": row["last_used_at"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
    }


async def create_key(
    pool: asyncpg.Pool,
    *,
    name: str,
    scopes: list[str],
    expires_at: dt.datetime | None,
    created_by: uuid.UUID,
) -> dict[str, Any]:
    """A new key and its integration account; the key itself is in the answer and nowhere else."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise validation_error(
            f"scopes must be a non-empty list of {', '.join(SCOPES)}",
            details={"fields": {"scopes": f"unknown: {', '.join(unknown)}" if unknown else "must not be empty"}},
        )
    if expires_at is not None and expires_at <= dt.datetime.now(dt.UTC):
        raise validation_error("expires_at must be in the future", details={"fields": {"expires_at": "is past"}})
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = await keys_db.insert_key(
        pool,
        email=f"key-{uuid.uuid4().hex}@integrations.invalid",
        password_hash=unusable_password_hash(),  # the account never signs in with a password
        name=name,
        prefix=key[:SHOWN_CHARS],
        secret_hash=hash_key(key),
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        created_by=created_by,
    )
    return {**key_view(row), "key": key}


async def list_keys(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [key_view(r) for r in await keys_db.list_keys(pool, MAX_KEYS_LISTED)]


async def get_key(pool: asyncpg.Pool, key_id: uuid.UUID) -> dict[str, Any]:
    row = await keys_db.get_key(pool, key_id)
    if row is None:
        raise not_found("API key")
    return key_view(row)


async def revoke_key(pool: asyncpg.Pool, publisher: Publisher, key_id: uuid.UUID) -> dict[str, Any]:
    row = await keys_db.revoke(pool, key_id)
    if row is None:
        raise not_found("API key")
    # Every instance forgets the account's cached state and closes its sockets.
    await publisher.publish(events.account_changed(row["user_id"]))
    return key_view(row)
