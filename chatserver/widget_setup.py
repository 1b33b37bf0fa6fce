"""The widget-settings and email cleanup context: the settings cache and its change observer, the
console-inbox count behind away mode, and the mail jobs worker wired in after the message hook.
Also `agents_available(app)` and `widget_config(app)`, what the widget's handlers ask."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiohttp import web

from .keys import DB_POOL, HUB, MAILER, MESSAGE_HOOK, PRESENCE, SETTINGS, WIDGET_SETTINGS
from .security import Identity
from .services import availability, away
from .services.mail import MailWorker
from .services.widget_settings import WidgetSettingsCache


async def agents_available(app: web.Application) -> bool:
    """Whether a person could answer now: an agent is online (a console open on a live instance,
    not away: services/availability.py), on any instance."""
    return await availability.agents_available(app)


async def widget_config(app: web.Application, now: dt.datetime | None = None) -> dict[str, Any]:
    snapshot = await app[WIDGET_SETTINGS].get(app[DB_POOL])
    return await away.widget_config(
        snapshot,
        lambda: agents_available(app),
        email_enabled=app[SETTINGS].email_enabled,
        now=now or dt.datetime.now(dt.UTC),
    )


async def widget_email_ctx(app: web.Application) -> AsyncIterator[None]:
    """After realtime and AI: it observes the hub, reads presence and wraps the message hook."""
    settings = app[SETTINGS]
    cache = WidgetSettingsCache(settings.widget_settings_cache_seconds)
    app[WIDGET_SETTINGS] = cache
    hub = app[HUB]
    hub.add_observer(cache.observe)
    presence = app[PRESENCE]

    async def customer_present(ticket_id: uuid.UUID, customer_id: uuid.UUID) -> bool:
        return any(str(user["id"]) == str(customer_id) for user in await presence.list(ticket_id))

    mailer = MailWorker(app[DB_POOL], settings, customer_present)
    app[MAILER] = mailer
    previous = app[MESSAGE_HOOK]

    async def after_post(
        message: dict[str, Any], ticket: asyncpg.Record, who: Identity, *, client_address: str | None = None
    ) -> None:
        await previous(message, ticket, who, client_address=client_address)
        await mailer.on_message(message, ticket)

    if mailer.enabled:
        app[MESSAGE_HOOK] = after_post
    mailer.start()
    try:
        yield
    finally:
        await mailer.close()
