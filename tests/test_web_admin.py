"""The console's admin pages: only admins get them; each section's page frames its module."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from chatserver.handlers.pages import ADMIN_SECTIONS, STAFF_SECTIONS, STATIC_DIR
from chatserver.services.api_keys import SCOPES
from chatserver.services.webhooks import EVENT_TYPES

from .conftest import MakeUser
from .test_web_console import console_login


async def test_not_logged_in_goes_to_the_login_page(client: TestClient) -> None:
    for path in ("/console/admin", f"/console/admin/{ADMIN_SECTIONS[0][0]}"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303
        assert resp.headers["Location"] == "/console/login"


async def test_an_agent_is_refused_and_sees_no_admin_link(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    await console_login(client, agent)
    inbox = await (await client.get("/console")).text()
    assert 'href="/console/admin"' not in inbox
    for slug, _ in ADMIN_SECTIONS:
        if slug in STAFF_SECTIONS:
            continue
        resp = await client.get(f"/console/admin/{slug}", allow_redirects=False)
        assert resp.status == 403
        assert "This page is for admins" in await resp.text()


async def test_an_agent_opens_the_knowledge_base_section_only(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    await console_login(client, agent)
    assert 'href="/console/admin/kb"' in await (await client.get("/console")).text()
    resp = await client.get("/console/admin/kb", allow_redirects=False)
    assert resp.status == 200
    page = await resp.text()
    assert "/static/js/admin/kb.js?v=" in page
    # The navigation lists only what the agent may open.
    assert 'href="/console/admin/kb"' in page and 'href="/console/admin/api-keys"' not in page


async def test_an_admin_gets_every_section_with_its_module(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin", name="Ada")
    await console_login(client, admin)
    assert 'href="/console/admin"' in await (await client.get("/console")).text()
    first = await client.get("/console/admin")
    assert first.status == 200
    assert f'data-section="{ADMIN_SECTIONS[0][0]}"' in await first.text()
    for slug, title in ADMIN_SECTIONS:
        assert (STATIC_DIR / "js" / "admin" / f"{slug}.js").is_file(), f"no module for section {slug}"
        resp = await client.get(f"/console/admin/{slug}")
        assert resp.status == 200
        page = await resp.text()
        assert f"/static/js/admin/{slug}.js?v=" in page
        assert f'aria-current="page">{title}</a>' in page
        assert "<main" in page
        assert resp.headers["Content-Security-Policy"]


async def test_an_unknown_section_is_not_found(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    await console_login(client, admin)
    for slug in ("nope", "..%2Fconsole", "api-keys.js"):
        resp = await client.get(f"/console/admin/{slug}", allow_redirects=False)
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"


async def test_list_answers_name_what_a_form_may_choose(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    keys = await (await client.get("/admin/api-keys", headers=admin.headers)).json()
    assert keys["available_scopes"] == list(SCOPES)
    hooks = await (await client.get("/admin/webhooks", headers=admin.headers)).json()
    assert hooks["available_event_types"] == list(EVENT_TYPES)
