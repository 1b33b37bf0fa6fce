"""AI replies in WebSocket rooms: every participant re-assembles identical text, a late joiner
gets the text so far in its join snapshot and then the rest, a takeover over the socket stops the
reply with no AI text after it, and ai.retry / copilot.request frames reach the AI layer."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chatserver.ai.fake_groq import FakeGroq, Script, filler_text
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .fake_groq import EventLog, _events_log, _fake_groq, ai_settings  # noqa: F401  (fixtures)
from .wsutil import recv

WS = aiohttp.ClientWebSocketResponse


@pytest.fixture
def settings(settings: Settings, fake_groq: FakeGroq) -> Settings:
    return ai_settings(settings, fake_groq)


async def join(client: TestClient, user: User, ticket: dict[str, Any]) -> tuple[WS, dict[str, Any]]:
    ws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=user.headers)
    joined = await recv(ws)
    assert joined["type"] == "joined"
    return ws, joined


async def frames_until(ws: WS, done: str, kind: str | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = await recv(ws, timeout)
        frames.append(frame)
        if frame["type"] == done and (kind is None or frame.get("kind") == kind):
            return frames


def reassemble(frames: list[dict[str, Any]], reply_id: str, start: str = "") -> str:
    text = start
    for f in frames:
        if f["type"] == "ai.delta" and f["reply_id"] == reply_id and f["offset"] + len(f["text"]) > len(text):
            assert f["offset"] <= len(text)
            text = text[: f["offset"]] + f["text"]
    return text


async def test_every_participant_gets_identical_text_and_a_late_joiner_catches_up(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    customer = await make_user("customer")
    agents = [await make_user("agent"), await make_user("admin")]
    ticket = await create_ticket(client, customer, "Room")
    sockets = [await join(client, u, ticket) for u in (customer, *agents[:1])]
    text = filler_text(120)
    script = Script(text=text, tokens_per_second=500, hold_after=40)
    fake_groq.push(script)
    await sockets[0][0].send_json({"type": "message.send", "client_id": "q1", "body": "Explain, please"})
    # The stream pauses after 40 tokens (the fake holds it): a late joiner arrives now.
    so_far = "".join(script.pieces()[:40])
    await events_log.wait_type("ai.started")
    reply_id = events_log.frames("ai.started")[0]["reply_id"]
    await events_log.wait_for(lambda: events_log.text_of(reply_id) == so_far)
    late_ws, late_joined = await join(client, agents[1], ticket)
    [stream] = late_joined["streams"]
    assert (stream["reply_id"], stream["kind"], stream["text"]) == (reply_id, "reply", so_far)
    script.release.set()

    texts = []
    for ws, _ in sockets:
        frames = await frames_until(ws, "ai.completed")
        texts.append(reassemble(frames, reply_id))
        assert frames[-1]["message"]["body"] == text
    late_frames = await frames_until(late_ws, "ai.completed")
    texts.append(reassemble(late_frames, reply_id, stream["text"]))
    assert texts == [text, text, text]
    # Coalesced: far fewer frames than tokens.
    deltas = [f for f in late_frames if f["type"] == "ai.delta"]
    assert len(deltas) <= 120 / 5
    for ws in (*(s for s, _ in sockets), late_ws):
        await ws.close()


async def test_a_takeover_over_the_socket_lets_no_ai_text_through(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer, "Room")
    cws, _ = await join(client, customer, ticket)
    aws, _ = await join(client, agent, ticket)
    fake_groq.push(Script(text=filler_text(400), tokens_per_second=60))
    await cws.send_json({"type": "message.send", "client_id": "q1", "body": "Go on"})
    await events_log.wait_for(lambda: len(events_log.frames("ai.delta")) >= 2)
    await aws.send_json({"type": "ai.takeover"})
    await events_log.wait_type("ai.cancelled")
    for ws in (cws, aws):
        frames = await frames_until(ws, "ticket.updated")
        assert frames[-1]["ticket"]["ai_enabled"] is False
        assert any(f["type"] == "ai.delta" for f in frames)
        later = []
        while True:
            try:
                later.append(await recv(ws, 0.3))
            except TimeoutError:
                break
        assert not [f for f in later if f["type"] in ("ai.delta", "ai.completed")], later
        await ws.close()
    assert await fake_groq.wait_for_outcome(0) == "client_gone"


async def test_retry_and_copilot_frames_reach_the_ai(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer, "Room")
    cws, _ = await join(client, customer, ticket)
    aws, _ = await join(client, agent, ticket)
    fake_groq.push(Script(status=500))
    await cws.send_json({"type": "message.send", "client_id": "q1", "body": "Hello?"})
    failed = (await frames_until(cws, "ai.failed"))[-1]
    assert failed["retryable"] is True

    fake_groq.push(Script(text="Hello there."))
    await cws.send_json({"type": "ai.retry"})
    completed = (await frames_until(cws, "ai.completed"))[-1]
    assert completed["message"]["body"] == "Hello there."

    fake_groq.push(Script(text="Suggested: hello!"))
    await aws.send_json({"type": "copilot.request"})
    suggestion = (await frames_until(aws, "ai.completed", kind="copilot"))[-1]
    assert (suggestion["kind"], suggestion["text"]) == ("copilot", "Suggested: hello!")
    # The customer's socket never sees the copilot.
    seen = []
    while True:
        try:
            seen.append(await recv(cws, 0.3))
        except TimeoutError:
            break
    assert not [f for f in seen if f.get("kind") == "copilot" or f["type"] == "ai.delta"], seen
    await cws.close()
    await aws.close()
