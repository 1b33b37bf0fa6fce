"""GET /demo/api/orders/{order_id}: the demo shop's mock order API (DEMO_SHOP, never in
production), which the demo AI action calls."""

from __future__ import annotations

import hmac

from aiohttp import web

from ..errors import ApiError, not_found
from ..jsonutil import json_response
from ..keys import SETTINGS
from ..services import demo_shop


async def order_status(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if not settings.demo_shop:
        raise not_found("Page")
    given = request.headers.get(demo_shop.KEY_HEADER, "")
    if not hmac.compare_digest(given.encode(), demo_shop.shop_key(settings.actions_secret_key).encode()):
        raise ApiError(401, "unauthorized", f"The demo shop API needs its {demo_shop.KEY_HEADER} header")
    order = demo_shop.ORDERS.get(request.match_info["order_id"])
    if order is None:
        raise not_found("Order")
    return json_response({"order": order})
