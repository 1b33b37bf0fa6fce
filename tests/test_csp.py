"""Content-Security-Policy on /demo and /docs: each page's policy allows what it loads (from this
server only) and no other script. tests/test_browser_csp.py shows both pages still work under it."""

from __future__ import annotations

import base64
import hashlib
import re

from aiohttp.test_utils import TestClient


def directives(policy: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


async def test_docs_page_allows_only_its_own_scripts_by_source_and_hash(client: TestClient) -> None:
    resp = await client.get("/docs")
    policy = directives(resp.headers["Content-Security-Policy"])
    html = await resp.text()
    inline = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(inline) == 1, "Swagger UI's init is the page's one inline script"
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert policy["script-src"] == ["'self'", f"'sha256-{digest}'"]
    assert policy["default-src"] == ["'none'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in resp.headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_demo_page_allows_only_this_servers_scripts_styles_and_frames(client: TestClient) -> None:
    resp = await client.get("/demo")
    policy = directives(resp.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "<script>" not in await resp.text(), "no inline script: the policy would block it"
