"""Orphaned replies (docs/ai.md, "Orphaned replies"): the instance generating a reply dies, and
the survivors (or the restarted instance) end its stream, answer the customer again or hand the
ticket to a person, and forget every stream whose claim is gone.

The first tests run real `python -m chatserver serve` processes (SIGKILLed mid-reply) on the real
PostgreSQL and Redis, with the fake Groq server stalling the reply in flight; the others drive
one in-process app's sweeper against rows and streams set up to be orphaned."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chatserver.ai.fake_groq import FakeGroq, Script
from chatserver.ai.orphans import INSTANCE_LOST, OrphanSweeper
from chatserver.ai.service import AiService
from chatserver.app import create_app
from chatserver.db import messages as messages_db
from chatserver.keys import AI_SERVICE, DB_POOL, HUB
from chatserver.realtime import events
from chatserver.settings import Settings

from .conftest import PASSWORD, backplane_env
from .fake_groq import FAKE_KEY, _fake_groq, ai_settings  # noqa: F401
from .services import ServerProcess, running_servers
from .wsutil import recv, recv_type

LEASE = 2.0
SWEEP = 0.5
# Waiting bound for the takeover: the lease, a sweep, and generous slack for a loaded machine.
TAKEOVER_WAIT = LEASE + SWEEP + 13.0
ANSWER = "Here is the answer after all."


def server_env(database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path, fake: FakeGroq) -> dict[str, str]:
    return backplane_env(
        database_url,
        redis_url,
        redis_prefix,
        tmp_path,
        AI_DEFAULT_ENABLED="true",
        GROQ_API_KEY=FAKE_KEY,
        GROQ_BASE_URL=fake.base_url,
        GROQ_MAX_RETRIES="0",
        AI_CLAIM_LEASE_SECONDS=str(LEASE),
        AI_CLAIM_HEARTBEAT_SECONDS="0.2",
        AI_SWEEP_INTERVAL_SECONDS=str(SWEEP),
    )


@pytest.fixture
def two_servers(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path, fake_groq: FakeGroq
) -> Iterator[list[ServerProcess]]:
    with running_servers(server_env(database_url, redis_url, redis_prefix, tmp_path, fake_groq), tmp_path) as servers:
        yield servers


def sigkill(server: ServerProcess) -> None:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)


async def signup(http: aiohttp.ClientSession, base: str) -> dict[str, str]:
    body = {"email": f"c-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "name": "Casey"}
    async with http.post(f"{base}/auth/signup", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


async def open_ticket(http: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> str:
    async with http.post(f"{base}/tickets", json={"subject": "Sync is broken"}, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["ticket"]["id"])


async def ask(http: aiohttp.ClientSession, base: str, headers: dict[str, str], ticket_id: str) -> None:
    body = {"body": "My notes do not sync, what can I do?"}
    async with http.post(f"{base}/tickets/{ticket_id}/messages", json=body, headers=headers) as resp:
        assert resp.status == 201, await resp.text()


async def joined_streams(http: aiohttp.ClientSession, base: str, headers: dict[str, str], ticket_id: str) -> list[str]:
    ws = await http.ws_connect(f"{base}/tickets/{ticket_id}/ws", headers=headers)
    try:
        joined = await recv(ws)
        assert joined["type"] == "joined"
        return [s["reply_id"] for s in joined["streams"]]
    finally:
        await ws.close()


async def history(http: aiohttp.ClientSession, base: str, headers: dict[str, str], ticket_id: str) -> list[Any]:
    async with http.get(f"{base}/tickets/{ticket_id}/messages", headers=headers) as resp:
        assert resp.status == 200
        return list((await resp.json())["messages"])


async def test_a_reply_whose_instance_is_killed_ends_on_the_survivor_and_is_answered_again(
    two_servers: list[ServerProcess], fake_groq: FakeGroq
) -> None:
    a, b = two_servers
    # The first reply stalls after a few tokens (its instance is about to die); the retry answers.
    fake_groq.push(Script(text="I am looking into your sync problem right now", stall_after=3), Script(text=ANSWER))
    async with aiohttp.ClientSession() as http:
        customer = await signup(http, a.base_url)
        ticket_id = await open_ticket(http, a.base_url, customer)
        ws = await http.ws_connect(f"{b.base_url}/tickets/{ticket_id}/ws", headers=customer)
        assert (await recv(ws))["type"] == "joined"
        await ask(http, a.base_url, customer, ticket_id)  # A's hook generates the reply
        started = await recv_type(ws, "ai.started")
        await recv_type(ws, "ai.delta")
        lost = started["reply_id"]
        assert await joined_streams(http, b.base_url, customer, ticket_id) == [lost]

        sigkill(a)

        failed = await recv_type(ws, "ai.failed", timeout=TAKEOVER_WAIT)
        assert (failed["reply_id"], failed["code"], failed["retryable"]) == (lost, INSTANCE_LOST, True)
        assert lost not in await joined_streams(http, b.base_url, customer, ticket_id)
        # The survivor answers the same question again.
        again = await recv_type(ws, "ai.started")
        assert again["reply_id"] != lost and again["in_reply_to"] == started["in_reply_to"]
        completed = await recv_type(ws, "ai.completed")
        assert completed["text"] == ANSWER
        await ws.close()
        messages = await history(http, b.base_url, customer, ticket_id)
        assert [(m["author_kind"], m["body"]) for m in messages][-1] == ("ai", ANSWER)
        assert await joined_streams(http, b.base_url, customer, ticket_id) == []
    assert len(fake_groq.requests) == 2


async def test_a_reply_whose_only_instance_is_killed_is_taken_over_when_it_restarts(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path, fake_groq: FakeGroq
) -> None:
    server = ServerProcess(
        server_env(database_url, redis_url, redis_prefix, tmp_path, fake_groq), tmp_path / "server.log"
    )
    fake_groq.push(Script(text="Let me check that for you", stall_after=2), Script(text=ANSWER))
    server.start()
    try:
        async with aiohttp.ClientSession() as http:
            customer = await signup(http, server.base_url)
            ticket_id = await open_ticket(http, server.base_url, customer)
            ws = await http.ws_connect(f"{server.base_url}/tickets/{ticket_id}/ws", headers=customer)
            assert (await recv(ws))["type"] == "joined"
            await ask(http, server.base_url, customer, ticket_id)
            lost = (await recv_type(ws, "ai.started"))["reply_id"]
            await recv_type(ws, "ai.delta")
            sigkill(server)
            await ws.close()

            server.start()  # the same port: the customer comes back to it
            ws = await http.ws_connect(f"{server.base_url}/tickets/{ticket_id}/ws", headers=customer)
            joined = await recv(ws)
            assert joined["type"] == "joined" and joined["streams"] == []
            failed = await recv_type(ws, "ai.failed", timeout=TAKEOVER_WAIT)
            assert (failed["reply_id"], failed["code"]) == (lost, INSTANCE_LOST)
            completed = await recv_type(ws, "ai.completed")
            assert completed["text"] == ANSWER
            await ws.close()
    finally:
        server.stop()


# ---- one in-process app, its sweeper driven directly ------------------------------------------


@pytest.fixture
def quick(settings: Settings, fake_groq: FakeGroq) -> Settings:
    # A long sweep interval: the tests run the sweeps themselves.
    return ai_settings(settings, fake_groq, ai_sweep_interval_seconds=600.0)


async def _customer_ticket(client: TestClient) -> tuple[dict[str, str], dict[str, Any]]:
    body = {"email": f"c-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "name": "Casey"}
    resp = await client.post("/auth/signup", json=body)
    headers = {"Authorization": f"Bearer {(await resp.json())['access_token']}"}
    ticket = (await (await client.post("/tickets", json={"subject": "x"}, headers=headers)).json())["ticket"]
    return headers, ticket


async def _unanswered_question(client: TestClient, customer: dict[str, str], ticket: dict[str, Any]) -> None:
    """A customer message (seq 1) that no generation of this app answers: stored with the AI off,
    which is then turned on again behind the app's back (no event)."""
    pool = client.app[DB_POOL]
    await pool.execute("UPDATE tickets SET ai_enabled = false WHERE id = $1", uuid.UUID(ticket["id"]))
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "hello?"}, headers=customer)
    assert resp.status == 201
    await pool.execute("UPDATE tickets SET ai_enabled = true WHERE id = $1", uuid.UUID(ticket["id"]))


