"""Ordering promises of a room under lost events: every gap is filled from the database, and an
ack never overtakes the messages before it (docs/protocol.md, "Order").

A lost event is simulated as it happens for real: the message is committed (here with
`insert_message`, as another instance would) but its event never reaches this instance's hub;
an event that does arrive from "another instance" is handed to the hub with `Hub.deliver`, as
the broker does.
"""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chatserver.db import messages as messages_db
from chatserver.keys import DB_POOL, HUB
from chatserver.realtime import events
from chatserver.realtime.hub import GAP_READ_LIMIT
from chatserver.settings import Settings
from chatserver.views import message_view

from .conftest import MakeUser, User, create_ticket
from .wsutil import collect_until, drain, recv


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """These tests are about rooms, not AI replies: tickets start with the AI off."""
    return settings.with_overrides(ai_default_enabled=False)


async def _join(client: TestClient, user: User, ticket_id: str) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(f"/tickets/{ticket_id}/ws", headers=user.headers)
    assert (await recv(ws))["type"] == "joined"
    return ws


async def _store(
    client: TestClient,
    ticket_id: str,
    author: User,
    body: str,
    *,
    visibility: str = "public",
    client_id: str | None = None,
    delivered: bool,
) -> dict[str, Any]:
    """Commit a message as another instance would; its event reaches this hub only if `delivered`."""
    stored = await messages_db.insert_message(
        client.app[DB_POOL],
        ticket_id=uuid.UUID(ticket_id),
        author_id=uuid.UUID(author.id),
        author_kind="customer" if author.role == "customer" else "agent",
        body=body,
        client_id=client_id,
        visibility=visibility,
    )
    assert stored is not None
    message = message_view(stored[0])
    if delivered:
        client.app[HUB].deliver(events.message_created(message))
    return message


async def _created_until(ws: aiohttp.ClientWebSocketResponse, last_seq: int) -> list[int]:
    """The seqs of message.created frames up to `last_seq`, then of any that follow (duplicates)."""
    seqs: list[int] = []
    while last_seq not in seqs:
        frame = await recv(ws)
        if frame["type"] == "message.created":
            seqs.append(frame["message"]["seq"])
    seqs += [f["message"]["seq"] for f in await drain(ws, quiet=0.3) if f["type"] == "message.created"]
    return seqs


