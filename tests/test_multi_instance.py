"""More than one server instance over a Redis backplane.

Two real `python -m chatserver serve` processes share one PostgreSQL and one Redis; in-process
apps on a private redis-server show what happens when Redis goes away and comes back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chatserver.app import create_app
from chatserver.db.pool import create_pool
from chatserver.keys import DB_POOL
from chatserver.services.auth import create_user
from chatserver.settings import Settings

from .conftest import PASSWORD, backplane_env
from .services import RedisProcess, ServerProcess, require_redis_server, running_servers
from .wsutil import collect_until, drain, recv, recv_type


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """These tests are about rooms, not AI replies: tickets start with the AI off."""
    return settings.with_overrides(ai_default_enabled=False)


@pytest.fixture
def two_servers(database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    env = backplane_env(database_url, redis_url, redis_prefix, tmp_path)
    with running_servers(env, tmp_path) as servers:
        yield servers


async def _agent(database_url: str) -> tuple[str, str]:
    pool = await create_pool(database_url, 1, 1)
    email = f"agent-{uuid.uuid4().hex[:8]}@example.com"
    try:
        await create_user(pool, email=email, password=PASSWORD, role="agent", name="Agent Smith", bcrypt_rounds=4)
    finally:
        await pool.close()
    return email, PASSWORD


async def _login(http: aiohttp.ClientSession, base: str, email: str, password: str) -> dict[str, Any]:
    async with http.post(f"{base}/auth/login", json={"email": email, "password": password}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_customer_and_agent_on_different_processes_see_each_other(
    two_servers: list[ServerProcess], database_url: str
) -> None:
    a, b = two_servers
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{a.base_url}/auth/signup",
            json={"email": f"c-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "name": "Casey"},
        ) as resp:
            assert resp.status == 201
            customer = await resp.json()
        agent = await _login(http, b.base_url, *(await _agent(database_url)))
        c_headers = {"Authorization": f"Bearer {customer['access_token']}"}
        a_headers = {"Authorization": f"Bearer {agent['access_token']}"}
        async with http.post(f"{a.base_url}/tickets", json={"subject": "Two hosts"}, headers=c_headers) as resp:
            ticket = (await resp.json())["ticket"]

        cws = await http.ws_connect(f"{a.base_url}/tickets/{ticket['id']}/ws", headers=c_headers)
        assert (await recv(cws))["type"] == "joined"
        aws = await http.ws_connect(f"{b.base_url}/tickets/{ticket['id']}/ws", headers=a_headers)
        joined = await recv(aws)
        # presence crosses instances: the agent's snapshot lists the customer on the other host
        assert customer["user"]["id"] in [p["id"] for p in joined["present"]]

        await cws.send_json({"type": "message.send", "client_id": "c1", "body": "hello from A"})
        assert (await collect_until(cws, "ack"))[-1]["message"]["seq"] == 1
        got = await recv_type(aws, "message.created")
        assert got["message"]["body"] == "hello from A"

        # The agent becomes visible to the customer, across instances, by writing to them.
        await aws.send_json({"type": "message.send", "client_id": "a1", "body": "hi from B"})
        frames = await collect_until(cws, "message.created")
        arrivals = [f["user"]["name"] for f in frames if f["type"] == "presence.joined"]
        assert arrivals[-1:] == ["Agent Smith"]
        got = frames[-1]
        assert got["message"]["body"] == "hi from B" and got["message"]["seq"] == 2

        async with http.patch(
            f"{b.base_url}/tickets/{ticket['id']}", json={"status": "pending"}, headers=a_headers
        ) as resp:
            assert resp.status == 200
        change = await recv_type(cws, "ticket.updated")
        assert change["ticket"]["status"] == "pending"

        for i in range(10):
            await aws.send_json({"type": "message.send", "client_id": f"burst{i}", "body": f"b{i}"})
        seqs = [(await recv_type(cws, "message.created"))["message"]["seq"] for _ in range(10)]
        assert seqs == list(range(3, 13))

        await aws.close()
        left = await recv_type(cws, "presence.left")
        assert left["user"]["name"] == "Agent Smith"
        await cws.close()


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    server = RedisProcess(require_redis_server())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def two_apps(
    aiohttp_client: Any, settings: Settings, private_redis: RedisProcess, redis_prefix: str
) -> AsyncIterator[list[TestClient]]:
    shared = settings.with_overrides(redis_url=private_redis.url, redis_prefix=redis_prefix)
    clients = [await aiohttp_client(create_app(shared, bcrypt_rounds=4)) for _ in range(2)]
    yield clients


async def test_redis_restart_loses_no_message_and_clients_resync(
    two_apps: list[TestClient], private_redis: RedisProcess
) -> None:
    a, b = two_apps
    signup = await a.post("/auth/signup", json={"email": f"r-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD})
    customer = await signup.json()
    c_headers = {"Authorization": f"Bearer {customer['access_token']}"}
    agent_email = f"agent-{uuid.uuid4().hex[:8]}@example.com"
    await create_user(a.app[DB_POOL], email=agent_email, password=PASSWORD, role="agent", name="Ava", bcrypt_rounds=4)
    agent = await (await b.post("/auth/login", json={"email": agent_email, "password": PASSWORD})).json()
    a_headers = {"Authorization": f"Bearer {agent['access_token']}"}
    ticket = (await (await a.post("/tickets", json={"subject": "outage"}, headers=c_headers)).json())["ticket"]

    cws = await a.ws_connect(f"/tickets/{ticket['id']}/ws", headers=c_headers)
    await recv(cws)
    aws = await b.ws_connect(f"/tickets/{ticket['id']}/ws", headers=a_headers)
    await recv(aws)
    await cws.send_json({"type": "message.send", "client_id": "m1", "body": "before outage"})
    await collect_until(cws, "ack")
    assert (await recv_type(aws, "message.created"))["message"]["seq"] == 1

    private_redis.stop()
    # Sends still commit and reach clients on the same instance.
    await cws.send_json({"type": "message.send", "client_id": "m2", "body": "during outage"})
    frames = await collect_until(cws, "ack")
    assert frames[-1]["message"]["seq"] == 2
    assert any(f["type"] == "message.created" and f["message"]["seq"] == 2 for f in frames)

    private_redis.start()
    # The other instance's client is told to resync once the backplane is back...
    resync = await recv_type(aws, "resync", timeout=15)
    assert resync["reason"] in ("backplane_reconnected", "backplane_gap")
    # ...and resuming from its last seq gets what it missed, with no gap and no duplicate.
    aws2 = await b.ws_connect(f"/tickets/{ticket['id']}/ws?after_seq=1", headers=a_headers)
    joined = await recv(aws2)
    assert [m["body"] for m in joined["messages"]] == ["during outage"]
    # Live traffic crosses instances again.
    for _ in range(50):
        await cws.send_json({"type": "message.send", "client_id": uuid.uuid4().hex, "body": "after outage"})
        try:
            got = await recv_type(aws2, "message.created", timeout=2)
            assert got["message"]["body"] == "after outage"
            break
        except (TimeoutError, AssertionError):
            continue
    else:
        raise AssertionError("messages did not cross instances after Redis came back")
    # The socket that stayed open meanwhile also gets the missed message, in order: its room saw
    # a seq gap and read the missing message from the database.
    seqs = [f["message"]["seq"] for f in await drain(aws, quiet=1.0) if f["type"] == "message.created"]
    assert 2 in seqs
    assert seqs == sorted(set(seqs))
    for ws in (cws, aws, aws2):
        await ws.close()


def test_an_instance_recognises_its_own_envelopes_by_their_first_bytes() -> None:
    """Every instance hears its own events back from the shared channel and drops them unparsed:
    that only works if every envelope starts with its origin, events and control messages alike."""
    from chatserver.realtime.broker import decode_envelope, encode_envelope, encode_resync, origin_prefix
    from chatserver.realtime.events import Event

    ours, theirs = uuid.uuid4().hex, uuid.uuid4().hex
    event = Event("ticket:x", {"type": "ai.delta", "text": '{"o":"' + ours}, staff_only=False, seq=None)
    envelope = encode_envelope(ours, event)
    assert envelope.startswith(origin_prefix(ours))
    assert not encode_envelope(theirs, event).startswith(origin_prefix(ours))
    origin, decoded, _ = decode_envelope(envelope)
    assert origin == ours and decoded is not None and decoded.frame == event.frame
    control = encode_resync(ours, ["ticket:x"])
    assert control.startswith(origin_prefix(ours))
    assert decode_envelope(control) == (ours, None, {"o": ours, "control": "resync", "channels": ["ticket:x"]})


class _RecordingHub:
    """What a broker hands its instance's hub: every event delivered and every resync asked."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.resyncs: list[tuple[list[str] | None, str]] = []

    def deliver(self, event: Any) -> None:
        self.events.append(event)

    def resync(self, channels: list[str] | None, reason: str) -> None:
        self.resyncs.append((channels, reason))


