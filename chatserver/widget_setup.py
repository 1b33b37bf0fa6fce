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

from .keys import AGENT_PRESENCE, BROKER, DB_POOL, HUB, MAILER, MESSAGE_HOOK, PRESENCE, SETTINGS, WIDGET_SETTINGS
from .security import Identity
from .services import away
from .services.mail import MailWorker
from .services.widget_settings import WidgetSettingsCache


async def agents_available(app: web.Application) -> bool:
    """Whether a person could answer now: a staff member has the console inbox open on some
    instance (services/away.py). The one place to re-point at agent availability
    (online / away / offline) when services/availability.py lands."""
    presence = app.get(AGENT_PRESENCE)
    if presence is None:
        return away.local_inbox_staff(app[HUB]) > 0
    return await presence.anyone_online()


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
    broker = app[BROKER]
    # With a Redis backplane, the broker's connection and instance id; alone, this hub only.
    inbox = away.InboxPresence(
        hub, getattr(broker, "redis", None), settings.redis_prefix, str(getattr(broker, "instance_id", "local"))
    )
    app[AGENT_PRESENCE] = inbox
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
    inbox.start()
    mailer.start()
    try:
        yield
    finally:
        await mailer.close()
        await inbox.close()
