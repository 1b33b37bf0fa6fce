"""The console's customer panel: who wrote (name, email, the host site's user id), from where (the
visitor context the widget sends when it opens a ticket: page, referrer, browser, language, time
zone), and their other tickets. Agents and admins only.

The visitor context is what a browser claims, so it is bounded and checked on the way in and shown
as text: a URL is stored as given, and offered as a link only when it is http(s) (`*_is_web`)."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from ..db import customer_panel as panel_db
from ..db import widget as widget_db
from ..errors import ApiError, forbidden, not_found, validation_error
from ..security import Identity
from ..validation import Str, validate
from .console import customer_view

MAX_URL_CHARS = 2048
# Long enough for every real browser's user agent (they are ~150 characters; a few reach 400).
MAX_USER_AGENT_CHARS = 512
# Empty strings are accepted and dropped (a browser without a referrer sends "").
CONTEXT_SCHEMA = {
    "page_url": Str(required=False, min_len=0, max_len=MAX_URL_CHARS),
    "referrer": Str(required=False, min_len=0, max_len=MAX_URL_CHARS),
    "user_agent": Str(required=False, min_len=0, max_len=MAX_USER_AGENT_CHARS),
    "language": Str(required=False, min_len=0, max_len=35, strip=False),
    "time_zone": Str(required=False, min_len=0, max_len=64, strip=False),
}
# BCP 47 as browsers report it (navigator.language): "en", "fr-CA", "zh-Hant-TW".
LANGUAGE = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
# IANA zone names as Intl reports them: "Europe/Paris", "America/Argentina/Buenos_Aires", "UTC",
# "Etc/GMT+5". Not looked up in this server's tz database, which may be older than the browser's.
TIME_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,3}")
OTHER_TICKETS = 10


def clean_context(raw: Any) -> dict[str, str] | None:
    """The visitor context of POST /tickets `context`, checked; None when absent or empty. Problems
    are a 422 naming `context.<field>`."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise validation_error("Invalid visitor context", details={"fields": {"context": "must be an object"}})
    problems: dict[str, str] = {}
    try:
        context: dict[str, str] = validate(raw, CONTEXT_SCHEMA)
    except ApiError as exc:  # validate()'s 422, re-keyed under "context."
        fields = (exc.details or {}).get("fields") or {}
        problems = {f"context.{k}": v for k, v in fields.items()}
        context = {}
    for name in ("page_url", "referrer", "user_agent"):
        if name in context and any(ord(c) < 32 or ord(c) == 127 for c in context[name]):
            problems[f"context.{name}"] = "must not contain control characters"
    if context.get("language") and not LANGUAGE.fullmatch(context["language"]):
        problems["context.language"] = "must be a language tag such as en or fr-CA"
    if context.get("time_zone") and not TIME_ZONE.fullmatch(context["time_zone"]):
        problems["context.time_zone"] = "must be a time zone name such as Europe/Paris"
    if problems:
        raise validation_error(
            "Invalid visitor context: " + "; ".join(f"{k} {v}" for k, v in problems.items()),
            details={"fields": problems},
        )
    context = {k: v for k, v in context.items() if v}
    return context or None


def is_web_url(url: str | None) -> bool:
    """Whether `url` may be rendered as a link: http or https with a host, nothing else
    (javascript:, data:, file: and relative URLs stay text)."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


_BROWSERS = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/(\d+)")),
    ("Opera", re.compile(r"(?:OPR|Opera)/(\d+)")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/(\d+)")),
    ("Firefox", re.compile(r"(?:Firefox|FxiOS)/(\d+)")),
    ("Chrome", re.compile(r"(?:Chrome|CriOS)/(\d+)")),
    ("Safari", re.compile(r"Version/(\d+)(?:\.\d+)*.*Safari/")),
)
_SYSTEMS = (
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Android", re.compile(r"Android")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("Linux", re.compile(r"Linux|X11")),
)


def describe_user_agent(user_agent: str | None) -> str | None:
    """A short "Chrome 120 on macOS" for the panel; None when nothing is recognised. Browsers
    are tried in order because each one's user agent names the others (Edge says Chrome and
    Safari, Chrome says Safari)."""
    if not user_agent:
        return None
    browser = next((f"{name} {m.group(1)}" for name, rx in _BROWSERS if (m := rx.search(user_agent))), None)
    system = next((name for name, rx in _SYSTEMS if rx.search(user_agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system


def context_view(context: dict[str, str] | None) -> dict[str, Any] | None:
    if not context:
        return None
    return {
        "page_url": context.get("page_url"),
        "page_url_is_web": is_web_url(context.get("page_url")),
        "referrer": context.get("referrer"),
        "referrer_is_web": is_web_url(context.get("referrer")),
        "user_agent": context.get("user_agent"),
        "browser": describe_user_agent(context.get("user_agent")),
        "language": context.get("language"),
        "time_zone": context.get("time_zone"),
    }


async def customer_panel(pool: asyncpg.Pool, who: Identity, ticket_id: uuid.UUID) -> dict[str, Any]:
    """GET /tickets/{id}/customer. Customers get 403 whatever the ticket (nothing to probe)."""
    if who.role not in ("agent", "admin"):
        raise forbidden("The customer panel is for agents and admins")
    ticket = await panel_db.visitor_context(pool, ticket_id)
    if ticket is None:
        raise not_found("Ticket")
    profiles = await widget_db.customer_profiles(pool, [ticket["customer_id"]])
    earlier = await panel_db.other_tickets(pool, ticket["customer_id"], ticket_id, OTHER_TICKETS)
    return {
        "customer": customer_view(profiles[0]) if profiles else None,
        "context": context_view(ticket["visitor_context"]),
        "other_tickets": [
            {k: row[k] for k in ("id", "subject", "status", "created_at", "last_activity_at")} for row in earlier
        ],
        "other_total": earlier[0]["total"] if earlier else 0,
    }
