"""Both front ends end to end in a real headless Chromium, against a real server (and the fake
Groq server for AI replies): the widget on the demo site and on another site, the agent console.

Chromium comes from the distribution (`apt-get install chromium`) and is driven by Playwright; the
tests skip without it, except when CHATSERVER_REQUIRE_BROWSER=1 (CI), where that is a failure.
With CHATSERVER_SCREENSHOT_DIR set, they also save the screenshots used in docs/web.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from chatserver.ai.fake_groq import DEFAULT_TEXT, FakeGroq, Script
from chatserver.app import create_app
from chatserver.keys import DB_POOL
from chatserver.services.auth import create_user
from chatserver.settings import Settings

from .conftest import PASSWORD
from .fake_groq import FAKE_KEY, ai_settings
from .services import free_port

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHATSERVER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IDENTITY_SECRET = "browser-test-identity-secret"
AGENT_EMAIL = "alex@example.com"
AGENT_NAME = "Alex Agent"
# Generous: these wait for real events, and CI machines are slow. No test asserts a duration.
UI_TIMEOUT_MS = 15_000
SHOTS = os.environ.get("CHATSERVER_SCREENSHOT_DIR")


def _require_browser() -> None:
    problem = None
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        problem = "playwright is not installed (pip install -r requirements-dev.txt)"
    if problem is None and not os.path.exists(CHROMIUM):
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if problem is not None:
        if os.environ.get("CHATSERVER_REQUIRE_BROWSER"):
            pytest.fail(f"{problem}, and CHATSERVER_REQUIRE_BROWSER is set")
        pytest.skip(problem)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    _require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def fake_groq() -> AsyncIterator[FakeGroq]:
    fake = FakeGroq(api_key=FAKE_KEY)
    await fake.start()
    yield fake
    await fake.close()


@dataclass
class Live:
    server: TestServer
    app: web.Application

    @property
    def base(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    def url(self, path: str) -> str:
        return self.base + path


def live_settings(settings: Settings, fake: FakeGroq, **overrides: Any) -> Settings:
    return ai_settings(settings, fake, widget_identity_secret=IDENTITY_SECRET, **overrides)


async def start_live(aiohttp_server: Any, settings: Settings, port: int | None = None) -> Live:
    app = create_app(settings, bcrypt_rounds=4)
    server = await aiohttp_server(app, port=port)
    await app[DB_POOL].execute("TRUNCATE users, tickets, messages CASCADE")
    await create_user(
        app[DB_POOL], email=AGENT_EMAIL, password=PASSWORD, role="agent", name=AGENT_NAME, bcrypt_rounds=4
    )
    return Live(server, app)


@pytest.fixture
async def live(aiohttp_server: Any, settings: Settings, fake_groq: FakeGroq) -> Live:
    """The real app on a real port, AI replies from the fake Groq server, one agent account."""
    return await start_live(aiohttp_server, live_settings(settings, fake_groq))


# ---- helpers --------------------------------------------------------------------------------


async def new_page(browser: Any, **context_options: Any) -> Any:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, **context_options)
    page = await context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # checked by assert_no_js_errors
    return page


def assert_no_js_errors(*pages: Any) -> None:
    for page in pages:
        assert page.js_errors == [], page.js_errors


def widget_frame(page: Any) -> Any:
    """The chat panel's frame (Playwright's CSS pierces the loader's shadow root)."""
    return page.frame_locator("#chatserver-widget iframe")


def panel_frame(page: Any) -> Any:
    """The panel as a Frame, for evaluating script inside it."""
    for frame in page.frames:
        if frame.url.split("?")[0].endswith("/widget/frame"):
            return frame
    raise AssertionError(f"no widget frame among {[f.url for f in page.frames]}")


async def open_widget(page: Any, url: str) -> Any:
    await page.goto(url)
    await page.locator("#chatserver-widget .launcher").click()
    frame = widget_frame(page)
    await frame.locator("#input").wait_for()
    return frame


async def widget_send(frame: Any, text: str) -> None:
    await frame.locator("#input").fill(text)
    await frame.locator("#input").press("Enter")


async def console_login(page: Any, live: Live, email: str = AGENT_EMAIL) -> None:
    await page.goto(live.url("/console/login"))
    await page.locator("#email").fill(email)
    await page.locator("#password").fill(PASSWORD)
    await page.locator("button[type=submit]").click()


