"""Every typed application key, in one place."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from .realtime.publisher import Publisher
from .services.hooks import MessageHook
from .services.throttle import Throttle
from .settings import Settings

SETTINGS = web.AppKey("settings", Settings)
DB_POOL = web.AppKey("db_pool", asyncpg.Pool)
# The URL the pool actually uses (the embedded server's socket URL when DATABASE_URL is unset).
DB_URL = web.AppKey("db_url", str)
LOGIN_THROTTLE = web.AppKey("login_throttle", Throttle)
# bcrypt cost: 12 in production; tests lower it so the suite stays fast.
BCRYPT_ROUNDS = web.AppKey("bcrypt_rounds", int)
PUBLISHER = web.AppKey("publisher", Publisher)
MESSAGE_HOOK = web.AppKey[MessageHook]("message_hook")
