"""create_app(settings): middlewares, routes and cleanup contexts. Wiring only."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack

from aiohttp import web

from .ai.setup import ai_ctx
from .db.embedded import embedded_postgres
from .db.message_writer import MessageWriter
from .db.migrate import apply_migrations
from .db.pool import DatabaseHealth, create_pool
from .handlers.identity import bearer_identity_middleware
from .handlers.pages import setup_templates
from .keys import (
    ACCESS_CACHE,
    ACCESS_WATCHER,
    AI_SERVICE,
    API_KEYS,
    AVAILABILITY,
    BCRYPT_ROUNDS,
    BROKER,
    DB_HEALTH,
    DB_POOL,
    DB_URL,
    EVENT_SIGNAL,
    HUB,
    LOGIN_THROTTLE,
    MESSAGE_HOOK,
    MESSAGE_WRITER,
    METRICS_REGISTRY,
    PASSWORD_LANES,
    PUBLISHER,
    SEND_BUDGET,
    SETTINGS,
    SIGNUP_THROTTLE,
    SOCKET_LIMITS,
    WEBHOOKS,
    WIDGET_THROTTLE,
)
from .metrics import HttpMetrics, create_registry
from .middleware import echo_request_id, request_middleware
from .realtime.events import Event
from .realtime.publisher import NullPublisher
from .realtime.setup import close_sockets_on_shutdown, realtime_ctx
from .routes import setup_routes
from .security import DEFAULT_BCRYPT_ROUNDS
from .services import routing
from .services.access import AccessCache, AccessWatcher
from .services.api_keys import ApiKeys
from .services.availability import Availability
from .services.hooks import no_hook
from .services.outbox import EventSignal, retention_loop
from .services.passwords import PasswordLanes, lane_sizes
from .services.search_indexer import indexer_loop
from .services.socket_limits import SocketLimits
from .services.throttle import LoginThrottle, SendBudget, Throttle
from .services.webhooks import WebhookDispatcher, delivery_pool
from .settings import Settings
from .storage.setup import attachments_ctx
from .web_session import console_session_middleware
from .widget_setup import widget_email_ctx

log = logging.getLogger(__name__)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Embedded PostgreSQL when DATABASE_URL is unset, then migrations, then the pool."""
    settings = app[SETTINGS]
    loop = asyncio.get_running_loop()
    stack = ExitStack()
    try:
        url = settings.database_url
        if url is None:
            # pgserver blocks while initdb/pg_ctl run: keep it off the event loop.
            cm = embedded_postgres(settings.data_dir)
            url = await loop.run_in_executor(None, stack.enter_context, cm)
        await loop.run_in_executor(None, apply_migrations, url)
        app[DB_URL] = url
        pool = await create_pool(
            url,
            settings.db_pool_min,
            settings.db_pool_max,
            acquire_timeout=settings.db_acquire_timeout,
            health=app[DB_HEALTH],
        )
        app[DB_POOL] = pool
        try:
            yield
        finally:
            await pool.close()
    finally:
        # Stopping it (pg_ctl stop) blocks too; embedded.py logs before and after.
        await loop.run_in_executor(None, stack.close)


async def access_ctx(app: web.Application) -> AsyncIterator[None]:
    """Applies account changes (from any instance) to this one's cache and sockets, and re-checks
    the accounts behind open sockets (services/access.py)."""
    watcher = AccessWatcher(
        app[DB_POOL], app[ACCESS_CACHE], lambda: app[HUB].connections, app[SETTINGS].account_recheck_seconds
    )
    app[ACCESS_WATCHER] = watcher
    app[HUB].add_observer(watcher.observe)
    watcher.start()
    try:
        yield
    finally:
        await watcher.close()


async def integrations_ctx(app: web.Application) -> AsyncIterator[None]:
    """API keys, the event feed's wake-ups, event retention and webhook delivery
    (docs/integrations.md); after realtime and access: it observes the hub and uses the cache."""
    settings = app[SETTINGS]
    pool = app[DB_POOL]
    keys = ApiKeys(
        pool,
        app[ACCESS_CACHE],
        ttl=settings.account_cache_seconds,
        rate=settings.api_key_rate,
        burst=settings.api_key_burst,
    )
    app[API_KEYS] = keys
    signal = EventSignal()
    app[EVENT_SIGNAL] = signal
    # Delivering here: the dispatcher gets a bookkeeping pool of its own (services/webhooks.py,
    # delivery_pool). Not delivering: it only lends the admin routes its guard.
    delivering = await delivery_pool(app[DB_URL]) if settings.webhook_delivery else None
    webhooks = WebhookDispatcher.from_settings(delivering or pool, settings)
    app[WEBHOOKS] = webhooks

    def wake(event: Event) -> None:
        signal.observe(event)
        webhooks.nudge()

    app[HUB].add_observer(wake)
    if delivering is not None:
        webhooks.start()
    else:  # its nudges go nowhere
        log.info("webhook delivery is off here: a `python -m chatserver webhook-worker` process delivers")
    retention = asyncio.get_running_loop().create_task(
        retention_loop(pool, settings.event_retention_days), name="event-retention"
    )
    try:
        yield
    finally:
        retention.cancel()
        await asyncio.gather(retention, return_exceptions=True)
        await webhooks.close()
        if delivering is not None:
            await delivering.close()
        await keys.close()