async def open_console_ticket(page: Any, subject: str) -> None:
    await page.locator(".ticket-row", has_text=subject).first.click()
    await page.locator("#reply-input").wait_for()
    # Joined, not just drawn: typing or frames sent before the room's socket is online are dropped.
    await page.locator(".conn[data-state=online]").wait_for(state="attached")


async def expect_text(locator: Any, text: str | re.Pattern[str]) -> None:
    from playwright.async_api import expect

    await expect(locator).to_have_text(text, timeout=UI_TIMEOUT_MS)


async def expect_value(locator: Any, value: str | re.Pattern[str]) -> None:
    """A form field's value, waited for: forms are often filled after a fetch."""
    from playwright.async_api import expect

    await expect(locator).to_have_value(value, timeout=UI_TIMEOUT_MS)


async def expect_count(locator: Any, count: int) -> None:
    from playwright.async_api import expect

    await expect(locator).to_have_count(count, timeout=UI_TIMEOUT_MS)


async def screenshot(page: Any, name: str) -> None:
    if SHOTS:  # Playwright creates the folder
        await page.screenshot(path=str(Path(SHOTS) / name))


async def rest(live: Live, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.request(method, live.url(path), headers=headers, **kwargs) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json()


async def agent_token(live: Live) -> str:
    body = await rest(live, "POST", "/auth/login", json={"email": AGENT_EMAIL, "password": PASSWORD})
    return str(body["access_token"])


async def only_ticket(live: Live) -> dict[str, Any]:
    tickets = (await rest(live, "GET", "/tickets?status=open", await agent_token(live)))["tickets"]
    assert len(tickets) == 1, tickets
    return dict(tickets[0])


async def stored_public_bodies(live: Live, ticket_id: str) -> list[str]:
    page = await rest(live, "GET", f"/tickets/{ticket_id}/messages?limit=200", await agent_token(live))
    return [m["body"] for m in page["messages"] if m["visibility"] == "public"]


# Records every text a streaming AI bubble shows, to prove it grew token by token.
RECORD_STREAM = """() => {
  window.__streamTexts = [];
  new MutationObserver(() => {
    for (const bubble of document.querySelectorAll('.msg-streaming .bubble')) {
      const log = window.__streamTexts;
      if (log[log.length - 1] !== bubble.textContent) log.push(bubble.textContent);
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def assert_grew_token_by_token(texts: list[str], final: str) -> None:
    partial = [t for t in texts if t]
    assert len(partial) >= 3, f"the reply did not stream in pieces: {texts}"
    for shorter, longer in itertools.pairwise(partial):
        assert longer.startswith(shorter), (shorter, longer)
    assert final.startswith(partial[-1]) and len(partial[0]) < len(final)


# ---- the scenarios ----------------------------------------------------------------------------


async def test_ai_reply_streams_into_the_widget_and_the_agents_console_at_once(
    browser: Any, live: Live, fake_groq: FakeGroq
) -> None:
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    await widget_send(frame, "Hi there")
    await expect_text(frame.locator(".msg-ai[data-seq] .bubble").first, DEFAULT_TEXT)

    agent = await new_page(browser)
    await console_login(agent, live)
    await open_console_ticket(agent, "Hi there")
    await expect_text(agent.locator(".msg-customer .bubble"), "Hi there")

    answer = (
        "Of course! To reset your password, open Settings, choose Security and press Reset password. "
        "We will email you a link that works for one hour."
    )
    fake_groq.push(Script(text=answer, tokens_per_second=10, ttft_ms=300))
    await panel_frame(visitor).evaluate(RECORD_STREAM)
    await agent.evaluate(RECORD_STREAM)
    await widget_send(frame, "How do I reset my password?")

    # While the reply is still being generated, both show it in progress.
    await frame.locator(".msg-streaming .bubble", has_text=re.compile(r"\w")).wait_for()
    await agent.locator(".msg-streaming .bubble", has_text=re.compile(r"\w")).wait_for()
    await screenshot(agent, "console-ai-streaming.png")
    # Then the stored reply replaces the stream in both.
    await expect_text(frame.locator(".msg-ai[data-seq] .bubble").last, answer)
    await expect_text(agent.locator(".msg-ai[data-seq] .bubble").last, answer)
    await expect_count(frame.locator(".msg-streaming"), 0)
    await expect_count(agent.locator(".msg-streaming"), 0)
    assert_grew_token_by_token(await panel_frame(visitor).evaluate("window.__streamTexts"), answer)
    assert_grew_token_by_token(await agent.evaluate("window.__streamTexts"), answer)
    await screenshot(visitor, "widget-demo.png")
    await screenshot(agent, "console-ticket.png")
    assert_no_js_errors(visitor, agent)


async def test_agent_takes_over_and_the_widget_shows_the_reply(browser: Any, live: Live) -> None:
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    await widget_send(frame, "My tent pole snapped")
    await expect_text(frame.locator(".msg-ai[data-seq] .bubble").first, DEFAULT_TEXT)

    agent = await new_page(browser)
    await console_login(agent, live)
    await open_console_ticket(agent, "My tent pole snapped")

    await agent.get_by_role("button", name="Take over from the AI").click()
    await expect_text(agent.locator(".ticket-head .badge.ai"), "Human")
    await frame.locator("#human").wait_for(state="hidden")
    # The visitor sees the agent arrive when the agent takes over (not when they open the ticket).
    await frame.locator(".msg-event", has_text=f"{AGENT_NAME} joined the conversation").wait_for()

    # Typing shows in the widget.
    await agent.locator("#reply-input").press_sequentially("Sorry to hear")
    await expect_text(frame.locator("#typing"), f"{AGENT_NAME} is typing…")

    # The visitor closes the panel; the reply lights up the launcher's unread badge.
    await frame.get_by_role("button", name="Close chat").click()
    await agent.locator("#reply-input").fill("Sorry to hear that! A replacement pole is on its way.")
    await agent.locator("#reply-input").press("Control+Enter")
    badge = visitor.locator("#chatserver-widget .badge")
    await expect_text(badge, "1")
    await screenshot(visitor, "widget-unread-badge.png")
    await visitor.locator("#chatserver-widget .launcher").click()
    await expect_text(frame.locator(".msg-agent .bubble"), "Sorry to hear that! A replacement pole is on its way.")
    await expect_text(frame.locator(".msg-agent .author"), AGENT_NAME)
    await badge.wait_for(state="hidden")
    assert_no_js_errors(visitor, agent)


async def test_the_conversation_survives_a_page_reload(browser: Any, live: Live) -> None:
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    await widget_send(frame, "Do you ship to Norway?")
    await expect_text(frame.locator(".msg-ai[data-seq] .bubble").first, DEFAULT_TEXT)
    before = await frame.locator(".msg[data-seq] .bubble").all_text_contents()

    await visitor.reload()
    await visitor.locator("#chatserver-widget .launcher").click()
    frame = widget_frame(visitor)
    await expect_count(frame.locator(".msg[data-seq]"), len(before))
    assert await frame.locator(".msg[data-seq] .bubble").all_text_contents() == before
    # ... and it goes on in the same ticket.
    await widget_send(frame, "And to Iceland?")
    await expect_count(frame.locator(".msg-ai[data-seq]"), 2)
    ticket = await only_ticket(live)
    assert await stored_public_bodies(live, ticket["id"]) == [
        "Do you ship to Norway?",
        DEFAULT_TEXT,
        "And to Iceland?",
        DEFAULT_TEXT,
    ]
    assert_no_js_errors(visitor)


class CuttableProxy:
    """A TCP proxy in front of the server whose "network" the test can cut and restore: a cut
    resets every connection through it and refuses new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.down = False
        self.transports: set[asyncio.WriteTransport] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def cut(self) -> None:
        self.down = True
        for transport in list(self.transports):
            transport.abort()
        self.transports.clear()

    def restore(self) -> None:
        self.down = False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer.transport, up_writer.transport}
        self.transports |= pair
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.transports -= pair
            for transport in pair:
                transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.write_eof()


