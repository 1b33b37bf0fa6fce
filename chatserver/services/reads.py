"""Read cursors ("Seen"): each participant's last public message seq read in a ticket, stored per
(ticket, user), moved forward by the `read` frame, broadcast as read.updated (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import asyncpg

from ..db import reads as reads_db
from ..realtime import events
from ..realtime.publisher import Publisher

log = logging.getLogger(__name__)

# One socket writes (and broadcasts) its cursor at most once per READ_MIN_GAP seconds: a client
# that reports every message it scrolls past costs one UPDATE and one frame a second, not one per
# message. A cursor reported sooner is written when the gap ends (the latest one reported).
READ_MIN_GAP = 1.0


def read_view(row: Any) -> dict[str, Any]:
    """A cursor as frames carry it: the reader (id and role only: an agent who has not written to
    the customer stays unnamed to them, as in presence) and the seq."""
    return {"user": {"id": row["user_id"], "role": row["role"]}, "seq": row["seq"]}


async def list_reads(pool: asyncpg.Pool, ticket_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every participant's cursor, for the join snapshot. Public seqs only, so the same list
    goes to customers and agents."""
    return [read_view(row) for row in await reads_db.list_reads(pool, ticket_id)]


class ReadCursor:
    """One socket's read cursor: throttled writes, monotonic, broadcast after each write."""

    __slots__ = ("flush", "pool", "publisher", "role", "sent_at", "task", "ticket_id", "user_id", "wanted", "written")

    def __init__(
        self, pool: asyncpg.Pool, publisher: Publisher, ticket_id: uuid.UUID, user_id: uuid.UUID, role: str
    ) -> None:
        self.pool = pool
        self.publisher = publisher
        self.ticket_id = ticket_id
        self.user_id = user_id
        self.role = role
        self.wanted = -1  # the highest seq the client reported
        self.written = -1  # the highest seq we wrote (or tried to)
        self.sent_at = -READ_MIN_GAP
        self.flush: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    async def report(self, seq: int) -> None:
        """The client says it has read up to `seq`."""
        if seq <= self.wanted:
            return  # never backwards; a repeat costs nothing
        self.wanted = seq
        wait = self.sent_at + READ_MIN_GAP - time.monotonic()
        if wait > 0:
            if self.flush is None:
                self.flush = asyncio.get_running_loop().call_later(wait, self._flush)
            return
        await self._write()

    async def _write(self) -> None:
        seq = self.wanted
        if seq <= self.written:
            return
        before = self.written
        self.written = seq
        self.sent_at = time.monotonic()
        try:
            stored = await reads_db.advance_read(self.pool, self.ticket_id, self.user_id, seq)
        except BaseException:
            self.written = before  # not written: the next report tries again
            raise
        if stored is not None:
            await self.publisher.publish(events.read_updated(self.ticket_id, self.user_id, self.role, stored))

    def _flush(self) -> None:
        self.flush = None
        self.task = asyncio.get_running_loop().create_task(self._write_logged())

    async def _write_logged(self) -> None:
        try:
            await self._write()
        except Exception:
            # A cursor is a courtesy: the next report (or reconnect) moves it again.
            log.warning("read cursor write failed for %s", self.ticket_id, exc_info=True)

    async def close(self) -> None:
        """The socket ends: write a cursor still waiting for its gap, so it is not lost."""
        if self.flush is not None:
            self.flush.cancel()
            self.flush = None
        if self.wanted > self.written:
            await self._write_logged()
