"""AI actions in the browser (docs/ai.md, "Acting"): the widget shows what the assistant is doing
and asks the customer to confirm where the admin allows it; the console draws the call and lets
an agent approve it. The fake Groq's demo model calls the action against the demo shop's API."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from chatserver.ai.fake_groq import FakeGroq, demo_responder
from chatserver.db import actions as actions_db
from chatserver.keys import DB_POOL, SETTINGS
from chatserver.services import demo_shop
from chatserver.services.actions import SecretBox
from chatserver.settings import Settings

from . import test_browser_web as web_tests
from .test_browser_web import (
    Live,
    assert_no_js_errors,
    console_login,
    expect_count,
    expect_text,
    live_settings,
    new_page,
    open_console_ticket,
    open_widget,
    screenshot,
    start_live,
    widget_send,
)

browser = web_tests.browser
fake_groq = web_tests.fake_groq


@pytest.fixture
async def live(aiohttp_server: Any, settings: Settings, fake_groq: FakeGroq, database_url: str) -> Live:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE ai_actions CASCADE")
        conn.execute("DELETE FROM app_flags WHERE name = %s", (demo_shop.SEEDED_FLAG,))
    fake_groq.responder = demo_responder
    allowed = replace(
        live_settings(settings, fake_groq), actions_allow_private_networks=("127.0.0.0/8",), demo_shop=True
    )
    return await start_live(aiohttp_server, allowed)


async def cancel_action(live: Live, *, customer_confirmation: bool) -> None:
    """A mutating action on the demo shop's order API (a GET: the mock has no cancellation)."""
    settings = live.app[SETTINGS]
    box = SecretBox(settings.actions_secret_key)
    fields = demo_shop.demo_action_fields(live.base, box, settings.actions_secret_key)
    fields.update(name="cancel_order", label="Cancel order {order_id}", mutating=True)
    fields["customer_confirmation"] = customer_confirmation
    assert await actions_db.insert_action(live.app[DB_POOL], fields) is not None


async def test_an_agent_approves_an_action_in_the_console(browser: Any, live: Live) -> None:
    await cancel_action(live, customer_confirmation=False)
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    await widget_send(frame, "Please cancel order 1043")
    # While it waits, the widget says what the assistant wants to do.
    await expect_text(frame.locator("#typing"), "Cancel order 1043")

    agent = await new_page(browser)
    await console_login(agent, live)
    await open_console_ticket(agent, "Please cancel order 1043")
    line = agent.locator("li.msg-tool", has_text="Cancel order 1043")
    await expect_text(line.locator(".badge"), "waiting for approval")
    await screenshot(agent, "console-action-approval.png")
    await line.get_by_role("button", name="Approve: Cancel order 1043").click()

    await expect_text(line.locator(".badge"), "done")
    await expect_count(frame.locator(".msg-ai", has_text="Order 1043 is processing"), 1)
    await expect_count(line.get_by_role("button"), 0)
    assert_no_js_errors(visitor, agent)


async def test_a_customer_confirms_an_action_in_the_widget(browser: Any, live: Live) -> None:
    await cancel_action(live, customer_confirmation=True)
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    await widget_send(frame, f"cancel order 1042 please ({uuid.uuid4().hex[:4]})")
    ask = frame.locator("li.msg-confirm")
    await expect_text(ask.locator("p"), "The assistant would like to: Cancel order 1042. Shall it go ahead?")
    await screenshot(visitor, "widget-action-confirm.png")
    # Opened again (a reload), the widget still asks.
    frame = await open_widget(visitor, live.url("/demo"))
    ask = frame.locator("li.msg-confirm")
    await expect_text(ask.locator("p"), "The assistant would like to: Cancel order 1042. Shall it go ahead?")
    await ask.get_by_role("button", name="Yes, go ahead").click()
    await expect_count(frame.locator(".msg-ai", has_text="Order 1042 is shipped"), 1)
    await expect_count(frame.locator("li.msg-confirm"), 0)
    assert_no_js_errors(visitor)
