"""Canned responses (docs/web.md, "Canned responses"): shared ones, which admins manage and every
agent uses, and each agent's personal ones, which nobody else sees. Customers get none of it."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg

from ..db import canned as canned_db
from ..errors import conflict, forbidden, not_found, validation_error
from ..security import Identity
from ..views import canned_response_view

SHORTCUT = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
MAX_SHORTCUT_CHARS = 40
MAX_BODY_CHARS = 5000
MAX_LISTED = 200


def require_person_agent(who: Identity) -> None:
    """Agents and admins (people: an API key has no composer)."""
    if who.role not in ("agent", "admin"):
        raise forbidden("Canned responses are for agents")


def check_shortcut(shortcut: str) -> str:
    """Lower case letters, digits, - and _; typed after `/` in the composer."""
    shortcut = shortcut.lower()
    if not SHORTCUT.fullmatch(shortcut):
        raise validation_error(
            "shortcut must be 1-40 letters, digits, - or _, starting with a letter or digit",
            details={"fields": {"shortcut": "must be 1-40 letters, digits, - or _"}},
        )
    return shortcut


def _shortcut_taken() -> Exception:
    return conflict("You already have a canned response with this shortcut")


async def list_responses(pool: asyncpg.Pool, who: Identity, q: str | None) -> list[dict[str, Any]]:
    require_person_agent(who)
    return [canned_response_view(r) for r in await canned_db.list_visible(pool, who.user_id, q, MAX_LISTED)]


async def create_response(
    pool: asyncpg.Pool, who: Identity, *, shortcut: str, body: str, shared: bool
) -> dict[str, Any]:
    require_person_agent(who)
    if shared and who.role != "admin":
        raise forbidden("Only admins create shared canned responses")
    try:
        row = await canned_db.insert(pool, None if shared else who.user_id, check_shortcut(shortcut), body)
    except asyncpg.UniqueViolationError:
        raise _shortcut_taken() from None
    return canned_response_view(row)


async def _load_for_change(pool: asyncpg.Pool, who: Identity, canned_id: uuid.UUID) -> asyncpg.Record:
    """Another agent's personal response does not exist for you (404, as for tickets); a shared one
    may be changed by admins only (403)."""
    require_person_agent(who)
    row = await canned_db.get(pool, canned_id)
    if row is None or (row["owner_id"] is not None and row["owner_id"] != who.user_id):
        raise not_found("Canned response")
    if row["owner_id"] is None and who.role != "admin":
        raise forbidden("Only admins change shared canned responses")
    return row


async def update_response(
    pool: asyncpg.Pool, who: Identity, canned_id: uuid.UUID, *, shortcut: str | None, body: str | None
) -> dict[str, Any]:
    await _load_for_change(pool, who, canned_id)
    try:
        row = await canned_db.update(pool, canned_id, None if shortcut is None else check_shortcut(shortcut), body)
    except asyncpg.UniqueViolationError:
        raise _shortcut_taken() from None
    if row is None:
        raise not_found("Canned response")
    return canned_response_view(row)


async def delete_response(pool: asyncpg.Pool, who: Identity, canned_id: uuid.UUID) -> None:
    await _load_for_change(pool, who, canned_id)
    if not await canned_db.delete(pool, canned_id):
        raise not_found("Canned response")
