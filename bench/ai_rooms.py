"""What the AI scenarios share: the timed fake Groq process, rooms of a customer and agents whose
customer asks and the AI answers, and the join of what the fake sent with what each participant
received (token lag, frames per token, time to first delta).

How a reply is followed: the customer's message carries a marker (`bench-mark:<id>`) and its ack
gives the message's seq; `ai.started` names the reply (`reply_id`) and the seq it answers
(`in_reply_to`); `ai.delta` frames carry character offsets. The fake records, per marker, when
each token was written. Token k of the reply ends at a known character offset (the fake's text is
split into tokens the same way every time), so the delta that completes token k at a participant
gives that participant's lag for token k.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import subprocess
import time
import urllib.request
from itertools import accumulate
from typing import Any

import aiohttp
import orjson
import psutil

from chatserver.ai.fake_groq import filler_text
from chatserver.ai.stream import split_tokens

from .common import HOST, PYTHON, ROOT, free_port, stop_process, wait_for_port
from .workers import Participant, Worker, close_all, connect_all, raise_fd_limit

END_TYPES = ("ai.completed", "ai.failed", "ai.cancelled")
QUESTION = "My parcel has not arrived yet and the tracking page shows nothing, can you check?"


def ai_server_env(fake_url: str, delta_window_ms: int | None) -> dict[str, Any]:
    """The server's AI settings for a benchmark: the fake Groq, and budgets and per-user limits
    opened up (a benchmark room asks hundreds of questions; those limits are policy, not load)."""
    return {
        "GROQ_API_KEY": "bench-key",
        "GROQ_BASE_URL": fake_url,
        "AI_DEFAULT_ENABLED": "true",
        "AI_MAX_REPLIES_PER_TICKET": 100_000,
        "AI_MAX_TOKENS_PER_TICKET": 100_000_000,
        "AI_USER_RATE_LIMIT": 100_000,
        # Every benchmark client posts from 127.0.0.1, and one instance serves them all.
        "AI_ADDRESS_RATE_LIMIT": 1_000_000,
        "AI_INSTANCE_RATE_LIMIT": 100_000_000,
        "AI_DELTA_WINDOW_MS": delta_window_ms,
        "WS_SEND_RATE": 1000,
        "WS_SEND_BURST": 1000,
    }


class FakeGroqProcess:
    """bench.fake_groq_timed as a child process."""

    def __init__(self, tokens_per_second: float, ttft_ms: float, tokens: int) -> None:
        self.port = free_port()
        self.args = [
            "--port",
            str(self.port),
            "--tokens-per-second",
            str(tokens_per_second),
            "--ttft-ms",
            str(ttft_ms),
            "--tokens",
            str(tokens),
        ]
        self.tokens = tokens
        self.ttft_ms = ttft_ms
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> FakeGroqProcess:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "bench.fake_groq_timed", *self.args], cwd=ROOT, stdout=subprocess.DEVNULL
        )
        wait_for_port(self.port, proc=self.proc)
        self.ps = psutil.Process(self.proc.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc, 5)

    def timings(self) -> dict[str, dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/bench/timings", timeout=30) as resp:
            data: dict[str, dict[str, Any]] = orjson.loads(resp.read())
        return data


class AiRoomWorker(Worker):
    """Rooms of one customer and some agents. The customer asks; everyone's AI frames are kept."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.session: aiohttp.ClientSession | None = None
        self.customers: dict[int, Participant] = {}
        self.everyone: list[Participant] = []
        self.tag = secrets.token_hex(2)
        self.sends: list[tuple[int, str, int, int | None]] = []
        self.acks: dict[str, int] = {}
        self.ack_waiters: dict[str, asyncio.Future[int]] = {}
        self.reply_ends: dict[tuple[int, int], asyncio.Future[str]] = {}
        self.receipts: dict[tuple[int, str], dict[str, Any]] = {}
        self.errors: dict[str, int] = {}

    async def setup(self, params: dict[str, Any]) -> dict[str, Any]:
        raise_fd_limit()
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        for room in self.config["rooms"]:
            token, url = room["customer"]
            cust = Participant(room["room"], room["ticket"], token, "customer", url)
            self.customers[room["room"]] = cust
            self.everyone.append(cust)
            for i, (token, url) in enumerate(room["agents"]):
                self.everyone.append(Participant(room["room"], room["ticket"], token, f"agent{i}", url))
        return await connect_all(self.session, self.everyone, self.on_frame)

    def on_frame(self, p: Participant, frame: dict[str, Any], now: int) -> None:
        kind = frame.get("type", "")
        if kind == "ack" and p.role == "customer":
            client_id = frame["client_id"]
            seq = frame["message"]["seq"]
            self.acks[client_id] = seq
            waiter = self.ack_waiters.pop(client_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(seq)
        elif kind == "ai.started":
            self.receipts[(id(p), frame["reply_id"])] = {
                "room": p.room,
                "role": p.role,
                "in_reply_to": frame.get("in_reply_to"),
                "started_ns": now,
                "deltas": [],
                "end": None,
            }
        elif kind == "ai.delta":
            rec = self.receipts.get((id(p), frame["reply_id"]))
            if rec is not None:
                rec["deltas"].append((now, frame["offset"], len(frame["text"])))
        elif kind in END_TYPES:
            rec = self.receipts.get((id(p), frame["reply_id"]))
            if rec is not None:
                rec["end"] = kind
                if p.role == "customer":
                    end = self.reply_ends.get((p.room, rec["in_reply_to"]))
                    if end is not None and not end.done():
                        end.set_result(kind)
        elif kind == "error":
            code = str(frame.get("code"))
            self.errors[code] = self.errors.get(code, 0) + 1

    async def ask(self, room: int, n: int) -> int | None:
        """Send one question; returns its seq (None when no ack came)."""
        cust = self.customers[room]
        assert cust.ws is not None
        marker = f"{self.tag}r{room}n{n}"
        client_id = f"{marker}:{time.monotonic_ns()}"
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.ack_waiters[client_id] = waiter
        send_ns = time.monotonic_ns()
        body = f"{QUESTION} bench-mark:{marker}"
        await cust.ws.send_str(orjson.dumps({"type": "message.send", "client_id": client_id, "body": body}).decode())
        seq: int | None = None
        with contextlib.suppress(TimeoutError):
            seq = await asyncio.wait_for(waiter, 10)
        self.sends.append((room, marker, send_ns, seq))
        return seq

    async def ask_and_wait(self, room: int, n: int, timeout: float = 30) -> None:
        seq = await self.ask(room, n)
        if seq is None:
            return
        end = self.reply_ends.setdefault((room, seq), asyncio.get_running_loop().create_future())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(end, timeout)

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        self.sends, self.receipts, self.errors, self.reply_ends = [], {}, {}, {}
        mode = params["mode"]
        deadline = time.monotonic() + params["duration"]
        rooms = list(self.customers)
        if mode == "continuous":
            # Each room asks its next question as soon as the last reply has ended.
            async def loop(room: int) -> None:
                await asyncio.sleep(random.uniform(0, params.get("stagger", 0.5)))
                n = 0
                while time.monotonic() < deadline:
                    await self.ask_and_wait(room, n)
                    n += 1

            await asyncio.gather(*(loop(r) for r in rooms))
        elif mode == "periodic":
            # Each room asks every `interval` seconds, at its own random phase.
            interval = params["interval"]

            async def tick(room: int) -> None:
                await asyncio.sleep(random.uniform(0, interval))
                n = 0
                tasks = []
                while time.monotonic() < deadline:
                    tasks.append(asyncio.create_task(self.ask_and_wait(room, n)))
                    n += 1
                    await asyncio.sleep(interval)
                await asyncio.gather(*tasks)

            await asyncio.gather(*(tick(r) for r in rooms))
        elif mode == "burst":
            # Every room asks at the same moment, `rounds` times.
            for n in range(params.get("rounds", 1)):
                await asyncio.gather(*(self.ask_and_wait(r, n) for r in rooms))
                await asyncio.sleep(params.get("gap", 1.0))
        await asyncio.sleep(0.5)  # the other participants' last frames
        return {
            "sends": self.sends,
            "receipts": list(self.receipts.values()),
            "errors": self.errors,
            "open_sockets": sum(1 for p in self.everyone if p.ws is not None and not p.ws.closed),
        }

    async def stop(self) -> None:
        await close_all(self.everyone)
        if self.session is not None:
            await self.session.close()


# ---- the join -----------------------------------------------------------------------------


def token_ends(tokens: int) -> list[int]:
    """Character offset at which each token of the fake's reply ends."""
    return list(accumulate(len(t) for t in split_tokens(filler_text(tokens))))


def emit_times(writes: list[list[int]], tokens: int) -> list[int]:
    """The monotonic ns at which each token left the fake."""
    out: list[int] = []
    for t_ns, count in writes:
        out.extend([t_ns] * count)
    return out[:tokens]


def analyse(
    results: list[dict[str, Any]], timings: dict[str, dict[str, Any]], tokens: int, window_start_ns: int = 0
) -> dict[str, Any]:
    """Token lags, frames per token, first-delta times; by participant role."""
    ends = token_ends(tokens)
    marker_of: dict[tuple[int, int], tuple[str, int]] = {}
    for r in results:
        for room, marker, send_ns, seq in r["sends"]:
            if seq is not None:
                marker_of[(room, seq)] = (marker, send_ns)
    lags: dict[str, list[float]] = {}
    first: dict[str, list[float]] = {}
    overhead: dict[str, list[float]] = {}
    before: list[float] = []
    after: list[float] = []
    frames = tokens_seen = replies = incomplete = 0
    ends_seen: dict[str, int] = {}
    for r in results:
        for rec in r["receipts"]:
            ends_seen[str(rec["end"])] = ends_seen.get(str(rec["end"]), 0) + 1
            key = marker_of.get((rec["room"], rec["in_reply_to"]))
            if key is None:
                continue
            marker, send_ns = key
            fake = timings.get(marker)
            if fake is None or send_ns < window_start_ns or not rec["deltas"]:
                continue
            emitted = emit_times(fake["writes"], tokens)
            if len(emitted) < tokens or rec["end"] != "ai.completed":
                incomplete += 1
                continue
            replies += 1
            role = rec["role"]
            k = 0
            for t_ns, offset, length in rec["deltas"]:
                frames += 1
                upto = offset + length
                while k < len(ends) and ends[k] <= upto:
                    lags.setdefault(role, []).append((t_ns - emitted[k]) / 1e6)
                    k += 1
            tokens_seen += k
            first_ns = rec["deltas"][0][0]
            first.setdefault(role, []).append((first_ns - send_ns) / 1e6)
            # The fake's own time to first token, as it measured it, taken out.
            fake_ttft_ns = emitted[0] - fake["arrived"]
            overhead.setdefault(role, []).append((first_ns - send_ns - fake_ttft_ns) / 1e6)
            # The two halves of that overhead: before the request reached the fake, and from the
            # fake's first token to this participant's first delta.
            before.append((fake["arrived"] - send_ns) / 1e6)
            after.append((first_ns - emitted[0]) / 1e6)
    return {
        "lags": lags,
        "first": first,
        "overhead": overhead,
        "send_to_groq": before,
        "first_token_to_delta": after,
        "frames": frames,
        "tokens_seen": tokens_seen,
        "replies_seen": replies,
        "incomplete": incomplete,
        "ends": ends_seen,
    }


def room_plan(customers: list[Any], agents: list[Any], layouts: list[list[str]]) -> list[dict[str, Any]]:
    """One room per customer; room i uses layouts[i % len(layouts)]: [customer's server, agent
    0's, agent 1's, ...]."""
    plan = []
    for i, cust in enumerate(customers):
        ticket = str(cust.tickets[0])
        customer_url, *agent_urls = layouts[i % len(layouts)]
        plan.append(
            {
                "room": i,
                "ticket": ticket,
                "customer": (cust.token, f"{customer_url}/tickets/{ticket}/ws"),
                "agents": [(agents[j].token, f"{base}/tickets/{ticket}/ws") for j, base in enumerate(agent_urls)],
            }
        )
    return plan
