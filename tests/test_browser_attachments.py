"""Attachments end to end in a real headless Chromium against a real server: a visitor pastes a
screenshot and uploads an image in the widget, the agent sees both in the console and sends a PDF
back (dropped on the conversation), the visitor downloads it; refused and failed uploads say why
and can be retried. Same Chromium and Playwright set-up as tests/test_browser_web.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from chatserver.settings import Settings

from . import test_browser_web as web_tests
from .attachment_files import pdf, png
from .test_browser_web import (
    Live,
    assert_no_js_errors,
    console_login,
    expect_count,
    expect_text,
    new_page,
    open_widget,
    panel_frame,
    rest,
    screenshot,
    start_live,
)

pytestmark = pytest.mark.browser

MAX_BYTES = 200_000

# A screenshot on the clipboard, pasted into the message box (what Ctrl+V does).
PASTE_IMAGE = """(bytes) => {
  const file = new File([new Uint8Array(bytes)], 'image.png', {type: 'image/png'});
  const data = new DataTransfer();
  data.items.add(file);
  document.getElementById('input').dispatchEvent(
    new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
}"""

# A file dragged from the desktop and dropped on the element.
DROP_FILE = """([selector, bytes, name, type]) => {
  const file = new File([new Uint8Array(bytes)], name, {type});
  const data = new DataTransfer();
  data.items.add(file);
  const target = document.querySelector(selector);
  target.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true, cancelable: true}));
  target.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
}"""

LOADED_IMAGES = """([selector, count]) =>
  Array.from(document.querySelectorAll(selector)).filter((i) => i.complete && i.naturalWidth > 0).length >= count"""


# The same Chromium as the other browser tests.
browser = web_tests.browser


@pytest.fixture
async def live(aiohttp_server: Any, settings: Settings) -> Live:
    """The real app on a real port (AI replies off: this is about files), one agent account."""
    return await start_live(aiohttp_server, settings.with_overrides(attachment_max_bytes=MAX_BYTES))


async def loaded_images(frame_or_page: Any, selector: str, count: int) -> None:
    """Wait until `count` images matching `selector` have actually been decoded."""
    await frame_or_page.wait_for_function(LOADED_IMAGES, arg=[selector, count], timeout=15_000)


async def test_a_visitor_sends_a_screenshot_and_an_image_and_the_agent_sends_a_pdf_back(
    browser: Any, live: Live, tmp_path: Path
) -> None:
    visitor = await new_page(browser, accept_downloads=True)
    frame = await open_widget(visitor, live.url("/demo"))
    panel = panel_frame(visitor)

    # A pasted screenshot uploads at once (it starts the conversation), then goes with the text.
    await panel.evaluate(PASTE_IMAGE, list(png(40, 30, (30, 120, 220))))
    await expect_text(frame.locator(".tray-item .tray-status"), "Ready to send")
    await expect_text(frame.locator(".tray-item .tray-name"), re.compile(r"^screenshot-.*\.png$"))
    await frame.locator("#input").fill("Here is the error I get")
    await frame.locator("#input").press("Enter")
    mine = frame.locator(".msg-mine[data-seq]")
    await expect_count(mine, 1)
    await expect_text(mine.first.locator(".bubble"), "Here is the error I get")
    await loaded_images(panel, ".msg-mine[data-seq] img.attachment-image", 1)
    await expect_count(frame.locator(".attachment-tray .tray-item"), 0)

    # An image chosen with the paper-clip, sent without text: no empty bubble, just the image.
    await frame.get_by_role("button", name="Attach a file").wait_for()
    await frame.locator(".attachment-picker").set_input_files(
        files=[{"name": "photo.png", "mimeType": "image/png", "buffer": png(64, 64, (20, 160, 60))}]
    )
    await expect_text(frame.locator(".tray-item .tray-status"), "Ready to send")
    await frame.locator("#send").click()
    await expect_count(mine, 2)
    await loaded_images(panel, ".msg-mine[data-seq] img.attachment-image", 2)
    assert await mine.nth(1).locator(".bubble").is_hidden()
    await screenshot(visitor, "widget-attachments.png")

    # The agent sees both images in the console; one opens full size.
    agent = await new_page(browser)
    await console_login(agent, live)
    await agent.locator(".ticket-row", has_text="screenshot-").first.click()
    await agent.locator("#reply-input").wait_for()
    await loaded_images(agent, ".msg-customer img.attachment-image", 2)
    await agent.get_by_role("button", name=re.compile(r"^Open image full size: photo\.png$")).click()
    lightbox = agent.get_by_role("dialog", name="photo.png")
    await lightbox.wait_for()
    await loaded_images(agent, ".attachment-lightbox img", 1)
    await agent.keyboard.press("Escape")
    await lightbox.wait_for(state="detached")

    # The agent drops a PDF on the conversation and sends it back with a line of text.
    invoice = pdf("Invoice 42")
    await agent.evaluate(DROP_FILE, [".ticket .messages", list(invoice), "invoice.pdf", "application/pdf"])
    await expect_text(agent.locator(".tray-item .tray-status"), "Ready to send")
    await agent.locator("#reply-input").fill("Here is your invoice")
    await agent.locator("#reply-input").press("Control+Enter")
    await agent.locator(".msg-mine[data-seq] .attachment-file", has_text="invoice.pdf").wait_for()
    await screenshot(agent, "console-attachments.png")

    # The visitor sees a named download link, and the download is the PDF.
    link = frame.locator(".msg-agent .attachment-file", has_text="invoice.pdf")
    await link.wait_for()
    async with visitor.expect_download() as download_info:
        await link.click()
    download = await download_info.value
    assert download.suggested_filename == "invoice.pdf"
    saved = tmp_path / "invoice.pdf"
    await download.save_as(saved)
    assert saved.read_bytes() == invoice
    assert_no_js_errors(visitor, agent)


async def test_refused_uploads_say_why_and_a_failed_one_can_be_retried(browser: Any, live: Live) -> None:
    visitor = await new_page(browser)
    frame = await open_widget(visitor, live.url("/demo"))
    await frame.locator("#input").fill("Hello")
    await frame.locator("#input").press("Enter")
    await frame.locator(".msg-mine[data-seq]").wait_for()

    picker = frame.locator(".attachment-picker")
    # Not an image, whatever its name says.
    await picker.set_input_files(files=[{"name": "cat.png", "mimeType": "image/png", "buffer": b"<html>hi</html>"}])
    failed = frame.locator(".tray-failed")
    await expect_text(failed.locator(".tray-status"), re.compile(r"^Not sent: This file is not an image"))
    await failed.get_by_role("button", name="Remove cat.png").click()
    await expect_count(failed, 0)
    # Too large.
    await picker.set_input_files(
        files=[{"name": "huge.pdf", "mimeType": "application/pdf", "buffer": pdf() + b"0" * MAX_BYTES}]
    )
    await expect_text(failed.locator(".tray-status"), "Not sent: Files may be at most 200000 bytes")
    await failed.get_by_role("button", name="Remove huge.pdf").click()
    # Not accepted at all.
    await picker.set_input_files(files=[{"name": "page.html", "mimeType": "text/html", "buffer": b"<html></html>"}])
    await expect_text(failed.locator(".tray-status"), "Not sent: This kind of file is not accepted")
    await failed.get_by_role("button", name="Remove page.html").click()

    # The connection fails during an upload: the tray says so, and Retry sends it again.
    attempts: list[str] = []

    async def flaky(route: Any) -> None:
        attempts.append(route.request.url)
        if len(attempts) == 1:
            await route.abort()
        else:
            await route.continue_()

    await visitor.route(re.compile(r".*/tickets/[^/]+/attachments$"), flaky)
    await picker.set_input_files(files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"order 1234\n"}])
    await expect_text(failed.locator(".tray-status"), "Not sent: the connection failed")
    await screenshot(visitor, "widget-attachment-refused.png")
    await failed.get_by_role("button", name="Retry").click()
    await expect_text(frame.locator(".tray-item .tray-status"), "Ready to send")
    await frame.locator("#send").click()
    await frame.locator(".msg-mine[data-seq] .attachment-file", has_text="notes.txt").wait_for()
    assert len(attempts) == 2
    assert_no_js_errors(visitor)


async def test_another_visitor_cannot_fetch_an_attachment(browser: Any, live: Live) -> None:
    owner = await new_page(browser)
    frame = await open_widget(owner, live.url("/demo"))
    await panel_frame(owner).evaluate(PASTE_IMAGE, list(png()))
    await expect_text(frame.locator(".tray-item .tray-status"), "Ready to send")
    await frame.locator("#send").click()
    await loaded_images(panel_frame(owner), ".msg-mine[data-seq] img.attachment-image", 1)
    ticket = (await rest(live, "GET", "/tickets", await _owner_token(owner)))["tickets"][0]
    message = (await rest(live, "GET", f"/tickets/{ticket['id']}/messages", await _owner_token(owner)))["messages"][0]
    url = message["attachments"][0]["url"]

    stranger = await new_page(browser)
    other = await open_widget(stranger, live.url("/demo"))
    await other.locator("#input").fill("I am someone else")
    await other.locator("#input").press("Enter")
    await other.locator(".msg-mine[data-seq]").wait_for()
    status = await panel_frame(stranger).evaluate(
        """async (url) => {
          const stored = JSON.parse(localStorage.getItem('chatserver.widget.v1:anonymous'));
          const response = await fetch(url, {headers: {Authorization: `Bearer ${stored.token}`}});
          return response.status;
        }""",
        url,
    )
    assert status == 404
    assert_no_js_errors(owner, stranger)


async def _owner_token(page: Any) -> str:
    stored = await panel_frame(page).evaluate("JSON.parse(localStorage.getItem('chatserver.widget.v1:anonymous'))")
    return str(stored["token"])
