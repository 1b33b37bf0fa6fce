"""chatserver: a realtime customer-support chat server (aiohttp, asyncpg, Redis, Groq)."""

__version__ = "0.1.0"
