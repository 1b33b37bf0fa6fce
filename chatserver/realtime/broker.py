"""Brokers carry events between server instances. Both deliver to the local hub first.

- LocalBroker: one process, no Redis. publish() hands the event to the hub.
- RedisBroker: Redis pub/sub backplane. publish() hands the event to the local hub (so clients on
  this instance are always served, Redis or not), then queues it for Redis: one sender task
  writes whatever is queued, in order, on one dedicated connection, without waiting for the
  replies to what it sent before (a task counts them off as they come). A reader task receives
  other instances' events. When Redis goes away, sends still commit and reach local
  clients; the broker reconnects with backoff and then asks clients to resync, on this instance
  and (for the channels whose events it could not publish) on every other one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from ..jsonutil import dumps_bytes
from .events import Event
from .hub import Hub

log = logging.getLogger(__name__)

# Reconnect backoff: quick first retries, capped so a long outage costs little.
BACKOFF_START = 0.2
BACKOFF_MAX = 5.0
# Events waiting for Redis (it is slow or away) beyond this are dropped for the other instances
# and their rooms resynced, as when a publish fails: memory stays bounded through an outage.
OUTBOX_LIMIT = 100_000
# How long Redis may take to answer a PUBLISH before the publishing connection counts as lost.
REPLY_TIMEOUT = 5.0


class LocalBroker:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.instance_id = uuid.uuid4().hex

    async def publish(self, event: Event) -> None:
        self.hub.deliver(event)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


def events_channel(prefix: str) -> str:
    """The one Redis pub/sub channel every instance of a deployment shares."""
    return f"{prefix}:events"


async def publish_once(url: str, prefix: str, event: Event) -> None:
    """Publish one event to every running instance from a process without a broker (the CLI)."""
    redis = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        await redis.publish(events_channel(prefix), encode_envelope(uuid.uuid4().hex, event))
    finally:
        await redis.aclose()


def encode_envelope(origin: str, event: Event) -> bytes:
    # "o" first: orjson keeps key order, so an envelope starts with origin_prefix(origin).
    envelope = {"o": origin, "c": event.channel, "f": event.frame, "s": event.staff_only, "q": event.seq}
    if event.public_frame is not None:
        envelope["p"] = event.public_frame
    return dumps_bytes(envelope)


def encode_resync(origin: str, channels: list[str]) -> bytes:
    """Ask the other instances to resync these channels (events for them were not published)."""
    return dumps_bytes({"o": origin, "control": "resync", "channels": channels})


def origin_prefix(origin: str) -> bytes:
    """How every envelope (events and control messages) from `origin` begins."""
    return b'{"o":' + orjson.dumps(origin)


def decode_envelope(raw: bytes) -> tuple[str, Event | None, dict[str, Any]]:
    data = orjson.loads(raw)
    if "control" in data:
        return data["o"], None, data
    return data["o"], Event(data["c"], data["f"], staff_only=data["s"], seq=data["q"], public_frame=data.get("p")), data


class RedisBroker:
    def __init__(self, hub: Hub, url: str, prefix: str, *, reply_timeout: float = REPLY_TIMEOUT) -> None:
        self.hub = hub
        self.reply_timeout = reply_timeout
        self.url = url
        self.prefix = prefix
        self.channel = events_channel(prefix)
        self.instance_id = uuid.uuid4().hex
        # Every instance hears its own events back from the shared channel: they are recognised
        # by their first bytes and dropped without being parsed.
        self._own_prefix = origin_prefix(self.instance_id)
        self.redis: aioredis.Redis = aioredis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=10
        )
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        # Channels whose events other instances may have missed while we could not publish.
        self._unsent_channels: set[str] = set()
        self.healthy = False
        # (channel, envelope) waiting for the sender task. Publishing does not wait for Redis:
        # a round trip per event cost more CPU than the rest of a message's path, and held each
        # ack back by it (docs/performance.md). One sender, FIFO, so order is kept.
        self._outbox: list[tuple[str, bytes]] = []
        self._sender: asyncio.Task[None] | None = None
        # The sender's own connection (one connection keeps the order), and per batch written on
        # it: [replies still to come, its channels]. The sender does not wait for a batch's
        # replies before writing the next: on a busy event loop each wait is a turn of the loop,
        # and events queued behind it wait too (docs/performance.md, two instances).
        self._pub_conn: AbstractConnection | None = None
        self._pub_replies: asyncio.Task[None] | None = None
        self._in_flight: deque[list[Any]] = deque()
        self._replies_due = asyncio.Event()

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_loop(), name="redis-broker-reader")
        # Wait briefly for the first subscription so early events are not missed; if Redis is
        # down at start, run anyway (degraded) and keep retrying in the background.
        try:
            async with asyncio.timeout(5):
                await self._connected.wait()
        except TimeoutError:
            log.error("Redis at %s is not reachable; running on local delivery until it is", self.url)

    async def close(self) -> None:
        if self._sender is not None:
            # Whatever is queued still goes out (bounded by the client's socket timeout).
            await asyncio.wait({self._sender}, timeout=10)
        if self._pub_replies is not None:
            if self._in_flight:  # let Redis confirm what was written, briefly
                await asyncio.wait({self._pub_replies}, timeout=2)
            self._pub_replies.cancel()
            await asyncio.wait({self._pub_replies})
        if self._pub_conn is not None:
            await self._pub_conn.disconnect()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass
        await self.redis.aclose()

    async def publish(self, event: Event) -> None:
        self.hub.deliver(event)
        if len(self._outbox) >= OUTBOX_LIMIT:
            self._unsent_channels.add(event.channel)
            return
        self._outbox.append((event.channel, encode_envelope(self.instance_id, event)))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_outbox(), name="redis-broker-sender")

    async def _send_outbox(self) -> None:
        """Tell the other instances which rooms to resync if a publish failed, then write what is
        queued, in order, one batch per write; `_count_replies` counts the replies meanwhile."""
        try:
            while True:
                if self._unsent_channels and self.healthy:
                    try:
                        await self._announce_unsent()
                    except (RedisError, OSError) as exc:
                        log.warning("could not ask other instances to resync (%s)", type(exc).__name__)
                if not self._outbox:
                    return
                batch, self._outbox = self._outbox, []
                channels = {channel for channel, _ in batch}
                try:
                    conn = await self._publishing_connection()
                    commands = conn.pack_commands([("PUBLISH", self.channel, payload) for _, payload in batch])
                    # Counted before the write: a reply may be read before the write returns.
                    self._in_flight.append([len(batch), channels])
                    self._replies_due.set()
                    await conn.send_packed_command(commands, check_health=False)
                except (RedisError, OSError) as exc:
                    await self._publishing_failed(exc, channels)
        finally:
            self._sender = None

    async def _publishing_connection(self) -> AbstractConnection:
        if self._pub_conn is None:
            # A connection of its own, with the client's settings (address, auth) but no socket
            # timeout: with one, redis-py wraps every write in asyncio.wait_for, a task per batch
            # (~7% of a busy publisher's CPU). A Redis that stops answering is still noticed:
            # the replies are read with a timeout (reply_timeout), and a failed read closes the connection,
            # which ends a write stuck waiting for Redis to read.
            pool = self.redis.connection_pool
            conn = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
            await conn.connect()
            self._pub_conn = conn
            self._pub_replies = asyncio.get_running_loop().create_task(
                self._count_replies(conn), name="redis-broker-replies"
            )
        return self._pub_conn

    async def _count_replies(self, conn: AbstractConnection) -> None:
        """Read one reply per PUBLISH written, oldest batch first."""
        try:
            while True:
                while not self._in_flight:
                    self._replies_due.clear()
                    await self._replies_due.wait()
                # With a timeout of its own, redis-py answers None when it runs out (a PUBLISH
                # always answers a number).
                if await conn.read_response(timeout=self.reply_timeout) is None:
                    raise TimeoutError(f"Redis did not answer a PUBLISH within {self.reply_timeout:g}s")
                oldest = self._in_flight[0]
                oldest[0] -= 1
                if oldest[0] == 0:
                    self._in_flight.popleft()
        except Exception as exc:  # any failure ends this connection
            if not isinstance(exc, RedisError | OSError):
                log.exception("counting Redis publish replies failed")
            if self._pub_conn is conn:
                await self._publishing_failed(exc, set())
                if self._unsent_channels and self._sender is None:
                    # Tell the other instances now, not at the next publish.
                    self._sender = asyncio.get_running_loop().create_task(
                        self._send_outbox(), name="redis-broker-sender"
                    )

    async def _publishing_failed(self, exc: BaseException, channels: set[str]) -> None:
        """Events of these channels, and of every batch not yet confirmed, may not have reached
        the other instances: they resync those rooms. The next batch opens a new connection."""
        for _, batch_channels in self._in_flight:
            channels |= batch_channels
        self._in_flight.clear()
        failed = channels - self._unsent_channels
        if failed:
            log.warning(
                "Redis publish failed (%s); %s served locally, other instances will resync",
                type(exc).__name__,
                ", ".join(sorted(failed)[:5]) + (" …" if len(failed) > 5 else ""),
            )
        self._unsent_channels.update(channels)
        conn, self._pub_conn = self._pub_conn, None
        replies, self._pub_replies = self._pub_replies, None
        if replies is not None and replies is not asyncio.current_task():
            replies.cancel()
        if conn is not None:
            with contextlib.suppress(Exception):  # it is usually closed already
                await conn.disconnect(nowait=True)

    async def _announce_unsent(self) -> None:
        channels = sorted(self._unsent_channels)
        await self.redis.publish(self.channel, encode_resync(self.instance_id, channels))
        self._unsent_channels.difference_update(channels)
        log.info("asked other instances to resync %d channel(s)", len(channels))

    async def _read_loop(self) -> None:
        backoff = BACKOFF_START
        first = True
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.healthy = True
                self._connected.set()
                if not first:
                    log.info("Redis backplane reconnected; asking local clients to resync")
                    # Events from other instances may have been missed meanwhile.
                    self.hub.resync(None, "backplane_reconnected")
                    if self._unsent_channels:
                        await self._announce_unsent()
                first = False
                backoff = BACKOFF_START
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.healthy:
                    log.error("Redis backplane lost (%s); retrying, local delivery continues", exc)
                self.healthy = False
                first = False
            finally:
                try:
                    await pubsub.aclose()
                except (RedisError, OSError):
                    pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _on_message(self, raw: bytes) -> None:
        if raw.startswith(self._own_prefix):
            return  # already delivered locally when published
        try:
            origin, event, data = decode_envelope(raw)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignoring a malformed backplane message")
            return
        if origin == self.instance_id:
            return  # already delivered locally when published
        if event is None:
            if data.get("control") == "resync":
                self.hub.resync(list(data.get("channels", [])), "backplane_gap")
            return
        self.hub.deliver(event)
