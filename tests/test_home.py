"""GET /: a small page that says where to go (it used to be a JSON 404)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from chatserver.app import create_app
from chatserver.settings import Settings


async def test_the_home_page_links_to_the_demo_console_docs_and_health(client: TestClient) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    links = set(re.findall(r'href="(/[^"]*)"', await resp.text()))
    assert {"/demo", "/console", "/docs", "/openapi.json", "/healthz", "/readyz"} <= links
    # Every page link on it answers (no dead ends for a newcomer).
    for link in sorted(links):
        assert (await client.get(link, allow_redirects=False)).status in (200, 303), link
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")


async def test_the_home_page_has_no_demo_link_in_production(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings.with_overrides(production=True), bcrypt_rounds=4))
    text = await (await client.get("/")).text()
    assert 'href="/demo"' not in text
    assert 'href="/console"' in text
