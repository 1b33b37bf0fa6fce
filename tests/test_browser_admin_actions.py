"""The console's AI actions section in a real browser: a parameters box that is not JSON and a
refused URL are shown in the form's error line (nothing is saved); an admin adds an action, edits
it, disables it and deletes it, and each step reaches the database; axe-core finds no serious
problem on the page."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from chatserver.keys import DB_POOL

from . import test_browser_web as web_tests
from .test_browser_admin import ADMIN_EMAIL, axe_serious, start_admin_live
from .test_browser_web import (
    Live,
    assert_no_js_errors,
    console_login,
    expect_text,
    live_settings,
    new_page,
)

pytestmark = pytest.mark.browser

browser = web_tests.browser
fake_groq = web_tests.fake_groq

PARAMETERS = '{"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}'


@pytest.fixture
async def live(aiohttp_server: Any, settings: Any, fake_groq: Any) -> Live:
    # Actions outlive start_live's truncation (they belong to no user): earlier tests leave theirs.
    return await start_admin_live(aiohttp_server, live_settings(settings, fake_groq), clear=("ai_actions",))


async def stored(live: Live) -> list[dict[str, Any]]:
    rows = await live.app[DB_POOL].fetch("SELECT name, description, enabled FROM ai_actions ORDER BY name")
    return [dict(row) for row in rows]


async def test_admin_adds_edits_disables_and_deletes_an_action(browser: Any, live: Live) -> None:
    page = await new_page(browser, bypass_csp=True)  # the CSP is bypassed only to inject axe-core
    await console_login(page, live, ADMIN_EMAIL)
    await page.goto(live.url("/console/admin/actions"))
    await page.get_by_role("heading", name="AI actions", level=1).wait_for()
    await expect_text(page.locator("#admin-root p.muted").first, re.compile("No actions yet"))
    error = page.locator("form.admin-form .form-error")

    await page.get_by_label("Name", exact=True).fill("get_order_status")
    await page.get_by_label("Description for the model").fill("Looks up an order.")
    await page.get_by_label("URL template").fill("http://127.0.0.1/orders/{order_id}")
    await page.get_by_label("Parameters (JSON Schema)").fill("{not json")
    await page.get_by_role("button", name="Add action").click()
    await expect_text(error, re.compile("^Parameters: "))

    # Private addresses are refused by the server: its message is shown.
    await page.get_by_label("Parameters (JSON Schema)").fill(PARAMETERS)
    await page.get_by_role("button", name="Add action").click()
    await expect_text(error, re.compile("url_template is not allowed"))
    assert await stored(live) == []

    await page.get_by_label("URL template").fill("https://shop.example/api/orders/{order_id}")
    await page.get_by_role("button", name="Add action").click()
    await expect_text(page.locator("#toast"), "Action added.")
    await expect_text(error, "")
    await expect_text(page.locator("table.data tbody tr td code").first, "get_order_status")
    assert await stored(live) == [{"name": "get_order_status", "description": "Looks up an order.", "enabled": True}]
    assert await axe_serious(page) == []

    await page.get_by_role("button", name="Edit get_order_status").click()
    await expect_text(page.locator("#action-form-title"), "Edit get_order_status")
    await page.get_by_label("Description for the model").fill("Looks up an order by its number.")
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect_text(page.locator("#toast"), "Action saved.")
    await expect_text(page.locator("#action-form-title"), "New action")
    assert (await stored(live))[0]["description"] == "Looks up an order by its number."

    await page.get_by_role("button", name="Disable get_order_status").click()
    await page.get_by_role("button", name="Enable get_order_status").wait_for()
    assert (await stored(live))[0]["enabled"] is False

    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.get_by_role("button", name="Delete get_order_status").click()
    await expect_text(page.locator("#toast"), "Action deleted.")
    await expect_text(page.locator("#admin-root p.muted").first, re.compile("No actions yet"))
    assert await stored(live) == []
    assert_no_js_errors(page)
