"""One WebSocket connection: frames written at once while the peer keeps up, else a bounded
queue drained by a writer task that exists only while frames wait.

Publishing into a connection never awaits the socket, so one slow client cannot stall a room.
A client whose queue overflows is closed with CLOSE_SLOW_CONSUMER and resumes from its last seq.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from ..jsonutil import dumps_bytes
from ..security import Identity
from .events import CLOSE_SLOW_CONSUMER

log = logging.getLogger(__name__)

# Frames a connection may have waiting before it counts as a slow consumer. An AI stream at
# ~20 coalesced frames/s plus chat traffic stays far below this; a stalled peer reaches it.
DEFAULT_QUEUE_LIMIT = 512
# How long a closing handshake may take (the peer must take the close frame and answer it)
# before the connection is cut instead.
CLOSE_TIMEOUT = 5.0
# How long the frames of a socket closed for being slow (the close frame last) may wait, after
# the handshake timed out, for the peer to read again before the connection is cut: a client
# paused that long (a suspended laptop, a stopped process) still learns why it was closed
# (4008) instead of seeing a bare 1006. Bounds the buffer and file descriptor a peer that
# never reads again can hold (about 64-130 KiB of frames).
SLOW_CLOSE_GRACE = 30.0


class Connection:
    # Slots and a list rather than a __dict__ and a deque: an idle socket costs less
    # (docs/performance.md).
    __slots__ = (
        "_queue",
        "_snapshot_seq",
        "_started",
        "_transport",
        "_writer",
        "close_timeout",
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
        # The request's transport: to write at once when it has nothing buffered, and to cut off
        # a peer that stopped answering (heartbeat.py).
        self._transport = transport
        # Event-loop time of the last frame received (pongs included).
        self.last_seen = asyncio.get_running_loop().time()
        self.identity = identity
        self.user = user
        self.queue_limit = queue_limit
        # (seq or None, encoded frame): frames waiting for the socket. Empty while the peer keeps
        # up; short (a few frames) in practice, bounded by queue_limit, so list.pop(0) costs
        # nothing worth a deque's 624 bytes.
        self._queue: list[tuple[int | None, bytes]] = []
        # Runs only while frames wait (the join snapshot, a socket whose buffer is not empty):
        # an idle socket has no task of its own.
        self._writer: asyncio.Task[None] | None = None
        # Message frames up to this seq were in the join snapshot and are not sent again.
        self._snapshot_seq = 0
        self._started = False
        self.closing = False
        self.close_timeout = CLOSE_TIMEOUT

    @property
    def is_staff(self) -> bool:
        return self.identity.is_staff

    def seen(self) -> None:
        """The peer sent something: it is alive."""
        self.last_seen = asyncio.get_running_loop().time()

    @property
    def snapshot_seq(self) -> int:
        """Messages up to this seq were in this connection's join snapshot."""
        return self._snapshot_seq

    async def ping(self) -> None:
        """Send a WebSocket ping (the heartbeat)."""
        await self._send_control(b"", WSMsgType.PING)

    async def pong(self, data: bytes) -> None:
        """Answer a client's WebSocket ping."""
        await self._send_control(data, WSMsgType.PONG)

    async def _send_control(self, data: bytes, opcode: WSMsgType) -> None:
        # A peer that vanished leaves its pings behind it, read after the transport began to
        # close; a socket we are closing has sent its close frame, after which aiohttp refuses
        # any other. Neither is an error: the reader loop ends on its own as the transport goes.
        if self.closing:
            return
        try:
            await self.ws.send_frame(data, opcode)
        except (ConnectionResetError, RuntimeError):
            pass

    def abort(self) -> None:
        """Cut the connection without a closing handshake (the peer is not answering): the
        reader loop ends and cleans up as for any lost connection."""
        self.closing = True
        self._queue.clear()
        if self._transport is not None:
            self._transport.abort()

    def enqueue(self, data: bytes, seq: int | None = None) -> None:
        """Send an encoded frame, or queue it. Never blocks; overflow closes the connection."""
        if self.closing:
            return
        if self._started:
            if seq is not None and seq <= self._snapshot_seq:
                return  # already in the join snapshot
            if self._writer is None and self._write_now(data):
                return
        if len(self._queue) >= self.queue_limit:
            log.warning(
                "closing slow consumer %s (user %s): %d frames queued", self.id, self.identity.user_id, len(self._queue)
            )
            self.close_soon(CLOSE_SLOW_CONSUMER, "slow consumer: reconnect and resume")
            return
        self._queue.append((seq, data))
        if self._started and self._writer is None:
            self._start_writer()

    def send_frame(self, frame: dict[str, Any]) -> None:
        self.enqueue(dumps_bytes(frame))

    def start(self, first_frame: dict[str, Any], snapshot_seq: int) -> None:
        """Send `first_frame` (the join snapshot), then everything queued since registration
        except message frames the snapshot already holds."""
        self._snapshot_seq = snapshot_seq
        self._started = True
        self._queue = [(None, dumps_bytes(first_frame))] + [
            (seq, data) for seq, data in self._queue if seq is None or seq > snapshot_seq
        ]
        self._start_writer()

    def _write_now(self, data: bytes) -> bool:
        """Write a frame straight to the socket when nothing is waiting before it; False when it
        must wait in the queue instead.

        With compression off, aiohttp's send_frame writes the frame to the transport before it
        awaits anything, and awaits only when the transport has asked to pause, which it cannot
        have done with an empty buffer. So the coroutine is run to its end right here: the hub's
        fan-out writes each participant's frame in one call, without waking a task per socket.
        """
        transport = self._transport
        if transport is None or transport.is_closing() or transport.get_write_buffer_size():
            return False
        sending = self.ws.send_frame(data, WSMsgType.TEXT)
        try:
            sending.send(None)
        except StopIteration:
            return True
        except (ConnectionResetError, RuntimeError):
            # The peer went away: the reader loop cleans up.
            self.closing = True
            return True
        except Exception:
            # Not this room's problem: the fan-out that called us goes on to the next socket.
            log.exception("websocket write failed for %s", self.id)
            self.closing = True
            return True
        # It stopped to wait for the peer to drain: the frame is already in the transport, and
        # waiting is the queue's job (the next frame sees a non-empty buffer).
        sending.close()
        return True

    def _start_writer(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_queued(), name=f"ws-writer-{self.id}")

    async def _write_queued(self) -> None:
        try:
            while self._queue:
                _seq, data = self._queue.pop(0)
                await self.ws.send_frame(data, WSMsgType.TEXT)
                # Not kept while the socket idles: the join snapshot can be tens of KiB.
                del data
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            # The peer went away (or we are shutting down): the reader loop cleans up.
            self.closing = True
        except Exception:
            log.exception("websocket writer failed for %s", self.id)
        finally:
            self._writer = None

    def close_soon(self, code: int, message: str) -> None:
        """Close from synchronous code (the hub's fan-out): the close runs as its own task."""
        if self.closing:
            return
        self.closing = True
        self._queue.clear()
        grace = SLOW_CLOSE_GRACE if code == CLOSE_SLOW_CONSUMER else 0.0
        asyncio.get_running_loop().create_task(self._close(code, message, grace=grace))

    async def _close(self, code: int, message: str, timeout: float | None = None, grace: float = 0.0) -> None:
        """The closing handshake, for at most `timeout` seconds. Then the connection is cut, or,
        with a `grace`, the frames still buffered (the close frame last) wait that much longer
        for the peer to read them."""
        timeout = self.close_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):
                await self.ws.close(code=code, message=message.encode())
        except TimeoutError:
            # aiohttp waits for the peer to take the close frame and to answer it, without a
            # limit: a peer that stopped reading would hold the socket (and a server shutdown)
            # forever. Cutting it at once drops the close frame with whatever is buffered before
            # it, so a peer that reads again sees 1006; with a grace, aiohttp's own graceful
            # transport close goes on writing as the peer reads, and the cut comes later.
            if grace > 0 and self._buffered():
                log.info("closing %s timed out; its close frame waits %.0fs for the peer to read", self.id, grace)
                self._cut_later(grace)
                return
            log.info("closing %s timed out; cutting the connection", self.id)
            self.abort()
            return
        except Exception:  # the socket may already be gone; closing is best effort
            log.debug("close of %s failed", self.id, exc_info=True)
            return
        if self._buffered():
            # aiohttp closed the transport without waiting for the peer's answer (the reader loop
            # was closing too): asyncio writes the rest as the peer reads, for as long as it
            # takes. A peer that never reads again must not hold the socket forever.
            self._cut_later(grace or CLOSE_TIMEOUT)

    def _buffered(self) -> bool:
        transport = self._transport
        return transport is not None and transport.get_write_buffer_size() > 0

    def _cut_later(self, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self._cut_if_unread)

    def _cut_if_unread(self) -> None:
        if self._buffered():
            log.info("cutting %s: its peer did not read its last frames", self.id)
            self.abort()

    async def flush_and_close(
        self,
        code: int = WSCloseCode.GOING_AWAY,
        message: str = "server shutdown",
        drain_seconds: float = 2.0,
        close_seconds: float = CLOSE_TIMEOUT,
    ) -> None:
        """Let the writer drain what is queued (for at most `drain_seconds`), then close (the
        handshake for at most `close_seconds`, after which the connection is cut)."""
        self.closing = True
        writer = self._writer
        if writer is not None:
            try:
                async with asyncio.timeout(drain_seconds):
                    await asyncio.shield(writer)
            except (TimeoutError, asyncio.CancelledError):
                pass
        await self._close(code, message, close_seconds)

    async def stop(self) -> None:
        """Reader ended: stop the writer."""
        self.closing = True
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
            try:
                await writer
            except asyncio.CancelledError:
                pass
