"""Closing the loop in a real headless Chromium against the real server (issue 13): the rating the
widget asks for once a conversation is closed, seen by the agent in the console; "Seen" both ways
(read cursors); the visitor's conversation history and a new conversation.

Shares the browser fixtures and helpers of tests/test_browser_web.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatserver.ai.fake_groq import FakeGroq
from chatserver.settings import Settings

from . import test_browser_web as web_tests
from .test_browser_web import (
    Live,
    agent_token,
    assert_no_js_errors,
    console_login,
    expect_count,
    expect_text,
    live_settings,
    new_page,
    open_console_ticket,
    open_widget,
    panel_frame,
    rest,
    screenshot,
    start_live,
    widget_send,
)

browser = web_tests.browser
fake_groq = web_tests.fake_groq

pytestmark = pytest.mark.browser


@pytest.fixture
async def quiet(aiohttp_server: Any, settings: Settings, fake_groq: FakeGroq) -> Live:
    """The live server with AI replies off: agents and the visitor only."""
    return await start_live(aiohttp_server, live_settings(settings, fake_groq, ai_default_enabled=False))


async def test_the_widget_asks_for_a_rating_after_close_and_the_agent_sees_it(browser: Any, quiet: Live) -> None:
    visitor = await new_page(browser)
    frame = await open_widget(visitor, quiet.url("/demo"))
    await widget_send(frame, "My order never came")
    await frame.locator(".msg-mine[data-seq]").wait_for()
    await expect_count(frame.locator("#rating:not([hidden])"), 0)  # open: nothing to rate yet

    agent = await new_page(browser)
    await console_login(agent, quiet)
    await open_console_ticket(agent, "My order never came")
    await agent.locator("#reply-input").fill("Refunded, sorry!")
    await agent.locator("#reply-input").press("Control+Enter")
    await agent.locator("#ctl-status").select_option("closed")

    card = frame.locator("#rating")
    await expect_text(card.locator(".rating-title"), "How did we do?")
    send = card.get_by_role("button", name="Send")
    assert await send.is_disabled()
    await card.get_by_role("button", name="4 of 5: Good").click()
    await card.get_by_label("Anything to add? (optional)").fill("Quick refund, thanks")
    await screenshot(visitor, "widget-rating.png")
    await send.click()
    await expect_text(card.locator(".rating-done"), "Thanks for your feedback!")

    # The agent sees it live, in the ticket's header and as a line in the thread.
    await expect_text(agent.locator(".rating-summary .rating-text"), " Customer rating: 4/5")
    await expect_text(agent.locator(".rating-summary .rating-comment"), " · “Quick refund, thanks”")
    await agent.locator(".msg-event", has_text="The customer rated this conversation 4/5.").wait_for()
    await screenshot(agent, "console-rating.png")
    tickets = (await rest(quiet, "GET", "/tickets?status=closed", await agent_token(quiet)))["tickets"]
    assert [(t["rating"], t["rating_comment"]) for t in tickets] == [(4, "Quick refund, thanks")]

    # Asked once: after a reload the widget says what was given instead of asking again.
    await visitor.reload()
    await visitor.locator("#chatserver-widget .launcher").click()
    await expect_text(frame.locator("#rating .rating-done"), "You rated this conversation 4 of 5.")
    await expect_count(frame.locator("#rating .rating-score"), 0)
    assert_no_js_errors(visitor, agent)


async def test_the_rating_card_speaks_the_visitors_language(browser: Any, quiet: Live) -> None:
    visitor = await new_page(browser, locale="de-DE")
    await visitor.goto(quiet.url("/widget/frame"))
    await visitor.locator("#input").fill("Hallo")
    await visitor.locator("#input").press("Enter")
    await visitor.locator(".msg-mine[data-seq]").wait_for()
    await visitor.locator("#history-button").wait_for()
    ticket = (await rest(quiet, "GET", "/tickets", await agent_token(quiet)))["tickets"][0]
    await rest(quiet, "PATCH", f"/tickets/{ticket['id']}", await agent_token(quiet), json={"status": "resolved"})
    await expect_text(visitor.locator("#rating .rating-title"), "Wie war unser Service?")
    await visitor.get_by_role("button", name="Später").click()
    await expect_count(visitor.locator("#rating:not([hidden])"), 0)
    assert await visitor.locator("#history-button").get_attribute("aria-label") == "Ihre Gespräche"
    assert_no_js_errors(visitor)


async def test_seen_shows_both_ways(browser: Any, quiet: Live) -> None:
    visitor = await new_page(browser)
    frame = await open_widget(visitor, quiet.url("/demo"))
    await widget_send(frame, "Is anyone reading this?")
    await frame.locator(".msg-mine[data-seq]").wait_for()
    await expect_count(frame.locator(".seen-label"), 0)

    # The agent opens the ticket: their cursor covers the visitor's message, and the widget says so.
    agent = await new_page(browser)
    await console_login(agent, quiet)
    await open_console_ticket(agent, "Is anyone reading this?")
    await expect_text(frame.locator(".msg-mine[data-seq] .seen-label"), "Seen")

    # The agent answers; the visitor, panel open, reads it: "Seen by customer" in the console.
    await agent.locator("#reply-input").fill("Yes, I am here.")
    await agent.locator("#reply-input").press("Control+Enter")
    await expect_text(frame.locator(".msg-agent .bubble"), "Yes, I am here.")
    await expect_text(agent.locator(".msg-mine[data-seq] .seen-label"), "Seen by customer")
    await screenshot(agent, "console-seen.png")

    # An internal note after it moves nothing the visitor can see, and "Seen" stays where it is.
    await agent.locator("#mode-note").check()
    await agent.locator("#reply-input").fill("VIP customer")
    await agent.locator("#reply-input").press("Control+Enter")
    await agent.locator(".msg-note[data-seq]").wait_for()
    await widget_send(frame, "Great, thanks")
    await expect_count(frame.locator(".msg-mine[data-seq]"), 2)
    # The agent is still looking: the new message is seen too, and the label moves down to it.
    await expect_text(frame.locator(".msg-mine[data-seq]").last.locator(".seen-label"), "Seen")
    await expect_count(frame.locator(".seen-label"), 1)
    assert_no_js_errors(visitor, agent)


async def test_history_lists_earlier_conversations_and_starts_a_new_one(browser: Any, quiet: Live) -> None:
    visitor = await new_page(browser)
    frame = await open_widget(visitor, quiet.url("/demo"))
    await widget_send(frame, "First question about billing")
    await frame.locator(".msg-mine[data-seq]").wait_for()
    token = await agent_token(quiet)
    first = (await rest(quiet, "GET", "/tickets", token))["tickets"][0]
    await rest(quiet, "POST", f"/tickets/{first['id']}/messages", token, json={"body": "We sent the invoice."})
    await expect_text(frame.locator(".msg-agent .bubble"), "We sent the invoice.")

    # The list: the current conversation, with its last message and status.
    await frame.get_by_role("button", name="Your conversations").click()
    items = frame.locator(".history-item")
    await expect_count(items, 1)
    await expect_text(items.first.locator(".history-subject"), "First question about billing")
    await expect_text(items.first.locator(".history-preview"), "We sent the invoice.")
    await expect_text(items.first.locator(".history-status"), "Open")
    assert await items.first.get_attribute("aria-current") == "true"

    # The agent closes it (the widget asks for a rating); the visitor starts a new conversation:
    # an empty thread, and the next message opens a second ticket.
    await rest(quiet, "PATCH", f"/tickets/{first['id']}", token, json={"status": "closed"})
    await frame.get_by_role("button", name="Back to the conversation").click()
    await expect_text(frame.locator("#rating .rating-title"), "How did we do?")
    await frame.get_by_role("button", name="Your conversations").click()
    await expect_text(items.first.locator(".history-status"), "Closed")
    await frame.get_by_role("button", name="+ New conversation").click()
    await expect_count(frame.locator(".msg[data-seq]"), 0)
    await expect_count(frame.locator("#rating:not([hidden])"), 0)
    await widget_send(frame, "Second question about shipping")
    await expect_text(frame.locator(".msg-mine[data-seq] .bubble"), "Second question about shipping")
    tickets = (await rest(quiet, "GET", "/tickets", token))["tickets"]
    assert sorted(t["subject"] for t in tickets) == ["First question about billing", "Second question about shipping"]

    # Both listed, newest first; the earlier one opens with its messages.
    await frame.get_by_role("button", name="Your conversations").click()
    await expect_count(items, 2)
    await expect_text(items.nth(0).locator(".history-subject"), "Second question about shipping")
    await expect_text(items.nth(1).locator(".history-status"), "Closed")
    await screenshot(visitor, "widget-history.png")
    await items.nth(1).click()
    await expect_text(frame.locator(".msg-agent .bubble"), "We sent the invoice.")
    await expect_count(frame.locator(".msg-mine[data-seq]", has_text="Second question"), 0)
    # A closed conversation offers its rating.
    await expect_text(frame.locator("#rating .rating-title"), "How did we do?")
    assert_no_js_errors(visitor)


AXE = Path(__file__).resolve().parent.parent / "web" / "static" / "vendor" / "axe-core" / "axe.min.js"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


async def serious_axe_violations(page: Any) -> list[dict[str, Any]]:
    panel = panel_frame(page)
    await panel.add_script_tag(path=str(AXE))
    result = await panel.evaluate(
        """async () => {
          const r = await axe.run(document, {resultTypes: ['violations']});
          return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


async def test_the_rating_card_and_the_history_are_usable_on_a_phone_and_axe_clean(browser: Any, quiet: Live) -> None:
    # The CSP forbids injected scripts: bypassed for this test's browser only, to load axe-core.
    context = await browser.new_context(**PHONE, bypass_csp=True)
    visitor = await context.new_page()
    visitor.set_default_timeout(web_tests.UI_TIMEOUT_MS)
    frame = await open_widget(visitor, quiet.url("/demo"))
    await widget_send(frame, "Phone question")
    await frame.locator(".msg-mine[data-seq]").wait_for()
    token = await agent_token(quiet)
    ticket = (await rest(quiet, "GET", "/tickets", token))["tickets"][0]
    await rest(quiet, "PATCH", f"/tickets/{ticket['id']}", token, json={"status": "closed"})
    await frame.locator("#rating .rating-score").first.wait_for()
    for target in ("#rating .rating-score >> nth=0", "#rating .rating-later", "#history-button"):
        box = await frame.locator(target).bounding_box()
        assert box is not None and box["height"] >= 44, (target, box)
    assert await serious_axe_violations(visitor) == []

    await frame.get_by_role("button", name="Your conversations").click()
    await frame.locator(".history-item").first.wait_for()
    box = await frame.locator(".history-item").first.bounding_box()
    assert box is not None and box["height"] >= 44
    assert await serious_axe_violations(visitor) == []
    await context.close()
