"""Ticket rooms over WebSocket on one instance: joining, sending, acks, resume, authorization."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from chatserver.db import messages as messages_db
from chatserver.keys import DB_POOL, HUB, SETTINGS
from chatserver.realtime.client import Connection
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .wsutil import close_code, collect_until, drain, recv, recv_type


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """These tests are about rooms, not AI replies: tickets start with the AI off."""
    return settings.with_overrides(ai_default_enabled=False)


def ws_url(ticket_id: str, after_seq: int | None = None) -> str:
    url = f"/tickets/{ticket_id}/ws"
    return url if after_seq is None else f"{url}?after_seq={after_seq}"


async def join(client: TestClient, user: User, ticket_id: str, after_seq: int | None = None):
    ws = await client.ws_connect(ws_url(ticket_id, after_seq), headers=user.headers)
    joined = await recv(ws)
    assert joined["type"] == "joined"
    return ws, joined


async def send(ws: aiohttp.ClientWebSocketResponse, body: str, client_id: str | None = None, **extra) -> str:
    client_id = client_id or uuid.uuid4().hex
    await ws.send_json({"type": "message.send", "client_id": client_id, "body": body, **extra})
    return client_id


async def test_join_snapshot_has_ticket_history_presence_and_last_seq(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer", name="Cara")
    ticket = await create_ticket(client, customer, message="My order is late")
    ws, joined = await join(client, customer, ticket["id"])
    assert joined["ticket"]["id"] == ticket["id"]
    assert [m["body"] for m in joined["messages"]] == ["My order is late"]
    assert joined["last_seq"] == 1
    assert joined["resumed"] is False
    assert joined["you"]["name"] == "Cara"
    assert [p["id"] for p in joined["present"]] == [customer.id]
    await ws.close()


async def test_message_is_acked_to_sender_and_broadcast_to_everyone(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    cws, _ = await join(client, customer, ticket["id"])
    aws, _ = await join(client, agent, ticket["id"])
    client_id = await send(cws, "hello there")
    frames = await collect_until(cws, "ack")
    ack = frames[-1]
    assert ack["client_id"] == client_id and ack["duplicate"] is False
    assert ack["message"]["seq"] == 1 and ack["message"]["body"] == "hello there"
    seen = await recv_type(aws, "message.created")
    assert seen["message"]["id"] == ack["message"]["id"]
    # the sender sees the broadcast too (just before its ack), so every tab of the user updates
    own = [f for f in frames if f["type"] == "message.created"]
    assert [f["message"]["id"] for f in own] == [ack["message"]["id"]]
    await cws.close()
    await aws.close()


async def test_messages_arrive_in_seq_order(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    cws, _ = await join(client, customer, ticket["id"])
    aws, _ = await join(client, agent, ticket["id"])
    for i in range(15):
        await send(cws if i % 2 else aws, f"m{i}")
    frames = []
    while len(frames) < 15:
        frame = await recv_type(cws, "message.created")
        frames.append(frame["message"]["seq"])
    assert frames == sorted(frames) == list(range(1, 16))
    await cws.close()
    await aws.close()


async def test_resend_with_same_client_id_is_acked_with_original_and_not_broadcast(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    cws, _ = await join(client, customer, ticket["id"])
    aws, _ = await join(client, agent, ticket["id"])
    await send(cws, "once", client_id="c-1")
    first = await recv_type(cws, "ack")
    await send(cws, "once", client_id="c-1")
    second = await recv_type(cws, "ack")
    assert second["duplicate"] is True
    assert second["message"]["id"] == first["message"]["id"]
    agent_frames = await drain(aws)
    created = [f for f in agent_frames if f["type"] == "message.created"]
    assert len(created) == 1
    resp = await client.get(f"/tickets/{ticket['id']}/messages", headers=customer.headers)
    assert len((await resp.json())["messages"]) == 1
    await cws.close()
    await aws.close()


async def test_resume_after_drop_gets_exactly_the_missed_messages(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    cws, _ = await join(client, customer, ticket["id"])
    aws, _ = await join(client, agent, ticket["id"])
    await send(cws, "before drop")
    ack = await recv_type(cws, "ack")
    last_seen = ack["message"]["seq"]
    await cws.close()
    for i in range(3):
        await send(aws, f"while away {i}")
        await recv_type(aws, "ack")
    cws2, joined = await join(client, customer, ticket["id"], after_seq=last_seen)
    assert joined["resumed"] is True
    assert [m["body"] for m in joined["messages"]] == ["while away 0", "while away 1", "while away 2"]
    assert [m["seq"] for m in joined["messages"]] == [2, 3, 4]
    assert joined["last_seq"] == 4
    # and nothing is delivered twice after the snapshot
    await send(aws, "after resume")
    live = await recv_type(cws2, "message.created")
    assert live["message"]["seq"] == 5
    assert not [f for f in await drain(cws2) if f["type"] == "message.created"]
    await cws2.close()
    await aws.close()


async def test_internal_notes_reach_agents_but_never_customers(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    cws, _ = await join(client, customer, ticket["id"])
    aws, _ = await join(client, agent, ticket["id"])
    await send(aws, "customer seems upset", internal=True)
    note = await recv_type(aws, "message.created")
    assert note["message"]["visibility"] == "internal"
    await send(aws, "Hi! How can I help?")
    public = await recv_type(cws, "message.created")
    assert public["message"]["body"] == "Hi! How can I help?"
    assert all(f.get("message", {}).get("visibility") != "internal" for f in await drain(cws))
    # a customer rejoining does not see it in the snapshot either
    cws2, joined = await join(client, customer, ticket["id"])
    assert [m["body"] for m in joined["messages"]] == ["Hi! How can I help?"]
    await cws.close()
    await cws2.close()
    await aws.close()


async def test_customer_cannot_write_internal_notes(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    cws, _ = await join(client, customer, ticket["id"])
    await send(cws, "sneaky", internal=True, client_id="x1")
    err = await recv_type(cws, "error")
    assert err["code"] == "forbidden" and err["ref"] == "x1"
    await cws.close()


async def test_rest_messages_and_ticket_changes_are_broadcast(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    cws, _ = await join(client, customer, ticket["id"])
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "via REST"}, headers=agent.headers)
    assert resp.status == 201
    frame = await recv_type(cws, "message.created")
    assert frame["message"]["body"] == "via REST"
    resp = await client.patch(
        f"/tickets/{ticket['id']}", json={"priority": "high", "assignee_id": agent.id}, headers=agent.headers
    )
    assert resp.status == 200
    update = await recv_type(cws, "ticket.updated")
    assert update["changes"] == ["assignee_id", "priority"]
    assert update["ticket"]["priority"] == "high"
    await cws.close()


@pytest.mark.parametrize("role", ["agent", "admin"])
async def test_staff_may_join_any_ticket(client: TestClient, make_user: MakeUser, role: str) -> None:
    customer = await make_user("customer")
    staff = await make_user(role)
    ticket = await create_ticket(client, customer)
    ws, joined = await join(client, staff, ticket["id"])
    assert joined["ticket"]["id"] == ticket["id"]
    await ws.close()


async def test_refused_upgrades_get_json_errors(client: TestClient, make_user: MakeUser) -> None:
    owner = await make_user("customer")
    other = await make_user("customer")
    ticket = await create_ticket(client, owner)
    for headers, status in (({}, 401), (other.headers, 404), ({"Authorization": "Bearer nope"}, 401)):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await client.ws_connect(ws_url(ticket["id"]), headers=headers)
        assert info.value.status == status
    resp = await client.get(ws_url(ticket["id"]), headers=other.headers)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.get(ws_url(str(uuid.uuid4())), headers=owner.headers)
    assert resp.status == 404


async def test_browser_ticket_is_single_use(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    resp = await client.post("/ws/tickets", headers=customer.headers)
    assert resp.status == 201
    token = (await resp.json())["ticket"]
    ws = await client.ws_connect(f"/tickets/{ticket['id']}/ws?ticket={token}")
    assert (await recv(ws))["type"] == "joined"
    await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(f"/tickets/{ticket['id']}/ws?ticket={token}")
    assert info.value.status == 401
    anonymous = await client.post("/ws/tickets")
    assert anonymous.status == 401


async def test_presence_counts_tabs_once(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent", name="Alex")
    ticket = await create_ticket(client, customer)
    cws, _ = await join(client, customer, ticket["id"])
    tab1, _ = await join(client, agent, ticket["id"])
    # Customers hear of an agent once the agent writes to them (test_presence_visibility.py).
    await tab1.send_json({"type": "message.send", "client_id": "a1", "body": "Hello"})
    joined = await recv_type(cws, "presence.joined")
    if joined["user"]["id"] == customer.id:  # the customer's own arrival comes first
        joined = await recv_type(cws, "presence.joined")
    assert joined["user"]["name"] == "Alex"
    assert "email" not in joined["user"]
    tab2, snapshot = await join(client, agent, ticket["id"])
    assert sorted(p["id"] for p in snapshot["present"]) == sorted([customer.id, agent.id])
    await tab1.close()
    assert not [f for f in await drain(cws) if f["type"].startswith("presence.")]
    await tab2.close()
    left = await recv_type(cws, "presence.left")
    assert left["user"]["id"] == agent.id
    await cws.close()


async def test_typing_is_broadcast_throttled_and_never_stored(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    cws, _ = await join(client, customer, ticket["id"])
    aws, _ = await join(client, agent, ticket["id"])
    for _ in range(5):
        await cws.send_json({"type": "typing", "active": True})
    frames = [f for f in await drain(aws) if f["type"] == "typing"]
    assert len(frames) == 1 and frames[0]["active"] is True and frames[0]["user"]["id"] == customer.id
    await cws.send_json({"type": "typing", "active": False})
    stop = await recv_type(aws, "typing")
    assert stop["active"] is False
    history = await client.get(f"/tickets/{ticket['id']}/messages", headers=agent.headers)
    assert (await history.json())["messages"] == []
    await cws.close()
    await aws.close()


async def test_bad_frames_get_error_frames_and_the_socket_survives(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    ws, _ = await join(client, customer, ticket["id"])
    await ws.send_str("{not json")
    assert (await recv_type(ws, "error"))["code"] == "malformed_frame"
    await ws.send_json(["a", "list"])
    assert (await recv_type(ws, "error"))["code"] == "malformed_frame"
    await ws.send_json({"type": "nonsense"})
    assert (await recv_type(ws, "error"))["code"] == "unknown_type"
    await ws.send_bytes(b"\x00\x01")
    assert (await recv_type(ws, "error"))["code"] == "unsupported_frame"
    await ws.send_json({"type": "message.send", "client_id": "a", "body": 42})
    err = await recv_type(ws, "error")
    assert err["code"] == "validation_error" and "body" in err["message"]
    await ws.send_json({"type": "ping", "ref": 7})
    assert (await recv_type(ws, "pong"))["ref"] == 7
    await ws.close()


async def test_oversize_frame_closes_with_message_too_big(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    ws, _ = await join(client, customer, ticket["id"])
    await ws.send_str("x" * (client.app[SETTINGS].ws_max_msg_size + 10))
    assert await close_code(ws) == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_send_rate_limit_answers_with_retry_after(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    ws, _ = await join(client, customer, ticket["id"])
    burst = client.app[SETTINGS].ws_send_burst
    for i in range(burst + 3):
        await send(ws, f"spam {i}")
    frames = await drain(ws, quiet=0.5)
    limited = [f for f in frames if f["type"] == "error" and f["code"] == "rate_limited"]
    assert limited, "expected rate_limited errors"
    assert all(f["retry_after"] > 0 for f in limited)
    acks = [f for f in frames if f["type"] == "ack"]
    assert len(acks) == burst
    await ws.close()


async def _handshake(
    client: TestClient, user: User, path: str, extra_headers: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A WebSocket handshake done by hand: (reader, writer, the response head)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {client.host}:{client.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {user.token}\r\n{extra_headers}\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer, head


async def _raw_socket(client: TestClient, user: User, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client that reads only when told to: a peer that stops reading, for real (its
    kernel buffers fill, then the server's)."""
    reader, writer, _ = await _handshake(client, user, path)
    return reader, writer


