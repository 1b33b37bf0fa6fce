"""The console's search box, customer panel and keyboard shortcuts, in a real Chromium against a
real server (fixtures and helpers from tests/test_browser_web.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chatserver.keys import DB_POOL
from chatserver.services.auth import create_user
from chatserver.settings import Settings

from . import test_browser_web as web_tests
from .conftest import PASSWORD
from .test_browser_web import (
    Live,
    agent_token,
    assert_no_js_errors,
    console_login,
    expect_count,
    expect_text,
    new_page,
    open_widget,
    rest,
    screenshot,
    start_live,
    widget_send,
)

pytestmark = pytest.mark.browser


# The same Chromium as the other browser tests.
browser = web_tests.browser


@pytest.fixture
async def live(aiohttp_server: Any, settings: Settings) -> Live:
    """The real app (AI replies off: these tickets are written by hand), one agent account."""
    return await start_live(aiohttp_server, settings)


async def customer_token(live: Live, email: str, name: str) -> str:
    await create_user(live.app[DB_POOL], email=email, password=PASSWORD, role="customer", name=name, bcrypt_rounds=4)
    body = await rest(live, "POST", "/auth/login", json={"email": email, "password": PASSWORD})
    return str(body["access_token"])


async def ticket_with(live: Live, token: str, subject: str, bodies: list[str], **extra: Any) -> str:
    ticket = (await rest(live, "POST", "/tickets", token, json={"subject": subject, **extra}))["ticket"]
    for body in bodies:
        await rest(live, "POST", f"/tickets/{ticket['id']}/messages", token, json={"body": body})
    return str(ticket["id"])


async def test_search_finds_a_message_and_the_opened_ticket_highlights_it(browser: Any, live: Live) -> None:
    token = await customer_token(live, "nadia@shop.example", "Nadia Petit")
    filler = [f"Message number {i} about nothing in particular." for i in range(8)]
    found = await ticket_with(
        live, token, "Shipping question", [*filler[:3], "The zebracorn mug arrived chipped.", *filler[3:]]
    )
    other = await ticket_with(live, token, "Another topic", ["Nothing to see here"])
    await rest(
        live,
        "POST",
        f"/tickets/{other}/messages",
        await agent_token(live),
        json={"body": "Escalated to the warehouse team", "internal": True},
    )

    agent = await new_page(browser)
    await console_login(agent, live)
    await agent.locator(".ticket-row").first.wait_for()
    await agent.keyboard.press("/")  # the shortcut focuses the search box
    await agent.keyboard.type("zebracorn")
    rows = agent.locator(".ticket-row")
    await expect_count(rows, 1)
    await expect_text(rows.first.locator(".subject"), "Shipping question")
    await expect_text(rows.first.locator(".match mark"), "zebracorn")

    await rows.first.click()
    hit = agent.locator(".msg.search-hit")
    await expect_text(hit.locator(".bubble"), "The zebracorn mug arrived chipped.")
    await expect_text(hit.locator("mark.search-term"), "zebracorn")
    assert await hit.evaluate("(el) => el === document.activeElement")
    await screenshot(agent, "console-search.png")
    assert await agent.evaluate("() => location.pathname") == f"/console/tickets/{found}"

    # Internal notes are searched for agents, and say so.
    await agent.locator("#inbox-search").fill("warehouse")
    await expect_text(agent.locator(".ticket-row .subject"), "Another topic")
    await expect_text(agent.locator(".ticket-row .match-field"), "Note: ")
    # Clearing the box brings the whole inbox back.
    await agent.locator("#inbox-search").fill("")
    await expect_count(agent.locator(".ticket-row"), 2)
    assert_no_js_errors(agent)


async def test_the_customer_panel_shows_the_page_browser_and_other_tickets(browser: Any, live: Live) -> None:
    # A visitor writes from the demo page through the widget: it sends the visitor context.
    visitor = await new_page(browser, locale="fr-FR", timezone_id="Europe/Paris")
    frame = await open_widget(visitor, live.url("/demo?from=ad"))
    await widget_send(frame, "Do you ship to Lyon?")
    agent = await new_page(browser)
    await console_login(agent, live)
    await agent.locator(".ticket-row", has_text="Do you ship to Lyon?").click()
    panel = agent.locator(".customer-panel")
    # Closed at first (the conversation keeps the height); opened, it stays open from then on.
    assert await panel.get_attribute("open") is None
    await panel.locator(".panel-summary").click()
    await expect_text(panel.locator("dd a.panel-url"), live.url("/demo?from=ad"))
    assert await panel.locator("dd a.panel-url").get_attribute("rel") == "noopener noreferrer nofollow"
    await expect_text(panel.locator(".panel-summary .panel-hint").first, re.compile(r"^Chrome \d+ on Linux$"))
    await expect_text(panel.locator("dd", has_text="fr-FR"), re.compile(r"fr-FR"))
    await expect_text(panel.locator("dd", has_text="Europe/Paris"), re.compile(r"Europe/Paris"))
    await expect_text(panel.locator(".panel-title"), "Other tickets (0)")
    await screenshot(agent, "console-customer-panel.png")

    # A returning customer: the panel lists their other tickets, and one click opens one.
    token = await customer_token(live, "omar@shop.example", "Omar Haddad")
    first = await ticket_with(live, token, "Lost parcel in March", [])
    await ticket_with(live, token, "Invoice copy", [])
    await ticket_with(
        live,
        token,
        "Where is my order?",
        [],
        context={"page_url": "javascript:alert(1)", "user_agent": "curl/8.4.0"},
    )
    await agent.locator(".ticket-row", has_text="Where is my order?").click()
    await expect_text(panel.locator(".panel-name"), "Omar Haddad")
    await expect_text(panel.locator(".panel-title"), "Other tickets (2)")
    await expect_text(panel.locator(".panel-tickets a"), ["Invoice copy", "Lost parcel in March"])
    # Not a web URL: shown as text, never as a link.
    await expect_text(panel.locator("span.panel-url"), "javascript:alert(1)")
    await expect_count(panel.locator("a.panel-url"), 0)
    await panel.locator(".panel-tickets a", has_text="Lost parcel in March").click()
    await expect_text(agent.locator("#ticket-subject"), "Lost parcel in March")
    assert await agent.evaluate("() => location.pathname") == f"/console/tickets/{first}"
    assert_no_js_errors(visitor, agent)


async def test_keyboard_moves_through_the_inbox_opens_and_writes(browser: Any, live: Live) -> None:
    token = await customer_token(live, "kim@shop.example", "Kim Lee")
    for subject in ("Oldest", "Middle", "Newest"):
        await ticket_with(live, token, subject, [f"About {subject}"])
    agent = await new_page(browser)
    await console_login(agent, live)
    await expect_count(agent.locator(".ticket-row"), 3)

    focused_subject = "() => document.activeElement.closest('.ticket-row')?.querySelector('.subject')?.textContent"
    await agent.keyboard.press("j")
    assert await agent.evaluate(focused_subject) == "Newest"
    await agent.keyboard.press("j")
    await agent.keyboard.press("ArrowDown")
    assert await agent.evaluate(focused_subject) == "Oldest"
    await agent.keyboard.press("k")
    assert await agent.evaluate(focused_subject) == "Middle"
    await agent.keyboard.press("Enter")
    await expect_text(agent.locator("#ticket-subject"), "Middle")

    # In the composer, letters and "/" are text, not shortcuts.
    await agent.locator("#reply-input").press_sequentially("n/r")
    assert await agent.locator("#reply-input").input_value() == "n/r"
    assert await agent.locator("#mode-reply").is_checked()
    # Outside it, n switches to an internal note and puts the cursor in the composer.
    await agent.locator(".messages").focus()
    await agent.keyboard.press("n")
    assert await agent.locator("#mode-note").is_checked()
    assert await agent.evaluate("() => document.activeElement.id") == "reply-input"
    await agent.locator(".messages").focus()
    await agent.keyboard.press("n")
    assert await agent.locator("#mode-reply").is_checked()
    await agent.locator(".messages").focus()
    await agent.keyboard.press("r")
    assert await agent.evaluate("() => document.activeElement.id") == "reply-input"

    # "?" lists the shortcuts in a modal dialog; Esc closes it and gives the focus back.
    await agent.locator(".messages").focus()
    await agent.keyboard.press("?")
    dialog = agent.get_by_role("dialog", name="Keyboard shortcuts")
    await dialog.wait_for()
    await expect_count(dialog.locator("dt"), 8)
    await screenshot(agent, "console-shortcuts.png")
    await agent.keyboard.press("Escape")
    await dialog.wait_for(state="hidden")
    assert await agent.evaluate("() => document.activeElement.classList.contains('messages')")
    assert_no_js_errors(agent)
