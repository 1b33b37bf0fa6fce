"""The console's admin pages in a real browser: API keys (create, shown once, works, revoke),
webhooks (add an endpoint, send a test event to a real receiver, read the delivery log, send it
again) and invitations (invite, the link followed in another browser to a console session);
axe-core finds no serious problem on them."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from chatserver.keys import DB_POOL
from chatserver.services.auth import create_user
from chatserver.services.webhooks import sign

from . import test_browser_web as web_tests
from .conftest import PASSWORD
from .test_browser_web import (
    Live,
    assert_no_js_errors,
    console_login,
    expect_text,
    live_settings,
    new_page,
    screenshot,
    start_live,
)

pytestmark = pytest.mark.browser

# The same fixtures as the other browser tests (a Chromium, the fake Groq).
browser = web_tests.browser
fake_groq = web_tests.fake_groq

ADMIN_EMAIL = "ada@example.com"
AXE = Path(__file__).resolve().parent.parent / "web" / "static" / "vendor" / "axe-core" / "axe.min.js"


async def start_admin_live(aiohttp_server: Any, settings: Any, clear: tuple[str, ...] = ()) -> Live:
    """The live app with Ada, an admin. `clear`: tables start_live's truncation does not reach
    (rows that belong to no user), emptied so a test starts from none."""
    running = await start_live(aiohttp_server, settings)
    pool = running.app[DB_POOL]
    for table in clear:
        await pool.execute(f"DELETE FROM {table}")
    await create_user(pool, email=ADMIN_EMAIL, password=PASSWORD, role="admin", name="Ada Admin", bcrypt_rounds=4)
    return running


@pytest.fixture
async def live(aiohttp_server: Any, settings: Any, fake_groq: Any) -> Live:
    # The receiver is on loopback: allowed here as an operator would for local development.
    allowed = replace(
        live_settings(settings, fake_groq),
        webhook_allow_private_networks=("127.0.0.0/8",),
        webhook_retry_base_seconds=0.2,
    )
    return await start_admin_live(aiohttp_server, allowed)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> tuple[str, list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        raw = await request.read()
        received.append({"headers": dict(request.headers), "raw": raw, "body": json.loads(raw)})
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    return str(server.make_url("/hook")), received


async def axe_serious(page: Any) -> list[dict[str, Any]]:
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        """async () => {
          const r = await axe.run(document, {resultTypes: ['violations']});
          return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


async def test_admin_creates_uses_and_revokes_an_api_key(browser: Any, live: Live) -> None:
    page = await new_page(browser, bypass_csp=True)  # the CSP is bypassed only to inject axe-core
    await console_login(page, live, ADMIN_EMAIL)
    await page.get_by_role("link", name="Admin").click()
    # Agents is the first section; API keys is one link further.
    await page.get_by_role("navigation", name="Admin").get_by_role("link", name="API keys").click()
    await page.get_by_role("heading", name="API keys", level=1).wait_for()
    await expect_text(page.locator("#admin-root p.muted"), "No API keys yet.")

    await page.get_by_label("Name").fill("CRM sync")
    await page.get_by_label("tickets:read").check()
    await page.get_by_role("button", name="Create key").click()
    secret = (await page.locator(".secret-once .secret").text_content()) or ""
    assert secret.startswith("csk_")
    await expect_text(page.locator("table.data tbody tr td").first, "CRM sync")
    await screenshot(page, "console-admin-api-keys.png")
    assert await axe_serious(page) == []

    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {secret}"}
        async with http.get(live.url("/tickets"), headers=headers) as resp:
            assert resp.status == 200
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.get_by_role("button", name="Revoke CRM sync").click()
        await page.locator(".badge.off", has_text="Revoked").wait_for()
        async with http.get(live.url("/tickets"), headers=headers) as resp:
            assert resp.status == 401
    # Shown once: a reload lists the key by its prefix only.
    await page.reload()
    await page.locator("table.data").wait_for()
    assert secret not in await page.content()
    assert_no_js_errors(page)


async def test_admin_adds_a_webhook_sends_a_test_event_and_reads_the_log(
    browser: Any, live: Live, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = receiver
    page = await new_page(browser, bypass_csp=True)
    await console_login(page, live, ADMIN_EMAIL)
    await page.goto(live.url("/console/admin/webhooks"))
    # A private address this server is not allowed to call: refused, and the form says why.
    await page.get_by_label("URL").fill("http://10.0.0.1/hook")
    await page.get_by_label("ticket.created").check()
    await page.get_by_role("button", name="Add endpoint").click()
    await expect_text(page.locator(".form-error"), re.compile(r"\S"))

    await page.get_by_label("URL").fill(url)
    await page.get_by_role("button", name="Add endpoint").click()
    secret = (await page.locator(".secret-once .secret").text_content()) or ""
    assert secret.startswith("whsec_")
    await page.get_by_role("button", name=f"Send test event to {url}").click()
    for _ in range(100):
        if received:
            break
        await asyncio.sleep(0.1)
    assert received, "the test event never reached the receiver"
    # Signed with the secret the page showed once.
    first = received[0]
    stamp = int(first["headers"]["webhook-timestamp"])
    assert first["headers"]["webhook-signature"] == sign(secret, first["headers"]["webhook-id"], stamp, first["raw"])

    await page.get_by_role("button", name=f"Deliveries to {url}").click()
    await expect_text(page.locator(".delivery-log tbody tr td").nth(1), "delivered")
    await page.get_by_role("button", name=re.compile(r"^Send again \(delivery \d+\)$")).first.click()
    for _ in range(100):
        if len(received) >= 2:
            break
        await asyncio.sleep(0.1)
    assert len(received) == 2 and received[1]["body"]["type"] == "webhook.test"
    await screenshot(page, "console-admin-webhooks.png")
    assert await axe_serious(page) == []
    assert_no_js_errors(page)


async def test_admin_invites_an_agent_who_sets_a_password_through_the_link(browser: Any, live: Live) -> None:
    # No SMTP_URL here: the console shows the link for the admin to pass on.
    admin = await new_page(browser, bypass_csp=True)
    await console_login(admin, live, ADMIN_EMAIL)
    await admin.goto(live.url("/console/admin/agents"))
    invite = admin.get_by_role("form", name="Invite a team member")
    await invite.get_by_label("Name", exact=True).fill("Ines Invited")
    await invite.get_by_label("Email", exact=True).fill("ines@example.com")
    await invite.get_by_role("button", name="Invite", exact=True).click()
    shown = await admin.get_by_role("textbox", name="Invitation link").input_value()
    assert "/console/invite#token=" in shown
    # The link starts with PUBLIC_BASE_URL, unset here: the same page on this test server's port.
    link = live.url("/console/invite#" + shown.split("#", 1)[1])
    row = admin.locator("tr", has_text="ines@example.com")
    await expect_text(row.locator(".badge"), "Invited")
    await row.get_by_role("button", name="Re-send invitation to Ines Invited").wait_for()
    assert await axe_serious(admin) == []

    # The invitee, in a browser of their own.
    invitee = await new_page(browser, bypass_csp=True)
    await invitee.goto(link)
    await invitee.get_by_label("Password (at least 8 characters)").wait_for()
    assert "token=" not in invitee.url  # the token left the address bar
    assert await axe_serious(invitee) == []
    await invitee.get_by_label("Password (at least 8 characters)").fill("short")
    await invitee.get_by_label("Password, again").fill("short")
    # The browser's own minlength check keeps the form from being sent.
    await invitee.get_by_role("button", name="Set password and sign in").click()
    assert invitee.url.endswith("/console/invite")
    await invitee.get_by_label("Password (at least 8 characters)").fill("my own password 1")
    await invitee.get_by_label("Password, again").fill("my own password 1")
    await invitee.get_by_role("button", name="Set password and sign in").click()
    await invitee.locator("#inbox-title").wait_for()

    # Used: the same link again says so, with no form.
    again = await new_page(browser)
    await again.goto(link)
    await again.get_by_label("Password (at least 8 characters)").fill("another password 2")
    await again.get_by_label("Password, again").fill("another password 2")
    await again.get_by_role("button", name="Set password and sign in").click()
    await expect_text(again.locator("[role=alert]"), re.compile("already been used"))
    await admin.reload()
    await expect_text(admin.locator("tr", has_text="ines@example.com").locator(".badge"), "Active")
    assert_no_js_errors(admin, invitee, again)