async def test_the_handshake_response_carries_the_request_id(client: TestClient, make_user: MakeUser) -> None:
    # The server drops the response's headers once they are sent (they would live as long as the
    # socket): they must be on the wire first.
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    _, writer, head = await _handshake(client, customer, ws_url(ticket["id"]), "X-Request-ID: handshake-check-1\r\n")
    writer.close()
    assert b"\r\nX-Request-ID: handshake-check-1\r\n" in head
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One (unmasked, server) frame: (opcode, payload)."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length >= 126:
        length = int.from_bytes(await reader.readexactly(2 if length == 126 else 8), "big")
    return first & 0x0F, await reader.readexactly(length)


async def _close_code_after_frames(reader: asyncio.StreamReader) -> tuple[int, int]:
    """Read frames up to the close frame: (frames before it, close code)."""
    frames = 0
    async with asyncio.timeout(30):
        while True:
            opcode, payload = await _read_frame(reader)
            if opcode == 0x8:
                return frames, int.from_bytes(payload[:2], "big")
            frames += 1


async def _joined_raw_socket(
    client: TestClient, user: User, ticket: dict
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Connection]:
    """A raw socket that has joined the ticket's room (its `joined` frame read), and the server's
    Connection for it."""
    reader, writer = await _raw_socket(client, user, ws_url(ticket["id"]))
    async with asyncio.timeout(10):
        _, joined = await _read_frame(reader)
    assert b'"type":"joined"' in joined
    room = client.app[HUB].rooms[f"ticket:{ticket['id']}"]
    conn = next(c for c in room.connections if str(c.identity.user_id) == user.id)
    return reader, writer, conn


