"""One heartbeat for every socket of the instance, instead of aiohttp's per-socket one.

aiohttp's `heartbeat=` keeps two timer handles per socket (the next ping, the pong deadline),
re-arms them whenever data arrives and creates a task for every ping: about 2 KiB of an idle
socket's memory and a timer reschedule per received frame (docs/performance.md). Here one task
pings every connection the hub holds once per interval, and a connection that has sent nothing
(no pong, no frame) within `timeout` after its ping is cut off: a dead peer goes within
1.5 intervals, as with aiohttp's default pong timeout of half the interval.

Sockets are opened with `autoping=False`, so the reader loop (handlers/ws.py) sees every PONG
and PING: it answers pings and calls `Connection.seen()` for whatever arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from .client import Connection

log = logging.getLogger(__name__)

# Pings sent per event-loop step: 19,000 sockets in one go would stall the loop for ~0.1 s.
PING_BATCH = 256


class Heartbeat:
    def __init__(
        self, connections: Callable[[], Iterable[Connection]], interval: float, timeout: float | None = None
    ) -> None:
        self._connections = connections
        self.interval = interval
        self.timeout = interval / 2 if timeout is None else timeout
        self._task: asyncio.Task[None] | None = None
        # Pings in flight: a ping waits only when the socket's buffer is full (a slow reader),
        # and that must not hold up everyone else's, so each is its own short task.
        self._pings: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ws-heartbeat")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for ping in list(self._pings):
            ping.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval)
            try:
                pinged_at = loop.time()
                await self._ping_all()
                await asyncio.sleep(self.timeout)
                self._drop_silent(pinged_at)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end heartbeats for the instance's lifetime
                log.exception("heartbeat round failed")

    async def _ping_all(self) -> None:
        loop = asyncio.get_running_loop()
        pinged = [conn for conn in self._connections() if not conn.closing]
        for start in range(0, len(pinged), PING_BATCH):
            for conn in pinged[start : start + PING_BATCH]:
                task = loop.create_task(conn.ping())
                self._pings.add(task)
                task.add_done_callback(self._pings.discard)
            await asyncio.sleep(0)  # let the loop serve everything else between batches

    def _drop_silent(self, pinged_at: float) -> None:
        # A connection opened after the ping has last_seen >= pinged_at (it starts at its
        # creation), so only the ones that were pinged and said nothing since qualify; no list
        # of them is kept meanwhile, which would hold closed sockets in memory until now.
        for conn in list(self._connections()):
            if conn.last_seen < pinged_at and not conn.closing:
                log.info("dropping %s (user %s): no pong within %.1fs", conn.id, conn.identity.user_id, self.timeout)
                conn.abort()
