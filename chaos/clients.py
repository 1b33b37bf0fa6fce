"""Customers and agents that follow docs/protocol.md to the letter, and remember what they saw.

A `Participant` joins one ticket's room, sends `message.send` frames with fresh client ids, keeps
every message until its `ack` arrives and resends it (same client id) after each reconnect, keeps
the largest seq it has seen (`joined.last_seq`, `message.created`, `ack`, `ai.completed`) and
reconnects with `?after_seq=` on any close and on `resync`, with exponential backoff and jitter.
When an instance does not answer it tries the other one, as a load balancer would.

Its `view` is every message it was shown, in arrival order (join snapshots, then frames): the
chaos run compares it with the database at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

# Errors a client cannot fix by sending again: the harness itself sent something wrong.
_REJECTED = {"validation_error", "forbidden", "not_found", "malformed_frame", "unknown_type"}
WORDS = ("order", "parcel", "invoice", "refund", "login", "password", "export", "sync", "notes", "device", "plan")


@dataclass
class Outgoing:
    client_id: str
    body: str
    internal: bool


@dataclass
class Stats:
    """What one participant observed that is not its view."""

    closes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # An ack whose message had not been shown on this socket yet (protocol.md: message.created
    # arrives just before its ack).
    early_acks: int = 0
    connects: int = 0
    pages: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    rejected: list[str] = field(default_factory=list)


class Participant:
    def __init__(
        self,
        *,
        name: str,
        role: str,
        user_id: str,
        token: str,
        ticket_id: uuid.UUID,
        instances: list[str],
        home: int,
        rng: random.Random,
        session: aiohttp.ClientSession,
        send_interval: tuple[float, float] = (0.3, 0.9),
        body_chars: tuple[int, int] = (20, 200),
        internal_share: float = 0.0,
        question: bool = False,
        heartbeat: float | None = 3.0,
    ) -> None:
        self.name = name
        self.role = role
        self.user_id = user_id
        self.token = token
        self.ticket_id = ticket_id
        self.instances = instances
        self.home = home
        self.rng = rng
        self.session = session
        self.send_interval = send_interval
        self.body_chars = body_chars
        self.internal_share = internal_share
        self.question = question
        self.heartbeat = heartbeat
        self.view: list[int] = []
        self.seen: set[int] = set()
        self.last_seq: int | None = None
        self.pending: dict[str, Outgoing] = {}
        self.acked: dict[str, int] = {}
        self.sent_ids: list[str] = []
        self.stats = Stats()
        self.sending = True
        self.reading = asyncio.Event()
        self.reading.set()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.instance_index = home
        # AI replies this socket saw start and not end yet.
        self.streaming: set[str] = set()
        self.last_frame_at = time.monotonic()
        # Seqs read from REST pages after a resume with has_more (see _page_rest).
        self.paged: set[int] = set()
        self.ai_started = 0
        self._stop = False
        self._task: asyncio.Task[None] | None = None
        self._counter = 0
        self._tasks: set[asyncio.Future[None]] = set()

    # ---- control -----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"participant-{self.name}")

    async def stop(self) -> None:
        self._stop = True
        self.reading.set()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def crashed(self) -> str | None:
        """Why this client's loop ended before stop() (a harness bug), if it did."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        exc = task.exception()
        return None if exc is None else f"{type(exc).__name__}: {exc}"

    def abort_transport(self) -> bool:
        """Cut the TCP connection without a close frame, as a phone losing its network does."""
        ws = self.ws
        if ws is None or ws.closed:
            return False
        conn = getattr(ws, "_conn", None)
        transport = getattr(conn, "transport", None)
        if transport is None:
            return False
        transport.abort()
        return True

    def describe_connection(self) -> str:
        where = "disconnected" if self.connected_to is None else f"connected to instance {self.connected_to}"
        return f"{where}, last frame {time.monotonic() - self.last_frame_at:.1f} s ago, resume at {self.last_seq}"

    @property
    def connected_to(self) -> int | None:
        return self.instance_index if self.ws is not None and not self.ws.closed else None

    # ---- the connection loop -----------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stop:
            base = self.instances[self.instance_index]
            url = f"{base}/tickets/{self.ticket_id}/ws"
            params = {} if self.last_seq is None else {"after_seq": str(self.last_seq)}
            joined = False
            try:
                async with asyncio.timeout(5):
                    ws = await self.session.ws_connect(
                        url,
                        params=params,
                        headers={"Authorization": f"Bearer {self.token}"},
                        heartbeat=self.heartbeat,
                        autoping=True,
                        max_msg_size=0,
                    )
            except aiohttp.WSServerHandshakeError as exc:
                self.stats.refused[exc.status] += 1
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                self.stats.closes[f"connect:{type(exc).__name__}"] += 1
                # This instance does not answer: the load balancer sends us to the other one.
                self.instance_index = (self.instance_index + 1) % len(self.instances)
            else:
                self.ws = ws
                self.stats.connects += 1
                try:
                    joined = await self._session(ws)
                except (aiohttp.ClientError, OSError, RuntimeError, ValueError) as exc:
                    # aiohttp answers a ping inside receive(): on a transport the server just cut,
                    # that write raises. A lost connection, like any other: reconnect and resume.
                    self.stats.closes[f"client:{type(exc).__name__}"] += 1
                finally:
                    self.ws = None
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ws.close(), 1)
            if self._stop:
                return
            if joined:
                backoff = 0.2
            # Backoff with jitter (protocol.md: reconnect with exponential backoff).
            await asyncio.sleep(backoff * (0.5 + self.rng.random()))
            backoff = min(backoff * 2, 3.0)

    async def _session(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        """One connection: read the snapshot, resend what is unacked, then read and send."""
        joined = False
        sender: asyncio.Task[None] | None = None
        try:
            while True:
                if not self.reading.is_set():
                    await self.reading.wait()
                try:
                    # Silence for this long means the instance is gone or frozen (its heartbeat
                    # pings every 6 s): give up and reconnect, as a client's own heartbeat would.
                    msg = await ws.receive(timeout=10)
                except TimeoutError:
                    self.stats.closes["client_timeout"] += 1
                    return joined
                if msg.type != aiohttp.WSMsgType.TEXT:
                    code = ws.close_code if ws.close_code is not None else 1006
                    self.stats.closes[str(code)] += 1
                    return joined
                frame = msg.json()
                kind = frame.get("type")
                self.last_frame_at = time.monotonic()
                if kind == "joined":
                    joined = True
                    self._on_joined(frame)
                    if frame.get("has_more") and frame.get("resumed"):
                        await self._page_rest(self.instances[self.instance_index])
                    await self._resend(ws)
                    sender = asyncio.create_task(self._send_loop(ws))
                elif kind == "message.created":
                    self._show(frame["message"])
                elif kind == "ack":
                    self._on_ack(frame)
                elif kind == "ai.started":
                    self.ai_started += 1
                    self.streaming.add(frame["reply_id"])
                elif kind == "ai.completed":
                    self.streaming.discard(frame["reply_id"])
                    if frame.get("message") is not None:
                        self._show(frame["message"])
                elif kind == "ai.failed":
                    self.streaming.discard(frame["reply_id"])
                    if frame.get("partial") is not None:
                        self._show(frame["partial"])
                elif kind == "ai.cancelled":
                    self.streaming.discard(frame["reply_id"])
                elif kind == "resync":
                    self.stats.closes["resync"] += 1
                    return joined
                elif kind == "error":
                    self._on_error(ws, frame)
        finally:
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender

    def _on_joined(self, frame: dict[str, Any]) -> None:
        self.streaming = {s["reply_id"] for s in frame.get("streams") or []}
        for message in frame["messages"]:
            self._show(message)
        self._advance(int(frame["last_seq"]))

    async def _page_rest(self, base: str) -> None:
        """More than the resume snapshot's 500 were missed: page the rest over REST (protocol.md)
        before reading on; live frames that repeat what a page held are then skipped."""
        http = base.replace("ws://", "http://", 1)
        while True:
            async with self.session.get(
                f"{http}/tickets/{self.ticket_id}/messages",
                params={"after_seq": str(self.last_seq or 0), "limit": "100"},
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                if resp.status != 200:
                    self.stats.refused[resp.status] += 1
                    return
                page = await resp.json()
            for message in page["messages"]:
                self._show(message)
                self.paged.add(int(message["seq"]))
            self.stats.pages += 1
            if not page["has_more"] or not page["messages"]:
                return

    def _show(self, message: dict[str, Any]) -> None:
        seq = int(message["seq"])
        if seq in self.paged:
            # Already taken from a REST page; a live frame may repeat it once.
            self.paged.discard(seq)
            if seq in self.seen:
                return
        self.view.append(seq)
        self.seen.add(seq)
        self._advance(seq)

    def _advance(self, seq: int) -> None:
        if self.last_seq is None or seq > self.last_seq:
            self.last_seq = seq

    def _on_ack(self, frame: dict[str, Any]) -> None:
        seq = int(frame["message"]["seq"])
        if seq not in self.seen:
            self.stats.early_acks += 1
        client_id = frame.get("client_id")
        if client_id in self.pending:
            del self.pending[client_id]
            self.acked[client_id] = seq
        # protocol.md: the ack's seq is a resume position too.
        self._advance(seq)

    def _on_error(self, ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> None:
        code = str(frame.get("code"))
        self.stats.errors[code] += 1
        ref = frame.get("ref")
        if ref not in self.pending:
            return
        if code in _REJECTED:
            self.stats.rejected.append(f"{ref}: {code} {frame.get('message')}")
            del self.pending[ref]
            return
        # Anything else (rate_limited, an outage): send it again after the delay asked for.
        delay = frame.get("retry_after")
        asyncio.get_running_loop().call_later(
            float(delay) if isinstance(delay, int | float) else 1.0, self._retry, ws, ref
        )

    def _retry(self, ws: aiohttp.ClientWebSocketResponse, client_id: str) -> None:
        item = self.pending.get(client_id)
        if item is not None and ws is self.ws and not ws.closed:
            task = asyncio.ensure_future(self._send_frame(ws, item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _resend(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        for item in list(self.pending.values()):
            await self._send_frame(ws, item)

    async def _send_frame(self, ws: aiohttp.ClientWebSocketResponse, item: Outgoing) -> None:
        frame: dict[str, Any] = {"type": "message.send", "client_id": item.client_id, "body": item.body}
        if item.internal:
            frame["internal"] = True
        with contextlib.suppress(Exception):
            await ws.send_json(frame)

    async def _send_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        low, high = self.send_interval
        while not ws.closed:
            await asyncio.sleep(self.rng.uniform(low, high))
            if not self.sending or ws.closed:
                continue
            item = self._next_message()
            self.pending[item.client_id] = item
            self.sent_ids.append(item.client_id)
            await self._send_frame(ws, item)

    def _next_message(self) -> Outgoing:
        self._counter += 1
        client_id = f"{self.name}-{self._counter}-{uuid.UUID(int=self.rng.getrandbits(128)).hex[:12]}"
        if self.question:
            topic = self.rng.choice(WORDS)
            body = f"Question {self._counter} from {self.name}: how does the {topic} feature work?"
        else:
            size = self.rng.randint(*self.body_chars)
            words: list[str] = []
            length = 0
            while length < size:
                words.append(self.rng.choice(WORDS))
                length += len(words[-1]) + 1
            body = f"{self.name} #{self._counter} " + " ".join(words)
        internal = self.role == "agent" and self.rng.random() < self.internal_share
        return Outgoing(client_id, body[:10_000], internal)


async def fresh_join(
    session: aiohttp.ClientSession, base: str, ticket_id: uuid.UUID, token: str
) -> dict[str, Any] | None:
    """The `joined` frame a new socket gets (None when the instance does not answer)."""
    try:
        async with asyncio.timeout(5):
            ws = await session.ws_connect(
                f"{base}/tickets/{ticket_id}/ws", headers={"Authorization": f"Bearer {token}"}, max_msg_size=0
            )
            try:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return None
                frame: dict[str, Any] = msg.json()
                return frame
            finally:
                await ws.close()
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None
