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
