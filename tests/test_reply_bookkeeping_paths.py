"""Reports' reply bookkeeping through the server's real paths (migration 0018): an AI reply (the
real groq SDK against the fake Groq), a handoff notice by the model's tool call, an agent's REST
reply and internal note, the customer's messages. Each leaves on the ticket what its messages
say (tickets_recount_replies() then changes nothing)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.ai.fake_groq import FakeGroq, Script, ToolCall
from chatserver.keys import DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .fake_groq import FAKE_KEY, EventLog, _events_log, _fake_groq, ai_settings  # noqa: F401  (fixtures)

FIGURES = "first_reply_at, first_human_reply_at, first_human_reply_by, first_handoff_at, ai_replied, human_replied"


@pytest.fixture
def settings(settings: Settings, fake_groq: FakeGroq) -> Settings:
    return ai_settings(settings, fake_groq)


async def post(client: TestClient, user: User, ticket: dict[str, Any], **body: Any) -> None:
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json=body, headers=user.headers)
    assert resp.status == 201, await resp.text()


async def figures(client: TestClient, ticket: dict[str, Any]) -> dict[str, Any]:
    row = await client.app[DB_POOL].fetchrow(f"SELECT {FIGURES} FROM tickets WHERE id = $1", uuid.UUID(ticket["id"]))
    assert row is not None
    return dict(row)


async def first_at(client: TestClient, ticket: dict[str, Any], condition: str) -> Any:
    return await client.app[DB_POOL].fetchval(
        f"SELECT min(created_at) FROM messages WHERE ticket_id = $1 AND {condition}", uuid.UUID(ticket["id"])
    )


async def assert_recount_changes_nothing(client: TestClient, ticket: dict[str, Any]) -> None:
    changed = await client.app[DB_POOL].fetchval(
        "SELECT tickets_recount_replies($1::uuid[])", [uuid.UUID(ticket["id"])]
    )
    assert changed == 0


async def test_an_ai_reply_then_an_agents_rest_reply_are_the_first_reply_and_the_first_human_reply(
    client: TestClient, make_user: MakeUser, events_log: EventLog
) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    ticket = await create_ticket(client, customer, "Order 1042")
    await post(client, customer, ticket, body="Where is my parcel?")
    await events_log.wait_type("ai.completed")
    ai_at = await first_at(client, ticket, "author_kind = 'ai'")
    assert await figures(client, ticket) == {
        "first_reply_at": ai_at, "first_human_reply_at": None, "first_human_reply_by": None,
        "first_handoff_at": None, "ai_replied": True, "human_replied": False,
    }  # fmt: skip

    await post(client, agent, ticket, body="a note for colleagues", internal=True)
    assert (await figures(client, ticket))["human_replied"] is False  # a note is not a reply
    await post(client, agent, ticket, body="It left the warehouse today.")
    human_at = await first_at(client, ticket, "author_kind = 'agent' AND visibility = 'public'")
    got = await figures(client, ticket)
    assert (got["first_reply_at"], got["first_human_reply_at"], got["first_human_reply_by"]) == (
        ai_at, human_at, uuid.UUID(agent.id),
    )  # fmt: skip
    assert got["ai_replied"] and got["human_replied"] and ai_at < human_at
    await assert_recount_changes_nothing(client, ticket)


async def test_a_handoff_by_the_models_tool_call_is_the_first_handoff(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    customer = await make_user("customer")
    fake_groq.push(Script(text="", tool_calls=[ToolCall("handoff_to_human", '{"reason": "refund outside policy"}')]))
    ticket = await create_ticket(client, customer, "Order 1042")
    await post(client, customer, ticket, body="This is the third broken tent, I've had enough of this")
    await events_log.wait_for(
        lambda: any(f["message"]["author_kind"] == "system" for f in events_log.frames("message.created"))
    )
    handoff_at = await first_at(client, ticket, "author_kind = 'system' AND metadata ? 'handoff'")
    assert handoff_at is not None
    assert await figures(client, ticket) == {
        "first_reply_at": None, "first_human_reply_at": None, "first_human_reply_by": None,
        "first_handoff_at": handoff_at, "ai_replied": False, "human_replied": False,
    }  # fmt: skip
    await assert_recount_changes_nothing(client, ticket)
