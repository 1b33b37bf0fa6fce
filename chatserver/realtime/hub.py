"""The hub: this instance's rooms and their connections, and in-order local fan-out.

Every event this instance learns of (published here, or received from another instance over the
broker) passes through `deliver`. The hub
- orders message events of a room by `seq`, holding early ones back briefly and filling every
  gap from the database (a gap means an event was lost, e.g. while Redis was away);
- holds a sender's ack until every message up to its seq has been queued to the sender's socket,
  so that the ack's seq is a safe resume position (docs/protocol.md, "Order");
- tracks AI reply streams, so a participant who joins mid-stream gets the text so far;
- drops AI text for replies that were cancelled by a takeover, so none reaches a room after it;
- encodes each frame once per room and queues it on every allowed connection without awaiting.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode

from ..jsonutil import dumps_bytes
from . import events
from .client import Connection
from .events import CLOSE_RESUME, SIDE_EVENTS, Event

log = logging.getLogger(__name__)

# How long an early message event waits for the ones before it before the gap is read from the
# database. Reordering between two commits on one instance resolves in microseconds; events
# from another instance via Redis in a few ms.
DEFAULT_GAP_WAIT = 0.5
# Messages read per query when filling gaps: a room that missed a long Redis outage reads them in
# pieces rather than in one unbounded result.
GAP_READ_LIMIT = 500

FetchRange = Callable[[uuid.UUID, int, int], Awaitable[list[dict[str, Any]]]]
Observer = Callable[[Event], None]


@dataclass
class StreamState:
    """An AI reply in flight, as seen through its events."""

    reply_id: str
    kind: str
    in_reply_to: int | None
    parts: list[str] = field(default_factory=list)
    length: int = 0

    def add(self, offset: int, text: str) -> None:
        # Offsets make re-delivery harmless: keep only the part beyond what we have.
        end = offset + len(text)
        if end <= self.length:
            return
        if offset < self.length:
            text = text[self.length - offset :]
        elif offset > self.length:
            # A delta we never saw (another instance's stream that began before our subscribe).
            # Keep the offsets honest by not pretending to have the text in between.
            return
        self.parts.append(text)
        self.length = end

    @property
    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""


@dataclass(slots=True)
class Room:
    channel: str
    ticket_id: uuid.UUID | None
    connections: set[Connection] = field(default_factory=set)
    # Local tabs per user: presence changes only on a user's first join and last leave.
    user_connections: dict[uuid.UUID, int] = field(default_factory=dict)
    high_seq: int | None = None
    early: dict[int, Event] = field(default_factory=dict)
    # Acks waiting for the room to reach their seq: (seq, the sender's connection, encoded ack).
    held_acks: list[tuple[int, Connection, bytes]] = field(default_factory=list)
    gap_timer: asyncio.TimerHandle | None = None
    gap_task: asyncio.Task[None] | None = None


class Hub:
    def __init__(self, fetch_range: FetchRange, *, gap_wait: float = DEFAULT_GAP_WAIT) -> None:
        self.fetch_range = fetch_range
        self.gap_wait = gap_wait
        self.rooms: dict[str, Room] = {}
        self.streams: dict[str, dict[str, StreamState]] = {}
        # Replies cut off by a takeover; their late deltas are dropped (bounded per channel).
        self.cancelled: dict[str, set[str]] = {}
        self.observers: list[Observer] = []
        self.connections: set[Connection] = set()

    # ---- membership ------------------------------------------------------------------------

    def register(self, channel: str, conn: Connection, ticket_id: uuid.UUID | None = None) -> bool:
        """Add a connection to a room. Returns True when it is this user's first local connection."""
        room = self.rooms.get(channel)
        if room is None:
            room = self.rooms[channel] = Room(channel, ticket_id)
        room.connections.add(conn)
        self.connections.add(conn)
        count = room.user_connections.get(conn.identity.user_id, 0)
        room.user_connections[conn.identity.user_id] = count + 1
        return count == 0

    def unregister(self, channel: str, conn: Connection) -> bool:
        """Remove a connection. Returns True when it was this user's last local connection."""
        self.connections.discard(conn)
        room = self.rooms.get(channel)
        if room is None or conn not in room.connections:
            return False
        room.connections.discard(conn)
        user_id = conn.identity.user_id
        remaining = room.user_connections.get(user_id, 1) - 1
        if remaining <= 0:
            room.user_connections.pop(user_id, None)
        else:
            room.user_connections[user_id] = remaining
        if not room.connections:
            self._drop_room(room)
        return remaining <= 0

    def _drop_room(self, room: Room) -> None:
        if room.gap_timer is not None:
            room.gap_timer.cancel()
        if room.gap_task is not None:
            room.gap_task.cancel()
        self.rooms.pop(room.channel, None)

    def note_snapshot(self, channel: str, last_seq: int) -> None:
        """A joiner read the room's history up to `last_seq`. For a room that has not ordered any
        message yet, that is where ordering starts. A room that has keeps its own position:
        its older connections may still be owed messages the new joiner already has (they get
        them through the gap fill; the joiner's connection skips them)."""
        room = self.rooms.get(channel)
        if room is not None and room.high_seq is None:
            room.high_seq = last_seq

    def add_observer(self, observer: Observer) -> None:
        self.observers.append(observer)

    def stream_snapshot(self, channel: str, staff: bool) -> list[dict[str, Any]]:
        return [
            {"reply_id": s.reply_id, "kind": s.kind, "in_reply_to": s.in_reply_to, "text": s.text}
            for s in self.streams.get(channel, {}).values()
            if staff or s.kind != "copilot"
        ]

    # ---- delivery --------------------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        """Take an event from this or another instance. Synchronous: never awaits a socket."""
        for observer in self.observers:
            try:
                observer(event)
            except Exception:
                log.exception("hub observer failed on %s", event.frame.get("type"))
        if not self._track_streams(event):
            return
        room = self.rooms.get(event.channel)
        if room is None:
            return
        if event.seq is None:
            self._fan_out(room, event)
            return
        self._deliver_in_order(room, event)

    def _track_streams(self, event: Event) -> bool:
        """Update AI stream state; returns False when the event must not reach clients."""
        frame = event.frame
        kind = frame.get("type", "")
        if kind == "ticket.updated" and "ai_enabled" in frame.get("changes", ()) and not frame["ticket"]["ai_enabled"]:
            # Takeover: every reply in flight in this room is cut off here, on every instance.
            active = self.streams.pop(event.channel, {})
            if active:
                cut = self.cancelled.setdefault(event.channel, set())
                cut.update(r for r, s in active.items() if s.kind == "reply")
                # Copilot suggestions are for agents and survive a takeover.
                keep = {r: s for r, s in active.items() if s.kind == "copilot"}
                if keep:
                    self.streams[event.channel] = keep
            return True
        if not kind.startswith("ai.") or kind in SIDE_EVENTS:
            return True
        reply_id = frame["reply_id"]
        if reply_id in self.cancelled.get(event.channel, ()):
            return kind == "ai.cancelled"
        streams = self.streams.setdefault(event.channel, {})
        if kind == "ai.started":
            streams[reply_id] = StreamState(reply_id, frame["kind"], frame.get("in_reply_to"))
        elif kind == "ai.delta":
            state = streams.get(reply_id)
            if state is not None:
                state.add(frame["offset"], frame["text"])
        else:  # completed, failed, cancelled
            streams.pop(reply_id, None)
        if not streams:
            self.streams.pop(event.channel, None)
        cancelled = self.cancelled.get(event.channel)
        if cancelled is not None and len(cancelled) > 100:
            cancelled.clear()
        return True

    def _deliver_in_order(self, room: Room, event: Event) -> None:
        seq = event.seq
        assert seq is not None
        if room.high_seq is None:
            room.high_seq = seq
            self._fan_out(room, event)
            return
        if seq <= room.high_seq:
            return  # a duplicate (or one the joiners already have from their snapshot)
        if seq == room.high_seq + 1:
            self._advance(room, seq, event)
            self._drain(room)
            return
        room.early[seq] = event
        self._wait_for_gap(room)

    def _advance(self, room: Room, seq: int, event: Event | None) -> None:
        """The room has delivered everything up to `seq` (`event`, or None for a seq that was never
        stored); acks waiting for it follow right behind."""
        room.high_seq = seq
        if event is not None:
            self._fan_out(room, event)
        if room.held_acks:
            self._release_acks(room, seq)

    def _drain(self, room: Room) -> None:
        while room.high_seq is not None and room.high_seq + 1 in room.early:
            seq = room.high_seq + 1
            self._advance(room, seq, room.early.pop(seq))
        if not room.early and not room.held_acks and room.gap_timer is not None:
            room.gap_timer.cancel()
            room.gap_timer = None

    def _wait_for_gap(self, room: Room) -> None:
        """Something waits for seqs the room has not seen: read them from the database unless
        they arrive within gap_wait."""
        if room.gap_timer is None and room.gap_task is None:
            loop = asyncio.get_running_loop()
            room.gap_timer = loop.call_later(self.gap_wait, self._gap_expired, room)

    def _gap_expired(self, room: Room) -> None:
        room.gap_timer = None
        if not (room.early or room.held_acks) or self.rooms.get(room.channel) is not room:
            return
        room.gap_task = asyncio.get_running_loop().create_task(self._fill_gap(room))

    async def _fill_gap(self, room: Room) -> None:
        """Read every missing message up to the last seq anything waits for from the database,
        and deliver them in order with what arrived meanwhile."""
        try:
            await self._read_gap(room)
        finally:
            room.gap_task = None
        # Events that arrived during the read may have opened a gap beyond it.
        if (room.early or room.held_acks) and self.rooms.get(room.channel) is room:
            self._wait_for_gap(room)

    async def _read_gap(self, room: Room) -> None:
        if room.high_seq is None:
            return
        # Every seq up to `target` (it included, for an ack waiting on a lost event). A seq after
        # a gap is committed, so everything before it is committed or never will be (seqs are
        # allocated under the ticket's row lock).
        target = max([*room.early, *(seq for seq, _, _ in room.held_acks)], default=room.high_seq)
        filled = 0
        while room.high_seq < target:
            upto = min(target, room.high_seq + GAP_READ_LIMIT)
            if room.ticket_id is not None:
                try:
                    missing = await self.fetch_range(room.ticket_id, room.high_seq, upto + 1)
                except Exception as exc:  # noqa: BLE001 - whatever the database raised, the room acts the same
                    self._close_unreadable(room, exc)
                    return
                filled += len(missing)
                for message in missing:
                    if message["seq"] > room.high_seq:
                        room.early.setdefault(message["seq"], events.message_created(message))
            # A seq up to `upto` the database does not have was never stored (an insert rolled
            # back): skip it. Internal notes are stored messages: read, and delivered to staff only.
            while room.high_seq < upto:
                seq = room.high_seq + 1
                self._advance(room, seq, room.early.pop(seq, None))
        if filled:
            log.info("filled gaps in %s from the database (%d message(s) read)", room.channel, filled)
        self._drain(room)

    def _close_unreadable(self, room: Room, exc: Exception) -> None:
        """The missing messages could not be read (the database is unavailable). Skipping them
        would move every client past messages it never got; instead every connection of the room
        is closed with CLOSE_RESUME and resumes from its own last seq once it reconnects."""
        log.warning(
            "could not read missing messages of %s (%s: %s); asking its %d connection(s) to resume",
            room.channel,
            type(exc).__name__,
            exc,
            len(room.connections),
        )
        for conn in room.connections:
            conn.close_soon(CLOSE_RESUME, "missed messages could not be read: reconnect and resume")
        # Those connections are gone: the room orders afresh for whoever joins next.
        room.high_seq = None
        room.early.clear()
        room.held_acks.clear()

    # ---- acks ------------------------------------------------------------------------------

    def send_ack(self, channel: str, conn: Connection, seq: int, frame: dict[str, Any]) -> None:
        """Send `frame` (the ack of message `seq`) to `conn` once every message up to `seq` has
        been queued to it: at once when the room is there already (the common case: the message's
        own event was delivered while it was published) or the connection's join snapshot holds
        it, else right after the room delivers `seq`, or skips past it."""
        room = self.rooms.get(channel)
        if room is None or room.high_seq is None or seq <= room.high_seq or seq <= conn.snapshot_seq:
            conn.send_frame(frame)
            return
        room.held_acks.append((seq, conn, dumps_bytes(frame)))
        # The message's event may never come (a resend of a message whose event was lost):
        # the gap fill reads it, so the ack cannot wait forever.
        self._wait_for_gap(room)

    def _release_acks(self, room: Room, high_seq: int) -> None:
        due = [held for held in room.held_acks if held[0] <= high_seq]
        if not due:
            return
        room.held_acks = [held for held in room.held_acks if held[0] > high_seq]
        for _seq, conn, data in sorted(due, key=lambda held: held[0]):
            conn.enqueue(data)

    def _fan_out(self, room: Room, event: Event) -> None:
        data = dumps_bytes(event.frame)
        public = data if event.public_frame is None else dumps_bytes(event.public_frame)
        for conn in room.connections:
            if conn.is_staff:
                conn.enqueue(data, event.seq)
            elif not event.staff_only:
                conn.enqueue(public, event.seq)

    def _send_local(self, room: Room, frame: dict[str, Any]) -> None:
        data = dumps_bytes(frame)
        for conn in room.connections:
            conn.enqueue(data)

    # ---- resync and shutdown ---------------------------------------------------------------

    def resync(self, channels: list[str] | None, reason: str) -> None:
        """Tell clients their view may be stale (e.g. the backplane was away): they re-read."""
        targets = self.rooms.values() if channels is None else [self.rooms[c] for c in channels if c in self.rooms]
        frame = events.resync_frame(reason)
        for room in list(targets):
            self._send_local(room, frame)

    async def shutdown(self) -> None:
        """Flush what is queued and close every socket with GOING_AWAY."""
        conns = list(self.connections)
        if conns:
            log.info("closing %d websocket(s)", len(conns))
        await asyncio.gather(
            *(c.flush_and_close(WSCloseCode.GOING_AWAY, "server shutdown") for c in conns),
            return_exceptions=True,
        )
