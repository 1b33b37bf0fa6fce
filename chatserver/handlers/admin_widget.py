"""/admin/widget-settings: the widget's colour, texts, business hours, away message and languages,
for admins only (docs/web.md, "Widget settings")."""

from __future__ import annotations

from aiohttp import web

from ..jsonutil import json_response
from ..keys import DB_POOL, PUBLISHER, WIDGET_SETTINGS
from ..services import widget_settings as settings_service
from ..validation import read_json
from .admin import require_admin


async def get_settings(request: web.Request) -> web.Response:
    """GET /admin/widget-settings: the stored document (unset fields are null), its version, and
    who saved it when."""
    require_admin(request)
    snapshot = await request.app[WIDGET_SETTINGS].get(request.app[DB_POOL])
    return json_response(snapshot.view())


async def put_settings(request: web.Request) -> web.Response:
    """PUT /admin/widget-settings: replace the whole document (a field left out is unset); every
    instance serves it at once."""
    who = require_admin(request)
    data = await read_json(request)
    app = request.app
    snapshot = await settings_service.save_settings(app[DB_POOL], app[PUBLISHER], app[WIDGET_SETTINGS], who, data)
    return json_response(snapshot.view())
