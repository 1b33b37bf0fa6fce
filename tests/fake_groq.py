"""AI test fixtures: the fake Groq server on loopback (one per test, scriptable), settings that
point the real groq SDK at it, a log of every event the app's hub sees, and SSE helpers.

Test modules import the fixtures they use (named with a leading underscore, so that a test's
`fake_groq` argument does not shadow an import):
    from .fake_groq import _events_log, _fake_groq  # noqa: F401  (pytest fixtures)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from chatserver.ai.fake_groq import FakeGroq
from chatserver.jsonutil import dumps_bytes
from chatserver.keys import DB_POOL, HUB
from chatserver.realtime.events import Event
from chatserver.settings import Settings

FAKE_KEY = "gsk_test_fake_key"


def ai_settings(settings: Settings, fake: FakeGroq | None, **overrides: Any) -> Settings:
    """AI on, pointed at `fake` (None: no key, the offline responder). Quick failures: no SDK
    retries unless a test asks, short timeouts and heartbeats."""
    base: dict[str, Any] = {
        "ai_default_enabled": True,
        "groq_api_key": FAKE_KEY if fake is not None else None,
        "groq_base_url": fake.base_url if fake is not None else None,
        "groq_max_retries": 0,
        "groq_timeout": 5.0,
        "ai_claim_heartbeat_seconds": 0.1,
        "ai_claim_lease_seconds": 5.0,
        "ai_delta_window_ms": 20,
    }
    base.update(overrides)
    return settings.with_overrides(**base)


@pytest.fixture(name="fake_groq")
async def _fake_groq() -> AsyncIterator[FakeGroq]:
    fake = FakeGroq(api_key=FAKE_KEY)
    await fake.start()
    yield fake
    await fake.close()


class EventLog:
    """Every event one app instance's hub delivers (its own and other instances'), in order.
    Frames are kept as clients receive them (JSON), so ids are strings."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def observe(self, event: Event) -> None:
        self.events.append(Event(event.channel, orjson.loads(dumps_bytes(event.frame)), event.staff_only, event.seq))
        self._changed.set()

    def frames(self, *types: str) -> list[dict[str, Any]]:
        return [e.frame for e in self.events if not types or e.frame.get("type") in types]

    def reply_frames(self, reply_id: str) -> list[dict[str, Any]]:
        return [e.frame for e in self.events if e.frame.get("reply_id") == reply_id]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_type(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        await self.wait_for(lambda: len(self.frames(kind)) >= count, timeout)
        return self.frames(kind)

    def text_of(self, reply_id: str) -> str:
        """Re-assemble a reply from its deltas by offset (idempotently)."""
        text = ""
        for frame in self.reply_frames(reply_id):
            if frame["type"] == "ai.delta" and frame["offset"] + len(frame["text"]) > len(text):
                assert frame["offset"] <= len(text), "a delta skipped text"
                text = text[: frame["offset"]] + frame["text"]
        return text


def attach_log(app: web.Application) -> EventLog:
    log = EventLog()
    app[HUB].add_observer(log.observe)
    return log


@pytest.fixture(name="events_log")
async def _events_log(client: TestClient) -> AsyncIterator[EventLog]:
    yield attach_log(client.app)


async def clear_kb(client: TestClient) -> None:
    await client.app[DB_POOL].execute("DELETE FROM kb_articles")


async def read_sse(resp: ClientResponse) -> list[tuple[str, dict[str, Any]]]:
    """Read a whole SSE response, checking its framing: each event is `event:` and `data:` lines
    and a blank line; comments (":") are allowed; data is one line of JSON."""
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    raw = (await resp.read()).decode()
    assert raw.endswith("\n\n"), "the stream must end with a complete event"
    out: list[tuple[str, dict[str, Any]]] = []
    for block in raw[:-2].split("\n\n"):
        lines = block.split("\n")
        if all(line.startswith(":") for line in lines):
            continue
        assert len(lines) == 2, f"unexpected event block {block!r}"
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        out.append((lines[0][len("event: ") :], orjson.loads(lines[1][len("data: ") :])))
    return out


async def iter_sse(resp: ClientResponse) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The events of an SSE response as they arrive."""
    event: str | None = None
    while True:
        line = (await resp.content.readline()).decode()
        if not line:
            return
        line = line.rstrip("\n")
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            assert event is not None
            yield event, orjson.loads(line[len("data: ") :])
            event = None


def sse_text(events: list[tuple[str, dict[str, Any]]]) -> str:
    """The reply text an SSE client re-assembles from its deltas (by offset)."""
    text = ""
    for name, data in events:
        if name == "delta":
            assert data["offset"] <= len(text), "a delta skipped text"
            text = text[: data["offset"]] + data["text"]
    return text
