"""The asyncpg pool: JSON codecs installed on every connection, connections handed out in order."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy


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


class FairPool(asyncpg.Pool):
    """asyncpg's pool, with connections handed to waiting callers first come, first served.

    asyncpg hands a released connection to whichever coroutine asks next: a waiter that was
    woken but not yet scheduled loses it to a newcomer and queues again at the back. When more
    requests run than the pool has connections, some wait many turns: with 64 concurrent
    `GET /tickets` and 10 connections, p99 was ~10x p50 (docs/performance.md). A FIFO
    semaphore in front of the pool (asyncio's Semaphore does not let newcomers barge) keeps
    the wait for a connection proportional to the queue ahead.
    """

    def __init__(self, *args: Any, max_size: int, **kwargs: Any) -> None:
        super().__init__(*args, max_size=max_size, **kwargs)
        self._turns = asyncio.Semaphore(max_size)

    async def _acquire(self, timeout: float | None) -> Any:
        if timeout is None:
            await self._turns.acquire()
        else:
            async with asyncio.timeout(timeout):
                await self._turns.acquire()
        try:
            return await super()._acquire(timeout)
        except BaseException:
            self._turns.release()
            raise

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        # Only a connection this pool handed out and that is still out gives its turn back.
        held = (
            type(connection) is PoolConnectionProxy and connection._holder._pool is self and connection._con is not None
        )
        try:
            await super().release(connection, timeout=timeout)
        finally:
            if held:
                self._turns.release()


async def create_pool(url: str, min_size: int, max_size: int) -> asyncpg.Pool:
    # asyncpg.create_pool's defaults, spelled out: it cannot build a Pool subclass itself.
    pool = FairPool(
        url,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        init=_init_connection,
        reset=_keep_session,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=30,
    )
    await pool
    return pool
