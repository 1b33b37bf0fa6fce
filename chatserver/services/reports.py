"""Reports for agents and admins (docs/web.md, "Reports"): the period a report covers, the
figures (from db/reports.py) shaped for JSON, and the same figures as CSV.

A period is a range of whole days, `from` and `to` inclusive, in a time zone (an IANA name):
the report covers [from 00:00, to + 1 day 00:00) in that zone, and its days and hours are that
zone's. Without `to`, today (in the zone); without `from`, six days before `to` (a week).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from ..db import reports as reports_db
from ..errors import ApiError, forbidden, validation_error
from ..security import Identity

# A year and a day: a leap year's report fits, and a query never spans more than that.
MAX_DAYS = 366
DEFAULT_DAYS = 7
REPORTS = ("overview", "agents", "labels", "busiest-hours")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Period:
    first_day: dt.date
    last_day: dt.date
    tz: str

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.first_day, dt.time(), ZoneInfo(self.tz))

    @property
    def end(self) -> dt.datetime:
        return dt.datetime.combine(self.last_day + dt.timedelta(days=1), dt.time(), ZoneInfo(self.tz))

    def view(self) -> dict[str, Any]:
        return {
            "from": self.first_day.isoformat(),
            "to": self.last_day.isoformat(),
            "tz": self.tz,
            "start": self.start,
            "end": self.end,
        }


def _bad(field: str, problem: str) -> ApiError:
    return validation_error(f"{field} {problem}", details={"fields": {field: problem}})


def _date(raw: str | None, field: str) -> dt.date | None:
    if raw is None or raw == "":
        return None
    # fromisoformat would also take "20261203" and week dates: only YYYY-MM-DD.
    if len(raw) != 10 or raw[4] != "-" or raw[7] != "-":
        raise _bad(field, "must be a date, YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise _bad(field, "must be a date, YYYY-MM-DD") from None


def parse_period(
    raw_from: str | None, raw_to: str | None, raw_tz: str | None, *, today: dt.date | None = None
) -> Period:
    """The period a report's query asks for, or a 422 naming what is wrong with it."""
    tz = (raw_tz or "UTC").strip()
    try:
        if len(tz) > 64:
            raise ValueError(tz)
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad("tz", "must be a time zone name such as Europe/Paris or UTC") from None
    last = _date(raw_to, "to")
    first = _date(raw_from, "from")
    if last is None:
        last = today if today is not None else dt.datetime.now(zone).date()
    if first is None:
        first = last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise _bad("from", "must not be after to")
    if (last - first).days + 1 > MAX_DAYS:
        raise _bad("to", f"must be at most {MAX_DAYS} days after from")
    if first.year < 2000 or last.year > 9000:
        raise _bad("from", "must be a date between 2000 and 9000")
    return Period(first, last, tz)


def require_report_reader(who: Identity) -> None:
    """Agents and admins read reports; customers (and integration keys) do not."""
    if who.role not in ("agent", "admin"):
        raise forbidden("Reports are for agents and admins")


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _timing(count: int, median: float | None, p90: float | None) -> dict[str, Any]:
    return {
        "count": count,
        "median_seconds": None if median is None else round(median, 3),
        "p90_seconds": None if p90 is None else round(p90, 3),
    }


async def _timezone_checked(pool: asyncpg.Pool, period: Period) -> None:
    """PostgreSQL's time zone names can differ from Python's tzdata: ask it first, so an unknown
    name is a 422 and not a failed query. (Not through pg_timezone_names: that view reads every
    zone file, some 50 ms a call.)"""
    try:
        await reports_db.check_time_zone(pool, period.tz)
    except asyncpg.InvalidParameterValueError:
        raise _bad("tz", "must be a time zone name such as Europe/Paris or UTC") from None


