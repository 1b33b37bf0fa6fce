"""The hook run after a new message is committed and published (the AI layer plugs in here)."""

from __future__ import annotations

from typing import Any, Protocol

import asyncpg

from ..security import Identity


class MessageHook(Protocol):
    async def __call__(
        self, message: dict[str, Any], ticket: asyncpg.Record, who: Identity, *, client_address: str | None = None
    ) -> None:
        """`message`: the stored message's view; `ticket`: the ticket row as the message left it
        (only last_seq and the activity times differ from before it); `who`: the author;
        `client_address`: the author's address (request.remote) when the post came from a
        request, for per-address budgets."""
        ...


async def no_hook(
    message: dict[str, Any], ticket: asyncpg.Record, who: Identity, *, client_address: str | None = None
) -> None:
    return None


class AiControl(Protocol):
    """What the WebSocket and REST layers ask of the AI layer (set on app[AI] when it runs)."""

    async def retry(self, ticket: asyncpg.Record, who: Identity) -> None:
        """Generate the reply to the latest customer message again."""
        ...

    async def copilot(self, ticket: asyncpg.Record, who: Identity) -> None:
        """Stream a suggested reply to the agents in the room only."""
        ...