async def _orphan(client: TestClient, ticket_id: str, in_reply_to: int, attempt: int) -> uuid.UUID:
    """A claim as a dead instance leaves it: its lease ran out and nobody extends it."""
    reply_id = uuid.uuid4()
    await client.app[DB_POOL].execute(
        "INSERT INTO ai_generations (ticket_id, kind, reply_id, instance_id, in_reply_to, expires_at, attempt)"
        " VALUES ($1, 'reply', $2, 'dead-instance', $3, now() - interval '1 second', $4)",
        uuid.UUID(ticket_id),
        reply_id,
        in_reply_to,
        attempt,
    )
    return reply_id


def sweeper(client: TestClient) -> OrphanSweeper:
    service: AiService = client.app[AI_SERVICE]
    return OrphanSweeper(service, client.app[HUB], interval=0.05)


async def test_a_second_orphaned_attempt_hands_the_ticket_to_a_person(
    aiohttp_client: Any, quick: Settings, fake_groq: FakeGroq
) -> None:
    client: TestClient = await aiohttp_client(create_app(quick, bcrypt_rounds=4))
    customer, ticket = await _customer_ticket(client)
    await _unanswered_question(client, customer, ticket)
    ws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer)
    assert (await recv(ws))["type"] == "joined"
    lost = await _orphan(client, ticket["id"], 1, attempt=2)

    await sweeper(client).sweep()

    failed = await recv_type(ws, "ai.failed")
    assert (failed["reply_id"], failed["code"]) == (str(lost), INSTANCE_LOST)
    handed = await recv_type(ws, "message.created")
    assert handed["message"]["author_kind"] == "system"
    assert handed["message"]["metadata"]["handoff"] == INSTANCE_LOST
    row = await client.app[DB_POOL].fetchrow(
        "SELECT ai_enabled, waiting_for_agent FROM tickets WHERE id = $1", uuid.UUID(ticket["id"])
    )
    assert (row["ai_enabled"], row["waiting_for_agent"]) == (False, True)
    assert fake_groq.requests == [], "no third attempt is generated"
    await ws.close()


