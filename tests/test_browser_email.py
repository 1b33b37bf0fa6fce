"""Away mode with email capture in a real Chromium (see tests/test_browser_web.py for the set-up):
the widget says the team is away and asks for an address, the agent's reply arrives at a real SMTP
server on loopback, and its link reopens the conversation on another device."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller

from chatserver.keys import DB_POOL
from chatserver.settings import Settings

from . import test_browser_web as web_tests
from .conftest import PASSWORD
from .services import free_port
from .test_browser_web import AGENT_EMAIL, Live, new_page, start_live
from .test_email import Inbox, bodies, reopen_link, smtp_server

pytestmark = pytest.mark.browser

# The same Chromium fixture as the other browser tests.
browser = web_tests.browser


@pytest.fixture
def smtp_inbox() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller: Controller = smtp_server(inbox, port)
    try:
        yield inbox, port
    finally:
        controller.stop()


async def as_agent(live: Live, method: str, path: str, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http:
        login = await http.post(live.url("/auth/login"), json={"email": AGENT_EMAIL, "password": PASSWORD})
        token = (await login.json())["access_token"]
        resp = await http.request(method, live.url(path), json=body, headers={"Authorization": f"Bearer {token}"})
        assert resp.status < 300, await resp.text()


async def test_away_mode_asks_for_an_email_and_the_reply_link_reopens_the_conversation(
    browser: Any, aiohttp_server: Any, settings: Settings, smtp_inbox: tuple[Inbox, int]
) -> None:
    inbox, smtp_port = smtp_inbox
    web_port = free_port()
    live = await start_live(
        aiohttp_server,
        settings.with_overrides(
            smtp_url=f"smtp://127.0.0.1:{smtp_port}",
            # The links in emails point at this server.
            public_base_url=f"http://127.0.0.1:{web_port}",
            visitor_away_minutes=0.0,
            mail_poll_seconds=0.05,
        ),
        port=web_port,
    )
    page = await new_page(browser)
    await page.goto(live.url("/widget/frame"))
    # Nobody has the console open: away, and asked for an address (optional).
    await page.locator("#away").get_by_text("Nobody from the team is online").wait_for()
    # Nor does the header promise a reply "in a few minutes" while nobody is there.
    assert await page.locator("#expected").is_hidden()
    await web_tests.screenshot(page, "widget-away.png")
    await page.fill("#away-email", "not-an-email")
    await page.locator("#away").get_by_role("button", name="Save").click()
    await page.locator(".away-error").get_by_text("valid email").wait_for()
    await page.fill("#away-email", "cara@example.com")
    await page.locator("#away").get_by_role("button", name="Save").click()
    await page.locator("#away").get_by_text("We'll email you at cara@example.com").wait_for()

    await page.fill("#input", "Is my order shipped?")
    await page.keyboard.press("Enter")
    pool = live.app[DB_POOL]
    ticket_id = None
    for _ in range(200):
        row = await pool.fetchrow("SELECT id, contact_email FROM tickets ORDER BY created_at DESC LIMIT 1")
        if row is not None and row["contact_email"]:
            ticket_id = str(row["id"])
            break
        await asyncio.sleep(0.05)
    assert ticket_id is not None, "the address given before the first message never reached the ticket"
    assert row is not None and row["contact_email"] == "cara@example.com"
    await page.locator(".msg").get_by_text("Is my order shipped?").wait_for()
    # The agent sees where replies will go.
    from .test_browser_web import console_login, open_console_ticket

    agent = await new_page(browser)
    await console_login(agent, live)
    await open_console_ticket(agent, "Is my order shipped?")
    await agent.locator(".customer-line").get_by_text("replies by email to cara@example.com").wait_for()
    await agent.context.close()
    # The visitor leaves (a reply delivered to an open socket counts as seen: wait for the server
    # to have noticed).
    await page.context.close()
    for _ in range(200):
        if await pool.fetchval("SELECT visitor_left_at FROM tickets WHERE id = $1", row["id"]):
            break
        await asyncio.sleep(0.05)

    await as_agent(live, "POST", f"/tickets/{ticket_id}/messages", {"body": "Yes, it left our warehouse today."})
    [message] = await inbox.wait_for(1)
    assert "Yes, it left our warehouse today." in bodies(message)[0]
    link = reopen_link(message, live.base)
    assert link.startswith(live.base + "/widget/frame#reopen=")

    # Another device (a fresh browser profile): the link alone opens the conversation.
    other = await new_page(browser)
    await other.goto(link)
    await other.locator(".msg").get_by_text("Yes, it left our warehouse today.").wait_for()
    await other.locator(".msg").get_by_text("Is my order shipped?").wait_for()
    assert "#reopen" not in other.url

    # Resolved: the visitor can have the transcript emailed to the address they gave.
    await as_agent(live, "PATCH", f"/tickets/{ticket_id}", {"status": "resolved"})
    await other.get_by_role("button", name="Email me the transcript").click()
    await other.locator("#away").get_by_text("The transcript is on its way to cara@example.com").wait_for()
    transcript = (await inbox.wait_for(2))[1]
    assert transcript["Subject"].startswith("Transcript:")
    assert "Is my order shipped?" in bodies(transcript)[0]
    assert other.js_errors == []
    await other.context.close()


async def test_without_smtp_the_widget_does_not_ask_for_an_email(
    browser: Any, aiohttp_server: Any, settings: Settings
) -> None:
    live = await start_live(aiohttp_server, settings)
    page = await new_page(browser)
    await page.goto(live.url("/widget/frame"))
    await page.locator("#away").get_by_text("Nobody from the team is online").wait_for()
    assert await page.locator("#away-email").count() == 0
    assert page.js_errors == []
    await page.context.close()


async def test_admin_edits_the_widget_settings_and_the_widget_follows(
    browser: Any, aiohttp_server: Any, settings: Settings
) -> None:
    from chatserver.services.auth import create_user

    from .test_browser_admin import ADMIN_EMAIL, axe_serious
    from .test_browser_web import console_login, expect_text

    live = await start_live(aiohttp_server, settings)
    await create_user(
        live.app[DB_POOL], email=ADMIN_EMAIL, password=PASSWORD, role="admin", name="Ada Admin", bcrypt_rounds=4
    )
    page = await new_page(browser, bypass_csp=True)  # the CSP is bypassed only to inject axe-core
    await console_login(page, live, ADMIN_EMAIL)
    await page.goto(live.url("/console/admin/widget"))
    await page.get_by_role("heading", name="Widget settings").wait_for()
    await page.get_by_label("Greeting").fill("Welcome to the shop!")
    await page.get_by_label("Away message").fill("We're closed; leave a note.")
    await page.locator("#widget-color").fill("#facc15")
    # Business hours in a time zone that does not exist: refused, and the form says why.
    await page.locator("#hours-on").check()
    await page.get_by_label("Time zone (IANA, e.g. Europe/Paris)").fill("Mars/Olympus")
    await page.get_by_role("button", name="Save").click()
    await expect_text(page.locator(".form-error"), re.compile("time zone"))
    await page.get_by_label("Time zone (IANA, e.g. Europe/Paris)").fill("Europe/Paris")
    await page.get_by_role("button", name="Save").click()
    await page.locator("#admin-main").get_by_text("Version 1 · saved").wait_for()
    await web_tests.screenshot(page, "console-admin-widget.png")
    assert await axe_serious(page) == []
    assert page.js_errors == []

    # No hours ticked: the schedule is empty, so the widget is always closed and says so.
    widget = await new_page(browser)
    await widget.goto(live.url("/widget/frame"))
    await widget.locator(".msg-greeting").get_by_text("Welcome to the shop!").wait_for()
    await widget.locator("#away").get_by_text("We're closed; leave a note.").wait_for()
    await web_tests.screenshot(widget, "widget-closed-hours.png")
    accent = await widget.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--accent')")
    assert accent.strip() == "#facc15"
    assert widget.js_errors == []
    await page.context.close()
    await widget.context.close()
