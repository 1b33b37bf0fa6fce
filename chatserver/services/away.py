"""Away mode: whether the widget should say "we are away" (outside business hours, or no agent
online) and ask for an email address.

"An agent is online" is, until agent availability (online / away / offline) lands, "a staff
member has the console's inbox socket open on some instance". Each instance counts the staff in
its own inbox room, and with a Redis backplane writes that count into one hash field of its own
every INBOX_REFRESH_SECONDS (with an expiry, so a crashed instance's count lapses). Everything
asks `chatserver.widget_setup.agents_available(app)`, the one function to re-point at agent
availability (services/availability.py) when it lands.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..realtime import events
from ..realtime.hub import Hub
from .widget_settings import Snapshot, is_open, next_opening

log = logging.getLogger(__name__)

# How often an instance re-counts its inbox sockets and refreshes its entry; entries expire after
# three intervals without a refresh.
INBOX_REFRESH_SECONDS = 5.0


def local_inbox_staff(hub: Hub) -> int:
    """Agents and admins (not API keys) with the inbox open on this instance."""
    room = hub.rooms.get(events.INBOX_CHANNEL)
    if room is None:
        return 0
    return len({c.identity.user_id for c in room.connections if c.identity.role in ("agent", "admin")})


class InboxPresence:
    """This instance's inbox staff count, shared with the others through Redis when there is one."""

    def __init__(self, hub: Hub, redis: aioredis.Redis | None, prefix: str, instance_id: str) -> None:
        self.hub = hub
        self.redis = redis
        self.key = f"{prefix}:inbox-staff"
        self.instance_id = instance_id
        self._task: asyncio.Task[None] | None = None

    async def publish_count(self) -> None:
        if self.redis is None:
            return
        count = local_inbox_staff(self.hub)
        if count:
            value = f"{count}|{time.time() + 3 * INBOX_REFRESH_SECONDS}"
            await self.redis.hset(self.key, self.instance_id, value)
        else:
            await self.redis.hdel(self.key, self.instance_id)

    async def anyone_online(self) -> bool:
        if local_inbox_staff(self.hub):
            return True
        if self.redis is None:
            return False
        try:
            entries = await self.redis.hgetall(self.key)
        except (RedisError, OSError):
            log.warning("away mode: Redis unavailable, counting this instance's agents only")
            return False
        now = time.time()
        for raw in entries.values():
            count, _, expires = (raw.decode() if isinstance(raw, bytes) else str(raw)).partition("|")
            try:
                if int(count) > 0 and float(expires) > now:
                    return True
            except ValueError:
                continue
        return False

    def start(self) -> None:
        if self.redis is not None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="inbox-presence")

    async def close(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self.redis is not None:
            try:
                await self.redis.hdel(self.key, self.instance_id)
            except (RedisError, OSError):
                pass  # the entry expires on its own

    async def _loop(self) -> None:
        while True:
            try:
                await self.publish_count()
            except (RedisError, OSError) as exc:
                log.warning("away mode: could not share this instance's agent count (%s)", type(exc).__name__)
            await asyncio.sleep(INBOX_REFRESH_SECONDS)


async def widget_config(
    snapshot: Snapshot,
    agents_available: Callable[[], Awaitable[bool]],
    *,
    email_enabled: bool,
    now: dt.datetime,
) -> dict[str, Any]:
    """What the widget frame needs: the admin's settings, whether we are away right now (outside
    business hours, or nobody to answer), and whether to ask for an email address."""
    settings = snapshot.settings
    hours = settings["business_hours"]
    open_now = is_open(hours, now)
    available = await agents_available() if open_now else False
    away = not open_now or not available
    capture = settings["email_capture"]
    ask = email_enabled and (capture == "always" or (capture == "away" and away))
    return {
        "settings": settings,
        "version": snapshot.version,
        "status": {
            "open": open_now,
            "agents_available": available,
            "away": away,
            "next_open_at": None if open_now else next_opening(hours, now),
        },
        "email": {"enabled": email_enabled, "ask": ask},
    }
