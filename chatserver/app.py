"""create_app(settings): middlewares, routes and cleanup contexts. Wiring only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import ExitStack

from aiohttp import web

from .ai.setup import ai_ctx
from .db.embedded import embedded_postgres
from .db.message_writer import MessageWriter
from .db.migrate import apply_migrations
from .db.pool import create_pool
from .handlers.pages import setup_templates
from .keys import (
    BCRYPT_ROUNDS,
    DB_POOL,
    DB_URL,
    LOGIN_THROTTLE,
    MESSAGE_HOOK,
    MESSAGE_WRITER,
    METRICS_REGISTRY,
    PUBLISHER,
    SETTINGS,
    WIDGET_THROTTLE,
)
from .metrics import HttpMetrics, create_registry
from .middleware import echo_request_id, request_middleware
from .realtime.publisher import NullPublisher
from .realtime.setup import close_sockets_on_shutdown, realtime_ctx
from .routes import setup_routes
from .security import DEFAULT_BCRYPT_ROUNDS
from .services.hooks import no_hook
from .services.throttle import Throttle
from .settings import Settings
from .web_session import console_session_middleware

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
        pool = await create_pool(url, settings.db_pool_min, settings.db_pool_max)
        app[DB_POOL] = pool
        try:
            yield
        finally:
            await pool.close()
    finally:
        # Stopping it (pg_ctl stop) blocks too; embedded.py logs before and after.
        await loop.run_in_executor(None, stack.close)


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
    # console's requests (web_session.py).
    middlewares = [
        request_middleware(HttpMetrics(registry), settings.trusted_proxies),
        console_session_middleware(settings),
    ]
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[METRICS_REGISTRY] = registry
    app.on_response_prepare.append(echo_request_id)
    app[BCRYPT_ROUNDS] = bcrypt_rounds
    app[LOGIN_THROTTLE] = Throttle(settings.login_max_failures, settings.login_window_seconds)
    app[WIDGET_THROTTLE] = Throttle(settings.widget_visitors_per_window, settings.widget_visitor_window_seconds)
    app[PUBLISHER] = NullPublisher()
    app[MESSAGE_HOOK] = no_hook
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(message_writer_ctx)
    app.cleanup_ctx.append(realtime_ctx)
    # After realtime: it installs the message hook and observes the hub.
    app.cleanup_ctx.append(ai_ctx)
    # First on shutdown, so the log says it before the sockets close and the database stops.
    app.on_shutdown.append(log_stopping)
    app.on_shutdown.append(close_sockets_on_shutdown)
    setup_templates(app)
    setup_routes(app)
    return app
