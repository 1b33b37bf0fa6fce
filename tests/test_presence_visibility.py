"""What presence a visitor sees: an agent who only opens a ticket stays invisible to the customer;
writing publicly or taking over makes them "join" for the customer; agents still see everyone.
Run on one instance (local presence) and through Redis (the presence hash)."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chatserver.app import create_app
from chatserver.keys import DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .wsutil import collect_until, recv, recv_type


@pytest.fixture(params=["local", "redis"])
async def client(request: Any, aiohttp_client: Any, settings: Settings, redis_prefix: str) -> TestClient:
    if request.param == "redis":
        settings = settings.with_overrides(redis_url=request.getfixturevalue("redis_url"), redis_prefix=redis_prefix)
    app = create_app(settings, bcrypt_rounds=4)
    test_client: TestClient = await aiohttp_client(app)
    await app[DB_POOL].execute("TRUNCATE users, tickets, messages CASCADE")
    return test_client


async def join(client: TestClient, user: User, ticket_id: str) -> tuple[aiohttp.ClientWebSocketResponse, dict]:
    ws = await client.ws_connect(f"/tickets/{ticket_id}/ws", headers=user.headers)
    joined = await recv(ws)
    assert joined["type"] == "joined"
    return ws, joined


def presence_of(frames: list[dict[str, Any]], user_id: str) -> list[str]:
    return [f["type"] for f in frames if f["type"].startswith("presence.") and f["user"]["id"] == user_id]


async def customer_and_peeking_agent(client: TestClient, make_user: MakeUser):
    customer = await make_user("customer")
    agent = await make_user("agent", name="Alex")
    ticket = await create_ticket(client, customer)
    cws, _ = await join(client, customer, ticket["id"])
    await recv_type(cws, "presence.joined")  # the customer's own arrival
    aws, snapshot = await join(client, agent, ticket["id"])
    return customer, agent, ticket, cws, aws, snapshot


async def test_agent_opening_a_ticket_is_not_announced_to_the_customer(client: TestClient, make_user: MakeUser) -> None:
    customer, agent, ticket, cws, aws, snapshot = await customer_and_peeking_agent(client, make_user)
    # Agents still see everyone present.
    assert customer.id in [p["id"] for p in snapshot["present"]]
    # The agent's typing is published after their arrival: everything before it reached the
    # customer already.
    await aws.send_json({"type": "typing", "active": True})
    frames = await collect_until(cws, "typing")
    assert presence_of(frames, agent.id) == []
    await aws.close()
    # The customer's own next message comes after the agent's departure: no "left" either.
    await cws.send_json({"type": "message.send", "client_id": uuid.uuid4().hex, "body": "still there?"})
    frames = await collect_until(cws, "ack")
    assert presence_of(frames, agent.id) == []
    # A customer arriving later does not find the peeking agent in the snapshot.
    aws2, _ = await join(client, agent, ticket["id"])
    cws2, snapshot2 = await join(client, customer, ticket["id"])
    assert [p["id"] for p in snapshot2["present"]] == [customer.id]
    await aws2.close()
    await cws.close()
    await cws2.close()


async def test_agent_first_public_message_announces_them_once_before_the_message(
    client: TestClient, make_user: MakeUser
) -> None:
    customer, agent, ticket, cws, aws, _ = await customer_and_peeking_agent(client, make_user)
    await aws.send_json({"type": "message.send", "client_id": "n1", "body": "note", "internal": True})
    await recv_type(aws, "ack")
    await aws.send_json({"type": "message.send", "client_id": "a1", "body": "Hi, I'm Alex"})
    frames = await collect_until(cws, "message.created")
    assert presence_of(frames, agent.id) == ["presence.joined"]
    assert frames[-1]["message"]["body"] == "Hi, I'm Alex"
    joined = next(f for f in frames if f["type"] == "presence.joined")
    assert joined["user"] == {"id": agent.id, "name": "Alex", "role": "agent"}
    # A customer joining now sees the engaged agent.
    cws2, snapshot = await join(client, customer, ticket["id"])
    assert agent.id in [p["id"] for p in snapshot["present"]]
    # Once only.
    await aws.send_json({"type": "message.send", "client_id": "a2", "body": "Let me check"})
    frames = await collect_until(cws, "message.created")
    assert presence_of(frames, agent.id) == []
    # And the engaged agent's departure is heard.
    await aws.close()
    left = await recv_type(cws, "presence.left")
    assert left["user"]["id"] == agent.id
    await cws.close()
    await cws2.close()


async def test_takeover_announces_the_agent_to_the_customer(client: TestClient, make_user: MakeUser) -> None:
    _, agent, _, cws, aws, _ = await customer_and_peeking_agent(client, make_user)
    await aws.send_json({"type": "ai.takeover"})
    frames = await collect_until(cws, "presence.joined")
    assert frames[-1]["user"]["id"] == agent.id
    await aws.close()
    await cws.close()
