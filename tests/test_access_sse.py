"""The AI reply's Server-Sent Events stream is watched like a socket: revoking the account's access
while a reply streams ends the stream at once with a `revoked` event (issue 12's leftover: it used
to run until the reply ended). The generation goes on for everyone else."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.ai.fake_groq import FakeGroq, Script
from chatserver.keys import ACCESS_WATCHER, DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .fake_groq import _fake_groq, ai_settings, iter_sse  # noqa: F401  (fixture)


@pytest.fixture
def settings(settings: Settings, fake_groq: FakeGroq) -> Settings:
    # A long account cache: only the invalidation can explain the stream ending.
    return ai_settings(settings, fake_groq).with_overrides(account_cache_seconds=300.0)


async def held_reply_stream(client: TestClient, customer: User, fake_groq: FakeGroq) -> tuple[Any, Any, Script]:
    """A customer's SSE stream on a reply the fake holds after two tokens."""
    ticket = await create_ticket(client, customer, "Revoked mid-reply")
    pool = client.app[DB_POOL]
    # A question nobody answered yet (stored while the AI was off): the SSE stream starts the reply.
    await pool.execute("UPDATE tickets SET ai_enabled = false WHERE id = $1", uuid.UUID(ticket["id"]))
    await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "Hello?"}, headers=customer.headers)
    await pool.execute("UPDATE tickets SET ai_enabled = true WHERE id = $1", uuid.UUID(ticket["id"]))
    script = Script(text="one two three four five six", hold_after=2)
    fake_groq.push(script)
    resp = await client.get(f"/tickets/{ticket['id']}/ai-response", headers=customer.headers)
    assert resp.status == 200
    events = iter_sse(resp)
    while (await asyncio.wait_for(anext(events), 10))[0] != "delta":
        pass
    return ticket, events, script


async def rest_of(events: Any) -> list[tuple[str, dict[str, Any]]]:
    async with asyncio.timeout(10):
        return [item async for item in events]


@pytest.mark.parametrize("revoke", ["disable", "password-reset"])
async def test_revoking_access_ends_an_open_reply_stream(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, revoke: str
) -> None:
    admin = await make_user("admin")
    agent = await make_user("agent")
    customer = await make_user("customer")
    ticket, events, script = await held_reply_stream(client, customer, fake_groq)
    assert len(client.app[ACCESS_WATCHER].streams) == 1

    if revoke == "disable":
        resp = await client.post(f"/admin/users/{customer.id}/disable", headers=admin.headers)
    else:
        resp = await client.post(
            f"/admin/users/{customer.id}/password", json={"password": "a new password 123"}, headers=admin.headers
        )
    assert resp.status in (200, 204), await resp.text()

    rest = await rest_of(events)
    assert rest and rest[-1][0] == "revoked" and rest[-1][1]["code"] == "access_revoked"
    assert all(name == "delta" for name, _ in rest[:-1])
    assert client.app[ACCESS_WATCHER].streams == set()

    # The reply itself goes on and is stored for everyone who may still read it.
    script.release.set()
    for _ in range(100):
        resp = await client.get(f"/tickets/{ticket['id']}/messages", headers=agent.headers)
        bodies = [m["body"] for m in (await resp.json())["messages"] if m["author_kind"] == "ai"]
        if bodies:
            break
        await asyncio.sleep(0.1)
    assert bodies == ["one two three four five six"]


async def test_an_unrevoked_stream_is_unwatched_when_it_ends(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq
) -> None:
    customer = await make_user("customer")
    _, events, script = await held_reply_stream(client, customer, fake_groq)
    script.release.set()
    rest = await rest_of(events)
    assert rest[-1][0] == "completed"
    assert client.app[ACCESS_WATCHER].streams == set()
