"""Read cursors, "Seen" (issue 13): a `read` frame moves the sender's cursor (per ticket and user,
never per message) forward only, throttled; the room hears read.updated; a joining socket gets
every cursor in its snapshot; a cursor only ever names a public message, so internal notes never
leak to customers through it; across instances too."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chatserver.keys import DB_POOL

from .conftest import MakeUser, User, create_ticket
from .services import ServerProcess
from .test_access_instances import auth, make_account, sign_in
from .wsutil import drain, recv_type


async def post(client: TestClient, who: User, ticket_id: str, body: str, internal: bool = False) -> int:
    resp = await client.post(
        f"/tickets/{ticket_id}/messages", json={"body": body, "internal": internal}, headers=who.headers
    )
    assert resp.status == 201, await resp.text()
    seq: int = (await resp.json())["message"]["seq"]
    return seq


async def join(client: TestClient, who: User, ticket_id: str) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    ws = await client.ws_connect(f"/tickets/{ticket_id}/ws", headers=who.headers)
    joined = await recv_type(ws, "joined")
    return ws, joined


def cursors(frames: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(f["user"]["id"], f["seq"]) for f in frames if f["type"] == "read.updated"]


async def stored(client: TestClient, ticket_id: str) -> dict[str, int]:
    rows = await client.app[DB_POOL].fetch("SELECT user_id, seq FROM ticket_reads WHERE ticket_id = $1", ticket_id)
    return {str(r["user_id"]): r["seq"] for r in rows}


@pytest.fixture
async def people(make_user: MakeUser) -> tuple[User, User]:
    return await make_user("customer"), await make_user("agent")


async def test_a_read_frame_moves_the_cursor_and_the_room_hears_it(
    client: TestClient, people: tuple[User, User]
) -> None:
    customer, agent = people
    ticket = await create_ticket(client, customer, message="Where is my parcel?")
    reply = await post(client, agent, ticket["id"], "On its way")
    visitor, _ = await join(client, customer, ticket["id"])
    console, _ = await join(client, agent, ticket["id"])
    try:
        await drain(console)
        await visitor.send_json({"type": "read", "seq": reply})
        frame = await recv_type(console, "read.updated")
        assert frame["user"] == {"id": customer.id, "role": "customer"} and frame["seq"] == reply
        assert await stored(client, ticket["id"]) == {customer.id: reply}
    finally:
        await visitor.close()
        await console.close()
    # A socket that joins later (a reconnect, another tab) gets every cursor in its snapshot.
    again, joined = await join(client, agent, ticket["id"])
    await again.close()
    assert joined["reads"] == [{"user": {"id": customer.id, "role": "customer"}, "seq": reply}]


async def test_a_cursor_never_moves_back(client: TestClient, people: tuple[User, User]) -> None:
    customer, agent = people
    ticket = await create_ticket(client, customer, message="One")
    second = await post(client, agent, ticket["id"], "Two")
    visitor, _ = await join(client, customer, ticket["id"])
    console, _ = await join(client, agent, ticket["id"])
    try:
        await visitor.send_json({"type": "read", "seq": second})
        await recv_type(console, "read.updated")
        await asyncio.sleep(1.1)  # past the throttle, so an older seq would be written if it could
        await visitor.send_json({"type": "read", "seq": 1})
        await visitor.send_json({"type": "ping", "ref": "after"})
        assert (await recv_type(visitor, "pong"))["ref"] == "after"
        assert cursors(await drain(console, 1.3)) == []
        assert await stored(client, ticket["id"]) == {customer.id: second}
    finally:
        await visitor.close()
        await console.close()


async def test_reads_sent_in_a_burst_are_written_once_then_once_more_with_the_latest(
    client: TestClient, people: tuple[User, User]
) -> None:
    customer, agent = people
    ticket = await create_ticket(client, customer, message="m1")
    seqs = [1] + [await post(client, agent, ticket["id"], f"m{n}") for n in range(2, 6)]
    visitor, _ = await join(client, customer, ticket["id"])
    console, _ = await join(client, agent, ticket["id"])
    try:
        for seq in seqs:
            await visitor.send_json({"type": "read", "seq": seq})
        first = await recv_type(console, "read.updated")
        second = await recv_type(console, "read.updated")
        # The first report at once; the rest within the throttle's gap become one, the latest.
        assert (first["seq"], second["seq"]) == (seqs[0], seqs[-1])
        assert cursors(await drain(console, 1.3)) == []
    finally:
        await visitor.close()
        await console.close()


async def test_a_customer_cursor_never_points_at_an_internal_note(
    client: TestClient, people: tuple[User, User]
) -> None:
    customer, agent = people
    ticket = await create_ticket(client, customer, message="Hello")
    public = await post(client, agent, ticket["id"], "Hi, looking")
    note = await post(client, agent, ticket["id"], "Customer is a VIP", internal=True)
    visitor, _ = await join(client, customer, ticket["id"])
    console, _ = await join(client, agent, ticket["id"])
    try:
        # A guessed (or future) seq: the cursor stops at the newest public message at or below it.
        await visitor.send_json({"type": "read", "seq": note})
        frame = await recv_type(console, "read.updated")
        assert frame["seq"] == public
        assert await stored(client, ticket["id"]) == {customer.id: public}
    finally:
        await visitor.close()
        await console.close()


async def test_an_agent_cursor_shown_to_the_customer_stops_at_the_last_public_message(
    client: TestClient, people: tuple[User, User]
) -> None:
    customer, agent = people
    ticket = await create_ticket(client, customer, message="Hello")
    note = await post(client, agent, ticket["id"], "Check their order first", internal=True)
    visitor, _ = await join(client, customer, ticket["id"])
    console, _ = await join(client, agent, ticket["id"])
    try:
        await drain(visitor)
        # The agent has read everything, the note included: the customer hears "seen up to 1".
        await console.send_json({"type": "read", "seq": note})
        frame = await recv_type(visitor, "read.updated")
        assert frame == {"type": "read.updated", "user": {"id": agent.id, "role": "agent"}, "seq": 1}
        # A second note and a read of it move nothing the customer could see: no frame at all.
        later = await post(client, agent, ticket["id"], "Refund approved internally", internal=True)
        await asyncio.sleep(1.1)
        await console.send_json({"type": "read", "seq": later})
        seen = await drain(visitor, 1.3)
        assert cursors(seen) == []
        assert all(f.get("seq") not in (note, later) for f in seen)
    finally:
        await visitor.close()
        await console.close()
    again, joined = await join(client, customer, ticket["id"])
    await again.close()
    assert [r["seq"] for r in joined["reads"]] == [1]
    assert note not in [m["seq"] for m in joined["messages"]]


async def test_a_read_before_any_public_message_stores_nothing(client: TestClient, people: tuple[User, User]) -> None:
    customer, agent = people
    ticket = await create_ticket(client, customer)
    await post(client, agent, ticket["id"], "note", internal=True)
    console, _ = await join(client, agent, ticket["id"])
    visitor, joined = await join(client, customer, ticket["id"])
    try:
        assert joined["reads"] == []
        await visitor.send_json({"type": "read", "seq": 0})
        await visitor.send_json({"type": "read", "seq": 1})
        assert cursors(await drain(console, 1.3)) == []
        assert await stored(client, ticket["id"]) == {}
    finally:
        await visitor.close()
        await console.close()


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "read"},
        {"type": "read", "seq": -1},
        {"type": "read", "seq": "3"},
        {"type": "read", "seq": 2.5},
        {"type": "read", "seq": True},
        {"type": "read", "seq": None},
        {"type": "read", "seq": 2**63},
        {"type": "read", "seq": 1, "user": "someone-else"},
    ],
)
async def test_malformed_read_frames_get_an_error_frame_and_the_socket_stays(
    client: TestClient, people: tuple[User, User], frame: dict[str, Any]
) -> None:
    customer, _ = people
    ticket = await create_ticket(client, customer, message="Hi")
    ws, _ = await join(client, customer, ticket["id"])
    try:
        await ws.send_json(frame)
        error = await recv_type(ws, "error")
        assert error["code"] == "validation_error"
        await ws.send_json({"type": "ping", "ref": 1})
        assert (await recv_type(ws, "pong"))["ref"] == 1
    finally:
        await ws.close()
    assert await stored(client, ticket["id"]) == {}


async def test_an_api_key_cannot_send_read_frames(
    client: TestClient, make_user: MakeUser, people: tuple[User, User]
) -> None:
    customer, _ = people
    admin = await make_user("admin")
    resp = await client.post("/admin/api-keys", json={"name": "Bot", "scopes": ["admin"]}, headers=admin.headers)
    key = (await resp.json())["api_key"]["key"]
    ticket = await create_ticket(client, customer, message="Hi")
    ws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers={"Authorization": f"Bearer {key}"})
    try:
        await recv_type(ws, "joined")
        await ws.send_json({"type": "read", "seq": 1})
        assert (await recv_type(ws, "error"))["code"] == "insufficient_scope"
    finally:
        await ws.close()
    assert await stored(client, ticket["id"]) == {}


async def test_a_cursor_moved_on_one_instance_reaches_the_other(
    two_servers: list[ServerProcess], database_url: str
) -> None:
    a, b = two_servers
    customer_email = await make_account(database_url, "customer")
    agent_email = await make_account(database_url, "agent")
    async with aiohttp.ClientSession() as http:
        customer = await sign_in(http, a.base_url, customer_email)
        agent = await sign_in(http, b.base_url, agent_email)
        async with http.post(
            f"{a.base_url}/tickets", json={"subject": "Two", "message": "Hello"}, headers=auth(customer["access_token"])
        ) as resp:
            ticket = (await resp.json())["ticket"]
        async with http.post(
            f"{b.base_url}/tickets/{ticket['id']}/messages", json={"body": "Hi!"}, headers=auth(agent["access_token"])
        ) as resp:
            reply = (await resp.json())["message"]["seq"]
        path = f"/tickets/{ticket['id']}/ws"
        visitor = await http.ws_connect(a.base_url.replace("http", "ws") + path, headers=auth(customer["access_token"]))
        console = await http.ws_connect(b.base_url.replace("http", "ws") + path, headers=auth(agent["access_token"]))
        try:
            await recv_type(visitor, "joined")
            await recv_type(console, "joined")
            await drain(visitor)
            await visitor.send_json({"type": "read", "seq": reply})
            frame = await recv_type(console, "read.updated")
            assert frame["user"]["id"] == customer["user"]["id"] and frame["seq"] == reply
            own = await recv_type(visitor, "read.updated")  # the sender hears its own cursor too
            assert own["user"]["id"] == customer["user"]["id"]
            await console.send_json({"type": "read", "seq": reply})
            frame = await recv_type(visitor, "read.updated")
            assert frame["user"] == {"id": agent["user"]["id"], "role": "agent"} and frame["seq"] == reply
        finally:
            await visitor.close()
            await console.close()
        # Stored, so a reconnect on either instance gets both cursors in the snapshot.
        again = await http.ws_connect(a.base_url.replace("http", "ws") + path, headers=auth(customer["access_token"]))
        joined = await recv_type(again, "joined")
        await again.close()
        assert sorted((r["user"]["role"], r["seq"]) for r in joined["reads"]) == [("agent", reply), ("customer", reply)]
