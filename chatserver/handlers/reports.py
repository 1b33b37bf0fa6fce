"""/reports/*: figures over a period for agents and admins, as JSON or CSV (docs/web.md, "Reports")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ..jsonutil import json_response
from ..keys import DB_POOL
from ..services import reports as reports_service
from ..validation import query_choice, reject_unknown_query
from .identity import require_identity

QUERY = ("from", "to", "tz", "format")
CSV_TYPE = "text/csv"


def wants_csv(request: web.Request) -> bool:
    """?format=csv, or (without ?format) an Accept header that asks for text/csv."""
    chosen = query_choice(request, "format", ("json", "csv"))
    if chosen is not None:
        return chosen == "csv"
    accept = request.headers.get("Accept", "")
    return any(part.split(";")[0].strip().lower() == CSV_TYPE for part in accept.split(","))


def csv_response(name: str, data: dict[str, object], period: reports_service.Period) -> web.Response:
    filename = f"report-{name}-{period.first_day.isoformat()}-to-{period.last_day.isoformat()}.csv"
    return web.Response(
        text=reports_service.to_csv(name, data),
        content_type=CSV_TYPE,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def report_handler(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        who = require_identity(request)
        reports_service.require_report_reader(who)
        reject_unknown_query(request, QUERY)
        csv = wants_csv(request)
        q = request.query
        period = reports_service.parse_period(q.get("from"), q.get("to"), q.get("tz"))
        data = await reports_service.report(request.app[DB_POOL], name, period)
        if csv:
            return csv_response(name, data, period)
        return json_response(data, headers={"Cache-Control": "no-store"})

    handler.__name__ = f"report_{name.replace('-', '_')}"
    handler.__doc__ = f"GET /reports/{name}: the {name} report for ?from=&to=&tz= (JSON, or CSV)."
    return handler


overview = report_handler("overview")
agents = report_handler("agents")
labels = report_handler("labels")
busiest_hours = report_handler("busiest-hours")
