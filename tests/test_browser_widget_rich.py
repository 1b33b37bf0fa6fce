"""The widget (and the console) as a visitor of a modern messenger expects it, in a real headless
Chromium against the real server and the fake Groq server: Markdown rendered safely, knowledge-base
sources under AI replies, failed replies marked with "Try again", a takeover that keeps the partial
reply, presence without noise, contrast on any site colour, the keyboard, phones, languages, and
axe-core (vendored) finding no serious or critical problem.

Shares the browser fixtures and helpers of tests/test_browser_web.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from chatserver.ai.fake_groq import DEFAULT_TEXT, FakeGroq, Script
from chatserver.ai.knowledge import read_kb_dir, store_articles
from chatserver.keys import DB_POOL
from chatserver.settings import Settings

from . import test_browser_web as web_tests
from .services import free_port
from .test_browser_web import (
    AGENT_NAME,
    UI_TIMEOUT_MS,
    Live,
    assert_no_js_errors,
    console_login,
    expect_count,
    expect_text,
    live_settings,
    new_page,
    open_console_ticket,
    open_widget,
    panel_frame,
    screenshot,
    start_live,
    widget_send,
)

# The same fixtures as the other browser tests (a Chromium, the fake Groq, the live server).
browser = web_tests.browser
fake_groq = web_tests.fake_groq
live = web_tests.live

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "web" / "static" / "vendor" / "axe-core" / "axe.min.js"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}

MARKDOWN_REPLY = (
    "**Good news:** refunds are easy.\n\n"
    "1. Open `Settings`\n"
    "2. Choose *Billing*\n\n"
    "Read [the refund policy](https://help.example.com/refunds) or mail support@example.com. "
    "Never [click this](javascript:window.__pwned=1) nor [this](data:text/html,hi). "
    '<img src=x onerror="window.__pwned=2"> Also see https://example.org/faq'
)


def _contrast(a: str, b: str) -> float:
    def lum(color: str) -> float:
        rgb = [int(x) for x in re.findall(r"[\d.]+", color)[:3]]

        def ch(v: int) -> float:
            c = v / 255
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

        return 0.2126 * ch(rgb[0]) + 0.7152 * ch(rgb[1]) + 0.0722 * ch(rgb[2])

    hi, lo = sorted([lum(a), lum(b)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


async def assert_markdown_rendered_safely(root: Any, bubble: Any) -> None:
    """`bubble` shows MARKDOWN_REPLY as formatted, linked, inert content."""
    await expect_text(bubble.locator("strong").first, "Good news:")
    await expect_text(bubble.locator("code"), "Settings")
    await expect_text(bubble.locator("em"), "Billing")
    await expect_count(bubble.locator("ol li"), 2)
    link = bubble.locator('a[href="https://help.example.com/refunds"]')
    await expect_text(link, "the refund policy")
    assert await link.get_attribute("target") == "_blank"
    assert await link.get_attribute("rel") == "noopener noreferrer"
    await expect_count(bubble.locator('a[href="mailto:support@example.com"]'), 1)
    await expect_count(bubble.locator('a[href="https://example.org/faq"]'), 1)
    # Only http(s) and mailto become links; the rest stays visible as text.
    hrefs = await bubble.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert all(re.match(r"^(https?:|mailto:)", h) for h in hrefs), hrefs
    text = await bubble.text_content()
    assert "[click this](javascript:window.__pwned=1)" in text
    assert "[this](data:text/html,hi)" in text
    # Raw HTML is text, never an element.
    assert '<img src=x onerror="window.__pwned=2">' in text
    assert await bubble.locator("img, script, [onerror], [style]").count() == 0


async def test_markdown_ai_reply_renders_safely_in_both_uis_with_its_sources(
    browser: Any, live: Live, fake_groq: FakeGroq
) -> None:
    await store_articles(live.app[DB_POOL], read_kb_dir(ROOT / "tests" / "kb"))
    fake_groq.push(Script(text=MARKDOWN_REPLY, tokens_per_second=40))
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    await widget_send(frame, "Can I get a refund for my yearly plan?")
    reply = frame.locator(".msg-ai[data-seq]").last
    await assert_markdown_rendered_safely(frame, reply.locator(".bubble"))
    # The knowledge-base article it was grounded in, linked to its page (front matter url).
    source = reply.locator(".sources a", has_text="Refunds and billing")
    assert await source.get_attribute("href") == "https://help.nimbusnotes.example/articles/refunds-and-billing"
    assert await source.get_attribute("rel") == "noopener noreferrer"
    await screenshot(visitor, "widget-markdown.png")

    agent = await new_page(browser)
    await console_login(agent, live)
    await open_console_ticket(agent, "Can I get a refund")
    await assert_markdown_rendered_safely(agent, agent.locator(".msg-ai[data-seq] .bubble").last)
    await agent.locator(".msg-ai[data-seq] .sources a", has_text="Refunds and billing").wait_for()

    # Agents write Markdown too, and the visitor sees it formatted.
    await agent.locator("#reply-input").fill("Done: see **[your invoice](https://shop.example.com/inv/7)**")
    await agent.locator("#reply-input").press("Control+Enter")
    await expect_text(frame.locator(".msg-agent .bubble a[href='https://shop.example.com/inv/7']"), "your invoice")
    for page in (visitor, agent):
        for target in (page, panel_frame(visitor)) if page is visitor else (page,):
            assert await target.evaluate("window.__pwned") is None
    assert_no_js_errors(visitor, agent)


async def test_raw_html_from_the_visitor_stays_inert_text_in_both_uis(
    browser: Any, aiohttp_server: Any, settings: Settings, fake_groq: FakeGroq
) -> None:
    live = await start_live(aiohttp_server, live_settings(settings, fake_groq, ai_default_enabled=False))
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    body = '<a href="javascript:window.__pwned=1">x</a> <iframe src="/"></iframe> <svg onload="window.__pwned=2">'
    await widget_send(frame, body)
    await expect_text(frame.locator(".msg-mine[data-seq] .bubble"), body)
    agent = await new_page(browser)
    await console_login(agent, live)
    await open_console_ticket(agent, "<a href")
    await expect_text(agent.locator(".msg-customer[data-seq] .bubble"), body)
    for scope in (frame.locator(".messages"), agent.locator(".messages")):
        assert await scope.locator("a, iframe, svg").count() == 0
    assert await panel_frame(visitor).evaluate("window.__pwned") is None
    assert await agent.evaluate("window.__pwned") is None
    assert_no_js_errors(visitor, agent)


async def test_the_frame_page_opened_directly_is_a_working_chat(browser: Any, live: Live) -> None:
    page = await new_page(browser)
    await page.goto(live.url("/widget/frame"))
    await page.locator("#input").fill("Hello from a direct link")
    await page.locator("#input").press("Enter")
    await expect_text(page.locator(".msg-ai[data-seq] .bubble").first, DEFAULT_TEXT)
    assert_no_js_errors(page)


async def test_a_reply_cut_off_mid_stream_is_marked_incomplete_and_try_again_answers(
    browser: Any, live: Live, fake_groq: FakeGroq
) -> None:
    fake_groq.push(Script(text="Here is the first part of the answer and then", x_groq_error_after=4))
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    await widget_send(frame, "Tell me about plans")
    cut = frame.locator(".msg-ai.msg-incomplete[data-seq]")
    await expect_text(cut.locator(".incomplete-label"), "Incomplete reply")
    retry = frame.get_by_role("button", name="Try again")
    await retry.wait_for()
    fake_groq.push(Script(text="The full answer, this time."))
    await retry.click()
    await expect_text(frame.locator(".msg-ai[data-seq] .bubble").last, "The full answer, this time.")
    await expect_count(frame.get_by_role("button", name="Try again"), 0)
    assert_no_js_errors(visitor)


async def test_a_reply_that_fails_before_any_text_offers_try_again(
    browser: Any, live: Live, fake_groq: FakeGroq
) -> None:
    fake_groq.push(Script(status=500))
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    await widget_send(frame, "Anyone there?")
    await frame.locator(".msg-event", has_text="couldn't finish its reply").wait_for()
    fake_groq.push(Script(text="Yes, here now."))
    await frame.get_by_role("button", name="Try again").click()
    await expect_text(frame.locator(".msg-ai[data-seq] .bubble").last, "Yes, here now.")
    assert_no_js_errors(visitor)


async def test_takeover_mid_stream_keeps_the_partial_text_with_a_note(
    browser: Any, live: Live, fake_groq: FakeGroq
) -> None:
    script = Script(text="Let me look into your order right away and", hold_after=4)
    fake_groq.push(script)
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    await widget_send(frame, "Where is my order?")
    await frame.locator(".msg-streaming .bubble", has_text="Let me").wait_for()
    partial = (await frame.locator(".msg-streaming .bubble").text_content()).rstrip("▍")

    agent = await new_page(browser)
    await console_login(agent, live)
    await open_console_ticket(agent, "Where is my order?")
    await agent.get_by_role("button", name="Take over from the AI").click()
    stopped = frame.locator(".msg-stopped")
    await expect_text(stopped.locator(".bubble"), partial)
    await expect_text(stopped.locator(".incomplete-label"), "A person is taking over this conversation.")
    await agent.locator(".msg-stopped .bubble", has_text="Let me").wait_for()
    script.release.set()
    await expect_count(frame.locator(".msg-streaming"), 0)
    assert_no_js_errors(visitor, agent)


async def test_an_agent_peeking_adds_no_line_to_the_widget_until_they_write(
    browser: Any, aiohttp_server: Any, settings: Settings, fake_groq: FakeGroq
) -> None:
    live = await start_live(aiohttp_server, live_settings(settings, fake_groq, ai_default_enabled=False))
    # The agent is online (the console open), so the team is not away and the widget says when
    # to expect a reply.
    agent = await new_page(browser)
    await console_login(agent, live)
    await agent.locator(".my-status .status-dot.status-online").wait_for()
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    await widget_send(frame, "Hello?")
    await frame.locator(".msg-mine[data-seq]").wait_for()
    await expect_text(frame.locator("#expected"), "We usually reply in a few minutes.")

    for _ in range(2):  # opening, leaving and opening again: no "joined" or "left" for the visitor
        await open_console_ticket(agent, "Hello?")
        await agent.go_back()  # back to the inbox: the ticket's socket closes
        await agent.locator(".ticket-placeholder").wait_for()
    await open_console_ticket(agent, "Hello?")
    # The agent's typing reaches the widget after any presence frame their opening caused.
    await agent.locator("#reply-input").press_sequentially("Hi")
    await expect_text(frame.locator("#typing"), f"{AGENT_NAME} is typing…")
    await expect_count(frame.locator(".msg-event"), 0)
    await screenshot(visitor, "widget-expected-reply.png")

    await agent.locator("#reply-input").fill("Hi, I'm here to help.")
    await agent.locator("#reply-input").press("Control+Enter")
    await expect_text(frame.locator(".msg-agent .bubble"), "Hi, I'm here to help.")
    await expect_count(frame.locator(".msg-event"), 1)
    await expect_text(frame.locator(".msg-event"), f"{AGENT_NAME} joined the conversation")
    # The header now says who is answering, with their initials; no expected-reply line.
    await expect_text(frame.locator("#who-name"), f"{AGENT_NAME} is answering")
    await expect_text(frame.locator("#who-avatar"), "AA")
    assert await frame.locator("#expected").is_hidden()
    assert_no_js_errors(visitor, agent)


HOST_PAGE = """<!DOCTYPE html><html lang="en"><head><title>A yellow site</title></head>
<body><h1>A yellow site</h1>
<script src="{server}/widget.js" async {attributes}></script></body></html>"""


async def host_page(aiohttp_server: Any, port: int, server: str, attributes: str) -> str:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=HOST_PAGE.format(server=server, attributes=attributes), content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    await aiohttp_server(app, port=port)
    return f"http://127.0.0.1:{port}/"


async def test_text_on_a_yellow_accent_is_dark_enough_and_german_is_picked(
    browser: Any, aiohttp_server: Any, settings: Settings, fake_groq: FakeGroq
) -> None:
    port = free_port()
    live = await start_live(
        aiohttp_server, live_settings(settings, fake_groq, allowed_origins=(f"http://127.0.0.1:{port}",))
    )
    url = await host_page(
        aiohttp_server,
        port,
        live.base,
        'data-color="#facc15" data-locale="de-DE" data-expected-reply="Antwort meist in 2 Minuten."',
    )
    agent = await new_page(browser)  # online: the team is not away, so the expected-reply line shows
    await console_login(agent, live)
    await agent.locator(".my-status .status-dot.status-online").wait_for()
    visitor = await new_page(browser)
    frame = await open_widget(visitor, url)
    await widget_send(frame, "Hallo")
    await frame.locator(".msg-mine[data-seq]").wait_for()
    await expect_text(frame.locator("#input-label"), "Nachricht")
    await expect_text(frame.locator("#expected"), "Antwort meist in 2 Minuten.")
    panel = panel_frame(visitor)
    pairs = await panel.evaluate(
        """() => {
          const css = (sel) => getComputedStyle(document.querySelector(sel));
          return [
            [css('.panel-head').color, css('.panel-head').backgroundColor],
            [css('.msg-mine .bubble').color, css('.msg-mine .bubble').backgroundColor],
            [css('.send').color, css('.send').backgroundColor],
          ];
        }"""
    )
    for text, background in pairs:
        assert _contrast(text, background) >= 4.5, (text, background)
    launcher = visitor.locator("#chatserver-widget .launcher")
    colors = await launcher.evaluate("b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]")
    assert _contrast(*colors) >= 4.5, colors
    await screenshot(visitor, "widget-yellow-de.png")
    assert_no_js_errors(visitor)


async def test_keyboard_escape_anywhere_closes_and_the_list_scrolls_by_keyboard(
    browser: Any, aiohttp_server: Any, settings: Settings, fake_groq: FakeGroq
) -> None:
    live = await start_live(aiohttp_server, live_settings(settings, fake_groq, ai_default_enabled=False))
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    for i in range(8):
        await widget_send(frame, f"Line {i}\n\nwith a second paragraph to take room")
    await expect_count(frame.locator(".msg-mine[data-seq]"), 8)
    messages = frame.locator("#messages")
    assert await messages.get_attribute("tabindex") == "0"
    assert await messages.evaluate("el => el.scrollHeight > el.clientHeight + 50"), "nothing to scroll"
    await messages.evaluate("el => { el.scrollTop = 0; }")
    await messages.focus()
    # Keyboard scrolling (animated in Chromium): End takes the focused list to its bottom.
    await messages.press("End")
    await panel_frame(visitor).wait_for_function(
        "() => { const el = document.getElementById('messages');"
        " return el.scrollTop + el.clientHeight >= el.scrollHeight - 2; }"
    )
    await messages.press("Escape")
    await visitor.locator("#chatserver-widget iframe").wait_for(state="hidden")
    assert await visitor.locator("#chatserver-widget .launcher").get_attribute("aria-expanded") == "false"
    assert_no_js_errors(visitor)


async def test_phone_width_touch_targets_input_size_and_axe_finds_no_serious_problem(
    browser: Any, live: Live, fake_groq: FakeGroq
) -> None:
    await store_articles(live.app[DB_POOL], read_kb_dir(ROOT / "tests" / "kb"))
    # The CSP forbids injected scripts: bypassed for this test's browser only, to load axe-core.
    context = await browser.new_context(**PHONE, bypass_csp=True)
    visitor = await context.new_page()
    visitor.set_default_timeout(UI_TIMEOUT_MS)
    frame = await open_widget(visitor, live.url("/demo"))
    fake_groq.push(Script(text=MARKDOWN_REPLY))
    await widget_send(frame, "Can I get a refund?")
    await frame.locator(".msg-ai[data-seq] .sources a").first.wait_for()
    fake_groq.push(Script(text="cut", x_groq_error_after=1))
    await widget_send(frame, "And for monthly plans?")
    await frame.get_by_role("button", name="Try again").wait_for()
    await screenshot(visitor, "widget-phone-retry.png")

    for selector in ("#close", "#send", "#human", ".retry-button"):
        box = await frame.locator(selector).bounding_box()
        assert box is not None and box["width"] >= 44 and box["height"] >= 44, (selector, box)
    font = await frame.locator("#input").evaluate("el => parseFloat(getComputedStyle(el).fontSize)")
    assert font >= 16

    panel = panel_frame(visitor)
    await panel.add_script_tag(path=str(AXE))
    result = await panel.evaluate(
        """async () => {
          const r = await axe.run(document, {resultTypes: ['violations']});
          return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}));
        }"""
    )
    serious = [v for v in result if v["impact"] in ("serious", "critical")]
    assert serious == [], serious
    await context.close()
