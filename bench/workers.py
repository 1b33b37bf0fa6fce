"""Client processes for the WebSocket scenarios, and the room-participant client they run.

A scenario starts N worker processes (spawned, so nothing is shared with the driver), each
running one asyncio loop with many sockets. The driver sends every worker the same command and
waits for all answers: `setup` (connect), then any number of phases (`run` with parameters),
then `stop`. Workers report raw latencies (ms) so the driver can take exact percentiles over all
of them, and their own CPU time so that the client's cost is visible next to the server's.

Latency is measured on one machine with one clock: the sender stamps `time.monotonic_ns()` (the
system-wide CLOCK_MONOTONIC) into the message's client_id; every receiver subtracts it from its
own reading of the same clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

import aiohttp
import orjson
import psutil

Command = tuple[str, dict[str, Any]]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Worker:
    """Override setup/run/stop. Each is called in the worker process's event loop."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    async def setup(self, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def stop(self) -> None:
        return None


def _worker_main(factory: Callable[[dict[str, Any]], Worker], config: dict[str, Any], pipe: Pipe) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_serve(factory(config), pipe))


async def _serve(worker: Worker, pipe: Pipe) -> None:
    loop = asyncio.get_running_loop()
    try:
        while True:
            name, params = await loop.run_in_executor(None, pipe.recv)
            if name == "stop":
                break
            cpu0 = cpu_seconds()
            try:
                result = await (worker.setup(params) if name == "setup" else worker.run(params))
            except Exception as exc:  # noqa: BLE001 - reported to the driver, which stops the scenario
                result = {"error": f"{type(exc).__name__}: {exc}"}
            result["client_cpu_s"] = cpu_seconds() - cpu0
            pipe.send(result)
    finally:
        await worker.stop()
        pipe.send({"stopped": True})


class WorkerPool:
    """N worker processes driven in lock step."""

    def __init__(self, factory: Callable[[dict[str, Any]], Worker], configs: list[dict[str, Any]]) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Pipe] = []
        self.procs: list[Any] = []
        for config in configs:
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(factory, config, theirs), daemon=True)
            proc.start()
            self.pipes.append(ours)
            self.procs.append(proc)

        self.handles = [psutil.Process(p.pid) for p in self.procs]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def call(self, name: str, params: dict[str, Any] | None = None, timeout: float = 600) -> list[dict[str, Any]]:
        for pipe in self.pipes:
            pipe.send((name, params or {}))
        results = []
        deadline = time.monotonic() + timeout
        for pipe in self.pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"a worker did not answer {name!r} within {timeout}s")
            results.append(pipe.recv())
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            raise RuntimeError(f"worker failed in {name!r}: {errors[0]}")
        return results

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError, BrokenPipeError):
                pipe.send(("stop", {}))
        for proc, pipe in zip(self.procs, self.pipes, strict=True):
            with contextlib.suppress(OSError, EOFError):
                if pipe.poll(30):
                    pipe.recv()
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """Round-robin `items` into `parts` lists."""
    return [items[i::parts] for i in range(parts)]


def merge(results: list[dict[str, Any]], key: str) -> list[float]:
    out: list[float] = []
    for r in results:
        out.extend(r.get(key, ()))
    return out


# ---- a participant in a ticket room ------------------------------------------------------


@dataclass
class Participant:
    """One socket in one room. Receives everything and records what the scenario asks for."""

    room: int
    ticket_id: str
    token: str
    role: str
    url: str
    ws: aiohttp.ClientWebSocketResponse | None = None
    reader: asyncio.Task[None] | None = None
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    frames: int = 0
    closed_code: int | None = None


def stamp(prefix: str) -> str:
    """A client_id carrying the send time: `<prefix>:<monotonic ns>`."""
    return f"{prefix}:{time.monotonic_ns()}"


def stamped_ms(client_id: str | None, now_ns: int) -> float | None:
    if not client_id:
        return None
    _, _, ns = client_id.rpartition(":")
    try:
        return (now_ns - int(ns)) / 1e6
    except ValueError:
        return None


async def connect_all(
    session: aiohttp.ClientSession,
    participants: list[Participant],
    on_frame: Callable[[Participant, dict[str, Any], int], None],
    *,
    concurrency: int = 32,
    timeout: float = 60,
    compress: int = 0,
) -> dict[str, Any]:
    """Open every participant's socket (at most `concurrency` handshakes at once) and start its
    reader. Returns counts and the connect rate."""
    gate = asyncio.Semaphore(concurrency)
    failures: list[str] = []

    async def open_one(p: Participant) -> None:
        async with gate:
            try:
                p.ws = await session.ws_connect(
                    p.url,
                    headers={"Authorization": f"Bearer {p.token}"},
                    autoping=True,
                    heartbeat=None,
                    max_msg_size=16 * 1024 * 1024,
                    compress=compress,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5),
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return
            p.reader = asyncio.create_task(_read(p, on_frame))
            await p.joined.wait()

    started = time.monotonic()
    async with asyncio.timeout(timeout):
        await asyncio.gather(*(open_one(p) for p in participants))
    elapsed = time.monotonic() - started
    return {
        "connected": sum(1 for p in participants if p.ws is not None and not p.ws.closed),
        "failed": len(failures),
        "first_failure": failures[0] if failures else "",
        "connect_s": elapsed,
    }


async def _read(p: Participant, on_frame: Callable[[Participant, dict[str, Any], int], None]) -> None:
    assert p.ws is not None
    try:
        async for msg in p.ws:
            now = time.monotonic_ns()
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            p.frames += 1
            frame = orjson.loads(msg.data)
            if frame.get("type") == "joined":
                p.joined.set()
            on_frame(p, frame, now)
    except (aiohttp.ClientError, OSError, asyncio.CancelledError):
        pass
    finally:
        p.closed_code = p.ws.close_code
        p.joined.set()


async def close_all(participants: list[Participant]) -> None:
    async def close_one(p: Participant) -> None:
        if p.ws is not None and not p.ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(p.ws.close(), 5)
        if p.reader is not None:
            p.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await p.reader

    gate = asyncio.Semaphore(256)

    async def gated(p: Participant) -> None:
        async with gate:
            await close_one(p)

    await asyncio.gather(*(gated(p) for p in participants))


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def worker_count(requested: int | None, default: int = 2) -> int:
    return max(1, requested or min(default, os.cpu_count() or 1))
