"""Test fixtures: a real PostgreSQL (the machine's via DATABASE_URL, else an embedded one),
a fresh database per test session, a real server per test, and helpers to make users."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from chatserver.app import create_app
from chatserver.db.embedded import embedded_postgres
from chatserver.db.migrate import apply_migrations
from chatserver.keys import DB_POOL
from chatserver.services.auth import create_user
from chatserver.settings import Settings

from .services import RedisProcess, ServerProcess, require_redis_server, running_servers

TEST_SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C and SIGTERM stop the run, and pytest then tears every fixture down: the embedded
    PostgreSQL (a daemon in its own session, which no signal to our process group reaches), the
    redis-server and the server processes the tests started.

    Python's own SIGINT handling is not enough: asyncio's Runner turns Ctrl-C into a cancellation
    of the running test, which the code under test may absorb (the run then goes on); a SIGINT
    ignored by the shell that started us (`make test &` in a script) stays ignored; and SIGTERM
    kills the process outright, with no teardown. Installing our handler also keeps the Runner
    from installing its own. A second signal during teardown is ignored, so a hurried second
    Ctrl-C does not abandon the database; a third one does."""
    interrupts = 0

    def interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 2:
            sys.stderr.write("\ninterrupted: stopping the services the tests started (again to abandon them)\n")
            return
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A PostgreSQL server: DATABASE_URL when set, else an embedded one in a temp folder."""
    with ExitStack() as stack:
        url = os.environ.get("DATABASE_URL")
        if not url:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="chatserver-test-"))
            url = stack.enter_context(embedded_postgres(Path(tmp), delete_on_exit=True))
        yield url


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh database for this test session, migrated, dropped at the end."""
    name = f"chatserver_test_{secrets.token_hex(4)}"
    admin_url = _with_database(server_url, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    apply_migrations(url)
    yield url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server: REDIS_URL when set, else a private redis-server; skipped (a failure in CI)
    when neither exists."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = RedisProcess(require_redis_server())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def backplane_env(database_url: str, redis_url: str, redis_prefix: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of server processes that share one database and one Redis (several
    instances of one deployment), with the AI and automatic assignment off unless `extra` says
    otherwise."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "SECRET_KEY": TEST_SECRET,
        "CHATSERVER_DATA_DIR": str(data_dir),
        "LOG_LEVEL": "WARNING",
        "AI_DEFAULT_ENABLED": "false",
        # Automatic assignment adds ticket updates whenever an agent's inbox is open; the routing
        # tests (tests/test_routing*.py) turn it on.
        "AUTO_ASSIGN": "false",
        **extra,
    }


@pytest.fixture
def two_servers(database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Two server processes of one deployment (one database, one Redis), with account caches that
    would not run out during a test: only the backplane's invalidation can explain a refusal."""
    env = backplane_env(
        database_url,
        redis_url,
        redis_prefix,
        tmp_path,
        ACCOUNT_CACHE_SECONDS="300",
        ACCOUNT_RECHECK_SECONDS="3600",
    )
    with running_servers(env, tmp_path) as servers:
        yield servers


@pytest.fixture
def redis_prefix() -> str:
    """Pub/sub channels span all Redis databases: each test gets its own namespace."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=TEST_SECRET,
        data_dir=tmp_path,
        redis_url=None,
        db_pool_min=1,
        db_pool_max=5,
        # AI replies would add messages to every customer's ticket in the background; the AI
        # tests (tests/test_ai_*.py) turn them on.
        ai_default_enabled=False,
        # Likewise automatic assignment, whenever an agent's inbox is open (tests/test_routing*.py).
        auto_assign=False,
    )


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> AsyncIterator[TestClient]:
    app = create_app(settings, bcrypt_rounds=4)
    test_client: TestClient = await aiohttp_client(app)
    # The AI actions too: a test that defines one would otherwise offer it to every later test's model.
    await app[DB_POOL].execute("TRUNCATE users, tickets, messages, ai_actions CASCADE")
    yield test_client


@dataclass
class User:
    id: str
    email: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeUser = Callable[..., Awaitable[User]]


@pytest.fixture
def make_user(client: TestClient) -> MakeUser:
    """Create a user of any role and log them in through the real API."""

    async def make(role: str = "customer", email: str | None = None, name: str = "") -> User:
        email = email or f"{role}-{uuid.uuid4().hex[:10]}@example.com"
        await create_user(
            client.app[DB_POOL], email=email, password=PASSWORD, role=role, name=name or role, bcrypt_rounds=4
        )
        resp = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        data = await resp.json()
        return User(data["user"]["id"], email, role, data["access_token"])

    return make


async def create_ticket(client: TestClient, user: User, subject: str = "Help", **extra: Any) -> dict[str, Any]:
    resp = await client.post("/tickets", json={"subject": subject, **extra}, headers=user.headers)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["ticket"]
