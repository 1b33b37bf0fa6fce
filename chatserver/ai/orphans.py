"""Orphaned replies: a generation whose instance died, and reply streams nobody will end.

Every instance runs one `OrphanSweeper` (started by the AI cleanup context). Each
AI_SWEEP_INTERVAL_SECONDS it
1. takes the generation claims whose lease ran out (`ai_db.take_orphans`: FOR UPDATE SKIP LOCKED,
   so each orphan goes to exactly one instance) and, for each, tells the room how the reply ended
   (`ai.completed` when its instance stored it before dying, else `ai.failed` with code
   `instance_lost`), cancels the actions it left open (running or awaiting approval), and has
   the customer's question answered again or handed to a person (`AiService.follow_up_orphan`);
2. checks the reply streams its hub and reply tracker still list against the claims: a stream
   whose claim is gone for longer than a grace period (its final event was lost, e.g. while the
   backplane was away) is ended locally, so no `joined.streams` entry outlives its claim.
docs/ai.md ("Orphaned replies") has the rules.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING

import asyncpg

from ..db import ai as ai_db
from ..realtime import events
from ..realtime.events import Event
from ..views import message_view

if TYPE_CHECKING:
    from ..realtime.hub import Hub
    from .service import AiService

log = logging.getLogger(__name__)

# The ai.failed code of a reply whose instance stopped reporting, and what the room reads.
INSTANCE_LOST = "instance_lost"
INSTANCE_LOST_TEXT = "The AI reply was interrupted; it is being answered again."
# Orphans taken per statement: a backlog (many replies of one dead instance) is worked off over
# consecutive statements of the same sweep, each short.
ORPHAN_BATCH = 100
# How long a tracked stream may go without a claim before it is ended locally. A reply releases
# its claim just before publishing its final event (AiService._settle), so the event is normally
# milliseconds behind; this leaves it ample time to arrive before the stream is declared lost.
GHOST_GRACE = 1.0


class OrphanSweeper:
    def __init__(self, service: AiService, hub: Hub | None, interval: float) -> None:
        self.service = service
        self.hub = hub
        self.interval = interval
        # reply_id -> when this instance first found it tracked without a claim (monotonic).
        self.suspects: dict[str, float] = {}
        self._failing = False

    async def run(self) -> None:
        """Sweep forever (cancelled by the cleanup context). A database outage is logged once."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                if not self._failing:
                    log.warning("AI orphan sweep failed (retrying every %.1fs): %s", self.interval, exc)
                self._failing = True
                continue
            except Exception:
                log.exception("AI orphan sweep crashed")
                continue
            if self._failing:
                log.info("AI orphan sweep works again")
                self._failing = False

    async def sweep(self) -> None:
        while True:
            orphans = await ai_db.take_orphans(self.service.pool, ORPHAN_BATCH)
            for orphan in orphans:
                try:
                    await self.take_over(orphan)
                except Exception:
                    # Its claim is gone already: every instance still tracking the stream ends
                    # it itself (forget_ghosts); the next orphan must not wait on this one.
                    log.exception("could not take over AI %s %s", orphan["kind"], orphan["reply_id"])
            if len(orphans) < ORPHAN_BATCH:
                break
        await self.forget_ghosts()

    # ---- expired claims --------------------------------------------------------------------

    async def take_over(self, orphan: asyncpg.Record) -> None:
        service = self.service
        ticket_id: uuid.UUID = orphan["ticket_id"]
        kind: str = orphan["kind"]
        reply_id = str(orphan["reply_id"])
        log.warning(
            "AI %s %s for ticket %s lost its instance %s (lease expired); taking it over",
            kind,
            reply_id,
            ticket_id,
            orphan["instance_id"],
        )
        ending = await self._ending(ticket_id, reply_id, kind)
        await service.publish_event(ending)
        # Actions it left running or waiting for approval will never be finished: nothing is
        # left for an agent to approve (docs/ai.md, "Acting").
        await service.tools.abandon(uuid.UUID(reply_id), INSTANCE_LOST)
        if ending.frame["type"] == "ai.completed" or kind != "reply":
            message = ending.frame.get("message")
            if message is not None:
                await service.publish_event(events.inbox_message_created(message), track=False)
            return  # answered (stored before its instance died), or a copilot draft: nothing owed
        await service.follow_up_orphan(ticket_id, orphan["in_reply_to"], orphan["attempt"])

    async def _ending(self, ticket_id: uuid.UUID, reply_id: str, kind: str) -> Event:
        """The final event of a reply nobody will finish: what was stored of it, if anything."""
        stored = None
        if kind == "reply":
            stored = await ai_db.stored_reply(self.service.pool, ticket_id, uuid.UUID(reply_id))
        if stored is None:
            return events.ai_failed(ticket_id, reply_id, kind, INSTANCE_LOST, INSTANCE_LOST_TEXT, True, None)
        message = message_view(stored)
        if not message["metadata"].get("incomplete"):
            return events.ai_completed(ticket_id, reply_id, kind, message, message["body"])
        return events.ai_failed(
            ticket_id,
            reply_id,
            kind,
            str(message["metadata"].get("error") or INSTANCE_LOST),
            INSTANCE_LOST_TEXT,
            True,
            message,
        )

    # ---- streams without a claim -----------------------------------------------------------

    def tracked(self) -> dict[str, tuple[str, str]]:
        """Reply streams this instance lists (hub and tracker): reply_id -> (ticket_id, kind)."""
        found: dict[str, tuple[str, str]] = {}
        if self.hub is not None:
            for channel, streams in self.hub.streams.items():
                if channel.startswith("ticket:"):
                    for reply_id, state in streams.items():
                        found[reply_id] = (channel.split(":", 1)[1], state.kind)
        for reply in self.service.tracker.replies.values():
            found.setdefault(reply.reply_id, (reply.ticket_id, reply.kind))
        # Our own generations are ended by their own task, whatever happens to the claim.
        for gen in self.service.generations.values():
            found.pop(str(gen.reply_id), None)
        return found

    async def forget_ghosts(self) -> None:
        tracked = self.tracked()
        self.suspects = {r: t for r, t in self.suspects.items() if r in tracked}
        if not tracked:
            return
        ids: dict[uuid.UUID, str] = {}
        for reply_id in tracked:
            try:
                ids[uuid.UUID(reply_id)] = reply_id
            except ValueError:
                continue
        claimed = await ai_db.claimed_replies(self.service.pool, list(ids))
        now = time.monotonic()
        grace = max(GHOST_GRACE, self.interval)
        for reply_uuid, reply_id in ids.items():
            if reply_uuid in claimed:
                self.suspects.pop(reply_id, None)
                continue
            first = self.suspects.setdefault(reply_id, now)
            if now - first < grace:
                continue
            del self.suspects[reply_id]
            ticket_id, kind = tracked[reply_id]
            ending = await self._ending(uuid.UUID(ticket_id), reply_id, kind)
            log.info("AI %s %s for ticket %s has no claim and no end; ending it here", kind, reply_id, ticket_id)
            self.deliver_local(ending)

    def deliver_local(self, event: Event) -> None:
        """End a stream on this instance only: every other instance checks its own."""
        if self.hub is not None:
            self.hub.deliver(event)
        else:
            self.service.tracker.observe(event)
