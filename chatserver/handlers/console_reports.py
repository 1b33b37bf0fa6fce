"""The console's report page (/console/reports, agents and admins): the reports of handlers/reports.py
drawn on the server as SVG charts with their tables, and their CSV export under the console session
(a download link cannot carry the bearer token the REST API wants)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .. import charts
from ..errors import ApiError
from ..keys import DB_POOL
from ..services import auth as auth_service
from ..services import reports as reports_service
from ..web_session import csrf_token
from .identity import session_identity
from .pages import LOGIN_PATH, render
from .reports import csv_response

PAGE_QUERY = ("from", "to", "tz")


def _redirect_to_login() -> web.Response:
    return web.Response(status=303, headers={"Location": LOGIN_PATH, "Cache-Control": "no-store"})


async def _staff_page_identity(request: web.Request) -> Any:
    """The session's account when it may read reports; else the response to give instead."""
    who = await session_identity(request)
    if who is None:
        return _redirect_to_login()
    if who.role not in ("agent", "admin"):
        return render(request, "console_forbidden.html", {}, status=403)
    return who


def _period_query(period: reports_service.Period) -> str:
    return urlencode({"from": period.first_day.isoformat(), "to": period.last_day.isoformat(), "tz": period.tz})


async def reports_page(request: web.Request) -> web.Response:
    """GET /console/reports?from=&to=&tz=: the overview, busiest hours, agents and labels."""
    q = request.query
    if await session_identity(request) is None:
        # A malformed period is refused as such before the redirect (422): junk earns no redirect.
        reports_service.parse_period(q.get("from"), q.get("to"), q.get("tz"))
    who = await _staff_page_identity(request)
    if isinstance(who, web.Response):
        return who
    user = await auth_service.current_user(request.app[DB_POOL], who.user_id)
    context: dict[str, Any] = {
        "csrf_token": await csrf_token(request),
        "me": {"id": str(user["id"]), "name": user["display_name"] or user["email"], "role": user["role"]},
        "form": {"from": q.get("from", ""), "to": q.get("to", ""), "tz": q.get("tz", "")},
        "error": None,
        "page": "reports",
        "duration": charts.format_duration,
        "share": charts.format_share,
    }
    try:
        period = reports_service.parse_period(q.get("from"), q.get("to"), q.get("tz"))
        pool = request.app[DB_POOL]
        overview = await reports_service.overview(pool, period)
        hours = await reports_service.busiest_hours(pool, period)
        agents = await reports_service.agents(pool, period)
        labels = await reports_service.labels(pool, period)
    except ApiError as err:
        if err.status != 422:
            raise
        context["error"] = err.message
        return render(request, "console_reports.html", context, status=422)
    context.update(
        {
            "form": {"from": period.first_day.isoformat(), "to": period.last_day.isoformat(), "tz": period.tz},
            "query": _period_query(period),
            "overview": overview,
            "hours": hours,
            "agents": agents,
            "labels": labels,
            "daily_chart": charts.daily_bars(overview["daily"]),
            "heatmap": charts.heatmap(hours["cells"], hours["weekdays"], "customer_messages"),
            "opened_heatmap": charts.heatmap(hours["cells"], hours["weekdays"], "conversations"),
            "rating_chart": charts.rating_bars(overview["satisfaction"]["distribution"]),
        }
    )
    return render(request, "console_reports.html", context)


async def export_report(request: web.Request) -> web.Response:
    """GET /console/reports/{report}.csv?from=&to=&tz=: one report as CSV, for the page's links."""
    name = request.match_info["report"]
    if name not in reports_service.REPORTS:
        raise ApiError(404, "not_found", "Report not found")
    who = await session_identity(request)
    if who is None:
        raise ApiError(401, "unauthorized", "Log in to the console first")
    reports_service.require_report_reader(who)
    q = request.query
    period = reports_service.parse_period(q.get("from"), q.get("to"), q.get("tz"))
    data = await reports_service.report(request.app[DB_POOL], name, period)
    return csv_response(name, data, period)
