"""Every typed application key, in one place."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry

from .ai.service import AiService
from .db.message_writer import MessageWriter
from .realtime.broker import LocalBroker, RedisBroker
from .realtime.hub import Hub
from .realtime.presence import PresenceStore
from .realtime.publisher import Publisher
from .realtime.tickets import TicketStore
from .services.hooks import AiControl, MessageHook
from .services.throttle import Throttle
from .settings import Settings

SETTINGS = web.AppKey("settings", Settings)
DB_POOL = web.AppKey("db_pool", asyncpg.Pool)
# The URL the pool actually uses (the embedded server's socket URL when DATABASE_URL is unset).
DB_URL = web.AppKey("db_url", str)
# Posted messages are stored through it (group commit); other inserts use the pool directly.
MESSAGE_WRITER = web.AppKey("message_writer", MessageWriter)
LOGIN_THROTTLE = web.AppKey("login_throttle", Throttle)
# New anonymous widget visitors per client address (each one creates an account).
WIDGET_THROTTLE = web.AppKey("widget_throttle", Throttle)
# bcrypt cost: 12 in production; tests lower it so the suite stays fast.
BCRYPT_ROUNDS = web.AppKey("bcrypt_rounds", int)
PUBLISHER = web.AppKey("publisher", Publisher)
HUB = web.AppKey("hub", Hub)
BROKER = web.AppKey[LocalBroker | RedisBroker]("broker")
PRESENCE = web.AppKey[PresenceStore]("presence")
WS_TICKETS = web.AppKey("ws_tickets", TicketStore)
MESSAGE_HOOK = web.AppKey[MessageHook]("message_hook")

# The app's own Prometheus registry (GET /metrics renders it); add gauges and counters to it.
METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)

# Per-request: the request id (see middleware.py), for code that has the request at hand.
REQUEST_ID_KEY = web.RequestKey("request_id", str)
# Per-request: the client's address when a trusted proxy forwarded it (middleware.py). Handlers see
# it as request.remote already; the access log, which gets the request as it arrived, reads it here.
CLIENT_ADDRESS_KEY = web.RequestKey("client_address", str)
# The AI layer's controls; absent when the AI layer is not running.
AI = web.AppKey[AiControl]("ai")
# The AI reply service itself (app[AI] is the same object seen through AiControl): the AI
# REST handlers use its fuller interface (retry/copilot results, reply streams).
AI_SERVICE = web.AppKey("ai_service", AiService)
