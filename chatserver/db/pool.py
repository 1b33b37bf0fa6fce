"""The asyncpg pool: JSON codecs installed on every connection, connections handed out in order,
within a bounded wait; and what counts as the database being unavailable (DatabaseHealth)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns come back as Python objects and go in from dicts.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query.

    The default runs `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;` on every
    release: one more round trip per pooled query, which cost ~12% of the server's CPU on
    `GET /tickets` (docs/performance.md). This application never changes session state (no SET,
    LISTEN, advisory locks or cursors outside a transaction), so there is nothing to reset.
    asyncpg still rolls back a transaction left open before calling this.
    """


class AcquireTimeout(TimeoutError):
    """No connection became free within DB_ACQUIRE_TIMEOUT: every one is busy (or stuck)."""


# InterfaceError messages that mean the connection died under us, not that the code misused it:
# asyncpg detaches a connection from its proxy when it closes, so the next call on that proxy
# says "released back to the pool" and a transaction's exit says "the underlying connection is
# closed". This code always uses connections inside `async with pool.acquire()`.
_BROKEN_CONNECTION_MESSAGES = ("connection is closed", "connection was closed", "released back to the pool")


# What asyncpg raises for a statement sent on a connection whose server has just terminated it.
# On shutdown PostgreSQL sends every idle connection a FATAL error ("terminating connection due to
# administrator command") and then closes it. asyncpg's protocol does not expect a message while
# idle: it marks the connection as consuming an error (state 2) until the socket's end arrives a
# moment later, and a statement sent on it in between fails with "cannot switch to state 12;
# another operation (2) is in progress". The pool cannot see that state (asyncpg does not expose
# it), so such a connection can still be handed out: its error means the server is going away.
_SERVER_SAID_GOODBYE = "another operation (2) is in progress"
_ALREADY_RELEASED = "called on a free connection holder"
# The OS errors a connection attempt to PostgreSQL ends in. Not every OSError: a full disk or a
# missing file elsewhere in a handler is not a database outage and must not be reported as one.
_NETWORK_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.EPIPE}
)


def _is_network_error(exc: OSError) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return True
    # asyncpg trying several addresses (localhost: ::1 and 127.0.0.1) raises a plain OSError
    # "Multiple exceptions: ..." without an errno.
    return exc.errno in _NETWORK_ERRNOS or (exc.errno is None and str(exc).startswith("Multiple exceptions"))


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached right now (restart, crash, network,
    no free connection), as opposed to a statement it refused. Exception groups (task groups)
    count when every exception in them does."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_unavailable(e) for e in exc.exceptions)
    if isinstance(exc, OSError) and not isinstance(exc, AcquireTimeout):
        return _is_network_error(exc)
    if isinstance(
        exc,
        AcquireTimeout
        | asyncpg.PostgresConnectionError  # ConnectionDoesNotExistError and the rest of class 08
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError
        | asyncpg.TooManyConnectionsError,
    ):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        message = str(exc)
        return any(m in message for m in _BROKEN_CONNECTION_MESSAGES)
    if isinstance(exc, asyncpg.InternalClientError):
        return _SERVER_SAID_GOODBYE in str(exc)
    return False


