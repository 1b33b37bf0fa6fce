"""AI replies in flight on any instance, as seen through their events (fed by the hub's observer):
the text so far, and watchers (the SSE endpoint) that follow one ticket's replies."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from ..realtime.events import SIDE_EVENTS, Event

ENDINGS = ("ai.completed", "ai.failed", "ai.cancelled")
# A reply whose instance died never sends a final event; forget it after this long.
STALE_AFTER = 600.0


@dataclass
class TrackedReply:
    reply_id: str
    ticket_id: str
    kind: str
    in_reply_to: int | None
    parts: list[str] = field(default_factory=list)
    length: int = 0
    touched: float = field(default_factory=time.monotonic)

    def add(self, offset: int, text: str) -> str | None:
        """Apply a delta; returns the new text (None for a duplicate or a gap)."""
        end = offset + len(text)
        if end <= self.length or offset > self.length:
            return None
        if offset < self.length:
            text = text[self.length - offset :]
        self.parts.append(text)
        self.length = end
        self.touched = time.monotonic()
        return text

    @property
    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""


class Watch:
    """Follows the replies of one ticket and kind. `queue` receives the ai.* frames."""

    def __init__(self, tracker: ReplyTracker, ticket_id: str, kind: str) -> None:
        self.tracker = tracker
        self.ticket_id = ticket_id
        self.kind = kind
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def close(self) -> None:
        self.tracker._unwatch(self)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReplyTracker:
    def __init__(self) -> None:
        self.replies: dict[str, TrackedReply] = {}
        self.watches: dict[tuple[str, str], set[Watch]] = {}

    def active(self, ticket_id: str, kind: str) -> list[TrackedReply]:
        return [r for r in self.replies.values() if r.ticket_id == ticket_id and r.kind == kind]

    def watch(self, ticket_id: str, kind: str) -> Watch:
        w = Watch(self, ticket_id, kind)
        self.watches.setdefault((ticket_id, kind), set()).add(w)
        return w

    def _unwatch(self, w: Watch) -> None:
        key = (w.ticket_id, w.kind)
        group = self.watches.get(key)
        if group is not None:
            group.discard(w)
            if not group:
                del self.watches[key]

    def observe(self, event: Event) -> None:
        frame = event.frame
        kind = frame.get("type", "")
        if not kind.startswith("ai.") or kind in SIDE_EVENTS or not event.channel.startswith("ticket:"):
            return
        ticket_id = event.channel.split(":", 1)[1]
        reply_id = str(frame["reply_id"])
        if kind == "ai.started":
            if reply_id in self.replies:
                return  # seen twice (published here and observed): idempotent
            self._forget_stale()
            reply = TrackedReply(reply_id, ticket_id, frame["kind"], frame.get("in_reply_to"))
            self.replies[reply_id] = reply
            self._notify(ticket_id, reply.kind, frame)
        elif kind == "ai.delta":
            current = self.replies.get(reply_id)
            if current is not None and current.add(frame["offset"], frame["text"]) is not None:
                self._notify(ticket_id, current.kind, frame)
        elif kind in ENDINGS:
            ended = self.replies.pop(reply_id, None)
            self._notify(ticket_id, ended.kind if ended else frame.get("kind", "reply"), frame)

    def _notify(self, ticket_id: str, kind: str, frame: dict[str, Any]) -> None:
        for w in self.watches.get((ticket_id, kind), ()):
            w.queue.put_nowait(frame)

    def _forget_stale(self) -> None:
        cutoff = time.monotonic() - STALE_AFTER
        for reply_id in [r.reply_id for r in self.replies.values() if r.touched < cutoff]:
            del self.replies[reply_id]
