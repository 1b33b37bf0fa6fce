"""A database outage, against a private PostgreSQL that the tests stop and start again: REST
calls and upgrades answer 503 database_unavailable with Retry-After, sockets get an error frame
and stay open, the logs say once that the outage started and once that it ended (no traceback),
and the same server serves again as soon as PostgreSQL is back."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from chatserver.ai.fake_groq import FakeGroq, Script
from chatserver.ai.knowledge import read_kb_dir
from chatserver.ai.setup import _prepare_knowledge
from chatserver.app import create_app
from chatserver.db.message_writer import MessageWriter
from chatserver.db.messages import VisibleMessage
from chatserver.db.pool import is_unavailable
from chatserver.keys import AI_SERVICE, DB_POOL
from chatserver.services.auth import create_user
from chatserver.settings import SAMPLE_KB_DIR, Settings

from .conftest import PASSWORD, TEST_SECRET
from .fake_groq import _fake_groq, ai_settings  # noqa: F401  (pytest fixture)
from .services import PostgresProcess, find_postgres_bin
from .wsutil import recv, recv_type

# How many times a test polls for recovery; only a bound, so a server that never recovers fails.
RECOVERY_POLLS = 60


@pytest.fixture
def postgres() -> Iterator[PostgresProcess]:
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.skip("no initdb/pg_ctl on this machine")
    with tempfile.TemporaryDirectory(prefix="chatserver-pg-") as tmp:
        server = PostgresProcess(bin_dir, Path(tmp))
        server.init()
        server.start()
        try:
            yield server
        finally:
            server.ensure_stopped()


def outage_settings(postgres: PostgresProcess, tmp_path: Path, **overrides: Any) -> Settings:
    """An app on the private cluster, which tests stop and start, without Redis or the AI."""
    fields: dict[str, Any] = {
        # The private cluster has no TLS. With asyncpg's default (sslmode=prefer) a connect that is
        # cancelled during its TLS negotiation leaves a "Future exception was never retrieved"
        # in the log (asyncpg's TLSUpgradeProto), which is not what these tests are about.
        "database_url": postgres.url + "?sslmode=disable",
        "secret_key": TEST_SECRET,
        "data_dir": tmp_path,
        "redis_url": None,
        "db_pool_min": 1,
        "db_pool_max": 5,
        "db_acquire_timeout": 1.0,
        "ai_default_enabled": False,
    }
    return Settings(**{**fields, **overrides})


@pytest.fixture
async def outage_client(aiohttp_client: Any, postgres: PostgresProcess, tmp_path: Path) -> AsyncIterator[TestClient]:
    # The sockets here send as fast as they are answered.
    settings = outage_settings(postgres, tmp_path, ws_send_rate=10_000.0, ws_send_burst=10_000)
    client: TestClient = await aiohttp_client(create_app(settings, bcrypt_rounds=4))
    yield client


async def login(client: TestClient, role: str = "customer") -> dict[str, str]:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    await create_user(client.app[DB_POOL], email=email, password=PASSWORD, role=role, name=role, bcrypt_rounds=4)
    resp = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


async def recv_error(ws: aiohttp.ClientWebSocketResponse, ref: str) -> dict[str, Any]:
    while True:
        frame = await recv_type(ws, "error", timeout=15)
        if frame.get("ref") == ref:
            return frame


async def recv_ack(ws: aiohttp.ClientWebSocketResponse, ref: str) -> dict[str, Any]:
    while True:
        frame = await recv_type(ws, "ack", timeout=15)
        if frame.get("client_id") == ref:
            return frame


async def wait_until_served(client: TestClient, path: str, headers: dict[str, str]) -> None:
    for _ in range(RECOVERY_POLLS):
        resp = await client.get(path, headers=headers)
        if resp.status == 200:
            return
        assert resp.status == 503, await resp.text()
        await asyncio.sleep(0.5)
    raise AssertionError(f"{path} not served again after PostgreSQL came back")


def outage_log_lines(caplog: pytest.LogCaptureFixture) -> tuple[int, int]:
    started = sum("database unavailable" in r.getMessage() for r in caplog.records)
    ended = sum("database available again" in r.getMessage() for r in caplog.records)
    return started, ended


def assert_no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_database_outage_answers_503_and_error_frames_then_recovers(
    outage_client: TestClient, postgres: PostgresProcess, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    client = outage_client
    caplog.set_level(logging.WARNING)
    customer = await login(client)
    resp = await client.post("/tickets", json={"subject": "Help"}, headers=customer)
    ticket = (await resp.json())["ticket"]
    path = f"/tickets/{ticket['id']}"
    ws = await client.ws_connect(f"{path}/ws", headers=customer)
    await recv_type(ws, "joined")
    await ws.send_json({"type": "message.send", "client_id": "before", "body": "hello"})
    await recv_ack(ws, "before")

    await asyncio.to_thread(postgres.stop, mode)

    await ws.send_json({"type": "message.send", "client_id": "during", "body": "anyone?"})
    error = await recv_error(ws, "during")
    assert error["code"] == "database_unavailable"
    assert error["retry_after"] > 0

    resp = await client.get(path, headers=customer)
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "database_unavailable"
    assert int(resp.headers["Retry-After"]) > 0

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(f"{path}/ws", headers=customer)
    assert refused.value.status == 503

    assert (await client.get("/readyz")).status == 503
    # The database is down, not this process: a restart would not help, liveness holds.
    assert (await client.get("/healthz")).status == 200

    await asyncio.to_thread(postgres.start)
    await wait_until_served(client, path, customer)

    # The socket outlived the outage: the client resends with the same client_id.
    await ws.send_json({"type": "message.send", "client_id": "during", "body": "anyone?"})
    ack = await recv_ack(ws, "during")
    assert ack["message"]["body"] == "anyone?"
    assert (await client.get("/readyz")).status == 200
    resp = await client.get(f"{path}/messages", headers=customer)
    assert [m["client_id"] for m in (await resp.json())["messages"]] == ["before", "during"]
    await ws.close()

    assert outage_log_lines(caplog) == (1, 1)
    assert_no_errors_logged(caplog)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_requests_in_flight_when_the_database_stops_get_503_never_500(
    outage_client: TestClient, postgres: PostgresProcess, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    client = outage_client
    caplog.set_level(logging.WARNING)
    customer = await login(client)
    resp = await client.post("/tickets", json={"subject": "Help"}, headers=customer)
    path = f"/tickets/{(await resp.json())['ticket']['id']}"
    statuses: list[int] = []
    frames: list[dict[str, Any]] = []
    stop = asyncio.Event()

    async def rest_calls() -> None:
        while not stop.is_set():
            for url in (path, f"{path}/messages"):
                statuses.append((await client.get(url, headers=customer)).status)

    async def socket_sends(name: str) -> None:
        ws = await client.ws_connect(f"{path}/ws", headers=customer)
        await recv_type(ws, "joined")
        n = 0
        while not stop.is_set():
            n += 1
            client_id = f"{name}-{n}"
            await ws.send_json({"type": "message.send", "client_id": client_id, "body": client_id})
            while True:
                frame = await _next_answer(ws)
                if frame.get("client_id") == client_id or frame.get("ref") == client_id:
                    frames.append(frame)
                    break
        assert not ws.closed
        await ws.close()

    async def probes() -> None:
        while not stop.is_set():
            statuses.append((await client.get("/readyz")).status)
            await asyncio.sleep(0.05)

    async def impatient_calls() -> None:
        # Clients that hang up mid-request: their handlers' queries are cancelled mid-flight.
        while not stop.is_set():
            try:
                async with asyncio.timeout(0.005):
                    await client.get(f"{path}/messages", headers=customer)
            except TimeoutError:
                pass

    workers = [asyncio.create_task(rest_calls()) for _ in range(4)]
    workers += [asyncio.create_task(probes()), asyncio.create_task(impatient_calls())]
    workers += [asyncio.create_task(socket_sends(f"s{i}")) for i in range(4)]
    await asyncio.sleep(0.5)
    await asyncio.to_thread(postgres.stop, mode)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(postgres.start)
    await wait_until_served(client, path, customer)
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*workers)

    assert set(statuses) <= {200, 503}
    assert 503 in statuses
    answers = {f["type"] if f["type"] == "ack" else f["code"] for f in frames}
    assert answers <= {"ack", "database_unavailable"}
    assert_no_errors_logged(caplog)


async def _next_answer(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next ack or error frame (other frames, like the room's broadcasts, are skipped)."""
    while True:
        frame = await recv(ws, 15)
        if frame["type"] in ("ack", "error"):
            return frame


