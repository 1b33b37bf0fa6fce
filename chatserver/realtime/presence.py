"""Who is in each ticket room, across instances.

The hub counts a user's tabs on this instance; these stores count instances per user per room,
so a user with tabs on two instances joins once and leaves once.
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

    async def list(self, ticket_id: uuid.UUID) -> list[dict[str, Any]]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalPresence:
    def __init__(self) -> None:
        self.rooms: dict[uuid.UUID, dict[str, dict[str, Any]]] = {}

    async def add(self, ticket_id: uuid.UUID, user: dict[str, Any]) -> bool:
        self.rooms.setdefault(ticket_id, {})[str(user["id"])] = user
        return True

    async def remove(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        room = self.rooms.get(ticket_id, {})
        room.pop(str(user_id), None)
        if not room:
            self.rooms.pop(ticket_id, None)
        return True

    async def list(self, ticket_id: uuid.UUID) -> list[dict[str, Any]]:
        return list(self.rooms.get(ticket_id, {}).values())

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

    def _entries(self, raw: Mapping[Any, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
        """field -> (user id, user view) for unexpired entries."""
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
            live[name] = (name.split("|", 1)[1], entry["user"])
        return live

    async def _write(self, ticket_id: uuid.UUID, user: dict[str, Any]) -> None:
        value = dumps_bytes({"user": user, "exp": time.time() + PRESENCE_TTL})
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
        return not any(uid == str(user["id"]) and f != mine for f, (uid, _) in entries.items())

    async def remove(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        await self.local.remove(ticket_id, user_id)
        try:
            await self.redis.hdel(self._key(ticket_id), self._field(user_id))
            entries = self._entries(await self.redis.hgetall(self._key(ticket_id)))
        except (RedisError, OSError):
            return True
        return not any(uid == str(user_id) for uid, _ in entries.values())

    async def list(self, ticket_id: uuid.UUID) -> list[dict[str, Any]]:
        try:
            entries = self._entries(await self.redis.hgetall(self._key(ticket_id)))
        except (RedisError, OSError):
            return await self.local.list(ticket_id)
        users: dict[str, dict[str, Any]] = {}
        for uid, user in entries.values():
            users[uid] = user
        for user in await self.local.list(ticket_id):
            users[str(user["id"])] = user
        return list(users.values())

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