async def test_slow_consumer_is_disconnected_without_stalling_others(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    aws, _ = await join(client, agent, ticket["id"])
    reader, writer, conn = await _joined_raw_socket(client, customer, ticket)
    # The peer reads nothing: frames go to the socket while its buffers take them, then queue;
    # the queue overflowing is what disconnects it.
    filler = b'{"type":"filler","pad":"' + b"x" * 65_000 + b'"}'
    for _ in range(20_000):
        conn.enqueue(filler)
        if conn.closing:
            break
    assert conn.closing
    await send(aws, "still flowing")
    ack = await recv_type(aws, "ack")
    assert ack["message"]["body"] == "still flowing"
    frames, code = await _close_code_after_frames(reader)
    assert code == 4008
    assert frames >= 1  # fillers went straight to the socket until its buffers were full
    writer.close()
    await aws.close()


async def test_frames_arrive_in_order_across_a_full_socket_buffer(client: TestClient, make_user: MakeUser) -> None:
    # Frames go straight to the socket while its buffer is empty and wait in the queue (drained
    # by a writer task) once it is not: a peer that reads slowly still gets every frame, in order.
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    reader, writer, conn = await _joined_raw_socket(client, customer, ticket)
    try:
        count = 400
        pad = "x" * 50_000
        for i in range(count):
            conn.enqueue(f'{{"type":"filler","i":{i},"pad":"{pad}"}}'.encode())
        assert not conn.closing
        assert conn._writer is not None, "the socket's buffers should have filled and frames queued"
        received = []
        async with asyncio.timeout(30):
            while len(received) < count:
                _, payload = await _read_frame(reader)
                frame = orjson.loads(payload)
                if frame["type"] == "filler":  # presence and the like may come in between
                    received.append(frame["i"])
        assert received == list(range(count))
        draining = conn._writer
        if draining is not None:
            async with asyncio.timeout(10):
                await draining
        assert conn._writer is None  # the writer task ends once the queue is empty
    finally:
        writer.close()


async def test_closing_a_peer_that_stopped_reading_cuts_it_off(client: TestClient, make_user: MakeUser) -> None:
    # aiohttp's close waits, without a limit, for the peer to take the close frame: a server
    # shutting down must not wait forever for a socket whose buffers are full.
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    reader, writer, conn = await _joined_raw_socket(client, customer, ticket)
    try:
        filler = b'{"type":"filler","pad":"' + b"x" * 65_000 + b'"}'
        for _ in range(300):
            conn.enqueue(filler)
        assert conn._writer is not None, "the socket's buffers should be full"
        async with asyncio.timeout(20):
            await conn.flush_and_close(drain_seconds=0.1, close_seconds=0.5)
        assert conn.closing
        # Cut off: the peer's stream ends without a close frame once the buffered data is read.
        async with asyncio.timeout(30):
            with pytest.raises(asyncio.IncompleteReadError):
                while True:
                    opcode, _ = await _read_frame(reader)
                    assert opcode != 0x8
    finally:
        writer.close()


async def test_inbox_stream_is_for_staff_and_sees_activity(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect("/ws/inbox", headers=customer.headers)
    assert info.value.status == 403
    inbox = await client.ws_connect("/ws/inbox", headers=agent.headers)
    assert (await recv(inbox))["type"] == "inbox.ready"
    ticket = await create_ticket(client, customer, message="first words")
    created = await recv_type(inbox, "inbox.ticket_created")
    assert created["ticket"]["id"] == ticket["id"]
    message = await recv_type(inbox, "inbox.message_created")
    assert message["message"]["body"] == "first words"
    await client.patch(f"/tickets/{ticket['id']}", json={"status": "pending"}, headers=agent.headers)
    updated = await recv_type(inbox, "inbox.ticket_updated")
    assert updated["changes"] == ["status"]
    await inbox.close()


async def test_shutdown_closes_sockets_with_going_away(
    aiohttp_client, settings, make_user: MakeUser, client: TestClient
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    ws, _ = await join(client, customer, ticket["id"])
    await client.app.shutdown()
    assert await close_code(ws) == aiohttp.WSCloseCode.GOING_AWAY


async def _heartbeat_room(aiohttp_client, settings, interval: float):
    """An app with a short heartbeat, and a customer's socket in their new ticket's room, opened
    with autoping=False: the client answers the server's pings only if the test does."""
    from chatserver.app import create_app

    app = create_app(settings.with_overrides(ws_heartbeat=interval), bcrypt_rounds=4)
    client = await aiohttp_client(app)
    email = f"hb-{uuid.uuid4().hex[:6]}@example.com"
    token = (await (await client.post("/auth/signup", json={"email": email, "password": "password1"})).json())[
        "access_token"
    ]
    headers = {"Authorization": f"Bearer {token}"}
    resp = await client.post("/tickets", json={"subject": "hb"}, headers=headers)
    ticket_id = (await resp.json())["ticket"]["id"]
    ws = await client.ws_connect(f"/tickets/{ticket_id}/ws", headers=headers, autoping=False)
    return app, ticket_id, ws


async def test_heartbeat_drops_a_peer_that_stops_answering(aiohttp_client, settings) -> None:
    app, ticket_id, ws = await _heartbeat_room(aiohttp_client, settings, 0.3)
    room = f"ticket:{ticket_id}"
    assert room in app[HUB].rooms
    for _ in range(50):
        if room not in app[HUB].rooms:
            break
        await asyncio.sleep(0.1)
    assert room not in app[HUB].rooms
    await ws.close()


async def test_heartbeat_keeps_a_peer_that_answers_and_the_server_answers_pings(aiohttp_client, settings) -> None:
    app, ticket_id, ws = await _heartbeat_room(aiohttp_client, settings, 0.2)
    # The test sees the server's pings and answers each one by hand.
    assert (await ws.receive_json())["type"] == "joined"
    pings = 0
    async with asyncio.timeout(5):
        while pings < 4:  # four rounds, each 1.5 heartbeat intervals long at most
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.PING:
                pings += 1
                await ws.pong(msg.data)
    assert f"ticket:{ticket_id}" in app[HUB].rooms
    # The server answers a client's ping (browsers never send one; other clients may).
    await ws.ping(b"are you there")
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.PONG:
                assert msg.data == b"are you there"
                break
            assert msg.type == aiohttp.WSMsgType.PING
            await ws.pong(msg.data)
    # Still a working room socket after all that.
    await ws.send_json({"type": "message.send", "body": "still here", "client_id": "hb-1"})
    async with asyncio.timeout(5):
        kinds = set()
        while not {"ack", "message.created"} <= kinds:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.PING:
                await ws.pong(msg.data)
            else:
                kinds.add(msg.json()["type"])
    await ws.close()


async def test_a_lost_event_is_recovered_from_the_database_in_order(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    cws, _ = await join(client, customer, ticket["id"])
    # Store a message whose event never reaches this instance (as if lost with the backplane).
    await messages_db.insert_message(
        client.app[DB_POOL],
        ticket_id=uuid.UUID(ticket["id"]),
        author_id=uuid.UUID(agent.id),
        author_kind="agent",
        body="lost in transit",
        client_id=None,
    )
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "next one"}, headers=agent.headers)
    assert resp.status == 201
    first = await recv_type(cws, "message.created")
    second = await recv_type(cws, "message.created")
    assert [first["message"]["body"], second["message"]["body"]] == ["lost in transit", "next one"]
    assert [first["message"]["seq"], second["message"]["seq"]] == [1, 2]
    await cws.close()