async def _brokers(url: str, prefix: str, **options: Any) -> tuple[Any, _RecordingHub, Any, _RecordingHub]:
    from chatserver.realtime.broker import RedisBroker

    hub_a, hub_b = _RecordingHub(), _RecordingHub()
    a = RedisBroker(hub_a, url, prefix, **options)  # type: ignore[arg-type]
    b = RedisBroker(hub_b, url, prefix)  # type: ignore[arg-type]
    await a.start()
    await b.start()
    return a, hub_a, b, hub_b


async def _until(check: Any, timeout: float = 10.0) -> None:
    """Poll: the state watched belongs to the broker, which has no event to wait on."""
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_a_flood_of_events_reaches_the_other_instance_complete_and_in_order(
    private_redis: RedisProcess, redis_prefix: str
) -> None:
    """The sender writes batches without waiting for the replies to the ones before: nothing may
    be lost or reordered for it."""
    from chatserver.realtime.events import Event

    a, hub_a, b, hub_b = await _brokers(private_redis.url, redis_prefix)
    try:
        for i in range(3000):
            await a.publish(Event(f"ticket:{i % 7}", {"type": "ai.delta", "offset": i}, staff_only=False, seq=None))
            if i % 500 == 0:
                await asyncio.sleep(0)  # let batches of different sizes form
        await _until(lambda: len(hub_b.events) == 3000)
        assert [e.frame["offset"] for e in hub_b.events] == list(range(3000))
        assert len(hub_a.events) == 3000  # delivered locally, own echoes dropped
        await _until(lambda: not a._in_flight)  # every PUBLISH was answered
    finally:
        await a.close()
        await b.close()


