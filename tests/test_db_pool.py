"""The connection pool (chatserver/db/pool.py) under connection failures: every connection handed
out gives its turn back whatever happened to it, and nobody waits for a connection forever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from chatserver.db.pool import create_pool

POOL_MAX = 3


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, 1, POOL_MAX)
    try:
        yield pool
    finally:
        await pool.close()


async def kill_while_checked_out(pool: asyncpg.Pool, admin: asyncpg.Connection) -> None:
    """Check out a connection, open a transaction on it, and have another connection terminate its
    backend, as a PostgreSQL restart does to every connection in use."""
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
        async with pool.acquire() as conn, conn.transaction():
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            # Until asyncpg has seen the connection close, the next statement may still be sent.
            for _ in range(100):
                await conn.fetchval("SELECT 1")
                await asyncio.sleep(0.01)


async def test_connections_that_die_while_checked_out_give_their_turn_back(
    pool: asyncpg.Pool, database_url: str
) -> None:
    admin = await asyncpg.connect(database_url)
    try:
        # The old pool lost one turn per death, and the acquire after the last turn was gone
        # waited forever; the guards only turn such a hang into a failure.
        for _ in range(POOL_MAX + 1):
            await asyncio.wait_for(kill_while_checked_out(pool, admin), 30)
    finally:
        await admin.close()
    assert await asyncio.wait_for(pool.fetchval("SELECT 42"), 30) == 42