async def overview(pool: asyncpg.Pool, period: Period) -> dict[str, Any]:
    await _timezone_checked(pool, period)
    async with reports_db.reading(pool) as conn:
        row = await reports_db.overview(conn, period.start, period.end)
        reasons = await reports_db.handoff_reasons(conn, period.start, period.end)
        days = await reports_db.daily(conn, period.start, period.end, period.tz)
        rated = await reports_db.satisfaction(conn, period.start, period.end)
    satisfaction = {
        "ratings": rated["ratings"],
        "average": _average(rated["average"]),
        "satisfied_share": _share(rated["satisfied"], rated["ratings"]),
        "distribution": {str(n): rated[f"r{n}"] for n in range(1, 6)},
    }
    return {
        "period": period.view(),
        "conversations": {
            "opened": row["opened"],
            "resolved": row["resolved"],
            "responded": row["responded"],
            "human_responded": row["human_responded"],
        },
        "first_response": _timing(row["responded"], row["first_response_median"], row["first_response_p90"]),
        "first_human_response": _timing(
            row["human_responded"], row["first_human_response_median"], row["first_human_response_p90"]
        ),
        "resolution": _timing(row["resolved"], row["resolution_median"], row["resolution_p90"]),
        "ai": {
            "resolved_without_human": row["resolved_by_ai"],
            "resolved_without_human_share": _share(row["resolved_by_ai"], row["resolved"]),
        },
        "handoffs": {
            "conversations": row["handed_off"],
            "rate": _share(row["handed_off"], row["opened"]),
            "reasons": [{"reason": r["reason"], "count": r["count"]} for r in reasons],
        },
        "satisfaction": satisfaction,
        "daily": [{"date": d["day"].isoformat(), "opened": d["opened"], "resolved": d["resolved"]} for d in days],
    }


async def agents(pool: asyncpg.Pool, period: Period) -> dict[str, Any]:
    async with reports_db.reading(pool) as conn:
        rows = await reports_db.agents(conn, period.start, period.end)
    return {
        "period": period.view(),
        "agents": [
            {
                "id": r["id"],
                "name": r["display_name"] or r["email"],
                "email": r["email"],
                "role": r["role"],
                "disabled": r["disabled"],
                "replies": r["replies"],
                "conversations": r["conversations"],
                "first_response": _timing(r["first_responses"], r["first_response_median"], r["first_response_p90"]),
                "resolved": r["resolved"],
                "resolution": _timing(r["resolved"], r["resolution_median"], r["resolution_p90"]),
                "satisfaction": _rating(r),
            }
            for r in rows
        ],
    }


async def labels(pool: asyncpg.Pool, period: Period) -> dict[str, Any]:
    async with reports_db.reading(pool) as conn:
        rows = await reports_db.labels(conn, period.start, period.end)
    return {
        "period": period.view(),
        "labels": [
            {
                "id": r["id"],
                "name": r["name"],
                "opened": r["opened"],
                "handoffs": r["handed_off"],
                "first_response": _timing(r["responded"], r["first_response_median"], r["first_response_p90"]),
                "resolved": r["resolved"],
                "resolved_without_human": r["resolved_by_ai"],
                "resolution": _timing(r["resolved"], r["resolution_median"], r["resolution_p90"]),
                "satisfaction": _rating(r),
            }
            for r in rows
        ],
    }


def _average(average: float | None) -> float | None:
    return None if average is None else round(average, 3)


def _rating(row: asyncpg.Record) -> dict[str, Any]:
    """The ratings given in the period to an agent's or a label's tickets (average null without)."""
    return {"ratings": row["ratings"], "average": _average(row["rating_average"])}


async def busiest_hours(pool: asyncpg.Pool, period: Period) -> dict[str, Any]:
    """Every weekday × hour cell (7 × 24), zeros included, so a chart needs no filling in."""
    await _timezone_checked(pool, period)
    async with reports_db.reading(pool) as conn:
        rows = await reports_db.busiest_hours(conn, period.start, period.end, period.tz)
    found = {(r["weekday"], r["hour"]): r for r in rows}
    cells = []
    for weekday in range(1, 8):
        for hour in range(24):
            r = found.get((weekday, hour))
            cells.append(
                {
                    "weekday": weekday,
                    "hour": hour,
                    "conversations": r["conversations"] if r else 0,
                    "customer_messages": r["customer_messages"] if r else 0,
                }
            )
    return {"period": period.view(), "weekdays": list(WEEKDAYS), "cells": cells}


async def report(pool: asyncpg.Pool, name: str, period: Period) -> dict[str, Any]:
    if name == "overview":
        return await overview(pool, period)
    if name == "agents":
        return await agents(pool, period)
    if name == "labels":
        return await labels(pool, period)
    if name == "busiest-hours":
        return await busiest_hours(pool, period)
    raise ValueError(name)  # the routes name only the reports above


