"""AI limits an attacker with many fresh accounts cannot get around (issue #12, item 4): a budget
per client address, a ceiling for the whole instance, and the tokens of failed and cancelled
replies charged to the ticket's budget. Each test is the attack, through the real groq SDK
against the fake Groq server, and the refusal: the ticket goes to a person with a message."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from chatserver.ai.fake_groq import FakeGroq, Script, filler_text
from chatserver.ai.limits import ADDRESS_LIMIT, INSTANCE_LIMIT, ReplyLimits
from chatserver.app import create_app
from chatserver.keys import DB_POOL
from chatserver.settings import Settings

from .conftest import PASSWORD
from .fake_groq import EventLog, _fake_groq, ai_settings, attach_log  # noqa: F401  (fixtures)
from .wsutil import recv

Headers = dict[str, str]


async def app_with(aiohttp_client: Any, settings: Settings, fake: FakeGroq, **limits: Any) -> TestClient:
    client: TestClient = await aiohttp_client(create_app(ai_settings(settings, fake, **limits), bcrypt_rounds=4))
    await client.app[DB_POOL].execute("TRUNCATE users, tickets, messages CASCADE")
    return client


async def fresh_account(client: TestClient) -> Headers:
    """What the attacker does for every few replies: sign up again (from the same address)."""
    body = {"email": f"a-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
    resp = await client.post("/auth/signup", json=body)
    assert resp.status == 201
    return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


async def open_ticket(client: TestClient, headers: Headers) -> str:
    resp = await client.post("/tickets", json={"subject": "Free tokens"}, headers=headers)
    return str((await resp.json())["ticket"]["id"])


def handoffs(log: EventLog) -> list[dict[str, Any]]:
    return [f["message"] for f in log.frames("message.created") if f["message"]["author_kind"] == "system"]


async def test_fresh_accounts_from_one_address_share_its_ai_budget(
    aiohttp_client: Any, settings: Settings, fake_groq: FakeGroq
) -> None:
    client = await app_with(aiohttp_client, settings, fake_groq, ai_address_replies_per_window=2)
    log = attach_log(client.app)
    fake_groq.push(Script(text="Answer one."), Script(text="Answer two."), Script(text="Never sent."))
    # Two accounts post over REST...
    for _ in range(2):
        headers = await fresh_account(client)
        ticket_id = await open_ticket(client, headers)
        resp = await client.post(f"/tickets/{ticket_id}/messages", json={"body": "hi"}, headers=headers)
        assert resp.status == 201
    await log.wait_type("ai.completed", 2)
    # ...and a third over its socket: the same address, so the same budget.
    headers = await fresh_account(client)
    ticket_id = await open_ticket(client, headers)
    ws = await client.ws_connect(f"/tickets/{ticket_id}/ws", headers=headers)
    assert (await recv(ws))["type"] == "joined"
    await ws.send_json({"type": "message.send", "client_id": "c1", "body": "hi"})
    await log.wait_for(lambda: len(handoffs(log)) == 1)

    [refusal] = handoffs(log)
    assert refusal["ticket_id"] == ticket_id and refusal["metadata"] == {"handoff": ADDRESS_LIMIT}
    assert "human agent" in refusal["body"]
    assert len(fake_groq.requests) == 2
    row = await client.app[DB_POOL].fetchrow(
        "SELECT ai_enabled, waiting_for_agent FROM tickets WHERE id = $1", uuid.UUID(ticket_id)
    )
    assert (row["ai_enabled"], row["waiting_for_agent"]) == (False, True)
    await ws.close()


async def test_the_instance_ceiling_holds_whatever_the_addresses(
    aiohttp_client: Any, settings: Settings, fake_groq: FakeGroq
) -> None:
    client = await app_with(
        aiohttp_client, settings, fake_groq, ai_instance_replies_per_window=1, ai_address_replies_per_window=100
    )
    log = attach_log(client.app)
    fake_groq.push(Script(text="Answer one."))
    first = await fresh_account(client)
    await client.post(f"/tickets/{await open_ticket(client, first)}/messages", json={"body": "q"}, headers=first)
    await log.wait_type("ai.completed")
    second = await fresh_account(client)
    ticket_id = await open_ticket(client, second)
    await client.post(f"/tickets/{ticket_id}/messages", json={"body": "q"}, headers=second)
    await log.wait_for(lambda: len(handoffs(log)) == 1)
    assert handoffs(log)[0]["metadata"] == {"handoff": INSTANCE_LIMIT}
    assert len(fake_groq.requests) == 1


def test_the_address_window_resets_and_holds_only_current_addresses() -> None:
    now = [0.0]
    limits = ReplyLimits(per_address=1, per_instance=3, window_seconds=60, clock=lambda: now[0])
    assert [limits.hit("10.0.0.1"), limits.hit("10.0.0.1"), limits.hit("10.0.0.2")] == [None, ADDRESS_LIMIT, None]
    assert [limits.hit(None), limits.hit(None)] == [None, INSTANCE_LIMIT]
    now[0] = 60.0
    assert limits.hit("10.0.0.1") is None
    assert limits.address_counts == {"10.0.0.1": 1}


async def usage(client: TestClient, ticket_id: str) -> Any:
    return await client.app[DB_POOL].fetchrow(
        "SELECT replies, total_tokens FROM ticket_ai_usage WHERE ticket_id = $1", uuid.UUID(ticket_id)
    )


async def test_failed_replies_are_charged_to_the_token_budget(
    aiohttp_client: Any, settings: Settings, fake_groq: FakeGroq
) -> None:
    """The attack: questions whose replies fail mid-stream (retryable, so no handoff) would spend
    Groq tokens forever if only completed replies counted."""
    client = await app_with(aiohttp_client, settings, fake_groq, ai_max_tokens_per_ticket=100)
    log = attach_log(client.app)
    headers = await fresh_account(client)
    ticket_id = await open_ticket(client, headers)
    fake_groq.push(Script(text=filler_text(50), x_groq_error_after=20))
    await client.post(f"/tickets/{ticket_id}/messages", json={"body": "q " * 200}, headers=headers)
    await log.wait_type("ai.failed")
    spent = await usage(client, ticket_id)
    assert spent["total_tokens"] >= 100, "the prompt and the text received are charged"
    await client.post(f"/tickets/{ticket_id}/messages", json={"body": "again"}, headers=headers)
    await log.wait_for(lambda: len(handoffs(log)) == 1)
    assert handoffs(log)[0]["metadata"] == {"handoff": "token_budget"}
    assert len(fake_groq.requests) == 1


async def test_cancelled_replies_are_charged_to_the_token_budget(
    aiohttp_client: Any, settings: Settings, fake_groq: FakeGroq
) -> None:
    """The attack: a new message every time the reply starts streaming cancels it (superseded)
    after Groq has spent tokens on it."""
    client = await app_with(aiohttp_client, settings, fake_groq)
    log = attach_log(client.app)
    headers = await fresh_account(client)
    ticket_id = await open_ticket(client, headers)
    fake_groq.push(Script(text=filler_text(400), tokens_per_second=50), Script(text="Short."))
    await client.post(f"/tickets/{ticket_id}/messages", json={"body": "first"}, headers=headers)
    await log.wait_type("ai.delta")
    await client.post(f"/tickets/{ticket_id}/messages", json={"body": "second"}, headers=headers)
    [cancelled] = await log.wait_type("ai.cancelled")
    assert cancelled["reason"] == "superseded"
    [completed] = await log.wait_type("ai.completed")
    reported = completed["message"]["metadata"]["usage"]["total_tokens"]
    spent = await usage(client, ticket_id)
    assert spent["replies"] == 2
    assert spent["total_tokens"] > reported, "the cancelled reply's tokens count too"
