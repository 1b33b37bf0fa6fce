"""The console's availability endpoints: every agent's status, the caller's choice of online or
away, and the caller's queue (docs/web.md, "Never miss a customer")."""

from __future__ import annotations

from aiohttp import web

from ..jsonutil import json_response
from ..keys import AVAILABILITY
from ..services.availability import CHOOSABLE, require_agent
from ..validation import Choice, read_body
from .identity import require_identity

SET_SCHEMA = {"status": Choice(*CHOOSABLE)}


async def get_availability(request: web.Request) -> web.Response:
    """GET /console/api/availability: the caller's status, every agent's, and the routing mode."""
    who = require_identity(request)
    return json_response(await request.app[AVAILABILITY].overview(who))


async def set_availability(request: web.Request) -> web.Response:
    """PUT /console/api/availability: the caller chooses online or away."""
    who = require_identity(request)
    availability = request.app[AVAILABILITY]
    require_agent(who)  # before the body: a customer learns nothing about what it takes
    body = await read_body(request, SET_SCHEMA)
    return json_response({"me": await availability.set_status(who, body["status"])})


async def get_queue(request: web.Request) -> web.Response:
    """GET /console/api/queue: the caller's open conversations and those awaiting their reply."""
    who = require_identity(request)
    return json_response(await request.app[AVAILABILITY].queue(who))
