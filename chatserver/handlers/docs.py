"""GET /openapi.json and GET /docs: Swagger UI served offline from the swagger-ui-bundle package."""

from __future__ import annotations

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
  <script>
    window.ui = SwaggerUIBundle({{
      spec: {spec},
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    }});
  </script>
</body>
</html>
"""


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(build_spec())


async def docs_page(request: web.Request) -> web.Response:
    # The bundled Swagger UI 4 renders OpenAPI 3.0 only: it gets the spec inline, relabelled.
    # "</" is escaped so no string in the spec can close the <script> element.
    spec = dumps(downgrade_for_swagger_ui(build_spec())).replace("</", "<\\/")
    return web.Response(text=_PAGE.format(static=DOCS_STATIC_PREFIX, spec=spec), content_type="text/html")