async def test_events_that_could_not_be_published_make_the_other_instances_resync_their_rooms(
    private_redis: RedisProcess, redis_prefix: str
) -> None:
    from chatserver.realtime.events import Event

    a, hub_a, b, hub_b = await _brokers(private_redis.url, redis_prefix)
    try:
        await a.publish(Event("ticket:before", {"type": "x"}, staff_only=False, seq=None))
        await _until(lambda: len(hub_b.events) == 1)
        private_redis.stop()
        await a.publish(Event("ticket:lost", {"type": "x"}, staff_only=False, seq=None))
        assert [e.channel for e in hub_a.events] == ["ticket:before", "ticket:lost"]  # local delivery goes on
        # A notices the publish failed (at the write, or when the reply never comes)...
        await _until(lambda: "ticket:lost" in a._unsent_channels)
        private_redis.start()
        # ...and announces the room once it is connected again.
        await _until(lambda: not a._unsent_channels, timeout=20)
        # Once Redis is back, B hears which room it missed events in (or resyncs everything).
        await _until(lambda: any(ch is None or "ticket:lost" in ch for ch, _ in hub_b.resyncs), timeout=20)
        await a.publish(Event("ticket:after", {"type": "x"}, staff_only=False, seq=None))
        await _until(lambda: any(e.channel == "ticket:after" for e in hub_b.events), timeout=20)
    finally:
        await a.close()
        await b.close()


