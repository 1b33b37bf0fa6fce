"""The console's Knowledge base section in a real browser: an admin adds an article (indexed at
once: the next search finds it), reads it, edits it (re-indexed: the new text is found, the old is
gone) and deletes it (no longer found); an agent suggests an article, which the AI does not use
until an admin publishes it; axe-core finds no serious problem on the page."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from chatserver.keys import AI_SERVICE, DB_POOL
from chatserver.services.auth import create_user

from . import test_browser_web as web_tests
from .conftest import PASSWORD
from .test_browser_admin import ADMIN_EMAIL, axe_serious, start_admin_live
from .test_browser_web import (
    Live,
    assert_no_js_errors,
    console_login,
    expect_text,
    live_settings,
    new_page,
    screenshot,
)

pytestmark = pytest.mark.browser

browser = web_tests.browser
fake_groq = web_tests.fake_groq

BODY = "We rent sea kayaks by the day.\n\n## Opening hours\n\nThe kayak hut opens at 9 am from April to October."


@pytest.fixture
async def live(aiohttp_server: Any, settings: Any, fake_groq: Any) -> Live:
    return await start_admin_live(aiohttp_server, live_settings(settings, fake_groq), clear=("kb_articles",))


async def found(live: Live, question: str) -> list[str]:
    return [a.slug for a in await live.app[AI_SERVICE].knowledge.search(question, 3)]


async def test_admin_creates_reads_edits_and_deletes_an_article(browser: Any, live: Live) -> None:
    page = await new_page(browser, bypass_csp=True)  # the CSP is bypassed only to inject axe-core
    await console_login(page, live, ADMIN_EMAIL)
    await page.goto(live.url("/console/admin/kb"))
    await page.get_by_role("heading", name="Knowledge base", level=1).wait_for()
    await expect_text(page.locator(".kb-articles p.muted").last, re.compile("No articles yet"))

    await page.get_by_label("Title").fill("Kayak rentals")
    await page.get_by_label("Public page (optional)").fill("https://help.example.com/kayaks")
    await page.get_by_label("Text (Markdown)").fill(BODY)
    await page.get_by_role("button", name="Add article").click()
    await expect_text(page.locator(".kb-articles table.data tbody tr td").first, "Kayak rentals")
    await expect_text(page.locator(".kb-articles table.data tbody tr td").nth(1), "kayak-rentals")
    assert (await found(live, "when does the kayak hut open"))[:1] == ["kayak-rentals"]

    await page.get_by_role("button", name="View Kayak rentals").click()
    await expect_text(page.locator(".kb-article .kb-body"), re.compile("opens at 9 am"))

    await page.get_by_role("button", name="Edit Kayak rentals").click()
    await web_tests.expect_value(page.get_by_label("Title"), "Kayak rentals")
    await page.get_by_label("Title").fill("Kayak and canoe rentals")
    await page.get_by_label("Text (Markdown)").fill(BODY.replace("9 am", "8 am") + "\n\n## Canoes\n\nCanoes seat two.")
    await page.get_by_role("button", name="Save article").click()
    await expect_text(page.locator(".kb-articles table.data tbody tr td").first, "Kayak and canoe rentals")
    # The article being read shows the saved text.
    await expect_text(page.locator(".kb-article .kb-body"), re.compile("opens at 8 am"))
    # Re-indexed on save: the new section is searched, the old text is gone from the chunks.
    assert "kayak-rentals" in await found(live, "how many people fit in a canoe")
    bodies = " ".join(r["body"] for r in await live.app[DB_POOL].fetch("SELECT body FROM kb_chunks"))
    assert "8 am" in bodies and "9 am" not in bodies
    await screenshot(page, "console-admin-kb.png")
    assert await axe_serious(page) == []

    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.get_by_role("button", name="Delete Kayak and canoe rentals").click()
    await expect_text(page.locator(".kb-articles p.muted").last, re.compile("No articles yet"))
    assert await found(live, "when does the kayak hut open") == []
    assert await live.app[DB_POOL].fetchval("SELECT count(*) FROM kb_chunks") == 0
    assert_no_js_errors(page)


async def test_a_bad_slug_is_refused_with_the_servers_reason(browser: Any, live: Live) -> None:
    page = await new_page(browser)
    await console_login(page, live, ADMIN_EMAIL)
    await page.goto(live.url("/console/admin/kb"))
    await page.get_by_label("Title").fill("Dupe")
    await page.get_by_label("Text (Markdown)").fill("One.")
    await page.get_by_role("button", name="Add article").click()
    await expect_text(page.locator(".kb-articles table.data tbody tr td").first, "Dupe")
    # The same slug again: the server's 409 message is shown on the form, nothing else changes.
    await page.get_by_label("Title").fill("Dupe")
    await page.get_by_label("Text (Markdown)").fill("Two.")
    await page.get_by_role("button", name="Add article").click()
    await expect_text(page.locator(".form-error"), re.compile("exists"))
    assert await live.app[DB_POOL].fetchval("SELECT count(*) FROM kb_articles") == 1
    assert_no_js_errors(page)


async def test_an_agent_suggests_an_article_and_an_admin_publishes_it(browser: Any, live: Live) -> None:
    await create_user(
        live.app[DB_POOL], email="sam@example.com", password=PASSWORD, role="agent", name="Sam", bcrypt_rounds=4
    )
    agent_page = await new_page(browser, bypass_csp=True)
    await console_login(agent_page, live, "sam@example.com")
    await agent_page.get_by_role("link", name="Knowledge base").click()
    await agent_page.get_by_role("heading", name="Suggest a new article").wait_for()
    await agent_page.get_by_label("Title").fill("Kayak rentals")
    await agent_page.get_by_label("Text (Markdown)").fill(BODY)
    await agent_page.get_by_label("Note for the admins (optional)").fill("Three customers asked today")
    await agent_page.get_by_role("button", name="Send suggestion").click()
    await expect_text(agent_page.locator(".kb-suggestions table.data tbody tr td").first, "Kayak rentals")
    assert await axe_serious(agent_page) == []
    # Waiting for review: not searched.
    assert await found(live, "when does the kayak hut open") == []
    assert_no_js_errors(agent_page)

    page = await new_page(browser)
    await console_login(page, live, ADMIN_EMAIL)
    await page.goto(live.url("/console/admin/kb"))
    await expect_text(page.locator(".kb-suggestions table.data tbody tr td").nth(2), "Sam")
    await page.get_by_role("button", name="Read suggestion Kayak rentals").click()
    await expect_text(page.locator(".kb-article .kb-body"), re.compile("opens at 9 am"))
    await page.get_by_role("button", name="Publish suggestion Kayak rentals").click()
    await expect_text(page.locator(".kb-articles table.data tbody tr td").first, "Kayak rentals")
    await expect_text(page.locator(".kb-suggestions p.muted"), "No suggestions waiting.")
    assert (await found(live, "when does the kayak hut open"))[:1] == ["kayak-rentals"]
    assert_no_js_errors(page)