async def test_network_cut_and_restore_resumes_without_lost_or_doubled_messages(
    browser: Any, aiohttp_server: Any, settings: Settings, fake_groq: FakeGroq
) -> None:
    live = await start_live(aiohttp_server, live_settings(settings, fake_groq, ai_default_enabled=False))
    proxy = CuttableProxy(live.server.port)
    await proxy.start()
    try:
        visitor = await new_page(browser)
        frame = await open_widget(visitor, f"http://127.0.0.1:{proxy.port}/demo")
        await widget_send(frame, "Hello, anyone there?")
        await expect_count(frame.locator(".msg[data-seq]"), 1)
        ticket = await only_ticket(live)
        token = await agent_token(live)

        proxy.cut()
        await visitor.context.set_offline(True)
        await frame.locator("#offline").wait_for()
        # While the visitor is away: two agent messages, and one the visitor writes offline.
        for text in ("Hi! I'm here.", "What can I do for you?"):
            await rest(live, "POST", f"/tickets/{ticket['id']}/messages", token, json={"body": text})
        await widget_send(frame, "My order #1234 has not arrived")
        await expect_text(frame.locator(".msg-pending .bubble"), "My order #1234 has not arrived")
        await screenshot(visitor, "widget-offline.png")

        proxy.restore()
        await visitor.context.set_offline(False)
        await frame.locator("#offline").wait_for(state="hidden")
        await expect_count(frame.locator(".msg-pending"), 0)
        expected = ["Hello, anyone there?", "Hi! I'm here.", "What can I do for you?", "My order #1234 has not arrived"]
        await expect_count(frame.locator(".msg[data-seq]"), len(expected))
        assert await frame.locator(".msg[data-seq] .bubble").all_text_contents() == expected
        seqs = [
            int(s) for s in await frame.locator(".msg[data-seq]").evaluate_all("els => els.map(e => e.dataset.seq)")
        ]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert await stored_public_bodies(live, ticket["id"]) == expected
        assert_no_js_errors(visitor)
    finally:
        await proxy.close()