async def test_every_gap_held_back_at_once_is_filled_from_the_database(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    cws = await _join(client, customer, ticket["id"])
    aws = await _join(client, agent, ticket["id"])
    # Three gaps in one room at once (seqs 1, 3 and 5 lost, 3 an internal note); 2, 4, 6 arrive.
    plan = [
        ("lost 1", "public", False),
        ("arrived 2", "public", True),
        ("lost note 3", "internal", False),
        ("arrived 4", "public", True),
        ("lost 5", "public", False),
        ("arrived 6", "public", True),
    ]
    for body, visibility, delivered in plan:
        await _store(client, ticket["id"], agent, body, visibility=visibility, delivered=delivered)
    # Every message, in order, exactly once; the internal note only to staff.
    assert await _created_until(aws, 6) == [1, 2, 3, 4, 5, 6]
    assert await _created_until(cws, 6) == [1, 2, 4, 5, 6]
    await cws.close()
    await aws.close()


async def test_a_gap_that_opens_after_one_was_filled_is_filled_too(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    cws = await _join(client, customer, ticket["id"])
    await _store(client, ticket["id"], agent, "lost 1", delivered=False)
    await _store(client, ticket["id"], agent, "arrived 2", delivered=True)
    assert await _created_until(cws, 2) == [1, 2]
    await _store(client, ticket["id"], agent, "lost 3", delivered=False)
    await _store(client, ticket["id"], agent, "arrived 4", delivered=True)
    assert await _created_until(cws, 4) == [3, 4]
    await cws.close()


async def test_a_gap_longer_than_one_database_read_is_filled_completely(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    aws = await _join(client, agent, ticket["id"])
    lost = GAP_READ_LIMIT + 10
    for i in range(lost):
        await _store(client, ticket["id"], agent, f"lost {i + 1}", delivered=False)
    await _store(client, ticket["id"], agent, "arrived", delivered=True)
    assert await _created_until(aws, lost + 1) == list(range(1, lost + 2))
    await aws.close()


async def test_an_ack_arrives_after_the_earlier_messages_the_room_held_back(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    cws = await _join(client, customer, ticket["id"])
    # Seq 1 is lost; seq 2 arrives from another instance and waits in the hub for seq 1.
    await _store(client, ticket["id"], agent, "lost 1", delivered=False)
    await _store(client, ticket["id"], agent, "arrived 2", delivered=True)
    client_id = uuid.uuid4().hex
    await cws.send_json({"type": "message.send", "client_id": client_id, "body": "mine"})
    frames = await collect_until(cws, "ack")
    created = [f["message"]["seq"] for f in frames if f["type"] == "message.created"]
    assert created == [1, 2, 3]  # all before the ack: the ack's seq is a safe resume position
    assert frames[-1]["client_id"] == client_id and frames[-1]["message"]["seq"] == 3
    assert [f for f in await drain(cws, quiet=0.3) if f["type"] == "message.created"] == []
    await cws.close()


async def test_a_duplicate_ack_for_a_message_whose_event_was_lost_follows_that_message(
    client: TestClient, make_user: MakeUser
) -> None:
    """The resend after a reconnect: the message was stored (by the instance the client was on)
    but its event never reached this one. The ack still comes, after the message itself."""
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    cws = await _join(client, customer, ticket["id"])
    client_id = uuid.uuid4().hex
    await _store(client, ticket["id"], customer, "sent before the reconnect", client_id=client_id, delivered=False)
    await cws.send_json({"type": "message.send", "client_id": client_id, "body": "sent before the reconnect"})
    frames = await collect_until(cws, "ack")
    assert [f["message"]["seq"] for f in frames if f["type"] == "message.created"] == [1]
    assert frames[-1]["duplicate"] is True and frames[-1]["message"]["seq"] == 1
    await cws.close()


async def test_a_duplicate_ack_for_a_message_in_the_joiners_snapshot_does_not_wait_for_the_room(
    client: TestClient, make_user: MakeUser
) -> None:
    """A second tab joined after seq 1 was stored: its snapshot holds seq 1 even though the room
    (held back by an earlier gap) has not delivered it yet, so its ack owes nothing to the room."""
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    first = await _join(client, customer, ticket["id"])
    client_id = uuid.uuid4().hex
    await _store(client, ticket["id"], customer, "stored elsewhere", client_id=client_id, delivered=False)
    await _store(client, ticket["id"], agent, "arrived 2", delivered=True)
    room = client.app[HUB].rooms[events.ticket_channel(ticket["id"])]
    second = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer.headers)
    joined = await recv(second)
    assert [m["seq"] for m in joined["messages"]] == [1, 2] and joined["last_seq"] == 2
    await second.send_json({"type": "message.send", "client_id": client_id, "body": "stored elsewhere"})
    frames = await collect_until(second, "ack")
    assert frames[-1]["duplicate"] is True
    # The room still waits for its gap fill: the ack did not wait for it.
    assert room.high_seq == 0
    assert [f for f in frames if f["type"] == "message.created"] == []
    # The first tab gets both messages once the gap is filled; the second none again.
    assert await _created_until(first, 2) == [1, 2]
    assert [f for f in await drain(second, quiet=0.3) if f["type"] == "message.created"] == []
    await first.close()
    await second.close()


async def test_a_gap_that_cannot_be_read_closes_the_room_with_4000_rather_than_skip_it(
    client: TestClient, make_user: MakeUser
) -> None:
    """Skipping a gap the database could not be asked about would move every client past
    messages it never got; asking them to reconnect and resume loses nothing."""
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    cws = await _join(client, customer, ticket["id"])
    await _store(client, ticket["id"], agent, "lost 1", delivered=False)
    await _store(client, ticket["id"], agent, "arrived 2", delivered=True)
    # The database becomes unreachable for this instance before the gap is read.
    await client.app[DB_POOL].close()
    frames = []
    while True:
        msg = await cws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        frames.append(msg.json())
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == events.CLOSE_RESUME
    assert [f for f in frames if f["type"] == "message.created"] == []
