"""Who is in each ticket room, across instances.

The hub counts a user's tabs on this instance; these stores count instances per user per room,
so a user with tabs on two instances joins once and leaves once.

Customers see staff only once they are *engaged*: an agent who wrote a public message or took
over in this visit to the room. An agent who merely opens a ticket stays invisible to the visitor
(agents still see everyone). Engagement lives with the presence entry, so it ends when the agent
leaves the room on every instance.
- LocalPresence: one process.
- RedisPresence: a hash per room, field "<instance>|<user>", value the user view and an expiry.
  Each instance refreshes its own fields; a crashed instance's entries expire on their own.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..jsonutil import dumps_bytes

log = logging.getLogger(__name__)

# Entries live this long without a refresh; refreshes run at a third of it.
PRESENCE_TTL = 45.0


class PresenceStore(Protocol):
    async def add(self, ticket_id: uuid.UUID, user: dict[str, Any]) -> bool:
        """Record this instance's user in the room; True when no other instance had them."""
        ...

    async def remove(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Forget this instance's user; True when no other instance has them."""
        ...

    async def list(self, ticket_id: uuid.UUID, *, for_customer: bool = False) -> list[dict[str, Any]]:
        """Everyone present; for_customer: customers and engaged staff only."""
        ...

    async def engage(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Mark this instance's present user as engaged; True when they were not engaged on any
        instance before (the moment customers should hear they joined)."""
        ...

    async def is_engaged(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def visible_to_customer(user: dict[str, Any], engaged: bool) -> bool:
    return engaged or user.get("role") == "customer"


class LocalPresence:
    def __init__(self) -> None:
        self.rooms: dict[uuid.UUID, dict[str, dict[str, Any]]] = {}
        self.engaged: dict[uuid.UUID, set[str]] = {}  # ticket -> user ids engaged in this visit

    async def add(self, ticket_id: uuid.UUID, user: dict[str, Any]) -> bool:
        self.rooms.setdefault(ticket_id, {})[str(user["id"])] = user
        return True

    async def remove(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        room = self.rooms.get(ticket_id, {})
        room.pop(str(user_id), None)
        engaged = self.engaged.get(ticket_id, set())
        engaged.discard(str(user_id))
        if not room:
            self.rooms.pop(ticket_id, None)
        if not engaged:
            self.engaged.pop(ticket_id, None)
        return True

    async def list(self, ticket_id: uuid.UUID, *, for_customer: bool = False) -> list[dict[str, Any]]:
        users = list(self.rooms.get(ticket_id, {}).values())
        if not for_customer:
            return users
        engaged = self.engaged.get(ticket_id, set())
        return [u for u in users if visible_to_customer(u, str(u["id"]) in engaged)]

    async def engage(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        if str(user_id) not in self.rooms.get(ticket_id, {}):
            return False  # not in the room on this instance (a REST post): nothing to announce
        engaged = self.engaged.setdefault(ticket_id, set())
        if str(user_id) in engaged:
            return False
        engaged.add(str(user_id))
        return True

    async def is_engaged(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        return str(user_id) in self.engaged.get(ticket_id, set())

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisPresence:
    def __init__(self, redis: aioredis.Redis, prefix: str, instance_id: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.instance_id = instance_id
        self.local = LocalPresence()  # what this instance holds; re-written on every refresh
        self._refresher: asyncio.Task[None] | None = None

    def _key(self, ticket_id: uuid.UUID) -> str:
        return f"{self.prefix}:presence:{ticket_id}"

    def _field(self, user_id: uuid.UUID | str) -> str:
        return f"{self.instance_id}|{user_id}"

    def _entries(self, raw: Mapping[Any, Any]) -> dict[str, tuple[str, dict[str, Any], bool]]:
        """field -> (user id, user view, engaged) for unexpired entries."""
        now = time.time()
        live = {}
        for field_name, value in raw.items():
            try:
                entry = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue
            if entry.get("exp", 0) < now:
                continue
            name = field_name.decode() if isinstance(field_name, bytes) else str(field_name)
            live[name] = (name.split("|", 1)[1], entry["user"], bool(entry.get("engaged")))
        return live

    async def _write(self, ticket_id: uuid.UUID, user: dict[str, Any]) -> None:
        engaged = await self.local.is_engaged(ticket_id, user["id"])
        value = dumps_bytes({"user": user, "exp": time.time() + PRESENCE_TTL, "engaged": engaged})
        key = self._key(ticket_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, self._field(user["id"]), value)
            pipe.expire(key, int(PRESENCE_TTL * 2))
            await pipe.execute()

    async def add(self, ticket_id: uuid.UUID, user: dict[str, Any]) -> bool:
        await self.local.add(ticket_id, user)
        try:
            await self._write(ticket_id, user)
            entries = self._entries(await self.redis.hgetall(self._key(ticket_id)))
        except (RedisError, OSError):
            log.warning("presence: Redis unavailable, using this instance's view")
            return True
        mine = self._field(user["id"])
        return not any(uid == str(user["id"]) and f != mine for f, (uid, _, _) in entries.items())

    async def remove(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        await self.local.remove(ticket_id, user_id)
        try:
            await self.redis.hdel(self._key(ticket_id), self._field(user_id))
            entries = self._entries(await self.redis.hgetall(self._key(ticket_id)))
        except (RedisError, OSError):
            return True
        return not any(uid == str(user_id) for uid, _, _ in entries.values())

    async def list(self, ticket_id: uuid.UUID, *, for_customer: bool = False) -> list[dict[str, Any]]:
        try:
            entries = self._entries(await self.redis.hgetall(self._key(ticket_id)))
        except (RedisError, OSError):
            return await self.local.list(ticket_id, for_customer=for_customer)
        users: dict[str, dict[str, Any]] = {}
        engaged: set[str] = set()
        for uid, user, is_engaged in entries.values():
            users[uid] = user
            if is_engaged:
                engaged.add(uid)
        for user in await self.local.list(ticket_id):
            users[str(user["id"])] = user
            if await self.local.is_engaged(ticket_id, user["id"]):
                engaged.add(str(user["id"]))
        if for_customer:
            return [u for uid, u in users.items() if visible_to_customer(u, uid in engaged)]
        return list(users.values())

    async def engage(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        was_engaged = await self.is_engaged(ticket_id, user_id)
        if not await self.local.engage(ticket_id, user_id):
            return False
        user = self.local.rooms.get(ticket_id, {}).get(str(user_id))
        if user is not None:
            try:
                await self._write(ticket_id, user)
            except (RedisError, OSError):
                log.warning("presence: Redis unavailable, engagement kept on this instance")
        return not was_engaged

    async def is_engaged(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        if await self.local.is_engaged(ticket_id, user_id):
            return True
        try:
            entries = self._entries(await self.redis.hgetall(self._key(ticket_id)))
        except (RedisError, OSError):
            return False
        return any(uid == str(user_id) and engaged for uid, _, engaged in entries.values())

    async def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh_loop(), name="presence-refresh")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            try:
                await self._refresher
            except asyncio.CancelledError:
                pass
        # Leave cleanly so other instances do not show our users until the entries expire.
        for ticket_id, users in list(self.local.rooms.items()):
            try:
                await self.redis.hdel(self._key(ticket_id), *(self._field(u) for u in users))
            except (RedisError, OSError):
                break

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_TTL / 3)
            for ticket_id, users in list(self.local.rooms.items()):
                for user in list(users.values()):
                    try:
                        await self._write(ticket_id, user)
                    except (RedisError, OSError):
                        break