async def test_an_orphan_stored_before_its_instance_died_is_delivered_not_generated_again(
    aiohttp_client: Any, quick: Settings, fake_groq: FakeGroq
) -> None:
    client: TestClient = await aiohttp_client(create_app(quick, bcrypt_rounds=4))
    customer, ticket = await _customer_ticket(client)
    await _unanswered_question(client, customer, ticket)
    ws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer)
    assert (await recv(ws))["type"] == "joined"
    lost = await _orphan(client, ticket["id"], 1, attempt=1)
    # Its instance stored the reply, then died before publishing ai.completed.
    await messages_db.insert_message(
        client.app[DB_POOL],
        ticket_id=uuid.UUID(ticket["id"]),
        author_id=None,
        author_kind="ai",
        body=ANSWER,
        client_id=None,
        metadata={"reply_id": str(lost), "in_reply_to": 1, "incomplete": False},
    )

    await sweeper(client).sweep()

    completed = await recv_type(ws, "ai.completed")
    assert (completed["reply_id"], completed["text"]) == (str(lost), ANSWER)
    assert fake_groq.requests == []
    await ws.close()


async def test_a_stream_whose_claim_is_gone_is_forgotten_and_ended_for_the_room(
    aiohttp_client: Any, quick: Settings, fake_groq: FakeGroq
) -> None:
    """The reply's final event never reached this instance (lost with the backplane, say):
    without a claim it ends here after the grace period, and joiners no longer see it."""
    client: TestClient = await aiohttp_client(create_app(quick, bcrypt_rounds=4))
    customer, ticket = await _customer_ticket(client)
    ws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer)
    assert (await recv(ws))["type"] == "joined"
    ghost = str(uuid.uuid4())
    hub = client.app[HUB]
    hub.deliver(events.ai_started(uuid.UUID(ticket["id"]), ghost, "reply", 1))
    hub.deliver(events.ai_delta(uuid.UUID(ticket["id"]), ghost, "reply", 0, "Half a"))
    await recv_type(ws, "ai.delta")
    probe = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer)
    assert [s["reply_id"] for s in (await recv(probe))["streams"]] == [ghost]
    await probe.close()

    sweep = sweeper(client)
    await sweep.sweep()  # first seen without a claim: a suspect, not yet ended
    assert ghost in sweep.suspects
    sweep.suspects[ghost] -= 60.0  # as if the grace period had passed
    await sweep.sweep()

    failed = await recv_type(ws, "ai.failed")
    assert (failed["reply_id"], failed["code"]) == (ghost, INSTANCE_LOST)
    probe = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer)
    assert (await recv(probe))["streams"] == []
    assert client.app[AI_SERVICE].tracker.replies == {}
    await probe.close()
    await ws.close()
