"""The widget settings an admin edits (colour, greeting, expected reply line, business hours, away
message, languages and per-language strings): validation, storage, and a per-instance cache.

Every instance serves the widget from its cache. A save publishes `widget_settings.changed` on
the backplane, and every instance drops its copy at once (as services/access.py does for
accounts); the copy also expires after WIDGET_SETTINGS_CACHE_SECONDS, which bounds how stale an
instance can be should that event be lost while Redis was away.

Precedence (docs/web.md, "Widget settings"): the widget's built-in strings, then the embed
script's data-* attributes, then what the admin saved here. A field the admin left unset (null)
does not override anything.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import time
import uuid
import zoneinfo
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..db import widget_settings as settings_db
from ..errors import validation_error
from ..realtime import events
from ..realtime.events import Event
from ..realtime.publisher import Publisher
from ..security import Identity

log = logging.getLogger(__name__)

# The widget's languages (web/static/js/widget-frame.js STRINGS).
LOCALES = ("en", "fr", "de", "es")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EMAIL_CAPTURE = ("away", "always", "off")
COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
STRING_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,49}$")
MAX_TEXT_CHARS = 500
MAX_STRINGS_PER_LOCALE = 80
MAX_INTERVALS = 7 * 4

# Every field, with the value it has when the admin never set it (None: no override).
DEFAULTS: dict[str, Any] = {
    "color": None,
    "title": None,
    "greeting": None,
    "expected_reply": None,
    "away_message": None,
    "business_hours": None,
    "default_locale": None,
    "languages": None,
    "strings": {},
    "email_capture": "away",
}
TEXT_FIELDS = {"title": 100, "greeting": MAX_TEXT_CHARS, "expected_reply": 200, "away_message": MAX_TEXT_CHARS}


class _Problems:
    def __init__(self) -> None:
        self.fields: dict[str, str] = {}

    def add(self, name: str, problem: str) -> None:
        self.fields.setdefault(name, problem)

    def raise_if_any(self) -> None:
        if self.fields:
            summary = "; ".join(f"{k} {v}" for k, v in self.fields.items())
            raise validation_error(f"Invalid widget settings: {summary}", details={"fields": self.fields})


def _minutes(value: Any, name: str, problems: _Problems, *, allow_24: bool = False) -> int | None:
    if allow_24 and value == "24:00":
        return 24 * 60
    if not isinstance(value, str) or not TIME_RE.match(value):
        problems.add(name, "must be a time HH:MM (00:00 to 23:59" + (", or 24:00)" if allow_24 else ")"))
        return None
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def _business_hours(value: Any, problems: _Problems) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.add("business_hours", "must be an object with timezone and schedule, or null")
        return None
    for key in value:
        if key not in ("timezone", "schedule"):
            problems.add(f"business_hours.{key}", "unknown field")
    tz = value.get("timezone")
    if not isinstance(tz, str) or not tz or len(tz) > 64:
        problems.add("business_hours.timezone", "must be an IANA time zone name like Europe/Paris")
    else:
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            problems.add("business_hours.timezone", f"is not a known IANA time zone: {tz!r}")
    schedule = value.get("schedule")
    if not isinstance(schedule, list) or len(schedule) > MAX_INTERVALS:
        problems.add("business_hours.schedule", f"must be a list of at most {MAX_INTERVALS} intervals")
        return None
    clean: list[dict[str, str]] = []
    spans: dict[str, list[tuple[int, int, int]]] = {}
    for i, item in enumerate(schedule):
        name = f"business_hours.schedule[{i}]"
        if not isinstance(item, dict) or set(item) != {"day", "open", "close"}:
            problems.add(name, "must be an object with exactly day, open and close")
            continue
        if item["day"] not in DAYS:
            problems.add(f"{name}.day", f"must be one of {', '.join(DAYS)}")
            continue
        start = _minutes(item["open"], f"{name}.open", problems)
        end = _minutes(item["close"], f"{name}.close", problems, allow_24=True)
        if start is None or end is None:
            continue
        if start >= end:
            problems.add(name, "must close after it opens (an interval cannot cross midnight: split it in two)")
            continue
        spans.setdefault(item["day"], []).append((start, end, i))
        clean.append({"day": item["day"], "open": item["open"], "close": item["close"]})
    for day, intervals in spans.items():
        intervals.sort()
        for (_, prev_end, prev_i), (start, _, i) in itertools.pairwise(intervals):
            if start < prev_end:
                problems.add(f"business_hours.schedule[{i}]", f"overlaps schedule[{prev_i}] on {day}")
    clean.sort(key=lambda s: (DAYS.index(s["day"]), s["open"]))
    return {"timezone": tz, "schedule": clean}


def _strings(value: Any, problems: _Problems) -> dict[str, dict[str, str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add("strings", "must be an object of locale -> {key: text}")
        return {}
    clean: dict[str, dict[str, str]] = {}
    for locale, table in value.items():
        if locale not in LOCALES:
            problems.add(f"strings.{locale}", f"locale must be one of {', '.join(LOCALES)}")
            continue
        if not isinstance(table, dict) or len(table) > MAX_STRINGS_PER_LOCALE:
            problems.add(f"strings.{locale}", f"must be an object of at most {MAX_STRINGS_PER_LOCALE} strings")
            continue
        out: dict[str, str] = {}
        for key, text in table.items():
            if not STRING_KEY_RE.match(key):
                problems.add(f"strings.{locale}.{key[:50]}", "is not a valid string name")
            elif not isinstance(text, str) or len(text) > MAX_TEXT_CHARS or "\x00" in text:
                problems.add(f"strings.{locale}.{key}", f"must be a text of at most {MAX_TEXT_CHARS} characters")
            else:
                out[key] = text
        clean[locale] = out
    return clean


def validate_settings(data: Any) -> dict[str, Any]:
    """The whole settings document (PUT replaces it): every field optional, unset means null.
    Raises one 422 naming every bad field."""
    if not isinstance(data, dict):
        raise validation_error("Request body must be a JSON object")
    problems = _Problems()
    for key in data:
        if key not in DEFAULTS:
            problems.add(key, "unknown field")
    clean: dict[str, Any] = dict(DEFAULTS)
    color = data.get("color")
    if color is not None and (not isinstance(color, str) or not COLOR_RE.match(color)):
        problems.add("color", "must be a hex colour like #4f46e5 or #44f")
    else:
        clean["color"] = color
    for name, limit in TEXT_FIELDS.items():
        text = data.get(name)
        if text is None:
            continue
        if not isinstance(text, str) or len(text) > limit or "\x00" in text:
            problems.add(name, f"must be a text of at most {limit} characters, or null")
        else:
            clean[name] = text.strip() or None
    clean["business_hours"] = _business_hours(data.get("business_hours"), problems)
    locale = data.get("default_locale")
    if locale is not None and locale not in LOCALES:
        problems.add("default_locale", f"must be one of {', '.join(LOCALES)}, or null")
    else:
        clean["default_locale"] = locale
    languages = data.get("languages")
    if languages is not None:
        if not isinstance(languages, list) or not languages or any(lang not in LOCALES for lang in languages):
            problems.add("languages", f"must be a non-empty list of {', '.join(LOCALES)}, or null")
        else:
            clean["languages"] = list(dict.fromkeys(languages))
    clean["strings"] = _strings(data.get("strings"), problems)
    capture = data.get("email_capture", "away")
    if capture not in EMAIL_CAPTURE:
        problems.add("email_capture", f"must be one of {', '.join(EMAIL_CAPTURE)}")
    else:
        clean["email_capture"] = capture
    problems.raise_if_any()
    return clean


# ---- business hours -------------------------------------------------------------------------


def _intervals(hours: dict[str, Any]) -> dict[int, list[tuple[int, int]]]:
    out: dict[int, list[tuple[int, int]]] = {}
    for item in hours["schedule"]:
        start = int(item["open"][:2]) * 60 + int(item["open"][3:])
        end = 24 * 60 if item["close"] == "24:00" else int(item["close"][:2]) * 60 + int(item["close"][3:])
        out.setdefault(DAYS.index(item["day"]), []).append((start, end))
    return out


def _zone(name: str) -> dt.tzinfo:
    """The stored zone; UTC (with a warning) should the system's time zone data have lost it."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        log.warning("widget settings: unknown time zone %r, using UTC", name)
        return dt.UTC


