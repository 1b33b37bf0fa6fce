"""Helpers for talking to the server's WebSockets in tests."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

RECV_TIMEOUT = 5.0


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    if msg.type != aiohttp.WSMsgType.TEXT:
        raise AssertionError(f"expected a text frame, got {msg.type} {msg.data!r} {msg.extra!r}")
    return msg.json()


async def recv_type(
    ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = RECV_TIMEOUT, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Read frames until one of type `kind`; frames of other types are collected and checked
    against `skip` (None = anything may be skipped)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise AssertionError(f"no {kind} frame within {timeout}s")
        frame = await recv(ws, remaining)
        if frame["type"] == kind:
            return frame
        if skip and frame["type"] not in skip:
            raise AssertionError(f"unexpected frame while waiting for {kind}: {frame}")


async def drain(ws: aiohttp.ClientWebSocketResponse, quiet: float = 0.2) -> list[dict[str, Any]]:
    """Every frame that arrives until the socket has been quiet for `quiet` seconds."""
    frames = []
    while True:
        try:
            msg = await ws.receive(timeout=quiet)
        except TimeoutError:
            return frames
        if msg.type != aiohttp.WSMsgType.TEXT:
            return frames
        frames.append(msg.json())


async def collect_until(
    ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = RECV_TIMEOUT
) -> list[dict[str, Any]]:
    """Every frame up to and including the first of type `kind`."""
    frames = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise AssertionError(f"no {kind} frame within {timeout}s; got {frames}")
        frame = await recv(ws, remaining)
        frames.append(frame)
        if frame["type"] == kind:
            return frames


async def close_code(ws: aiohttp.ClientWebSocketResponse, timeout: float = RECV_TIMEOUT) -> int:
    """Skip text frames until the server closes; return the close code it sent."""
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type == aiohttp.WSMsgType.TEXT:
            continue
        if msg.type == aiohttp.WSMsgType.CLOSE:
            return int(msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
            return int(ws.close_code or aiohttp.WSCloseCode.ABNORMAL_CLOSURE)
        raise AssertionError(f"unexpected {msg}")


# ---- a WebSocket client done by hand: for peers that stop reading, ping, or vanish -------------


async def raw_handshake(
    host: str, port: int, path: str, token: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a socket and upgrade it by hand; reads and writes happen only when the test says."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def read_raw_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One (unmasked, server) frame: (opcode, payload)."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length >= 126:
        length = int.from_bytes(await reader.readexactly(2 if length == 126 else 8), "big")
    return first & 0x0F, await reader.readexactly(length)


def raw_client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A final client frame (clients must mask; a zero mask keeps the payload as it is).
    Payloads up to 125 bytes: enough for control frames and small text."""
    assert len(payload) <= 125
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload
