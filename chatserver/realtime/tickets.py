"""Short-lived, single-use WebSocket tickets for browsers, which cannot set headers.

A browser POSTs (with its bearer token or session) for a ticket and puts it on the socket URL.
The ticket is a signed token valid for TICKET_TTL seconds that can be redeemed once, so a URL
that lands in an access log is worthless by the time anyone reads it.
"""

from __future__ import annotations

import time
import uuid

import jwt
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import unauthorized
from ..security import JWT_ALGORITHM, Identity

TICKET_TTL = 60


class TicketStore:
    """Remembers redeemed ticket ids until they expire: in Redis when shared, else in-process."""

    def __init__(self, redis: aioredis.Redis | None, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._used: dict[str, float] = {}

    async def first_use(self, jti: str) -> bool:
        if self.redis is not None:
            try:
                return bool(await self.redis.set(f"{self.prefix}:wsticket:{jti}", 1, nx=True, ex=TICKET_TTL * 2))
            except (RedisError, OSError):
                pass  # fall back to this instance's memory: still single-use here
        now = time.monotonic()
        if len(self._used) > 10_000:
            self._used = {k: v for k, v in self._used.items() if v > now}
        if jti in self._used:
            return False
        self._used[jti] = now + TICKET_TTL * 2
        return True


def issue_ws_ticket(secret: str, who: Identity) -> str:
    now = int(time.time())
    claims = {
        "sub": str(who.user_id),
        "role": who.role,
        # The redeemed ticket is checked against the account like the token it came from.
        "gen": who.generation,
        "iat": now,
        "exp": now + TICKET_TTL,
        "typ": "ws",
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


async def redeem_ws_ticket(secret: str, store: TicketStore, ticket: str) -> Identity:
    try:
        claims = jwt.decode(ticket, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub", "jti"]})
        if claims.get("typ") != "ws" or claims.get("role") not in ("customer", "agent", "admin"):
            raise jwt.InvalidTokenError("not a websocket ticket")
        generation = claims.get("gen", 0)
        if type(generation) is not int:
            raise jwt.InvalidTokenError("bad generation")
        identity = Identity(uuid.UUID(claims["sub"]), claims["role"], generation)
    except (jwt.PyJWTError, ValueError):
        raise unauthorized("WebSocket ticket is invalid or expired") from None
    if not await store.first_use(str(claims["jti"])):
        raise unauthorized("WebSocket ticket was already used")
    return identity