MARKUP = ['<img src=x onerror="window.__pwned = 1">', "<script>window.__pwned = 2</script><b>bold?</b>"]


async def test_markup_in_messages_is_shown_as_inert_text_in_both_uis(
    browser: Any, aiohttp_server: Any, settings: Settings, fake_groq: FakeGroq
) -> None:
    live = await start_live(aiohttp_server, live_settings(settings, fake_groq, ai_default_enabled=False))
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    for text in MARKUP:
        await widget_send(frame, text)
    agent = await new_page(browser)
    await console_login(agent, live)
    await agent.locator(".ticket-row").first.wait_for()
    await open_console_ticket(agent, "<img")
    await agent.locator("#reply-input").fill('<img src=y onerror="window.__pwned = 3">')
    await agent.locator("#reply-input").press("Control+Enter")

    await expect_count(frame.locator(".msg[data-seq]"), 3)
    widget_texts = await frame.locator(".msg[data-seq] .bubble").all_text_contents()
    console_texts = await agent.locator(".msg[data-seq] .bubble").all_text_contents()
    expected = [*MARKUP, '<img src=y onerror="window.__pwned = 3">']
    assert widget_texts[:2] == MARKUP and widget_texts[2] == expected[2]
    assert [t for t in console_texts if t in expected] == expected
    # No element was made from any of it, and no script ran.
    assert await frame.locator(".messages img, .messages script, .messages b").count() == 0
    assert await agent.locator(".messages img, .messages script, .messages b, .ticket-list img").count() == 0
    assert await panel_frame(visitor).evaluate("window.__pwned") is None
    assert await agent.evaluate("window.__pwned") is None
    assert await visitor.evaluate("window.__pwned") is None
    subject = await agent.locator(".ticket-row .subject").first.text_content()
    assert subject is not None and subject.startswith("<img")
    assert_no_js_errors(visitor, agent)


async def test_console_login_csrf_and_a_customer_cannot_open_the_console(browser: Any, live: Live) -> None:
    await create_user(
        live.app[DB_POOL], email="cara@example.com", password=PASSWORD, role="customer", name="Cara", bcrypt_rounds=4
    )
    page = await new_page(browser)
    # A customer's password is right, but the console is not for customers.
    await console_login(page, live, "cara@example.com")
    await page.get_by_role("alert").filter(has_text="for support agents").wait_for()
    await page.goto(live.url("/console"))
    assert page.url.endswith("/console/login")

    # A form whose CSRF token does not match the session is refused.
    await page.locator("#email").fill(AGENT_EMAIL)
    await page.locator("#password").fill(PASSWORD)
    await page.locator("input[name=csrf_token]").evaluate("el => el.value = 'forged'")
    response_status: list[int] = []
    page.on("response", lambda r: response_status.append(r.status) if r.url.endswith("/console/login") else None)
    await page.locator("button[type=submit]").click()
    await page.wait_for_load_state()
    assert 403 in response_status
    await page.get_by_role("alert").filter(has_text="This form has expired").wait_for()

    # The real form logs the agent in; logging out ends the session.
    await console_login(page, live)
    await page.locator("#inbox-title").wait_for()
    await page.get_by_role("button", name="Log out").click()
    await page.locator("#email").wait_for()
    await page.goto(live.url("/console"))
    assert page.url.endswith("/console/login")
    assert_no_js_errors(page)