class DatabaseHealth:
    """What this process knows about its database, for the logs and the probes.

    An outage starts at the first unavailable error anyone reports (one warning) and ends when a
    connection goes back to the pool alive (one warning): no traceback per failed request.
    `acquire_failing_since` is when the pool last started failing to hand out connections (None
    while it hands them out): /healthz uses it to tell a database that is down (wait for it) from
    a pool that is stuck while the database answers (only a restart helps).
    """

    __slots__ = ("acquire_failing_since", "down_since", "outages")

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.acquire_failing_since: float | None = None
        self.outages = 0

    def unavailable(self, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.outages += 1
            log.warning(
                "database unavailable (%s: %s): answering database_unavailable until it is back",
                type(exc).__name__,
                str(exc)[:200],
            )

    def available(self) -> None:
        if self.down_since is not None:
            log.warning("database available again after %.1fs", time.monotonic() - self.down_since)
            self.down_since = None


class _OutageTracebacks(logging.Filter):
    """Drops asyncpg's "Failed to restore the pool connection floor" warnings while the database
    is unreachable: asyncpg logs one with a traceback per reconnect attempt, and DatabaseHealth
    has already said once that the database is down. Other failures still get through."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return exc is None or not is_unavailable(exc)


class FairPool(asyncpg.Pool):
    """asyncpg's pool, with connections handed to waiting callers first come, first served, and
    a bounded wait for one.

    asyncpg hands a released connection to whichever coroutine asks next: a waiter that was
    woken but not yet scheduled loses it to a newcomer and queues again at the back. When more
    requests run than the pool has connections, some wait many turns: with 64 concurrent
    `GET /tickets` and 10 connections, p99 was ~10x p50 (docs/performance.md). A FIFO
    semaphore in front of the pool (asyncio's Semaphore does not let newcomers barge) keeps
    the wait for a connection proportional to the queue ahead.

    Each proxy handed out holds one turn until it is released, whatever became of its connection:
    a connection that dies while checked out is detached from its proxy by asyncpg before the
    caller releases it, so "is it still attached" cannot tell whether a turn is owed (that test
    lost a turn per connection killed in use, and after DB_POOL_MAX of them the pool hung).
    """

    def __init__(
        self, *args: Any, max_size: int, acquire_timeout: float, health: DatabaseHealth, **kwargs: Any
    ) -> None:
        super().__init__(*args, max_size=max_size, **kwargs)
        self._turns = asyncio.Semaphore(max_size)
        self._out: set[PoolConnectionProxy] = set()
        self._acquire_timeout = acquire_timeout
        self._health = health

    async def _acquire(self, timeout: float | None) -> Any:
        turns = self._turns
        health = self._health
        if turns.locked():
            # Only waiting for a turn can last: the timer is set up just then, not on every acquire.
            try:
                async with asyncio.timeout(self._acquire_timeout if timeout is None else timeout):
                    await turns.acquire()
            except TimeoutError:
                error = AcquireTimeout(f"no database connection became free within {self._acquire_timeout}s")
                self._failed(error)
                raise error from None
        else:
            await turns.acquire()  # returns at once
        try:
            # A turn guarantees a free holder; connecting is bounded by the connect timeout.
            proxy = await super()._acquire(None)
        except BaseException as exc:
            turns.release()
            if isinstance(exc, Exception) and is_unavailable(exc):
                self._failed(exc)
            raise
        self._out.add(proxy)
        if health.acquire_failing_since is not None:
            health.acquire_failing_since = None
        return proxy

    def _failed(self, exc: BaseException) -> None:
        health = self._health
        if health.acquire_failing_since is None:
            health.acquire_failing_since = time.monotonic()
        health.unavailable(exc)

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        out = self._out
        held = connection in out
        if held:
            out.discard(connection)
            if self._health.down_since is not None and connection._con is not None and not connection._con.is_closed():
                self._health.available()  # a connection that worked through its checkout
        try:
            await super().release(connection, timeout=timeout)
        except asyncpg.InternalClientError as exc:
            # A connection the server terminated while a cancelled statement was on it: asyncpg's
            # close callback already gave its holder back to the pool, and the explicit release
            # that follows finds the holder free. Nothing is left to release; seen as a 500 when
            # a client hung up during a PostgreSQL restart (tests/test_db_outage.py).
            if _ALREADY_RELEASED not in str(exc):
                raise
        finally:
            if held:
                self._turns.release()


async def create_pool(
    url: str,
    min_size: int,
    max_size: int,
    *,
    acquire_timeout: float = 5.0,
    health: DatabaseHealth | None = None,
    durable_commits: bool = True,
) -> asyncpg.Pool:
    """`durable_commits=False`: commits return before their WAL is flushed to disk
    (synchronous_commit off), for bookkeeping that a crash may roll back by a fraction of a second
    without harm (webhook delivery: what was lost is sent again). Everything that stores what
    users wrote keeps the default."""
    asyncpg_log = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, _OutageTracebacks) for f in asyncpg_log.filters):
        asyncpg_log.addFilter(_OutageTracebacks())
    # asyncpg.create_pool's defaults, spelled out: it cannot build a Pool subclass itself.
    pool = FairPool(
        url,
        min_size=min_size,
        max_size=max_size,
        acquire_timeout=acquire_timeout,
        health=health or DatabaseHealth(),
        # Opening a connection is part of acquiring one: bounded by the same wait.
        timeout=acquire_timeout,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        init=_init_connection,
        reset=_keep_session,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=30,
        # No JIT compilation: it pays off on queries over millions of rows, and ours touch at
        # most thousands; a search's estimated cost passed jit_above_cost, and compiling its
        # statement took tens of milliseconds to save none (docs/performance.md, "Search").
        server_settings={"jit": "off", **({} if durable_commits else {"synchronous_commit": "off"})},
    )
    await pool
    return pool