async def test_group_commit_answers_unavailable_during_an_outage_and_stores_again_after(
    outage_client: TestClient, postgres: PostgresProcess
) -> None:
    client = outage_client
    customer = await login(client)
    resp = await client.post("/tickets", json={"subject": "Help"}, headers=customer)
    ticket = (await resp.json())["ticket"]
    author = uuid.UUID(ticket["customer_id"])
    writer = MessageWriter(client.app[DB_POOL], max_in_flight=1)

    def message(client_id: str) -> VisibleMessage:
        return VisibleMessage(
            ticket_id=uuid.UUID(ticket["id"]),
            owner_id=author,
            author_id=author,
            author_kind="customer",
            body=client_id,
            client_id=client_id,
        )

    try:
        await asyncio.to_thread(postgres.stop, "fast")
        # Enough at once that they queue behind one another and go out as a batch.
        results = await asyncio.wait_for(
            asyncio.gather(*(writer.insert_visible(message(f"m{i}")) for i in range(20)), return_exceptions=True),
            60,
        )
        assert all(isinstance(r, Exception) and is_unavailable(r) for r in results), results

        await asyncio.to_thread(postgres.start)
        await wait_until_served(client, f"/tickets/{ticket['id']}", customer)
        stored = await asyncio.wait_for(
            asyncio.gather(*(writer.insert_visible(message(f"m{i}")) for i in range(20))), 60
        )
        assert [r[0]["body"] if r else None for r in stored] == [f"m{i}" for i in range(20)]
    finally:
        await writer.close()


