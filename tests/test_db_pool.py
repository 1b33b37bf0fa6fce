"""The connection pool (chatserver/db/pool.py) under connection failures: every connection handed
out gives its turn back whatever happened to it, and nobody waits for a connection forever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from chatserver.db.pool import AcquireTimeout, create_pool, is_unavailable
from chatserver.keys import DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser

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


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(db_pool_max=2, db_acquire_timeout=0.2, db_stuck_seconds=0.5)


async def test_a_pool_that_hands_out_nothing_while_the_database_answers_fails_liveness(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user()
    app_pool = client.app[DB_POOL]
    held = [await app_pool.acquire() for _ in range(2)]
    try:
        resp = await client.get("/tickets", headers=customer.headers)
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "database_unavailable"
        assert "Retry-After" in resp.headers
        # Bounded polling: liveness fails once the pool has been stuck for DB_STUCK_SECONDS.
        for _ in range(50):
            await client.get("/tickets", headers=customer.headers)
            healthz = await client.get("/healthz")
            if healthz.status != 200:
                break
            await asyncio.sleep(0.1)
        assert healthz.status == 503
        assert (await healthz.json())["error"]["code"] == "pool_stuck"
    finally:
        for conn in held:
            await app_pool.release(conn)
    assert (await client.get("/tickets", headers=customer.headers)).status == 200
    assert (await client.get("/healthz")).status == 200


async def test_waiting_for_a_connection_is_bounded(client: TestClient) -> None:
    app_pool = client.app[DB_POOL]
    held = [await app_pool.acquire() for _ in range(2)]
    try:
        with pytest.raises(AcquireTimeout):
            await app_pool.fetchval("SELECT 1")
    finally:
        for conn in held:
            await app_pool.release(conn)
    assert await app_pool.fetchval("SELECT 1") == 1


def test_only_network_errors_count_as_a_database_outage() -> None:
    # A refused or reset connection is an outage; a file error raised elsewhere in a handler is a
    # bug to see (500 with its traceback), not a 503 that blames the database.
    assert is_unavailable(ConnectionRefusedError(111, "refused"))
    assert is_unavailable(OSError("Multiple exceptions: [Errno 111] refused, [Errno 99] cannot assign"))
    assert is_unavailable(TimeoutError())
    assert not is_unavailable(FileNotFoundError(2, "No such file"))
    assert not is_unavailable(OSError(28, "No space left on device"))