def is_open(hours: dict[str, Any] | None, now: dt.datetime) -> bool:
    """Inside business hours at `now` (aware); no hours configured means always open."""
    if hours is None:
        return True
    local = now.astimezone(_zone(hours["timezone"]))
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in _intervals(hours).get(local.weekday(), ()))


def next_opening(hours: dict[str, Any] | None, now: dt.datetime) -> dt.datetime | None:
    """When business hours next begin after `now` (UTC), or None (always open, or no hours at all)."""
    if hours is None or not hours["schedule"]:
        return None
    zone = _zone(hours["timezone"])
    local = now.astimezone(zone)
    intervals = _intervals(hours)
    for ahead in range(8):
        day = local.date() + dt.timedelta(days=ahead)
        for start, _ in sorted(intervals.get(day.weekday(), ())):
            opens = dt.datetime.combine(day, dt.time(start // 60, start % 60), tzinfo=zone)
            if opens > local:
                return opens.astimezone(dt.UTC)
    return None


# ---- storage and the per-instance cache ------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    settings: dict[str, Any]
    version: int
    updated_by: uuid.UUID | None
    updated_at: dt.datetime | None

    def view(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "version": self.version,
            "updated_by": self.updated_by,
            "updated_at": self.updated_at,
        }


def _snapshot(row: asyncpg.Record | None) -> Snapshot:
    if row is None:
        return Snapshot(dict(DEFAULTS), 0, None, None)
    # Fields added after a document was saved take their defaults.
    return Snapshot({**DEFAULTS, **row["settings"]}, row["version"], row["updated_by"], row["updated_at"])


class WidgetSettingsCache:
    """This instance's copy of the settings, kept `ttl` seconds or until a change event."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._snapshot: Snapshot | None = None
        self._expires = 0.0
        # Raised by every invalidation: a read that began before one is used once, not kept.
        self._epoch = 0

    async def get(self, pool: asyncpg.Pool) -> Snapshot:
        if self._snapshot is not None and time.monotonic() < self._expires:
            return self._snapshot
        epoch = self._epoch
        snapshot = _snapshot(await settings_db.load(pool))
        if epoch == self._epoch:
            self._snapshot = snapshot
            self._expires = time.monotonic() + self.ttl
        return snapshot

    def invalidate(self) -> None:
        self._epoch += 1
        self._snapshot = None

    def observe(self, event: Event) -> None:
        """Hub observer (synchronous): a save on any instance drops this instance's copy."""
        if event.channel == events.SETTINGS_CHANNEL and event.frame.get("type") == "widget_settings.changed":
            self.invalidate()


async def save_settings(
    pool: asyncpg.Pool, publisher: Publisher, cache: WidgetSettingsCache, who: Identity, data: Any
) -> Snapshot:
    """Validate and store the whole document, then tell every instance."""
    clean = validate_settings(data)
    snapshot = _snapshot(await settings_db.save(pool, clean, who.user_id))
    cache.invalidate()
    await publisher.publish(events.widget_settings_changed(snapshot.version))
    log.info("widget settings saved (version %d)", snapshot.version)
    return snapshot
