"""Availability, automatic assignment and notifications in a real headless Chromium against a
real server (docs/web.md, "Never miss a customer"): the tab title counts what waits for the
agent, a desktop notification says a conversation came in, new conversations go to the online
agent, and move to another when that agent goes offline."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from chatserver.keys import DB_POOL
from chatserver.services.auth import create_user
from chatserver.settings import Settings

from . import test_browser_web as web_tests
from .conftest import PASSWORD
from .test_browser_web import (
    AGENT_EMAIL,
    AGENT_NAME,
    UI_TIMEOUT_MS,
    Live,
    assert_no_js_errors,
    console_login,
    expect_text,
    new_page,
    rest,
    screenshot,
    start_live,
)

pytestmark = pytest.mark.browser

SECOND_EMAIL = "blair@example.com"
SECOND_NAME = "Blair Agent"
# Records every desktop notification the page shows (the permission is granted in the context;
# headless Chromium shows nothing a test could see).
SPY_NOTIFICATIONS = """
window.__notes = [];
const Original = window.Notification;
if (Original) {
  class Spy extends Original {
    constructor(title, options) {
      window.__notes.push({ title, body: options && options.body });
      super(title, options);
    }
  }
  Object.defineProperty(Spy, "permission", { get: () => Original.permission });
  Spy.requestPermission = (...args) => Original.requestPermission(...args);
  window.Notification = Spy;
}
"""


# The same Chromium as the other browser tests.
browser = web_tests.browser


@pytest.fixture
async def live(aiohttp_server: Any, settings: Settings) -> Live:
    """Routing on, the AI off (its replies would answer before a person), a sweep every 2 s. The
    presence TTL is not what these tests wait for (closing a console counts at once): 6 s keeps a
    heartbeat delayed by a loaded machine from making every agent offline for a moment."""
    tuned = settings.with_overrides(auto_assign=True, agent_presence_ttl_seconds=6.0, agent_offline_after_seconds=0.0)
    live = await start_live(aiohttp_server, tuned)
    await create_user(
        live.app[DB_POOL], email=SECOND_EMAIL, password=PASSWORD, role="agent", name=SECOND_NAME, bcrypt_rounds=4
    )
    return live


async def console_page(browser: Any, live: Live, email: str) -> Any:
    page = await new_page(browser, permissions=["notifications"])
    await page.add_init_script(SPY_NOTIFICATIONS)
    await console_login(page, live, email)
    # Online once the inbox socket is open and the server said so.
    await page.locator(".my-status .status-dot.status-online").wait_for()
    return page


async def customer(live: Live) -> str:
    body = await rest(
        live, "POST", "/auth/signup", json={"email": "casey@example.com", "password": PASSWORD, "name": "Casey"}
    )
    return str(body["access_token"])


async def wait_until(page: Any, expression: str) -> None:
    """Poll a page expression until true (page.wait_for_function evaluates strings inside the
    page, which the console's CSP forbids)."""
    deadline = asyncio.get_running_loop().time() + UI_TIMEOUT_MS / 1000
    while not await page.evaluate(expression):
        assert asyncio.get_running_loop().time() < deadline, f"still false: {expression}"
        await asyncio.sleep(0.05)


async def notes(page: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await page.evaluate("window.__notes")
    return found


async def test_a_new_conversation_counts_in_the_title_and_notifies_the_online_agent(browser: Any, live: Live) -> None:
    agent = await console_page(browser, live, AGENT_EMAIL)
    assert await agent.title() == "Support console"
    # Desktop notifications are already allowed in this context: nothing to ask.
    assert await agent.locator("#notify-permission").is_hidden()

    token = await customer(live)
    ticket = (
        await rest(live, "POST", "/tickets", token, json={"subject": "Parcel lost", "message": "Where is my parcel?"})
    )["ticket"]
    await wait_until(agent, "document.title === '(1) Support console'")
    await wait_until(agent, "window.__notes.length >= 1")
    assert (await notes(agent))[0] == {"title": "New conversation for you", "body": "Parcel lost"}
    await expect_text(agent.locator("#notify-live"), "New conversation for you: Parcel lost")
    await screenshot(agent, "console-notifications.png")

    # The customer writes again in the conversation assigned to the agent.
    await rest(live, "POST", f"/tickets/{ticket['id']}/messages", token, json={"body": "Any news?"})
    await wait_until(agent, "window.__notes.length >= 2")
    assert (await notes(agent))[1] == {"title": "New message from a customer", "body": "Any news?"}

    # The agent answers: nothing waits for them any more.
    await agent.locator(".ticket-row", has_text="Parcel lost").click()
    await agent.locator("#reply-input").fill("It is on its way.")
    await agent.locator("#reply-input").press("Control+Enter")
    await wait_until(agent, "document.title === 'Support console'")

    # The sound toggle is remembered across reloads.
    sound = agent.locator("#sound-toggle")
    assert await sound.get_attribute("aria-pressed") == "true"
    await sound.click()
    await agent.reload()
    await expect_text(agent.locator("#sound-toggle"), "Sound off")
    assert_no_js_errors(agent)


async def test_the_permission_is_asked_for_on_a_click(browser: Any, live: Live) -> None:
    page = await new_page(browser)
    await console_login(page, live, AGENT_EMAIL)
    button = page.locator("#notify-permission")
    await button.wait_for()
    assert await page.evaluate("Notification.permission") == "default"
    await page.context.grant_permissions(["notifications"])
    await button.click()
    await button.wait_for(state="hidden")
    assert_no_js_errors(page)


async def test_conversations_go_to_the_online_agent_and_move_when_they_go_offline(browser: Any, live: Live) -> None:
    alex = await console_page(browser, live, AGENT_EMAIL)
    blair = await console_page(browser, live, SECOND_EMAIL)
    # Blair steps away: Alex's console shows it live, and new conversations go to Alex only.
    await blair.locator("#my-status").select_option("away")
    await blair.locator(".my-status .status-dot.status-away").wait_for()
    await alex.locator(f'.team-member[data-status="away"]:has-text("{SECOND_NAME}")').wait_for(state="attached")

    token = await customer(live)
    await rest(live, "POST", "/tickets", token, json={"subject": "Broken zip", "message": "The zip is broken"})
    for page in (alex, blair):  # the assignment shows in every console
        row = page.locator(".ticket-row", has_text="Broken zip")
        await expect_text(row.locator(".badge.assignee"), f"→ {AGENT_NAME}")
    await wait_until(alex, "document.title === '(1) Support console'")

    # Blair is back; Alex closes the console with the customer still waiting: it moves to Blair.
    await blair.locator("#my-status").select_option("online")
    await blair.locator(".my-status .status-dot.status-online").wait_for()
    # Her own dot changes at once; Alex's team list changes once the server has it.
    await alex.locator(f'.team-member[data-status="online"]:has-text("{SECOND_NAME}")').wait_for(state="attached")
    await alex.context.close()
    await blair.locator(f'.team-member[data-status="offline"]:has-text("{AGENT_NAME}")').wait_for(state="attached")
    row = blair.locator(".ticket-row", has_text="Broken zip")
    await expect_text(row.locator(".badge.assignee"), f"→ {SECOND_NAME}")
    await wait_until(blair, "document.title === '(1) Support console'")
    await wait_until(
        blair, "window.__notes.some((n) => n.title === 'New conversation for you' && n.body === 'Broken zip')"
    )
    await blair.locator("#team summary").click()
    await expect_text(blair.locator(".team-summary"), re.compile(r"Team: 1 online"))
    await screenshot(blair, "console-team.png")
    assert_no_js_errors(blair)
