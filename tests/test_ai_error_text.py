"""Groq's error text never reaches customers (issue #12, item 7): it can name the organisation,
the model and its limits. Customers read a generic sentence in ai.failed, in the SSE reply stream
and in the stored messages; agents get the detail in the staff-only ai.failure_detail frame, and
the log has it. Each test is the attack: a customer's question that makes Groq fail with such a
text (the fake Groq server, through the real SDK), and everything the customer can read."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from chatserver.ai.fake_groq import FakeGroq, Script
from chatserver.keys import DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .fake_groq import _fake_groq, ai_settings, read_sse  # noqa: F401  (fixtures)
from .wsutil import recv

SECRET = "org_01hq7XXXXsecret"
UPSTREAM = (
    f"Rate limit reached for model `llama-3.3-70b-versatile` in organization `{SECRET}` service tier "
    "`on_demand` on tokens per minute (TPM): Limit 6000, Used 5800, Requested 900."
)


@pytest.fixture
def settings(settings: Settings, fake_groq: FakeGroq) -> Settings:
    return ai_settings(settings, fake_groq)


async def frames_until(ws: Any, done: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = await recv(ws, timeout)
        frames.append(frame)
        if done(frame):
            return frames


def leaked(value: object) -> bool:
    return SECRET in orjson.dumps(value).decode()


async def history(client: TestClient, user: User, ticket: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.get(f"/tickets/{ticket['id']}/messages", headers=user.headers)
    return list((await resp.json())["messages"])


def is_handoff(frame: dict[str, Any]) -> bool:
    return frame["type"] == "message.created" and frame["message"]["author_kind"] == "system"


async def test_a_rejected_request_tells_the_customer_a_generic_sentence_and_the_agent_the_detail(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, caplog: pytest.LogCaptureFixture
) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    ticket = await create_ticket(client, customer, "Quota")
    fake_groq.push(Script(status=400, error_message=UPSTREAM))
    cws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer.headers)
    aws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=agent.headers)
    assert (await recv(cws))["type"] == (await recv(aws))["type"] == "joined"
    caplog.set_level(logging.WARNING, "chatserver.ai")

    await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "How much?"}, headers=customer.headers)

    seen_by_customer = await frames_until(cws, is_handoff)
    seen_by_agent = await frames_until(aws, is_handoff)
    [failed] = [f for f in seen_by_customer if f["type"] == "ai.failed"]
    assert failed["code"] == "ai_request_rejected" and failed["message"]
    assert not leaked(seen_by_customer), "Groq's error text reached the customer's socket"
    assert not leaked(await history(client, customer, ticket))
    [detail] = [f for f in seen_by_agent if f["type"] == "ai.failure_detail"]
    assert (detail["reply_id"], detail["code"]) == (failed["reply_id"], "ai_request_rejected")
    assert SECRET in detail["detail"]
    assert SECRET in caplog.text, "the log keeps the detail"
    await cws.close()
    await aws.close()


async def test_an_error_inside_the_stream_keeps_its_text_from_the_customer(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Capacity")
    fake_groq.push(Script(text="Let me look that up for you", x_groq_error_after=2, x_groq_error=UPSTREAM))
    cws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer.headers)
    assert (await recv(cws))["type"] == "joined"

    await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "Export?"}, headers=customer.headers)

    seen = await frames_until(cws, lambda f: f["type"] == "ai.failed")
    assert seen[-1]["code"] == "ai_stream_error" and seen[-1]["partial"] is not None
    assert not leaked(seen)
    assert not leaked(await history(client, customer, ticket))
    await cws.close()


async def test_the_sse_reply_stream_gives_the_customer_a_generic_failure(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Quota")
    # A question nobody answered yet (stored while the AI was off): the SSE stream starts the reply.
    pool = client.app[DB_POOL]
    await pool.execute("UPDATE tickets SET ai_enabled = false WHERE id = $1", uuid.UUID(ticket["id"]))
    await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "How much?"}, headers=customer.headers)
    await pool.execute("UPDATE tickets SET ai_enabled = true WHERE id = $1", uuid.UUID(ticket["id"]))
    fake_groq.push(Script(status=400, error_message=UPSTREAM))

    events = await read_sse(await client.get(f"/tickets/{ticket['id']}/ai-response", headers=customer.headers))

    assert events[-1][0] == "failed" and events[-1][1]["code"] == "ai_request_rejected"
    assert not leaked(events)