def sign(external_id: str) -> str:
    return hmac.new(IDENTITY_SECRET.encode(), external_id.encode(), hashlib.sha256).hexdigest()


HOST_PAGE = """<!DOCTYPE html><html><head><title>Another site</title>
<style>* {{ font-family: serif !important; }} iframe {{ border: 9px solid red !important; }}</style>
</head><body><h1>Another site</h1>
<script>window.ChatserverWidget = {settings};</script>
<script src="{server}/widget.js" async></script></body></html>"""


async def host_site(aiohttp_server: Any, port: int, server: str, widget_settings: str) -> str:
    """A page on another origin (another port) that embeds the widget with a settings object."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=HOST_PAGE.format(server=server, settings=widget_settings), content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    await aiohttp_server(app, port=port)
    return f"http://127.0.0.1:{port}/"


def identity_settings(external_id: str, signature: str, **extra: str) -> str:
    user = {"id": external_id, "name": "Robin", "signature": signature}
    return json.dumps({**extra, "user": user})


async def test_widget_on_an_allowed_site_continues_an_identified_users_ticket(
    browser: Any, aiohttp_server: Any, settings: Settings, fake_groq: FakeGroq
) -> None:
    port = free_port()
    live = await start_live(
        aiohttp_server, live_settings(settings, fake_groq, allowed_origins=(f"http://127.0.0.1:{port}",))
    )
    widget = identity_settings("acme-77", sign("acme-77"), title="Acme help", color="#b91c1c")
    url = await host_site(aiohttp_server, port, live.base, widget)

    laptop = await new_page(browser)
    frame = await open_widget(laptop, url)
    await expect_text(frame.locator("#panel-title"), "Acme help")
    await widget_send(frame, "Where is order 5512?")
    await expect_text(frame.locator(".msg-ai[data-seq] .bubble").first, DEFAULT_TEXT)
    await screenshot(laptop, "widget-other-site.png")

    # The same user on another device (a fresh browser profile) continues the same ticket.
    phone = await new_page(browser)
    frame = await open_widget(phone, url)
    await expect_text(frame.locator(".msg-mine .bubble").first, "Where is order 5512?")
    ticket = await only_ticket(live)
    row = await rest(live, "GET", f"/console/api/inbox/{ticket['id']}", await agent_token(live))
    assert row["customer"]["external_id"] == "acme-77" and row["customer"]["name"] == "Robin"
    assert_no_js_errors(laptop, phone)


async def test_a_badly_signed_identity_is_refused_by_the_widget(
    browser: Any, aiohttp_server: Any, settings: Settings, fake_groq: FakeGroq
) -> None:
    port = free_port()
    live = await start_live(
        aiohttp_server, live_settings(settings, fake_groq, allowed_origins=(f"http://127.0.0.1:{port}",))
    )
    url = await host_site(aiohttp_server, port, live.base, identity_settings("acme-77", sign("someone-else")))
    page = await new_page(browser)
    frame = await open_widget(page, url)
    await expect_text(frame.locator("#problem"), re.compile("couldn't verify your account"))
    assert await frame.locator("#input").is_disabled()
    assert (await rest(live, "GET", "/tickets", await agent_token(live)))["tickets"] == []


async def test_a_site_not_in_allowed_origins_cannot_frame_the_panel(
    browser: Any, live: Live, aiohttp_server: Any
) -> None:
    url = await host_site(aiohttp_server, free_port(), live.base, "{}")
    page = await new_page(browser)
    refused = asyncio.get_running_loop().create_future()

    def on_console(message: Any) -> None:
        if "frame-ancestors" in message.text and not refused.done():
            refused.set_result(message.text)

    page.on("console", on_console)
    await page.goto(url)
    await page.locator("#chatserver-widget .launcher").click()
    assert "frame-ancestors" in await asyncio.wait_for(refused, UI_TIMEOUT_MS / 1000)


async def test_console_inbox_is_live_and_the_agent_tools_work(browser: Any, live: Live, fake_groq: FakeGroq) -> None:
    agent = await new_page(browser)
    await console_login(agent, live)
    await agent.locator("#inbox-empty").wait_for()

    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    await widget_send(frame, "I need help with a refund")
    # The new conversation appears in the open inbox by itself.
    row = agent.locator(".ticket-row", has_text="I need help with a refund")
    await row.wait_for()
    await expect_text(frame.locator(".msg-ai[data-seq] .bubble").first, DEFAULT_TEXT)

    # Asking for a human highlights the conversation for agents.
    await frame.get_by_role("button", name="Talk to a human").click()
    await frame.locator("#handoff-note").wait_for()
    await agent.locator(".ticket-row.waiting", has_text="I need help with a refund").wait_for()
    await expect_text(row.locator(".badge.ai"), "Waiting for human")
    await screenshot(agent, "console-inbox.png")

    await row.click()
    await agent.locator("#reply-input").wait_for()
    # An internal note: agents see it, the customer never does.
    await agent.get_by_label("Internal note").check()
    await agent.locator("#reply-input").fill("Refund over 100 EUR: needs a lead's approval")
    await agent.locator("#reply-input").press("Control+Enter")
    await expect_text(agent.locator(".msg-note .bubble"), "Refund over 100 EUR: needs a lead's approval")

    # The copilot suggests a reply; the agent edits it and sends it.
    suggestion = "Happy to help with your refund. Could you share your order number?"
    fake_groq.push(Script(text=suggestion))
    await agent.get_by_role("button", name="Suggest reply").click()
    await expect_text(agent.locator(".copilot-text"), suggestion)
    await agent.get_by_role("button", name="Use suggestion").click()
    assert await agent.locator("#reply-input").input_value() == suggestion
    await agent.locator("#reply-input").press("End")
    await agent.locator("#reply-input").press_sequentially(" Thanks!")
    await agent.get_by_label("Reply", exact=True).check()
    await agent.locator("#reply-input").press("Control+Enter")
    await expect_text(frame.locator(".msg-agent .bubble"), suggestion + " Thanks!")

    # Priority and assignee changes reach the room and the inbox.
    await agent.get_by_label("Priority", exact=True).select_option("urgent")
    await expect_text(row.locator(".badge.priority-urgent"), "Urgent")
    await agent.get_by_label("Assignee", exact=True).select_option(label=f"{AGENT_NAME} (me)")
    await expect_text(row.locator(".badge.assignee"), f"→ {AGENT_NAME}")
    await screenshot(agent, "console-ticket-tools.png")
    # The agent's reply took over from the AI; handing back turns it on again.
    await agent.get_by_role("button", name="Hand back to the AI").click()
    await agent.get_by_role("button", name="Take over from the AI").wait_for()
    await agent.locator(".msg-event", has_text="The AI is replying again.").wait_for()

    widget_texts = await frame.locator(".msg[data-seq] .bubble").all_text_contents()
    assert "Refund over 100 EUR: needs a lead's approval" not in widget_texts
    assert_no_js_errors(visitor, agent)


async def test_both_uis_work_at_phone_width(browser: Any, live: Live) -> None:
    phone = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
    visitor_context = await browser.new_context(**phone)
    visitor = await visitor_context.new_page()
    frame = await open_widget(visitor, live.url("/demo"))
    await widget_send(frame, "Is the Ridgeline tent waterproof?")
    await expect_text(frame.locator(".msg-ai[data-seq] .bubble").first, DEFAULT_TEXT)
    box = await visitor.locator("#chatserver-widget iframe").bounding_box()
    assert box is not None and box["width"] == 390  # the panel takes the whole small screen
    await screenshot(visitor, "widget-phone.png")

    agent_context = await browser.new_context(**phone)
    agent = await agent_context.new_page()
    await console_login(agent, live)
    await agent.locator(".ticket-row").first.click()
    # One pane at a time: the conversation replaces the list, and Back returns to it.
    await agent.locator("#reply-input").wait_for()
    assert not await agent.locator("#ticket-list").is_visible()
    await screenshot(agent, "console-phone.png")
    await agent.get_by_role("button", name="Back to inbox").click()
    await agent.locator("#ticket-list").wait_for()
    assert not await agent.locator("#reply-input").is_visible()
