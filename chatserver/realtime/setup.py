"""The realtime cleanup context: hub, broker (local or Redis), presence, WebSocket tickets, and
the heartbeat that pings every socket."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import Gauge

from ..db import messages as messages_db
from ..keys import BROKER, DB_POOL, HUB, METRICS_REGISTRY, PRESENCE, PUBLISHER, SETTINGS, WS_TICKETS
from ..views import message_view
from .broker import LocalBroker, RedisBroker
from .heartbeat import Heartbeat
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
    _register_metrics(app, hub, broker)
    heartbeat = Heartbeat(lambda: hub.connections, settings.ws_heartbeat)
    await broker.start()
    await presence.start()
    heartbeat.start()
    try:
        yield
    finally:
        await heartbeat.close()
        await hub.shutdown()
        await presence.close()
        await broker.close()


def _register_metrics(app: web.Application, hub: Hub, broker: LocalBroker | RedisBroker) -> None:
    # Read at scrape time: nothing is counted per frame or per connection on the hot path.
    registry = app[METRICS_REGISTRY]
    Gauge("chatserver_open_websockets", "Open WebSocket connections on this instance", registry=registry).set_function(
        lambda: len(hub.connections)
    )
    Gauge(
        "chatserver_rooms", "Ticket rooms with at least one connection on this instance", registry=registry
    ).set_function(lambda: len(hub.rooms))
    Gauge(
        "chatserver_ai_streams_seen", "AI replies in flight, as seen by this instance's hub", registry=registry
    ).set_function(lambda: sum(len(s) for s in hub.streams.values()))
    Gauge(
        "chatserver_backplane_up", "1 when the Redis backplane is connected (always 1 without Redis)", registry=registry
    ).set_function(lambda: 1.0 if getattr(broker, "healthy", True) else 0.0)


async def close_sockets_on_shutdown(app: web.Application) -> None:
    """on_shutdown runs before cleanup contexts: flush and close sockets while the rest still works."""
    await app[HUB].shutdown()
