"""Password hashing (bcrypt, off the event loop) and access tokens (PyJWT, HS256 pinned)."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass
from functools import cache

import bcrypt
import jwt

from .errors import unauthorized, validation_error

JWT_ALGORITHM = "HS256"
# bcrypt only looks at the first 72 bytes; longer passwords would be silently truncated.
PASSWORD_MAX_BYTES = 72
PASSWORD_MIN_CHARS = 8
# Cost 12 is bcrypt's common default (~250 ms); tests lower it through hash_rounds.
DEFAULT_BCRYPT_ROUNDS = 12


def check_password_rules(password: str) -> None:
    if len(password) < PASSWORD_MIN_CHARS:
        raise validation_error(
            f"Password must be at least {PASSWORD_MIN_CHARS} characters",
            details={"fields": {"password": f"must be at least {PASSWORD_MIN_CHARS} characters"}},
        )
    if len(password.encode()) > PASSWORD_MAX_BYTES:
        raise validation_error(
            f"Password must be at most {PASSWORD_MAX_BYTES} bytes",
            details={"fields": {"password": f"must be at most {PASSWORD_MAX_BYTES} bytes"}},
        )


async def hash_password(password: str, rounds: int = DEFAULT_BCRYPT_ROUNDS) -> str:
    loop = asyncio.get_running_loop()
    salt = bcrypt.gensalt(rounds)
    hashed = await loop.run_in_executor(None, bcrypt.hashpw, password.encode(), salt)
    return hashed.decode()


@cache
def unusable_password_hash() -> str:
    """The password hash of accounts that never sign in with a password (widget visitors, API
    keys' integration accounts): a well-formed bcrypt hash, so the login path needs no special
    case, of 256 random bits that no one ever sees. Made once per process at the lowest cost,
    so creating such accounts costs no bcrypt work at all."""
    return bcrypt.hashpw(secrets.token_urlsafe(32).encode(), bcrypt.gensalt(4)).decode()


async def verify_password(password: str, hashed: str) -> bool:
    encoded = password.encode()
    if len(encoded) > PASSWORD_MAX_BYTES:
        return False
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, bcrypt.checkpw, encoded, hashed.encode())


@dataclass(frozen=True)
class Identity:
    """Who is calling: the verified claims of an access token (or of a console session).

    `generation` is the account's session generation when the token was issued: raising it on
    the account (logout, role change, disable, password reset) ends every token and session
    that carries an older one (services/access.py). `signed_in_at` is when the chain of
    renewals this token belongs to began (POST /widget/token caps it).

    `scopes` is set only for an API key (role "integration", services/api_keys.py): such an
    identity sees tickets as staff do, but a key reaches only the routes and frames its scopes
    name (ROUTE_SCOPES there), so being staff here grants it nothing beyond them."""

    user_id: uuid.UUID
    role: str
    generation: int = 0
    signed_in_at: int = 0
    scopes: frozenset[str] | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in ("agent", "admin", "integration")

    def has_scope(self, scope: str) -> bool:
        """People have every scope their role allows; a key, those it was given ("admin": all)."""
        return self.scopes is None or scope in self.scopes or "admin" in self.scopes


def issue_token(
    secret: str,
    user_id: uuid.UUID,
    role: str,
    ttl: int,
    *,
    generation: int = 0,
    signed_in_at: int | None = None,
    expires_at: int | None = None,
) -> str:
    """An access token. `signed_in_at` (claim auth_time) defaults to now: a fresh sign-in;
    `expires_at`, when given, caps the expiry below now + ttl."""
    now = int(time.time())
    exp = now + ttl if expires_at is None else min(now + ttl, expires_at)
    claims = {
        "sub": str(user_id),
        "role": role,
        "gen": generation,
        "auth_time": now if signed_in_at is None else signed_in_at,
        "iat": now,
        "exp": exp,
        "typ": "access",
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


# Verified tokens, so that a client's every request does not pay for PyJWT again (~80 µs per
# decode, a fifth of the CPU of an authenticated GET; docs/performance.md). Keyed by secret and
# the exact token string, so only a token that passed full verification can hit; its expiry is
# still checked on every use. Bounded: the oldest entry goes first.
_VERIFIED_MAX = 4096
_verified: dict[tuple[str, str], tuple[Identity, float]] = {}


def decode_token(secret: str, token: str) -> Identity:
    hit = _verified.get((secret, token))
    if hit is not None:
        identity, expires = hit
        if time.time() < expires:
            return identity
        _verified.pop((secret, token), None)
        raise unauthorized("Token has expired")
    identity, expires = _verify_token(secret, token)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.pop(next(iter(_verified)), None)
    _verified[(secret, token)] = (identity, expires)
    return identity


def _verify_token(secret: str, token: str) -> tuple[Identity, float]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise unauthorized("Token has expired") from None
    except jwt.PyJWTError:
        raise unauthorized("Token is invalid") from None
    if claims.get("typ") != "access" or claims.get("role") not in ("customer", "agent", "admin"):
        raise unauthorized("Token is invalid")
    # Tokens issued before session generations existed carry neither claim: generation 0 (every
    # account's first), signed in when issued.
    generation, signed_in_at = claims.get("gen", 0), claims.get("auth_time", claims["iat"])
    if type(generation) is not int or type(signed_in_at) is not int or generation < 0:
        raise unauthorized("Token is invalid")
    try:
        identity = Identity(uuid.UUID(str(claims["sub"])), claims["role"], generation, signed_in_at)
    except ValueError:
        raise unauthorized("Token is invalid") from None
    return identity, float(claims["exp"])