async def search_indexer_ctx(app: web.Application) -> AsyncIterator[None]:
    """The search indexer (services/search_indexer.py): one task per instance, taking turns."""
    task = asyncio.get_running_loop().create_task(
        indexer_loop(app[DB_POOL], app[SETTINGS].search_index_seconds), name="search-indexer"
    )
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def availability_ctx(app: web.Application) -> AsyncIterator[None]:
    """Agent availability and routing (services/availability.py); after realtime and AI: it
    observes the hub, uses the broker's instance id, and routes the AI's handoffs."""
    settings = app[SETTINGS]
    pool = app[DB_POOL]
    availability = Availability(pool, lambda: app[PUBLISHER], settings, app[BROKER].instance_id)
    app[AVAILABILITY] = availability
    app[HUB].add_observer(availability.observe)
    ai = app.get(AI_SERVICE)
    if ai is not None:

        async def route_handoff(ticket_id: uuid.UUID) -> None:
            await routing.assign(pool, app[PUBLISHER], settings, ticket_id, "handoff")

        ai.after_handoff = route_handoff
    availability.start()
    try:
        yield
    finally:
        await availability.close()


async def password_lanes_ctx(app: web.Application) -> AsyncIterator[None]:
    lanes = PasswordLanes(*lane_sizes())
    app[PASSWORD_LANES] = lanes
    try:
        yield
    finally:
        lanes.close()


async def message_writer_ctx(app: web.Application) -> AsyncIterator[None]:
    """The group-commit writer for posted messages; on exit it stores what it accepted, before
    the pool closes."""
    writer = MessageWriter(app[DB_POOL])
    app[MESSAGE_WRITER] = writer
    try:
        yield
    finally:
        await writer.close()


async def log_stopping(app: web.Application) -> None:
    log.info("stopping chatserver: closing connections")


def create_app(settings: Settings, *, bcrypt_rounds: int = DEFAULT_BCRYPT_ROUNDS) -> web.Application:
    registry = create_registry()
    # Outermost first. request_middleware (request id, errors, metrics) wraps everything, so an
    # error the session raises still leaves in the JSON error shape; the session runs only for the
    # console's requests (web_session.py); bearer tokens are checked against their account before
    # the handler runs (handlers/identity.py).
    middlewares = [
        request_middleware(HttpMetrics(registry), settings.trusted_proxies),
        console_session_middleware(settings),
        bearer_identity_middleware(),
    ]
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[DB_HEALTH] = DatabaseHealth()
    app[METRICS_REGISTRY] = registry
    app.on_response_prepare.append(echo_request_id)
    app[BCRYPT_ROUNDS] = bcrypt_rounds
    app[ACCESS_CACHE] = AccessCache(settings.account_cache_seconds)
    # The limits of docs/operations.md, "Limits".
    app[LOGIN_THROTTLE] = LoginThrottle(
        per_pair=settings.login_max_failures,
        per_address=settings.login_address_max_failures,
        per_account=settings.login_account_max_failures,
        window=settings.login_window_seconds,
    )
    app[SIGNUP_THROTTLE] = Throttle(settings.signup_limit_per_address, settings.signup_window_seconds)
    app[SEND_BUDGET] = SendBudget(settings.ws_send_rate, settings.ws_send_burst)
    app[SOCKET_LIMITS] = SocketLimits(settings.sockets_per_user, settings.sockets_per_address)
    app[WIDGET_THROTTLE] = Throttle(settings.widget_visitors_per_window, settings.widget_visitor_window_seconds)
    app[PUBLISHER] = NullPublisher()
    app[MESSAGE_HOOK] = no_hook
    app.cleanup_ctx.append(password_lanes_ctx)
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(message_writer_ctx)
    app.cleanup_ctx.append(search_indexer_ctx)
    app.cleanup_ctx.append(attachments_ctx)
    app.cleanup_ctx.append(realtime_ctx)
    app.cleanup_ctx.append(access_ctx)
    app.cleanup_ctx.append(integrations_ctx)
    # After realtime: it installs the message hook and observes the hub.
    app.cleanup_ctx.append(ai_ctx)
    app.cleanup_ctx.append(availability_ctx)
    # After AI: it wraps the message hook the AI installed (reply emails), and observes the hub.
    app.cleanup_ctx.append(widget_email_ctx)
    # First on shutdown, so the log says it before the sockets close and the database stops.
    app.on_shutdown.append(log_stopping)
    app.on_shutdown.append(close_sockets_on_shutdown)
    setup_templates(app)
    setup_routes(app)
    return app
