"""Group commit for posted messages: messages waiting to be stored at the same time go to
PostgreSQL as one statement (messages.INSERT_MESSAGES), one round trip, one commit.

It lives in db/ because all it decides is how statements reach the database (which statement,
when, how many at once); its callers see insert_visible_message's contract unchanged, and the
service that checks, commits and publishes (services/messages.py) stays as it was.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from dataclasses import dataclass

import asyncpg

from . import messages as messages_db
from .messages import VisibleInsert, VisibleMessage
from .pool import is_unavailable

# Two statements in flight keep both of this machine's cores and the WAL flush busy: while one
# waits for its commit's fsync, the other runs. Measured on 2 cores (5,000 messages, 256
# tickets, batches of 32): 2 connections stored ~13-17k msg/s, 4 connections no more and with
# ~15% more PostgreSQL CPU per message; one message per statement from 8 connections, ~4k msg/s.
DEFAULT_MAX_IN_FLIGHT = 2
# Beyond ~64 messages a statement saves little more (PostgreSQL ~64-80 µs per message at 32 and
# at 64, ~230-250 µs alone), while a failed batch is retried one message at a time.
DEFAULT_MAX_BATCH = 64

# (ticket, author, client_id): a resend of one message, which must not share a batch with it.
_ResendKey = tuple[uuid.UUID, uuid.UUID | None, str]


@dataclass(eq=False)
class _Pending:
    item: VisibleMessage
    future: asyncio.Future[VisibleInsert | None]

    @property
    def resend_key(self) -> _ResendKey | None:
        item = self.item
        return None if item.client_id is None else (item.ticket_id, item.author_id, item.client_id)


class MessageWriter:
    """Stores posted messages: alone while fewer than `max_in_flight` statements are running (so
    at low load nothing waits), else queued; when a statement completes, everything queued (up
    to `max_batch` messages) goes out as one batch.

    Guarantees, per message, what insert_visible_message gives: the same result or exception,
    returned only after the commit. A batch that fails is retried one message at a time with
    insert_visible_message, so one bad message (a deleted author, a resend racing on another
    instance) fails only its own caller. Two messages with one (ticket, author, client_id) never
    share a statement: the later waits for the earlier's commit, then finds it stored. A caller
    cancelled while its message waits in the queue withdraws it; once its statement was sent, the
    message is stored and only the answer is dropped. The queue holds one entry per waiting
    caller, so it is bounded as the callers are (requests and sockets).
    """

    def __init__(
        self, pool: asyncpg.Pool, *, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT, max_batch: int = DEFAULT_MAX_BATCH
    ) -> None:
        if max_in_flight < 1 or max_batch < 1:
            raise ValueError("max_in_flight and max_batch must be at least 1")
        self._pool = pool
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._queue: deque[_Pending] = deque()
        self._in_flight = 0
        self._resends_in_flight: set[_ResendKey] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        # For tests and metrics: messages sent, and statements they took (a failed batch's
        # one-message retries included).
        self.messages = 0
        self.statements = 0

    async def insert_visible(self, item: VisibleMessage) -> VisibleInsert | None:
        """messages.insert_visible_message, through the group commit: same message, same result."""
        if self._closed:
            raise RuntimeError("the message writer is closed")
        pending = _Pending(item, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._send_what_fits()
        # Cancelling this await cancels the future: a queued message is then skipped, a sent
        # one is stored regardless (the statement runs in the writer's task, not the caller's).
        return await pending.future

    async def close(self) -> None:
        """Refuse new messages and wait until every accepted one is stored (or failed)."""
        self._closed = True
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def _send_what_fits(self) -> None:
        while self._in_flight < self._max_in_flight and self._queue:
            batch = self._take_batch()
            if not batch:
                # Only resends of messages still in flight are left: they go when those commit.
                return
            self._in_flight += 1
            task = asyncio.create_task(self._store(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        held_back: list[_Pending] = []
        while self._queue and len(batch) < self._max_batch:
            pending = self._queue.popleft()
            if pending.future.done():
                continue  # its caller was cancelled before the message was sent
            key = pending.resend_key
            if key is not None:
                if key in self._resends_in_flight:
                    held_back.append(pending)
                    continue
                self._resends_in_flight.add(key)
            batch.append(pending)
        self._queue.extendleft(reversed(held_back))
        return batch

    async def _store(self, batch: list[_Pending]) -> None:
        self.messages += len(batch)
        try:
            if len(batch) == 1:
                await self._store_alone(batch[0])
                return
            self.statements += 1
            try:
                results = await messages_db.insert_visible_messages(self._pool, [p.item for p in batch])
            except asyncpg.PostgresError as exc:
                if is_unavailable(exc):
                    # The connection broke (the commit may have happened) or the database is
                    # restarting: no retry, each caller hears database_unavailable and resends
                    # with its client_id, which finds the message if it was stored.
                    raise
                # PostgreSQL refused the statement and rolled it back: each message again alone,
                # so each caller gets the result or the error it would get on its own.
                for pending in batch:
                    await self._store_alone(pending)
                return
            for pending, result in zip(batch, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result(result)
        except Exception as exc:  # noqa: BLE001 - handed to every caller, as a single insert would raise it
            # Connection lost, command timeout: whether the batch committed is unknown, exactly
            # as for a single insert that fails this way; every caller still waiting hears it.
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
        finally:
            for pending in batch:
                if not pending.future.done():
                    pending.future.cancel()  # only if this task itself was cancelled
                key = pending.resend_key
                if key is not None:
                    self._resends_in_flight.discard(key)
            self._in_flight -= 1
            self._send_what_fits()

    async def _store_alone(self, pending: _Pending) -> None:
        item = pending.item
        self.statements += 1
        try:
            result = await messages_db.insert_visible_message(self._pool, **item._asdict())
        except Exception as exc:  # noqa: BLE001 - the caller's own error, raised to the caller
            if not pending.future.done():
                pending.future.set_exception(exc)
        else:
            if not pending.future.done():
                pending.future.set_result(result)