async def test_an_ai_reply_cut_by_an_outage_fails_cleanly_without_a_traceback(
    aiohttp_client: Any,
    postgres: PostgresProcess,
    fake_groq: FakeGroq,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The chaos suite's combined fault: PostgreSQL stops while a reply streams, and storing the
    # reply fails. That is an outage, logged once by the pool, not a crash with a traceback; the
    # room is told the reply failed.
    settings = Settings(
        database_url=postgres.url + "?sslmode=disable",
        secret_key=TEST_SECRET,
        data_dir=tmp_path,
        redis_url=None,
        db_pool_min=1,
        db_pool_max=5,
        db_acquire_timeout=1.0,
    )
    client: TestClient = await aiohttp_client(create_app(ai_settings(settings, fake_groq), bcrypt_rounds=4))
    caplog.set_level(logging.WARNING)
    script = Script(text="Let me look that up for you right now", hold_after=3)
    fake_groq.push(script)
    customer = await login(client)
    ticket = (await (await client.post("/tickets", json={"subject": "Help"}, headers=customer)).json())["ticket"]
    ws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer)
    await recv_type(ws, "joined")
    await ws.send_json({"type": "message.send", "client_id": "q", "body": "Where is my order?"})
    await recv_type(ws, "ai.delta", timeout=15)

    await asyncio.to_thread(postgres.stop, "fast")
    script.release.set()
    failed = await recv_type(ws, "ai.failed", timeout=15)
    assert failed["retryable"] is True
    await ws.close()
    assert_no_errors_logged(caplog)


async def test_a_first_start_during_an_outage_skips_the_sample_and_loads_it_next_time(
    aiohttp_client: Any, postgres: PostgresProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The sample knowledge base loads in the background after startup (chatserver/ai/setup.py):
    # PostgreSQL down at that moment costs this start its sample, with a warning and no
    # traceback; the flag was never set, so the next start loads it.
    settings = outage_settings(postgres, tmp_path, kb_sample_dir=SAMPLE_KB_DIR, ai_default_enabled=True)
    client: TestClient = await aiohttp_client(create_app(settings, bcrypt_rounds=4))
    service = client.app[AI_SERVICE]
    assert service.knowledge_ready is not None
    await service.knowledge_ready
    pool = client.app[DB_POOL]
    # As on a first start: no articles, no flag.
    await pool.execute("DELETE FROM kb_articles")
    await pool.execute("DELETE FROM app_flags")

    caplog.set_level(logging.WARNING)
    await asyncio.to_thread(postgres.stop, "fast")
    await _prepare_knowledge(service, settings)
    assert "could not load the sample knowledge base" in caplog.text
    assert_no_errors_logged(caplog)

    await asyncio.to_thread(postgres.start)
    count = 0
    for _ in range(RECOVERY_POLLS):
        await _prepare_knowledge(service, settings)
        try:
            count = await pool.fetchval("SELECT count(*) FROM kb_articles")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            count = 0
        if count:
            break
        await asyncio.sleep(0.5)
    assert count == len(read_kb_dir(SAMPLE_KB_DIR))