# ---- CSV -------------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """A spreadsheet runs a cell that starts with = + - @ (or a tab or CR) as a formula: text from
    users (names, emails, labels) is prefixed with ' so it stays text (OWASP, "CSV injection")."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def _period_rows(data: dict[str, Any]) -> list[tuple[str, Any]]:
    period = data["period"]
    return [("period_from", period["from"]), ("period_to", period["to"]), ("time_zone", period["tz"])]


def to_csv(name: str, data: dict[str, Any]) -> str:
    """The report as CSV: one row per agent, label or weekday × hour cell; the overview as
    metric,value rows followed by its days."""
    if name == "overview":
        s = data["satisfaction"]
        metrics: list[tuple[str, Any]] = [
            *_period_rows(data),
            ("opened", data["conversations"]["opened"]),
            ("resolved", data["conversations"]["resolved"]),
            ("first_response_count", data["first_response"]["count"]),
            ("first_response_median_seconds", data["first_response"]["median_seconds"]),
            ("first_response_p90_seconds", data["first_response"]["p90_seconds"]),
            ("first_human_response_count", data["first_human_response"]["count"]),
            ("first_human_response_median_seconds", data["first_human_response"]["median_seconds"]),
            ("first_human_response_p90_seconds", data["first_human_response"]["p90_seconds"]),
            ("resolution_median_seconds", data["resolution"]["median_seconds"]),
            ("resolution_p90_seconds", data["resolution"]["p90_seconds"]),
            ("resolved_without_human", data["ai"]["resolved_without_human"]),
            ("resolved_without_human_share", data["ai"]["resolved_without_human_share"]),
            ("handoff_conversations", data["handoffs"]["conversations"]),
            ("handoff_rate", data["handoffs"]["rate"]),
            ("ratings", s["ratings"]),
            ("rating_average", s["average"]),
            ("satisfied_share", s["satisfied_share"]),
        ]
        metrics += [(f"opened_on_{d['date']}", d["opened"]) for d in data["daily"]]
        metrics += [(f"resolved_on_{d['date']}", d["resolved"]) for d in data["daily"]]
        return _csv(("metric", "value"), metrics)
    if name == "agents":
        return _csv(
            (
                "agent_id",
                "name",
                "email",
                "role",
                "disabled",
                "replies",
                "conversations",
                "first_responses",
                "first_response_median_seconds",
                "first_response_p90_seconds",
                "resolved",
                "resolution_median_seconds",
                "resolution_p90_seconds",
                "ratings",
                "rating_average",
            ),
            (
                (
                    a["id"],
                    a["name"],
                    a["email"],
                    a["role"],
                    a["disabled"],
                    a["replies"],
                    a["conversations"],
                    a["first_response"]["count"],
                    a["first_response"]["median_seconds"],
                    a["first_response"]["p90_seconds"],
                    a["resolved"],
                    a["resolution"]["median_seconds"],
                    a["resolution"]["p90_seconds"],
                    a["satisfaction"]["ratings"],
                    a["satisfaction"]["average"],
                )
                for a in data["agents"]
            ),
        )
    if name == "labels":
        return _csv(
            (
                "label_id",
                "name",
                "opened",
                "handoffs",
                "first_response_median_seconds",
                "first_response_p90_seconds",
                "resolved",
                "resolved_without_human",
                "resolution_median_seconds",
                "resolution_p90_seconds",
                "ratings",
                "rating_average",
            ),
            (
                (
                    label["id"],
                    label["name"],
                    label["opened"],
                    label["handoffs"],
                    label["first_response"]["median_seconds"],
                    label["first_response"]["p90_seconds"],
                    label["resolved"],
                    label["resolved_without_human"],
                    label["resolution"]["median_seconds"],
                    label["resolution"]["p90_seconds"],
                    label["satisfaction"]["ratings"],
                    label["satisfaction"]["average"],
                )
                for label in data["labels"]
            ),
        )
    if name == "busiest-hours":
        return _csv(
            ("weekday", "weekday_name", "hour", "conversations", "customer_messages"),
            (
                (c["weekday"], WEEKDAYS[c["weekday"] - 1], c["hour"], c["conversations"], c["customer_messages"])
                for c in data["cells"]
            ),
        )
    raise ValueError(name)
