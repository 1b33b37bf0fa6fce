"""Brokers carry events between server instances. Both deliver to the local hub first.

- LocalBroker: one process, no Redis. publish() hands the event to the hub.
- RedisBroker: Redis pub/sub backplane. publish() hands the event to the local hub (so clients on
  this instance are always served, Redis or not), then queues it for Redis: one sender task
  pipelines whatever is queued (in order) to the other instances. A reader task receives other
  instances' events. When Redis goes away, sends still commit and reach local
  clients; the broker reconnects with backoff and then asks clients to resync, on this instance
  and (for the channels whose events it could not publish) on every other one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import orjson
import redis.asyncio as aioredis
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


def encode_envelope(origin: str, event: Event) -> bytes:
    # "o" first: orjson keeps key order, so an envelope starts with origin_prefix(origin).
    return dumps_bytes({"o": origin, "c": event.channel, "f": event.frame, "s": event.staff_only, "q": event.seq})


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
    return data["o"], Event(data["c"], data["f"], staff_only=data["s"], seq=data["q"]), data


class RedisBroker:
    def __init__(self, hub: Hub, url: str, prefix: str) -> None:
        self.hub = hub
        self.url = url
        self.prefix = prefix
        self.channel = f"{prefix}:events"
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
        """Send what is queued, in order, one pipeline (one round trip) per batch."""
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    if self._unsent_channels and self.healthy:
                        await self._announce_unsent()
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for _, payload in batch:
                            pipe.publish(self.channel, payload)
                        await pipe.execute()
                except (RedisError, OSError) as exc:
                    failed = {channel for channel, _ in batch} - self._unsent_channels
                    if failed:
                        log.warning(
                            "Redis publish failed (%s); %s served locally, other instances will resync",
                            type(exc).__name__,
                            ", ".join(sorted(failed)[:5]) + (" …" if len(failed) > 5 else ""),
                        )
                    self._unsent_channels.update(channel for channel, _ in batch)
        finally:
            self._sender = None

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
