"""Every typed application key, in one place."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry

from .ai.service import AiService
from .db.message_writer import MessageWriter
from .db.pool import DatabaseHealth
from .errors import ApiError
from .realtime.broker import LocalBroker, RedisBroker
from .realtime.hub import Hub
from .realtime.presence import PresenceStore
from .realtime.publisher import Publisher
from .realtime.tickets import TicketStore
from .security import Identity
from .services.access import AccessCache, AccessWatcher
from .services.api_keys import ApiKeys
from .services.attachments import UploadBandwidth
from .services.availability import Availability
from .services.hooks import AiControl, MessageHook
from .services.mail import MailWorker
from .services.outbox import EventSignal
from .services.passwords import PasswordLanes
from .services.socket_limits import SocketLimits
from .services.throttle import LoginThrottle, SendBudget, Throttle
from .services.webhooks import WebhookDispatcher
from .services.widget_settings import WidgetSettingsCache
from .settings import Settings
from .storage import AttachmentStorage

SETTINGS = web.AppKey("settings", Settings)
DB_POOL = web.AppKey("db_pool", asyncpg.Pool)
# The URL the pool actually uses (the embedded server's socket URL when DATABASE_URL is unset).
DB_URL = web.AppKey("db_url", str)
# The database's state as this process sees it (outage start and end, a stuck pool).
DB_HEALTH = web.AppKey("db_health", DatabaseHealth)
# Posted messages are stored through it (group commit); other inserts use the pool directly.
MESSAGE_WRITER = web.AppKey("message_writer", MessageWriter)
LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)
# Sign-up attempts per client address.
SIGNUP_THROTTLE = web.AppKey("signup_throttle", Throttle)
# bcrypt's thread pools: logins and new passwords in separate lanes (services/passwords.py).
PASSWORD_LANES = web.AppKey("password_lanes", PasswordLanes)
# Message posts per user, REST and sockets together (WS_SEND_RATE / WS_SEND_BURST).
SEND_BUDGET = web.AppKey("send_budget", SendBudget)
# Open WebSockets per user and per client address.
SOCKET_LIMITS = web.AppKey("socket_limits", SocketLimits)
# New anonymous widget visitors per client address (each one creates an account).
WIDGET_THROTTLE = web.AppKey("widget_throttle", Throttle)
# What this instance knows of accounts' access (role, disabled, session generation), and what
# applies account changes to it and to the open sockets (services/access.py).
ACCESS_CACHE = web.AppKey("access_cache", AccessCache)
ACCESS_WATCHER = web.AppKey("access_watcher", AccessWatcher)
# Integrations (docs/integrations.md): API-key resolution, the event feed's wake-up signal, and
# the webhook fan-out and delivery workers.
API_KEYS = web.AppKey("api_keys", ApiKeys)
EVENT_SIGNAL = web.AppKey("event_signal", EventSignal)
WEBHOOKS = web.AppKey("webhooks", WebhookDispatcher)
# bcrypt cost: 12 in production; tests lower it so the suite stays fast.
BCRYPT_ROUNDS = web.AppKey("bcrypt_rounds", int)
PUBLISHER = web.AppKey("publisher", Publisher)
HUB = web.AppKey("hub", Hub)
BROKER = web.AppKey[LocalBroker | RedisBroker]("broker")
PRESENCE = web.AppKey[PresenceStore]("presence")
WS_TICKETS = web.AppKey("ws_tickets", TicketStore)
MESSAGE_HOOK = web.AppKey[MessageHook]("message_hook")
# Where attachment bytes live (storage/), and uploads per user (ATTACHMENT_UPLOADS_PER_WINDOW).
ATTACHMENT_STORAGE = web.AppKey[AttachmentStorage]("attachment_storage")
UPLOAD_THROTTLE = web.AppKey("upload_throttle", Throttle)
# Bytes per second all uploads on this instance may read together (ATTACHMENT_INSTANCE_BYTES_PER_SECOND).
UPLOAD_BANDWIDTH = web.AppKey("upload_bandwidth", UploadBandwidth)
# The admin's widget settings as this instance caches them; who is in the console inbox (away
# mode); the mail jobs worker (widget_setup.py, services/mail.py).
WIDGET_SETTINGS = web.AppKey("widget_settings", WidgetSettingsCache)
MAILER = web.AppKey("mailer", MailWorker)

# Agent availability on this instance: open consoles, heartbeat, status announcements, and the
# routing sweep (services/availability.py, services/routing.py).
AVAILABILITY = web.AppKey("availability", Availability)

# The app's own Prometheus registry (GET /metrics renders it); add gauges and counters to it.
METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)

# Per-request: the request id (see middleware.py), for code that has the request at hand.
REQUEST_ID_KEY = web.RequestKey("request_id", str)
# Per-request: the bearer token's checked identity, or the error to answer a handler that asks
# for it with (handlers/identity.py).
IDENTITY_KEY = web.RequestKey[Identity | ApiError]("identity")
# Per-request: the client's address when a trusted proxy forwarded it (middleware.py). Handlers see
# it as request.remote already; the access log, which gets the request as it arrived, reads it here.
CLIENT_ADDRESS_KEY = web.RequestKey("client_address", str)
# The AI layer's controls; absent when the AI layer is not running.
AI = web.AppKey[AiControl]("ai")
# The AI reply service itself (app[AI] is the same object seen through AiControl): the AI
# REST handlers use its fuller interface (retry/copilot results, reply streams).
AI_SERVICE = web.AppKey("ai_service", AiService)
