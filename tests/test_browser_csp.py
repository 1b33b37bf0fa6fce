"""/demo and /docs in a real Chromium under their Content-Security-Policy (tests/test_csp.py):
each still works, and the browser reports no violation."""

from __future__ import annotations

from typing import Any

import pytest

# The browser and live-server fixtures of the widget and console tests.
from .test_browser_web import Live, assert_no_js_errors, browser, fake_groq, live, new_page  # noqa: F401

pytestmark = pytest.mark.browser


def watch_csp_violations(page: Any) -> list[str]:
    """Chromium reports each blocked load or inline script on the console."""
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return violations


async def test_docs_page_renders_every_operation_under_its_policy(browser: Any, live: Live) -> None:  # noqa: F811
    page = await new_page(browser)
    violations = watch_csp_violations(page)
    await page.goto(live.url("/docs"))
    # Swagger UI ran (the inline init and the bundle) and drew the operations with its stylesheet.
    await page.locator(".opblock").first.wait_for()
    assert await page.locator(".opblock").count() > 20
    await page.locator(".opblock-summary").first.click()
    await page.locator(".opblock-body").first.wait_for()
    background = await page.locator(".opblock").first.evaluate("el => getComputedStyle(el).borderRadius")
    assert background != "0px", "swagger-ui.css applies"
    assert violations == []
    assert_no_js_errors(page)


async def test_demo_page_widget_works_under_its_policy(browser: Any, live: Live) -> None:  # noqa: F811
    page = await new_page(browser)
    violations = watch_csp_violations(page)
    await page.goto(live.url("/demo"))
    await page.locator("#chatserver-widget .launcher").click()
    await page.frame_locator("#chatserver-widget iframe").locator("#input").wait_for()
    assert violations == []
    assert_no_js_errors(page)
