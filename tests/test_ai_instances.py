"""Several instances on one database: one generation per ticket, joining a reply that streams on
another instance, and a takeover on one instance stopping the reply streaming on another (through
the Redis backplane at once; through the generation claim's heartbeat without one)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.ai.fake_groq import FakeGroq, Script, filler_text
from chatserver.app import create_app
from chatserver.db import ai as ai_db
from chatserver.keys import DB_POOL
from chatserver.services.auth import create_user
from chatserver.settings import Settings

from .conftest import PASSWORD
from .fake_groq import EventLog, _fake_groq, ai_settings, attach_log, read_sse, sse_text  # noqa: F401
from .wsutil import recv

Headers = dict[str, str]


async def _instances(aiohttp_client: Any, settings: Settings) -> tuple[TestClient, TestClient]:
    a: TestClient = await aiohttp_client(create_app(settings, bcrypt_rounds=4))
    b: TestClient = await aiohttp_client(create_app(settings, bcrypt_rounds=4))
    await a.app[DB_POOL].execute("TRUNCATE users, tickets, messages, kb_articles CASCADE")
    return a, b


async def _login(client: TestClient, role: str) -> Headers:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    await create_user(client.app[DB_POOL], email=email, password=PASSWORD, role=role, name=role, bcrypt_rounds=4)
    resp = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


async def _slow_reply(a: TestClient, customer: Headers, fake: FakeGroq, log: EventLog, text: str) -> dict[str, Any]:
    ticket: dict[str, Any] = (await (await a.post("/tickets", json={"subject": "x"}, headers=customer)).json())[
        "ticket"
    ]
    await a.post(f"/tickets/{ticket['id']}/messages", json={"body": "tell me"}, headers=customer)
    await log.wait_for(lambda: len(log.frames("ai.delta")) >= 1)
    return ticket


def finals(log: EventLog) -> list[dict[str, Any]]:
    return log.frames("ai.completed", "ai.failed", "ai.cancelled")


# ---- without a backplane: the database alone -------------------------------------------------


@pytest.fixture
def db_only(settings: Settings, fake_groq: FakeGroq) -> Settings:
    return ai_settings(settings, fake_groq, redis_url=None)


async def test_concurrent_claims_give_exactly_one_generation(aiohttp_client: Any, db_only: Settings) -> None:
    a, b = await _instances(aiohttp_client, db_only)
    customer = await _login(a, "customer")
    ticket = (await (await a.post("/tickets", json={"subject": "race"}, headers=customer)).json())["ticket"]
    ticket_id = uuid.UUID(ticket["id"])
    pools = [a.app[DB_POOL], b.app[DB_POOL]]
    budget = ai_db.Budget(max_replies=30, max_tokens=100_000, user_replies=30, user_window_seconds=600)
    starts = await asyncio.gather(
        *(
            ai_db.start_generation(
                pools[i % 2],
                ticket_id,
                "reply",
                uuid.uuid4(),
                f"instance-{i % 2}",
                1,
                30.0,
                supersede=False,
                budget=budget,
            )
            for i in range(20)
        )
    )
    assert sorted(s.claimed for s in starts) == [False] * 19 + [True]
    # Only the generation that won the claim was counted against the budget and the rate.
    usage = await pools[0].fetchval("SELECT replies FROM ticket_ai_usage WHERE ticket_id = $1", ticket_id)
    assert usage == 1


async def test_a_reply_running_on_one_instance_is_not_started_again_on_another(
    aiohttp_client: Any, db_only: Settings, fake_groq: FakeGroq
) -> None:
    a, b = await _instances(aiohttp_client, db_only)
    log_a = attach_log(a.app)
    customer = await _login(a, "customer")
    text = filler_text(40)
    fake_groq.push(Script(text=text, tokens_per_second=80))
    ticket = await _slow_reply(a, customer, fake_groq, log_a, text)
    # Instance B is asked for the same reply (SSE) and for a retry while A streams it.
    assert (await b.post(f"/tickets/{ticket['id']}/ai/retry", headers=customer)).status == 409
    events = await read_sse(await b.get(f"/tickets/{ticket['id']}/ai-response", headers=customer))
    # Without a backplane B cannot see A's deltas; it waits for the stored reply.
    assert events[-1][0] == "completed" and events[-1][1]["text"] == text
    assert len(fake_groq.requests) == 1


async def test_a_takeover_on_another_instance_stops_the_reply_through_its_claim(
    aiohttp_client: Any, db_only: Settings, fake_groq: FakeGroq
) -> None:
    a, b = await _instances(aiohttp_client, db_only)
    log_a = attach_log(a.app)
    customer = await _login(a, "customer")
    agent = await _login(b, "agent")
    fake_groq.push(Script(text=filler_text(300), tokens_per_second=40))
    ticket = await _slow_reply(a, customer, fake_groq, log_a, "")
    resp = await b.post(f"/tickets/{ticket['id']}/messages", json={"body": "Agent here."}, headers=agent)
    assert resp.status == 201
    await log_a.wait_for(lambda: len(finals(log_a)) == 1)
    [cancelled] = finals(log_a)
    assert (cancelled["type"], cancelled["reason"]) == ("ai.cancelled", "takeover")
    assert await fake_groq.wait_for_outcome(0) == "client_gone"
    history = (await (await a.get(f"/tickets/{ticket['id']}/messages", headers=customer)).json())["messages"]
    assert [m["author_kind"] for m in history] == ["customer", "agent"]


# ---- with the Redis backplane ----------------------------------------------------------------


@pytest.fixture
def with_redis(settings: Settings, fake_groq: FakeGroq, redis_url: str, redis_prefix: str) -> Settings:
    return ai_settings(settings, fake_groq, redis_url=redis_url, redis_prefix=redis_prefix)


async def test_a_reply_streaming_on_another_instance_is_joined_live(
    aiohttp_client: Any, with_redis: Settings, fake_groq: FakeGroq
) -> None:
    a, b = await _instances(aiohttp_client, with_redis)
    log_a = attach_log(a.app)
    customer = await _login(a, "customer")
    text = filler_text(80)
    fake_groq.push(Script(text=text, tokens_per_second=100))
    ticket = await _slow_reply(a, customer, fake_groq, log_a, text)
    events = await read_sse(await b.get(f"/tickets/{ticket['id']}/ai-response", headers=customer))
    names = [name for name, _ in events]
    assert names[0] == "started" and names[-1] == "completed"
    assert names.count("delta") >= 2, "B streams A's deltas as they come"
    assert sse_text(events) == text
    assert len(fake_groq.requests) == 1


async def test_a_takeover_on_another_instance_lets_no_ai_text_through_after_it(
    aiohttp_client: Any, with_redis: Settings, fake_groq: FakeGroq
) -> None:
    # A long heartbeat: only the backplane can stop the reply quickly here.
    a, b = await _instances(aiohttp_client, with_redis.with_overrides(ai_claim_heartbeat_seconds=2.0))
    log_a = attach_log(a.app)
    customer = await _login(a, "customer")
    agent = await _login(b, "agent")
    fake_groq.push(Script(text=filler_text(400), tokens_per_second=60))
    ticket = (await (await a.post("/tickets", json={"subject": "x"}, headers=customer)).json())["ticket"]
    # Everyone in the room, on both instances.
    sockets = [
        await a.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer),
        await b.ws_connect(f"/tickets/{ticket['id']}/ws", headers=agent),
    ]
    for ws in sockets:
        assert (await recv(ws))["type"] == "joined"
    await a.post(f"/tickets/{ticket['id']}/messages", json={"body": "tell me"}, headers=customer)
    await log_a.wait_for(lambda: len(log_a.frames("ai.delta")) >= 2)
    resp = await b.patch(f"/tickets/{ticket['id']}", json={"ai_enabled": False}, headers=agent)
    assert resp.status == 200
    await log_a.wait_for(lambda: len(finals(log_a)) == 1, timeout=1.5)
    assert finals(log_a)[0]["reason"] == "takeover"
    for ws in sockets:
        frames = []
        while True:
            frame = await recv(ws)
            frames.append(frame)
            if frame["type"] == "ticket.updated":
                break
        assert any(f["type"] == "ai.delta" for f in frames), "the reply was streaming before"
        # After the takeover event: no AI text at all (a cancellation notice at most).
        await asyncio.sleep(0.3)
        after = []
        while True:
            try:
                after.append(await recv(ws, timeout=0.1))
            except TimeoutError:
                break
        assert not [f for f in after if f["type"] in ("ai.delta", "ai.completed")], after
        await ws.close()
