"""Whether a caller still has access: the account behind a token, ticket or console session
exists, is enabled, and still has the role and session generation it was issued with.

Checked on every authenticated request and socket through a short per-instance cache (a hit
costs a dict lookup, no database round trip: docs/performance.md). A change to an account is
published as an `account.changed` control event: every instance forgets its cached state and
closes the account's open sockets with CLOSE_POLICY (4003). A periodic re-check of the accounts
behind open sockets covers an event lost while Redis was away (docs/security.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import asyncpg

from ..db import users as users_db
from ..errors import ApiError, account_gone
from ..realtime import events
from ..realtime.client import Connection
from ..realtime.events import Event
from ..security import Identity

log = logging.getLogger(__name__)

# Accounts remembered per instance; beyond it the oldest entry goes first. An entry is ~200 bytes.
CACHE_MAX_ENTRIES = 100_000
# Accounts read per query by the open-socket re-check.
RECHECK_BATCH = 1000
CLOSE_REASON = "access revoked: sign in again"


@dataclass(frozen=True, slots=True)
class AccountState:
    role: str
    generation: int
    disabled: bool


def session_ended() -> ApiError:
    return ApiError(
        401,
        "session_ended",
        "This session has ended (signed out, or the account changed); sign in again",
        headers={"WWW-Authenticate": "Bearer"},
    )


def account_disabled() -> ApiError:
    return ApiError(403, "account_disabled", "This account is disabled")


def access_problem(state: AccountState | None, who: Identity) -> ApiError | None:
    """Why `who` may no longer act, or None when it may."""
    if state is None:
        return account_gone()
    if state.disabled:
        return account_disabled()
    if state.generation != who.generation or state.role != who.role:
        return session_ended()
    return None


class AccessCache:
    """Account states by user id, each kept for `ttl` seconds or until invalidated."""

    def __init__(self, ttl: float, max_entries: int = CACHE_MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        # user id -> (state, or None for "no such account"; monotonic expiry)
        self._entries: dict[uuid.UUID, tuple[AccountState | None, float]] = {}
        # Raised by every invalidation: a read that began before one may have seen the old row,
        # and is then used once but not remembered.
        self._epoch = 0

    async def state(self, pool: asyncpg.Pool, user_id: uuid.UUID) -> AccountState | None:
        hit = self._entries.get(user_id)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        epoch = self._epoch
        rows = await users_db.access_states(pool, [user_id])
        state = _state(rows[0]) if rows else None
        if epoch == self._epoch:
            self.remember(user_id, state)
        return state

    def remember(self, user_id: uuid.UUID, state: AccountState | None) -> None:
        self._entries.pop(user_id, None)
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[user_id] = (state, time.monotonic() + self.ttl)

    def forget(self, user_id: uuid.UUID) -> None:
        self._epoch += 1
        self._entries.pop(user_id, None)


def _state(row: asyncpg.Record) -> AccountState:
    return AccountState(row["role"], row["session_generation"], row["disabled"])


async def check_access(pool: asyncpg.Pool, cache: AccessCache, who: Identity) -> Identity:
    """`who` when its account still lets it act; else raises (401 account gone or session ended,
    403 account disabled)."""
    problem = access_problem(await cache.state(pool, who.user_id), who)
    if problem is not None:
        raise problem
    return who


class RevocableStream:
    """An open response that is not a socket (the AI reply's Server-Sent Events), watched like one:
    when its account's access is revoked, `revoked` is set and the handler ends the stream."""

    __slots__ = ("closing", "identity", "revoked")

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.closing = False
        self.revoked = asyncio.Event()

    def close_soon(self, code: int, message: str) -> None:
        self.closing = True
        self.revoked.set()


class AccessWatcher:
    """Applies account changes to this instance: forgets the cached state and closes the
    account's sockets, on every `account.changed` event (from any instance or the CLI); and
    re-checks the accounts behind open sockets every `recheck_seconds`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cache: AccessCache,
        connections: Callable[[], Iterable[Connection]],
        recheck_seconds: float,
    ) -> None:
        self.pool = pool
        self.cache = cache
        self.connections = connections
        self.recheck_seconds = recheck_seconds
        # The open AI reply streams (handlers/ai.py adds and removes its own).
        self.streams: set[RevocableStream] = set()
        self._task: asyncio.Task[None] | None = None

    def _watched(self) -> list[Connection | RevocableStream]:
        return [*self.connections(), *self.streams]

    def observe(self, event: Event) -> None:
        """Hub observer (synchronous): every event this instance receives."""
        if event.channel != events.ACCOUNTS_CHANNEL or event.frame.get("type") != "account.changed":
            return
        try:
            user_id = uuid.UUID(str(event.frame["user_id"]))
        except (KeyError, ValueError):
            log.warning("ignoring a malformed account.changed event")
            return
        self.cache.forget(user_id)
        closed = 0
        for conn in self._watched():
            if conn.identity.user_id == user_id and not conn.closing:
                conn.close_soon(events.CLOSE_POLICY, CLOSE_REASON)
                closed += 1
        if closed:
            log.info("account %s changed: closed %d socket(s)", user_id, closed)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._recheck_loop(), name="access-recheck")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _recheck_loop(self) -> None:
        while True:
            await asyncio.sleep(self.recheck_seconds)
            try:
                await self.recheck_sockets()
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("could not re-check the accounts behind open sockets (%s)", type(exc).__name__)

    async def recheck_sockets(self) -> int:
        """Close the sockets whose account no longer lets them act; returns how many."""
        conns = [c for c in self._watched() if not c.closing]
        ids = list({c.identity.user_id for c in conns})
        states: dict[uuid.UUID, AccountState] = {}
        for start in range(0, len(ids), RECHECK_BATCH):
            for row in await users_db.access_states(self.pool, ids[start : start + RECHECK_BATCH]):
                states[row["id"]] = _state(row)
        closed = 0
        for conn in conns:
            if access_problem(states.get(conn.identity.user_id), conn.identity) is not None:
                conn.close_soon(events.CLOSE_POLICY, CLOSE_REASON)
                closed += 1
        if closed:
            log.info("closed %d socket(s) whose access was revoked", closed)
        return closed
