"""GET /openapi.json and GET /docs: Swagger UI served offline from the swagger-ui-bundle package."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from ..jsonutil import dumps, json_response
from ..openapi import build_spec, downgrade_for_swagger_ui

# The package's assets are mounted at this prefix (routes.py); nothing is fetched from a CDN.
SWAGGER_UI_ASSETS = Path(str(swagger_ui_path))
DOCS_STATIC_PREFIX = "/docs/static"

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>chatserver API</title>
  <link rel="stylesheet" href="{static}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{static}/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{static}/swagger-ui-bundle.js"></script>
  <script>{init}</script>
</body>
</html>
"""
# The page's one inline script, allowed by its hash (below): it carries the spec.
_INIT = """
    window.ui = SwaggerUIBundle({{
      spec: {spec},
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    }});
  """


def docs_security_policy(inline_script: str) -> str:
    """Swagger UI's bundle, stylesheet and icons come from this server; its one inline script is
    allowed by hash, so no other inline script runs; "Try it out" calls this server's API only.
    img-src data: is for the SVG icons swagger-ui.css inlines."""
    digest = base64.b64encode(hashlib.sha256(inline_script.encode()).digest()).decode()
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' 'sha256-{digest}'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(build_spec())


async def docs_page(request: web.Request) -> web.Response:
    # The bundled Swagger UI 4 renders OpenAPI 3.0 only: it gets the spec inline, relabelled.
    # "</" is escaped so no string in the spec can close the <script> element.
    spec = dumps(downgrade_for_swagger_ui(build_spec())).replace("</", "<\\/")
    init = _INIT.format(spec=spec)
    headers = {
        "Content-Security-Policy": docs_security_policy(init),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
    }
    page = _PAGE.format(static=DOCS_STATIC_PREFIX, init=init)
    return web.Response(text=page, content_type="text/html", headers=headers)
