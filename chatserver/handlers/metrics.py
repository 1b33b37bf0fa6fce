"""GET /metrics: the app's Prometheus registry, in the exposition format the scraper asks for."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from ..keys import METRICS_REGISTRY


async def metrics(request: web.Request) -> web.Response:
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(request.app[METRICS_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": content_type})
