"""The realtime cleanup context: hub, broker (local or Redis), presence, WebSocket tickets."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ..db import messages as messages_db
from ..keys import BROKER, DB_POOL, HUB, PRESENCE, PUBLISHER, SETTINGS, WS_TICKETS
from ..views import message_view
from .broker import LocalBroker, RedisBroker
from .hub import Hub
from .presence import LocalPresence, RedisPresence
from .tickets import TicketStore

log = logging.getLogger(__name__)


async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = app[DB_POOL]

    async def fetch_range(ticket_id: uuid.UUID, after_seq: int, before_seq: int) -> list[dict[str, Any]]:
        rows = await messages_db.list_after(pool, ticket_id, after_seq, None, max(1, before_seq - after_seq - 1))
        return [message_view(r) for r in rows if r["seq"] < before_seq]

    hub = Hub(fetch_range)
    broker: LocalBroker | RedisBroker
    presence: LocalPresence | RedisPresence
    if settings.redis_url:
        broker = RedisBroker(hub, settings.redis_url, settings.redis_prefix)
        presence = RedisPresence(broker.redis, settings.redis_prefix, broker.instance_id)
        tickets = TicketStore(broker.redis, settings.redis_prefix)
        log.info(
            "realtime: Redis backplane at %s (prefix %s)", settings.redis_url.split("@")[-1], settings.redis_prefix
        )
    else:
        broker = LocalBroker(hub)
        presence = LocalPresence()
        tickets = TicketStore(None, settings.redis_prefix)
        log.info("realtime: single instance (no REDIS_URL)")
    app[HUB] = hub
    app[BROKER] = broker
    app[PUBLISHER] = broker
    app[PRESENCE] = presence
    app[WS_TICKETS] = tickets
    await broker.start()
    await presence.start()
    try:
        yield
    finally:
        await hub.shutdown()
        await presence.close()
        await broker.close()


async def close_sockets_on_shutdown(app: web.Application) -> None:
    """on_shutdown runs before cleanup contexts: flush and close sockets while the rest still works."""
    await app[HUB].shutdown()