async def test_a_redis_that_stops_answering_is_noticed_by_the_publisher(
    private_redis: RedisProcess, redis_prefix: str
) -> None:
    """A hung Redis (the process stopped, its socket open) answers nothing: the publisher's reply
    timeout notices, and the room is resynced once Redis answers again."""
    import signal

    from chatserver.realtime.events import Event

    a, _, b, hub_b = await _brokers(private_redis.url, redis_prefix, reply_timeout=0.5)
    assert private_redis.proc is not None
    try:
        await a.publish(Event("ticket:before", {"type": "x"}, staff_only=False, seq=None))
        await _until(lambda: len(hub_b.events) == 1)
        private_redis.proc.send_signal(signal.SIGSTOP)
        try:
            await a.publish(Event("ticket:hung", {"type": "x"}, staff_only=False, seq=None))
            await _until(lambda: "ticket:hung" in a._unsent_channels, timeout=5)
        finally:
            private_redis.proc.send_signal(signal.SIGCONT)
        await a.publish(Event("ticket:after", {"type": "x"}, staff_only=False, seq=None))
        await _until(lambda: any(e.channel == "ticket:after" for e in hub_b.events), timeout=20)
        await _until(lambda: any(ch is not None and "ticket:hung" in ch for ch, _ in hub_b.resyncs), timeout=20)
    finally:
        await a.close()
        await b.close()


def _acks_never_overtake(frames: list[dict[str, Any]]) -> list[int]:
    """The seqs of the message.created frames, after checking that every ack came after the
    frames of every message up to its seq."""
    seen: list[int] = []
    for frame in frames:
        if frame["type"] == "message.created":
            seen.append(frame["message"]["seq"])
        elif frame["type"] == "ack":
            seq = frame["message"]["seq"]
            assert set(range(1, seq + 1)) <= set(seen), f"ack {seq} overtook: only {seen} before it"
    return seen


async def test_open_sockets_get_every_message_of_a_redis_outage_in_order_and_acks_after_them(
    two_apps: list[TestClient], private_redis: RedisProcess
) -> None:
    """Both sides write during the outage, alternately: each instance's room sees several gaps,
    and each sender's ack is due only after messages that instance has not seen yet."""
    a, b = two_apps
    signup = await a.post("/auth/signup", json={"email": f"o-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD})
    c_headers = {"Authorization": f"Bearer {(await signup.json())['access_token']}"}
    agent_email = f"agent-{uuid.uuid4().hex[:8]}@example.com"
    await create_user(a.app[DB_POOL], email=agent_email, password=PASSWORD, role="agent", name="Ava", bcrypt_rounds=4)
    agent = await (await b.post("/auth/login", json={"email": agent_email, "password": PASSWORD})).json()
    a_headers = {"Authorization": f"Bearer {agent['access_token']}"}
    ticket = (await (await a.post("/tickets", json={"subject": "outage"}, headers=c_headers)).json())["ticket"]
    cws = await a.ws_connect(f"/tickets/{ticket['id']}/ws", headers=c_headers)
    aws = await b.ws_connect(f"/tickets/{ticket['id']}/ws", headers=a_headers)
    frames: dict[Any, list[dict[str, Any]]] = {cws: [await recv(cws)], aws: [await recv(aws)]}

    async def last_seq() -> int:
        resp = await a.get(f"/tickets/{ticket['id']}", headers=c_headers)
        return int((await resp.json())["ticket"]["last_seq"])

    async def send(ws: Any, body: str) -> None:
        before = await last_seq()
        await ws.send_json({"type": "message.send", "client_id": uuid.uuid4().hex, "body": body})
        for _ in range(250):  # committed (its ack may be held back, by design)
            if await last_seq() > before:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the send was not stored")

    await send(cws, "before outage")
    frames[cws] += await collect_until(cws, "ack")
    private_redis.stop()
    for i, ws in enumerate([cws, aws, cws, aws]):
        await send(ws, f"during outage {i}")
    private_redis.start()
    # Once events cross again, the next one shows each room what it missed.
    for _ in range(100):
        await send(aws, "after outage")
        frames[cws] += await drain(cws, quiet=0.3)
        if any(f["type"] == "message.created" and f["message"]["body"] == "after outage" for f in frames[cws]):
            break
    else:
        raise AssertionError("messages did not cross instances after Redis came back")
    total = await last_seq()
    for ws in (cws, aws):
        frames[ws] += await drain(ws, quiet=1.0)
        assert _acks_never_overtake(frames[ws]) == list(range(1, total + 1))
        await ws.close()
