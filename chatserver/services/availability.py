"""Agent availability: online, away or offline, the same on every instance. docs/web.md, "Never
miss a customer", has the rules; db/availability.py computes the status.

Each instance keeps its own count of open consoles (inbox sockets) per agent and writes it to
the database at once (absolute counts, so a lost write is repaired by the next one), and a
heartbeat for itself every third of AGENT_PRESENCE_TTL_SECONDS. An instance that dies stops
beating, and after the TTL its consoles stop counting: its agents go offline unless another
instance holds a console of theirs. On the same beat every instance announces status changes
(each once, whichever instance sees it first: the `agent.availability` inbox frame) and runs the
routing sweep (services/routing.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
from aiohttp import web

from ..db import availability as availability_db
from ..db.pool import is_unavailable
from ..errors import forbidden
from ..realtime import events
from ..realtime.events import Event
from ..realtime.publisher import Publisher
from ..security import Identity
from ..settings import Settings
from . import routing

log = logging.getLogger(__name__)

STATUSES = ("online", "away", "offline")
# What an agent may choose; offline is having no console open.
CHOOSABLE = ("online", "away")
# An active agent's activity is written at most this often per instance: a console reports
# activity every ~30 s while used; an agent away for inactivity is written at once.
ACTIVITY_WRITE_EVERY = 10.0
# An instance silent for this many presence TTLs is deleted (with its console rows); it stopped
# counting after one TTL already.
FORGET_DEAD_AFTER_TTLS = 10
# Tickets listed per agent by GET /console/api/queue.
QUEUE_LIMIT = 500


def require_agent(who: Identity) -> None:
    """Availability is for people who answer customers: agents and admins."""
    if who.role not in ("agent", "admin"):
        raise forbidden("Availability is for agents and admins")


def agent_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["display_name"],
        "role": row["role"],
        "status": row["status"],
        "away": row["away"],
        "since": row["status_changed_at"],
    }


class Availability:
    def __init__(
        self, pool: asyncpg.Pool, publisher: Callable[[], Publisher], settings: Settings, instance_id: str
    ) -> None:
        self.pool = pool
        self._publisher = publisher
        self.settings = settings
        self.instance_id = instance_id
        # Open consoles per agent on this instance.
        self.consoles: dict[uuid.UUID, int] = {}
        # Statuses announced (by any instance), as this instance heard them.
        self.announced: dict[str, str] = {}
        self._last_touch: dict[uuid.UUID, float] = {}
        # Agents whose count changed since it was last written, and those whose console opened
        # (an activity to record); the writer task wakes on _wake.
        self._changed: set[uuid.UUID] = set()
        self._opened: set[uuid.UUID] = set()
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False

    @property
    def timing(self) -> availability_db.Timing:
        return routing.timing(self.settings)

    @property
    def interval(self) -> float:
        return self.settings.agent_presence_ttl_seconds / 3

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.run(), name="agent-availability"),
            loop.create_task(self._write_loop(), name="agent-consoles-writer"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # The consoles closed during shutdown: written now (best effort), so that the grace,
        # not the presence TTL, decides when their agents count as offline.
        try:
            await self._write_changes()
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("availability: could not record the consoles closed at shutdown: %s", exc)
            else:
                log.exception("availability: could not record the consoles closed at shutdown")

    async def run(self) -> None:
        """Beat, announce and route forever (cancelled by the cleanup context). A database outage
        is logged once."""
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("availability sweep crashed")
                elif not self._failing:
                    log.warning("availability sweep failed (retrying every %.1fs): %s", self.interval, exc)
                    self._failing = True
            else:
                if self._failing:
                    log.info("availability sweep works again")
                self._failing = False
            await asyncio.sleep(self.interval)

    async def sweep(self) -> None:
        ttl = self.settings.agent_presence_ttl_seconds
        await availability_db.heartbeat(self.pool, self.instance_id)
        # The instance's own counts are the truth: rewrite them all (a survivor may have deleted
        # this instance's rows while it was frozen, or a write failed).
        self._changed.update(self.consoles)
        await self._write_changes(announce=False)
        await availability_db.forget_closed(self.pool, self.instance_id, self.settings.agent_offline_after_seconds)
        await availability_db.forget_dead(self.pool, ttl * FORGET_DEAD_AFTER_TTLS)
        await self.sync()
        await routing.route_waiting(self.pool, self._publisher(), self.settings)

    def observe(self, event: Event) -> None:
        """Hub observer: remember the statuses announced by any instance."""
        if event.frame.get("type") == "agent.availability":
            agent = event.frame["agent"]
            self.announced[str(agent["id"])] = agent["status"]

    # ---- consoles and activity ---------------------------------------------------------------
    # Counted here at once, written by one task of the instance's own: the socket handler that
    # reports a close may be cancelled right after (its connection is gone), and writes must
    # reach the database in the order the counts changed.

    def console_opened(self, user_id: uuid.UUID) -> None:
        """An agent's console (inbox socket) opened on this instance: opening it is activity."""
        self.consoles[user_id] = self.consoles.get(user_id, 0) + 1
        self._opened.add(user_id)
        self._changed.add(user_id)
        self._wake.set()

    def console_closed(self, user_id: uuid.UUID) -> None:
        self.consoles[user_id] = max(0, self.consoles.get(user_id, 0) - 1)
        self._changed.add(user_id)
        self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._write_changes()
            except Exception as exc:
                # The next heartbeat rewrites every count.
                if is_unavailable(exc):
                    log.warning("availability: could not record console changes (%s); the heartbeat retries", exc)
                else:
                    log.exception("availability: recording console changes crashed")

    async def _write_changes(self, announce: bool = True) -> None:
        async with self._write_lock:
            while self._changed:
                user_id = self._changed.pop()
                count = self.consoles.get(user_id, 0)
                try:
                    await availability_db.set_consoles(self.pool, user_id, self.instance_id, count)
                    if user_id in self._opened:
                        self._opened.discard(user_id)
                        await availability_db.touch(self.pool, user_id)
                        self._last_touch[user_id] = time.monotonic()
                except asyncpg.ForeignKeyViolationError:
                    count = 0  # the account is gone
                except BaseException:
                    self._changed.add(user_id)
                    raise
                if count == 0 and self.consoles.get(user_id, 0) == 0:
                    self.consoles.pop(user_id, None)
                    self._last_touch.pop(user_id, None)
                if announce:
                    await self.sync(user_id)

    async def activity(self, user_id: uuid.UUID) -> None:
        """The console says its agent did something (AGENT_AWAY_AFTER_SECONDS)."""
        now = time.monotonic()
        # Heard from any instance: an agent away (for inactivity) is written at once.
        away = self.announced.get(str(user_id)) == "away"
        if not away and now - self._last_touch.get(user_id, -ACTIVITY_WRITE_EVERY) < ACTIVITY_WRITE_EVERY:
            return
        self._last_touch[user_id] = now
        await availability_db.touch(self.pool, user_id)
        if away:
            await self.sync(user_id)

    async def set_status(self, who: Identity, status: str) -> dict[str, Any]:
        """The agent chose online or away; their availability as it is now."""
        require_agent(who)
        await availability_db.set_away(self.pool, who.user_id, status == "away")
        self._last_touch[who.user_id] = time.monotonic()
        await self.sync(who.user_id)
        return await self.me(who)

    # ---- statuses ------------------------------------------------------------------------------

    async def sync(self, user_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """Announce what changed (for one agent, or all). An agent who came online may take
        waiting tickets; one who went offline may leave some: either way the routing runs."""
        changes = [agent_view(row) for row in await availability_db.sync_statuses(self.pool, self.timing, user_id)]
        publisher = self._publisher()
        for agent in changes:
            self.announced[str(agent["id"])] = agent["status"]
            await publisher.publish(events.agent_availability(agent))
            log.info("agent %s is %s", agent["id"], agent["status"])
        if user_id is not None and any(a["status"] in ("online", "offline") for a in changes):
            await routing.route_waiting(self.pool, publisher, self.settings)
        return changes

    async def me(self, who: Identity) -> dict[str, Any]:
        require_agent(who)
        row = await availability_db.status_of(self.pool, self.timing, who.user_id)
        if row is None:
            raise forbidden("Availability is for agents and admins")
        return agent_view(row)

    async def agents(self) -> list[dict[str, Any]]:
        return [agent_view(row) for row in await availability_db.list_staff(self.pool, self.timing)]

    async def overview(self, who: Identity) -> dict[str, Any]:
        """GET /console/api/availability: the caller, every agent, and the routing settings."""
        require_agent(who)
        agents = await self.agents()
        me = next((a for a in agents if a["id"] == who.user_id), None) or await self.me(who)
        return {
            "me": me,
            "agents": agents,
            "auto_assign": self.settings.auto_assign,
            "away_after_seconds": self.settings.agent_away_after_seconds,
        }

    async def queue(self, who: Identity) -> dict[str, Any]:
        """GET /console/api/queue: the caller's open conversations, and those awaiting a reply."""
        require_agent(who)
        rows = await availability_db.queue(self.pool, who.user_id, QUEUE_LIMIT)
        return {"assigned": [r["id"] for r in rows], "waiting": [r["id"] for r in rows if r["waiting"]]}


# ---- for other modules -------------------------------------------------------------------------
# They take the app; keys.py imports this module (for Availability's type), hence the imports
# inside the functions.


async def online_agents(app: web.Application) -> list[dict[str, Any]]:
    """Agents online now (a console open on a live instance, not away), across instances."""
    from ..keys import AVAILABILITY

    availability = app.get(AVAILABILITY)
    if availability is None:
        return []
    return [a for a in await availability.agents() if a["status"] == "online"]


async def agents_available(app: web.Application) -> bool:
    """Is any agent online now (for the widget's away mode)? Away agents do not count."""
    return bool(await online_agents(app))
