"""The interface services publish through. Implementations: the broker (local or Redis)."""

from __future__ import annotations

from typing import Protocol

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
