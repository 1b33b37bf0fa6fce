"""The agent workspace in a real headless Chromium against the real server (docs/web.md): a canned
response inserted with `/` and its variables filled, a label put on a ticket and the inbox filtered
by it, and the activity line that records it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chatserver.keys import DB_POOL
from chatserver.services.auth import create_user
from chatserver.settings import Settings

from . import test_browser_web as web_tests
from .conftest import PASSWORD
from .test_browser_web import (
    AGENT_NAME,
    Live,
    agent_token,
    assert_no_js_errors,
    console_login,
    expect_count,
    expect_text,
    new_page,
    open_console_ticket,
    rest,
    screenshot,
    start_live,
)

pytestmark = pytest.mark.browser

ADMIN_EMAIL = "admin@example.com"


# The same Chromium as the other browser tests.
browser = web_tests.browser


@pytest.fixture
async def live(aiohttp_server: Any, settings: Settings) -> Live:
    """The real app on a real port (AI replies off), one agent account, no labels yet."""
    served = await start_live(aiohttp_server, settings)
    await served.app[DB_POOL].execute("TRUNCATE labels")
    return served


async def customer_ticket(live: Live, name: str, email: str, subject: str) -> dict[str, Any]:
    signup = await rest(live, "POST", "/auth/signup", json={"email": email, "password": PASSWORD, "name": name})
    created = await rest(live, "POST", "/tickets", signup["access_token"], json={"subject": subject, "message": "Hi"})
    return dict(created["ticket"])


async def admin_token(live: Live) -> str:
    await create_user(
        live.app[DB_POOL], email=ADMIN_EMAIL, password=PASSWORD, role="admin", name="Ada Admin", bcrypt_rounds=4
    )
    body = await rest(live, "POST", "/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
    return str(body["access_token"])


async def test_slash_inserts_a_canned_response_with_its_variables_filled(browser: Any, live: Live) -> None:
    token = await agent_token(live)
    body = "Hi {{customer.name}}, {{agent.name}} here about {{ticket.id}} ({{customer.email}}) {{unknown.thing}}"
    await rest(live, "POST", "/canned-responses", token, json={"shortcut": "hello", "body": body})
    await rest(live, "POST", "/canned-responses", token, json={"shortcut": "help-refund", "body": "Refunds: 5 days."})
    await rest(live, "POST", "/canned-responses", token, json={"shortcut": "bye", "body": "Goodbye!"})
    # A name with Markdown in it stays text in the reply.
    ticket = await customer_ticket(live, "Cara [VIP]", "cara@example.com", "Order late")

    page = await new_page(browser)
    await console_login(page, live)
    await open_console_ticket(page, "Order late")
    composer = page.locator("#reply-input")
    await composer.press_sequentially("/hel")
    listbox = page.get_by_role("listbox", name="Canned responses")
    await listbox.wait_for()
    options = listbox.get_by_role("option")
    await expect_count(options, 2)  # /bye does not match
    assert await options.nth(0).get_attribute("aria-selected") == "true"
    # Keyboard: down to the second, up back to the first; the composer points at the active one.
    await composer.press("ArrowDown")
    assert await options.nth(1).get_attribute("aria-selected") == "true"
    assert await composer.get_attribute("aria-activedescendant") == await options.nth(1).get_attribute("id")
    await composer.press("ArrowUp")
    await screenshot(page, "console-canned.png")
    await composer.press("Enter")
    await listbox.wait_for(state="hidden")
    expected = f"Hi Cara \\[VIP\\], {AGENT_NAME} here about {ticket['id']} (cara@example.com) {{{{unknown.thing}}}}"
    assert await composer.input_value() == expected

    # Escape closes the list without inserting anything.
    await composer.press_sequentially(" /by")
    await listbox.wait_for()
    await composer.press("Escape")
    await listbox.wait_for(state="hidden")
    assert await composer.input_value() == expected + " /by"
    await composer.fill(expected)
    await composer.press("Control+Enter")
    await expect_text(
        page.locator(".msg-mine .bubble").last,
        f"Hi Cara [VIP], {AGENT_NAME} here about {ticket['id']} (cara@example.com) {{{{unknown.thing}}}}",
    )

    # An agent keeps their own: the "Canned…" dialog saves the composer's text under a shortcut,
    # "/" offers it at once, and the dialog deletes it again.
    await composer.fill("We are open 9 to 5.")
    await page.get_by_role("button", name="Your canned responses").click()
    dialog = page.get_by_role("dialog", name="Your canned responses")
    await dialog.get_by_label("Shortcut for the text in the composer").fill("hours")
    await dialog.get_by_role("button", name="Save", exact=True).click()
    await dialog.locator("code", has_text="/hours").wait_for()
    await screenshot(page, "console-canned-mine.png")
    await dialog.get_by_role("button", name="Close").click()
    await composer.fill("")
    await composer.press_sequentially("/hou")
    await listbox.get_by_role("option", name="/hours").wait_for()
    await composer.press("Tab")
    assert await composer.input_value() == "We are open 9 to 5."
    await page.get_by_role("button", name="Your canned responses").click()
    await dialog.get_by_role("button", name="Delete /hours").click()
    await dialog.locator("code", has_text="/hours").wait_for(state="detached")
    await expect_count(dialog.locator(".canned-manage li"), 3)  # the three made over REST above
    await dialog.get_by_role("button", name="Close").click()
    mine = (await rest(live, "GET", "/canned-responses", token))["canned_responses"]
    assert "hours" not in [c["shortcut"] for c in mine]
    assert_no_js_errors(page)


async def test_a_label_added_in_the_console_filters_the_inbox(browser: Any, live: Live) -> None:
    admin = await admin_token(live)
    await rest(live, "POST", "/labels", admin, json={"name": "VIP", "color": "#b42318"})
    await rest(live, "POST", "/labels", admin, json={"name": "Billing", "color": "#2563eb"})
    await customer_ticket(live, "Cara", "cara@example.com", "Order late")
    await customer_ticket(live, "Dan", "dan@example.com", "Password reset")

    page = await new_page(browser)
    await console_login(page, live)
    await expect_count(page.locator(".ticket-row"), 2)
    await open_console_ticket(page, "Order late")
    await page.get_by_label("Labels", exact=True).select_option(label="VIP")
    pane_chip = page.locator(".labels-control .label-chip", has_text="VIP")
    await pane_chip.wait_for()
    row = page.locator(".ticket-row", has_text="Order late")
    await expect_text(row.locator(".label-chip"), "VIP")
    # The change is in the conversation as an activity line (agents only).
    await page.locator(".msg-activity", has_text=f"{AGENT_NAME} added “VIP”").wait_for()
    await screenshot(page, "console-labels.png")

    await page.get_by_label("Filter by label").select_option(label="VIP")
    await expect_count(page.locator(".ticket-row"), 1)
    await expect_text(page.locator(".ticket-row .subject"), "Order late")

    # Removing it: the chip goes, and the filtered inbox drops the row once it is closed.
    await page.get_by_role("button", name="Remove label VIP").click()
    await pane_chip.wait_for(state="detached")
    await page.locator(".msg-activity", has_text=f"{AGENT_NAME} removed “VIP”").wait_for()
    await page.get_by_label("Filter by label").select_option(label="Any")
    await expect_count(page.locator(".ticket-row"), 2)
    assert_no_js_errors(page)


async def test_admin_manages_labels_and_shared_canned_responses(browser: Any, live: Live) -> None:
    from .test_browser_admin import axe_serious

    await admin_token(live)  # creates the admin account
    page = await new_page(browser, bypass_csp=True)  # the CSP is bypassed only to inject axe-core
    await console_login(page, live, ADMIN_EMAIL)
    await page.goto(live.url("/console/admin/labels"))
    await page.get_by_role("heading", name="Labels", level=1).wait_for()
    await page.get_by_label("Name").fill("Refund")
    await page.get_by_role("button", name="Create label").click()
    await page.get_by_label("New name for Refund").fill("Refunds")
    await page.get_by_role("button", name="Save Refund").click()
    await expect_text(page.locator("table.data tbody tr td .label-chip"), "Refunds")
    assert await axe_serious(page) == []
    assert [label["name"] for label in (await rest(live, "GET", "/labels", await agent_token(live)))["labels"]] == [
        "Refunds"
    ]
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.get_by_role("button", name="Delete Refunds").click()
    await page.locator("#admin-root p.muted", has_text="No labels yet.").wait_for()

    await page.goto(live.url("/console/admin/canned"))
    await page.get_by_role("heading", name="Canned responses", level=1).wait_for()
    await page.get_by_label("Shortcut").fill("welcome")
    await page.get_by_label("Text", exact=True).fill("Welcome, {{customer.name}}!")
    await page.get_by_role("button", name="Create response").click()
    await expect_text(page.locator("table.data tbody tr td code"), "/welcome")
    assert await axe_serious(page) == []
    shared = (await rest(live, "GET", "/canned-responses", await agent_token(live)))["canned_responses"]
    assert [(c["shortcut"], c["shared"]) for c in shared] == [("welcome", True)]
    assert_no_js_errors(page)
