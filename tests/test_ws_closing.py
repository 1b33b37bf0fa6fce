"""Sockets that go away or fall behind: no server error for a peer that vanishes mid-ping, and a
slow consumer that reads again is told why it was cut (4008), not left with a bare 1006."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient

from chatserver.keys import HUB
from chatserver.realtime import events
from chatserver.settings import Settings

from .conftest import MakeUser, create_ticket
from .wsutil import raw_client_frame, raw_handshake, read_raw_frame

OP_CLOSE, OP_PING = 0x8, 0x9


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(ai_default_enabled=False)


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll server state that has no event to wait on."""
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Vanish the way a killed client or a dropped network does: a TCP reset, no close frame."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@pytest.mark.parametrize("where", ["room", "inbox"])
async def test_pings_from_a_peer_that_vanishes_are_not_a_server_error(
    client: TestClient, make_user: MakeUser, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    user = customer if where == "room" else agent
    path = f"/tickets/{ticket['id']}/ws" if where == "room" else "/ws/inbox"
    channel = events.ticket_channel(ticket["id"]) if where == "room" else events.INBOX_CHANNEL
    hub = client.app[HUB]
    reader, writer = await raw_handshake(client.host, client.port, path, user.token)
    await read_raw_frame(reader)  # joined / inbox.ready
    (conn,) = [c for c in hub.rooms[channel].connections if str(c.identity.user_id) == user.id]
    # The pings are read after the reset: the server answers them on a transport that is closing.
    writer.write(raw_client_frame(OP_PING, b"are you there") * 200)
    await writer.drain()
    with caplog.at_level(logging.INFO):
        _reset(writer)
        await _until(lambda: conn not in hub.connections)
        # The heartbeat's ping (and a late pong) to a socket that is gone are no error either.
        await conn.ping()
        await conn.pong(b"late")
        metrics = await (await client.get("/metrics")).text()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert 'status="500"' not in metrics


async def test_a_slow_consumer_that_reads_again_gets_the_4008_close(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    reader, writer = await raw_handshake(client.host, client.port, f"/tickets/{ticket['id']}/ws", customer.token)
    try:
        await read_raw_frame(reader)  # joined
        room = client.app[HUB].rooms[events.ticket_channel(ticket["id"])]
        (conn,) = room.connections
        # The closing handshake gives up quickly here, long before this peer reads again.
        conn.close_timeout = 0.2
        filler = b'{"type":"filler","pad":"' + b"x" * 65_000 + b'"}'
        for _ in range(20_000):
            conn.enqueue(filler)
            if conn.closing:
                break
            # Frames trickle in as they do in a room: the writer task fills the transport's
            # buffer up to its limit and waits for the peer, which does not read.
            await asyncio.sleep(0)
        assert conn.closing
        transport = conn.ws._req.transport  # type: ignore[union-attr]
        assert transport is not None
        await _until(transport.is_closing)  # the handshake timed out; the frames still wait
        # The peer reads again: every frame queued before the cut, then the close frame.
        async with asyncio.timeout(30):
            while True:
                opcode, payload = await read_raw_frame(reader)
                if opcode == OP_CLOSE:
                    break
        assert int.from_bytes(payload[:2], "big") == events.CLOSE_SLOW_CONSUMER
    finally:
        writer.close()
