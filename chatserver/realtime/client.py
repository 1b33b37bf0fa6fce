"""One WebSocket connection: a bounded outgoing queue drained by one writer task.

Publishing into a connection never awaits the socket, so one slow client cannot stall a room.
A client whose queue overflows is closed with CLOSE_SLOW_CONSUMER and resumes from its last seq.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from aiohttp import WSCloseCode, web

from ..jsonutil import dumps
from ..security import Identity
from .events import CLOSE_SLOW_CONSUMER

log = logging.getLogger(__name__)

# Frames a connection may have waiting before it counts as a slow consumer. An AI stream at
# ~20 coalesced frames/s plus chat traffic stays far below this; a stalled peer reaches it.
DEFAULT_QUEUE_LIMIT = 512


class Connection:
    # Slots, a list and a bare future rather than a __dict__, a deque and an asyncio.Event: an
    # idle socket costs ~1.5 KiB less (docs/performance.md).
    __slots__ = (
        "_queue",
        "_snapshot_seq",
        "_transport",
        "_wakeup",
        "_writer",
        "closing",
        "id",
        "identity",
        "last_seen",
        "queue_limit",
        "user",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        identity: Identity,
        user: dict[str, Any],
        *,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        transport: asyncio.Transport | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.ws = ws
        # The request's transport, to cut off a peer that stopped answering (heartbeat.py).
        self._transport = transport
        # Event-loop time of the last frame received (pongs included).
        self.last_seen = asyncio.get_running_loop().time()
        self.identity = identity
        self.user = user
        self.queue_limit = queue_limit
        # (seq or None, encoded frame). Message frames carry their seq so that frames already
        # in the join snapshot can be skipped when the writer starts. Short (a few frames) in
        # practice, bounded by queue_limit, so list.pop(0) costs nothing worth a deque's 624 bytes.
        self._queue: list[tuple[int | None, str]] = []
        # Set while the writer waits for frames; enqueue() resolves it.
        self._wakeup: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._snapshot_seq = 0
        self.closing = False

    @property
    def is_staff(self) -> bool:
        return self.identity.is_staff

    def seen(self) -> None:
        """The peer sent something: it is alive."""
        self.last_seen = asyncio.get_running_loop().time()

    async def ping(self) -> None:
        """Send a WebSocket ping (the heartbeat); a socket already gone is not an error here."""
        try:
            await self.ws.ping()
        except (ConnectionResetError, RuntimeError):
            pass

    def abort(self) -> None:
        """Cut the connection without a closing handshake (the peer is not answering): the
        reader loop ends and cleans up as for any lost connection."""
        self.closing = True
        self._queue.clear()
        self._wake()
        if self._transport is not None:
            self._transport.abort()

    def enqueue(self, data: str, seq: int | None = None) -> None:
        """Queue an encoded frame. Never blocks; overflow closes the connection."""
        if self.closing:
            return
        if len(self._queue) >= self.queue_limit:
            log.warning(
                "closing slow consumer %s (user %s): %d frames queued", self.id, self.identity.user_id, len(self._queue)
            )
            self.close_soon(CLOSE_SLOW_CONSUMER, "slow consumer: reconnect and resume")
            return
        self._queue.append((seq, data))
        self._wake()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def send_frame(self, frame: dict[str, Any]) -> None:
        self.enqueue(dumps(frame))

    def start(self, first_frame: dict[str, Any], snapshot_seq: int) -> None:
        """Send `first_frame` (the join snapshot), then everything queued since registration
        except message frames the snapshot already holds."""
        self._snapshot_seq = snapshot_seq
        self._queue.insert(0, (None, dumps(first_frame)))
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.id}")

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while self._queue:
                    seq, data = self._queue.pop(0)
                    if seq is not None and seq <= self._snapshot_seq:
                        continue
                    await self.ws.send_str(data)
                    # Not kept while the socket idles: the join snapshot can be tens of KiB.
                    del data
                if self.closing:
                    return
                self._wakeup = loop.create_future()
                await self._wakeup
                self._wakeup = None
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            # The peer went away (or we are shutting down): the reader loop cleans up.
            return
        except Exception:
            log.exception("websocket writer failed for %s", self.id)

    def close_soon(self, code: int, message: str) -> None:
        """Close from synchronous code (the hub's fan-out): the close runs as its own task."""
        if self.closing:
            return
        self.closing = True
        self._queue.clear()
        self._wake()
        asyncio.get_running_loop().create_task(self._close(code, message))

    async def _close(self, code: int, message: str) -> None:
        try:
            await self.ws.close(code=code, message=message.encode())
        except Exception:  # the socket may already be gone; closing is best effort
            log.debug("close of %s failed", self.id, exc_info=True)

    async def flush_and_close(
        self, code: int = WSCloseCode.GOING_AWAY, message: str = "server shutdown", drain_seconds: float = 2.0
    ) -> None:
        """Let the writer drain what is queued (for at most `drain_seconds`), then close."""
        self.closing = True
        self._wake()
        if self._writer is not None:
            try:
                async with asyncio.timeout(drain_seconds):
                    await asyncio.shield(self._writer)
            except (TimeoutError, asyncio.CancelledError):
                pass
        await self._close(code, message)

    async def stop(self) -> None:
        """Reader ended: stop the writer."""
        self.closing = True
        self._wake()
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
