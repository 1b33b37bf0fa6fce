"""What the AI service said about a failed reply reaches the agent's console (the staff-only
ai.failure_detail frame), and never the visitor's widget."""

from __future__ import annotations

from typing import Any

import pytest

from chatserver.ai.fake_groq import FakeGroq, Script

from . import test_browser_web as web_tests
from .test_browser_web import (
    Live,
    assert_no_js_errors,
    console_login,
    new_page,
    open_console_ticket,
    open_widget,
    widget_send,
)

pytestmark = pytest.mark.browser

browser = web_tests.browser
fake_groq = web_tests.fake_groq
live = web_tests.live

UPSTREAM = "Model llama-x in organization org_secret_42 is over its tokens-per-minute limit"


async def test_the_agent_sees_why_a_reply_failed_and_the_visitor_does_not(
    browser: Any, live: Live, fake_groq: FakeGroq
) -> None:
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    await widget_send(frame, "Is my order shipped?")
    await frame.locator(".msg-ai[data-seq]").first.wait_for()

    agent = await new_page(browser)
    await console_login(agent, live)
    await open_console_ticket(agent, "Is my order shipped?")
    fake_groq.push(Script(status=400, error_message=UPSTREAM))
    await widget_send(frame, "Hello again?")

    await agent.locator(".msg-event", has_text="AI reply failed").wait_for()
    await agent.locator(".msg-event", has_text="Details (agents only)").filter(has_text="org_secret_42").wait_for()
    await frame.locator(".msg-event", has_text="couldn't finish its reply").wait_for()
    assert "org_secret_42" not in await frame.locator("body").inner_text()
    assert_no_js_errors(visitor, agent)
