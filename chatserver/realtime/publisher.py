"""The interface services publish through. Implementations: the broker (local or Redis)."""

from __future__ import annotations

import logging
from typing import Protocol

from redis.exceptions import RedisError

from .events import Event


class Publisher(Protocol):
    async def publish(self, event: Event) -> None:
        """Deliver `event` to every subscriber on every instance. Never raises for transport
        failures: local subscribers are always served, remote delivery is best effort and
        healed by resync."""
        ...


class NullPublisher:
    """For CLI commands that write without a running hub."""

    async def publish(self, event: Event) -> None:
        return None


class OneShotPublisher:
    """For CLI commands whose changes running servers must hear of (account changes): each event
    goes straight to the Redis backplane when there is one, else nowhere (docs/security.md says
    how soon servers notice then)."""

    def __init__(self, redis_url: str | None, prefix: str) -> None:
        self.redis_url = redis_url
        self.prefix = prefix

    async def publish(self, event: Event) -> None:
        if self.redis_url is None:
            return
        from .broker import publish_once

        try:
            await publish_once(self.redis_url, self.prefix, event)
        except (RedisError, OSError) as exc:
            logging.getLogger(__name__).warning(
                "could not tell the running servers over Redis (%s); they notice within ACCOUNT_RECHECK_SECONDS",
                type(exc).__name__,
            )
