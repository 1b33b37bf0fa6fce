"""The agent console in Chromium: the phone layout, the copilot panel that keeps the newest messages
in view, readable status labels and button names, landmarks, axe-core on every console page, the
reports page, the account page, and a disabled agent signed out of an open console.

Shares the browser fixtures and helpers of tests/test_browser_web.py.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from chatserver.ai.fake_groq import FakeGroq, Script
from chatserver.keys import DB_POOL
from chatserver.services.auth import create_user

from . import test_browser_web as web_tests
from .conftest import PASSWORD
from .test_browser_web import (
    AGENT_EMAIL,
    UI_TIMEOUT_MS,
    Live,
    assert_no_js_errors,
    console_login,
    expect_text,
    open_console_ticket,
    rest,
    screenshot,
)

pytestmark = pytest.mark.browser

# The same fixtures as the other browser tests (a Chromium, the fake Groq, the live server).
browser = web_tests.browser
fake_groq = web_tests.fake_groq
live = web_tests.live

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "web" / "static" / "vendor" / "axe-core" / "axe.min.js"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1440, "height": 900}}
ADMIN_EMAIL = "ada@example.com"
LONG_SUBJECT = "My order of three sleeping bags and a very long list of other camping things never arrived at all"
LONG_SUGGESTION = " ".join(["I am sorry the parcel is late; I have asked the carrier where it is."] * 12)


async def page_in(browser: Any, options: dict[str, Any]) -> Any:
    # The CSP forbids injected scripts: bypassed in these tests' browsers only, to load axe-core.
    context = await browser.new_context(**options, bypass_csp=True)
    page = await context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    return page


async def customer_ticket(live: Live, subject: str, message: str) -> dict[str, Any]:
    email = f"cust-{abs(hash(subject)) % 10**8}@example.com"
    signup = await rest(live, "POST", "/auth/signup", json={"email": email, "password": PASSWORD, "name": "Cara"})
    ticket = await rest(live, "POST", "/tickets", signup["access_token"], json={"subject": subject, "message": message})
    return dict(ticket["ticket"])


async def agent_says(live: Live, ticket_id: str, texts: list[str]) -> None:
    login = await rest(live, "POST", "/auth/login", json={"email": AGENT_EMAIL, "password": PASSWORD})
    for text in texts:
        await rest(live, "POST", f"/tickets/{ticket_id}/messages", login["access_token"], json={"body": text})


async def axe_problems(page: Any) -> list[dict[str, Any]]:
    await page.add_script_tag(path=str(AXE))
    result: list[dict[str, Any]] = await page.evaluate(
        """async () => {
          const r = await axe.run(document, {resultTypes: ['violations']});
          return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


async def newest_message_in_view(page: Any) -> bool:
    seen = await page.evaluate(
        """() => {
          const list = document.querySelector('.messages');
          const rows = list.querySelectorAll('li[data-seq]');
          const last = rows[rows.length - 1].getBoundingClientRect();
          const box = list.getBoundingClientRect();
          return {last: [last.top, last.bottom], list: [box.top, box.bottom],
                  scroll: [list.scrollTop, list.scrollHeight, list.clientHeight]};
        }"""
    )
    ok = (
        seen["last"][1] <= seen["list"][1] + 1
        and seen["last"][0] >= seen["list"][0] - 1
        and seen["list"][1] - seen["list"][0] > 40
    )
    if not ok:
        print("not in view:", seen)
    return bool(ok)


async def make_admin(live: Live) -> None:
    await create_user(live.app[DB_POOL], email=ADMIN_EMAIL, password=PASSWORD, role="admin", name="Ada Admin",
                      bcrypt_rounds=4)  # fmt: skip


# ---- layout and labels ---------------------------------------------------------------------------


async def test_the_inbox_fits_a_phone(browser: Any, live: Live) -> None:
    await customer_ticket(live, LONG_SUBJECT, "Where " + "is it " * 80)
    page = await page_in(browser, PHONE)
    await console_login(page, live)
    await page.locator(".ticket-row").first.wait_for()
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px screen"
    box = await page.locator(".ticket-row").first.bounding_box()
    assert box is not None and box["width"] <= 390
    await screenshot(page, "console-phone-inbox.png")
    assert_no_js_errors(page)


@pytest.mark.parametrize("options", [DESKTOP, PHONE], ids=["1440px", "phone"])
async def test_the_copilot_panel_keeps_the_newest_messages_in_view(
    browser: Any, live: Live, fake_groq: FakeGroq, options: dict[str, Any]
) -> None:
    ticket = await customer_ticket(live, "Late parcel", "My parcel is late")
    await agent_says(live, ticket["id"], [f"Update {i}: still looking into it." for i in range(14)])
    page = await page_in(browser, options)
    await console_login(page, live)
    await open_console_ticket(page, "Late parcel")
    await expect_text(page.locator(".msg[data-seq] .bubble").last, "Update 13: still looking into it.")
    await screenshot(page, f"console-ticket-{'phone' if options is PHONE else 'desktop'}.png")
    assert await newest_message_in_view(page)

    fake_groq.push(Script(text=LONG_SUGGESTION))
    await page.get_by_role("button", name="Suggest reply").click()
    await page.get_by_role("button", name="Use suggestion").and_(page.locator(":enabled")).wait_for()
    assert await newest_message_in_view(page), "the suggestion hid the newest messages"
    await page.get_by_role("button", name="Dismiss").click()
    assert await newest_message_in_view(page)
    assert_no_js_errors(page)


async def test_status_options_read_as_words_and_the_ai_button_says_what_it_is_named(browser: Any, live: Live) -> None:
    await customer_ticket(live, "Labels please", "Hello")
    page = await page_in(browser, DESKTOP)
    await console_login(page, live)
    await expect_text(page.locator(".ticket-row .badge.status-open"), "Open")
    await open_console_ticket(page, "Labels please")
    options = await page.locator("#ctl-status option").all_text_contents()
    assert options == ["Open", "Pending", "Resolved", "Closed"]
    priorities = await page.locator("#ctl-priority option").all_text_contents()
    assert priorities == ["Low", "Normal", "High", "Urgent"]
    button = page.locator(".ai-control button")
    for _ in range(2):
        text = (await button.text_content() or "").strip()
        assert await button.get_attribute("aria-label") in (None, text)
        await page.get_by_role("button", name=text).click()
        await page.get_by_role(
            "button", name="Take over from the AI" if "back" in text else "Hand back to the AI"
        ).wait_for()
    assert await page.locator("main").count() == 1
    assert_no_js_errors(page)


# ---- axe-core on every console page -------------------------------------------------------------


async def test_axe_finds_no_serious_problem_on_the_console_pages(browser: Any, live: Live) -> None:
    await make_admin(live)
    ticket = await customer_ticket(live, "Axe check", "Is this accessible?")
    await agent_says(live, ticket["id"], ["It should be."])
    problems: dict[str, list[dict[str, Any]]] = {}
    for options, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page = await page_in(browser, options)
        await page.goto(live.url("/console/login"))
        problems[f"{name} login"] = await axe_problems(page)
        await console_login(page, live, ADMIN_EMAIL)
        await page.locator(".ticket-row").first.wait_for()
        problems[f"{name} inbox"] = await axe_problems(page)
        await open_console_ticket(page, "Axe check")
        await expect_text(page.locator(".msg-mine .bubble, .msg-agent .bubble").last, "It should be.")
        problems[f"{name} ticket"] = await axe_problems(page)
        await page.goto(live.url("/console/reports?tz=UTC"))
        await page.locator("svg.heatmap").wait_for()
        problems[f"{name} reports"] = await axe_problems(page)
        await page.goto(live.url("/console/account"))
        problems[f"{name} account"] = await axe_problems(page)
        await page.goto(live.url("/console/admin/agents"))
        if (await page.title()).startswith("Not Found") or await page.locator("main").count() == 0:
            pytest.fail("the admin page did not render")
        await page.locator("[data-section-ready]").or_(page.locator("table")).first.wait_for()
        problems[f"{name} admin"] = await axe_problems(page)
        assert_no_js_errors(page)
        await page.context.close()
    found = {where: p for where, p in problems.items() if p}
    assert found == {}, found


# ---- reports and account ------------------------------------------------------------------------


async def test_the_reports_page_draws_its_charts(browser: Any, live: Live) -> None:
    ticket = await customer_ticket(live, "Counted", "Count me in")
    await agent_says(live, ticket["id"], ["Counted you."])
    page = await page_in(browser, {**DESKTOP, "timezone_id": "Europe/Paris"})
    await console_login(page, live)
    await page.get_by_role("link", name="Reports").click()
    await page.locator("svg.bars").wait_for()
    # The browser's own time zone fills in the period on a first visit.
    assert "tz=Europe%2FParis" in page.url
    await expect_text(page.locator("#kpi-opened"), "1")
    assert await page.locator("svg.bars rect.bar.opened").count() == 7
    assert await page.locator("svg.heatmap rect.cell").count() == 7 * 24
    await expect_text(page.locator("#agents-table tbody tr th").first, "Alex Agent")
    await screenshot(page, "console-reports.png")
    async with page.expect_download() as download:
        await page.get_by_role("link", name="agents", exact=True).click()
    assert (await download.value).suggested_filename.startswith("report-agents-")
    assert_no_js_errors(page)


async def test_an_agent_changes_their_password_in_the_console(browser: Any, live: Live) -> None:
    page = await page_in(browser, DESKTOP)
    await console_login(page, live)
    await page.get_by_role("link", name="Account").click()
    await page.get_by_label("Current password").fill(PASSWORD)
    await page.get_by_label("New password (at least 8 characters)").fill("another good passphrase")
    await page.get_by_label("New password, again").fill("another good passphrase")
    await page.get_by_role("button", name="Change password").click()
    await expect_text(page.locator("#password-done"), "Your password has been changed.")
    # Still signed in here: the inbox opens.
    await page.get_by_role("link", name="Inbox").click()
    await page.locator("#inbox-title").wait_for()
    assert_no_js_errors(page)


# ---- a disabled agent is signed out ---------------------------------------------------------------


async def test_a_disabled_agent_is_signed_out_of_an_open_console(browser: Any, live: Live) -> None:
    await make_admin(live)
    agent = await page_in(browser, DESKTOP)
    await console_login(agent, live)
    await agent.locator("#inbox-title").wait_for()

    admin = await page_in(browser, DESKTOP)
    await console_login(admin, live, ADMIN_EMAIL)
    await admin.goto(live.url("/console/admin/agents"))
    row = admin.locator("tr", has_text=AGENT_EMAIL)
    admin.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await row.get_by_role("button", name="Disable").click()
    await row.get_by_role("button", name="Enable").wait_for()
    # The agent's console is signed out at once, with no action of theirs.
    await agent.wait_for_url("**/console/login", timeout=UI_TIMEOUT_MS)
    await agent.locator("#email").wait_for()
    assert_no_js_errors(agent, admin)


async def test_an_admin_manages_the_team_in_the_console(browser: Any, live: Live) -> None:
    await make_admin(live)
    admin = await page_in(browser, DESKTOP)
    await console_login(admin, live, ADMIN_EMAIL)
    await admin.get_by_role("link", name="Admin").click()
    await admin.locator("tr", has_text=AGENT_EMAIL).wait_for()  # Agents is the first section

    # Add a team member with a password, who can then sign in to the console.
    add = admin.get_by_role("form", name="Or add a team member with a password")
    await add.get_by_label("Name", exact=True).fill("Noor New")
    await add.get_by_label("Email", exact=True).fill("noor@example.com")
    await add.get_by_label("First password").fill("welcome aboard 1")
    await add.get_by_role("button", name="Add", exact=True).click()
    row = admin.locator("tr", has_text="noor@example.com")
    await row.wait_for()
    await screenshot(admin, "console-admin-agents.png")

    # Make them an admin (their sessions end), then set a new password for them.
    admin.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await row.get_by_label("Role of Noor New").select_option("admin")
    await expect_text(admin.locator("#toast"), "Noor New is now admin.")
    await row.get_by_role("button", name="Set password for Noor New").click()
    await admin.get_by_label("New password", exact=True).fill("second password 2")
    await admin.get_by_role("button", name="Set password", exact=True).click()
    await expect_text(admin.locator("#toast"), re.compile("New password set for Noor New"))
    body = await rest(live, "POST", "/auth/login", json={"email": "noor@example.com", "password": "second password 2"})
    assert body["user"]["role"] == "admin"
    assert_no_js_errors(admin)
