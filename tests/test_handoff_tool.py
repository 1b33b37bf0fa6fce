"""With a Groq key the model may hand off too: every customer-facing reply offers it the
`handoff_to_human` tool (Groq tool calling, through the real SDK), and its call is honoured. The
fake Groq streams tool calls as Groq does and checks the follow-up's `tool` messages."""

from __future__ import annotations

from typing import Any

import groq
import pytest
from aiohttp.test_utils import TestClient

from chatserver.ai import handoff
from chatserver.ai.fake_groq import FakeGroq, Script, ToolCall
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .fake_groq import FAKE_KEY, EventLog, _events_log, _fake_groq, ai_settings  # noqa: F401  (fixtures)


@pytest.fixture
def settings(settings: Settings, fake_groq: FakeGroq) -> Settings:
    return ai_settings(settings, fake_groq)


@pytest.fixture
async def customer(make_user: MakeUser) -> User:
    return await make_user("customer")


async def ask(client: TestClient, customer: User, body: str) -> dict[str, Any]:
    ticket = await create_ticket(client, customer, "Order 1042")
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": body}, headers=customer.headers)
    assert resp.status == 201, await resp.text()
    return ticket


async def wait_handoff(client: TestClient, customer: User, ticket: dict[str, Any], log: EventLog) -> dict[str, Any]:
    await log.wait_for(lambda: any(f["message"]["author_kind"] == "system" for f in log.frames("message.created")))
    after = (await (await client.get(f"/tickets/{ticket['id']}", headers=customer.headers)).json())["ticket"]
    assert (after["ai_enabled"], after["waiting_for_agent"]) == (False, True)
    body = await (await client.get(f"/tickets/{ticket['id']}/messages", headers=customer.headers)).json()
    messages: list[dict[str, Any]] = body["messages"]
    return {"ticket": after, "messages": messages}


async def test_every_reply_offers_the_model_the_handoff_tool(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    await ask(client, customer, "Where is my parcel?")
    await events_log.wait_type("ai.completed")
    body = fake_groq.requests[0].body
    assert [t["function"]["name"] for t in body["tools"]] == ["handoff_to_human"]
    assert body["tool_choice"] == "auto"
    assert body["tools"][0]["function"]["parameters"]["required"] == ["reason"]


async def test_a_handoff_call_without_text_cancels_the_reply_and_hands_over(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    fake_groq.push(
        Script(text="", tool_calls=[ToolCall("handoff_to_human", '{"reason": "wants a refund outside policy"}')])
    )
    # Phrased so the local detector lets it through: the model decides.
    ticket = await ask(client, customer, "This is the third broken tent, I've had enough of this")
    state = await wait_handoff(client, customer, ticket, events_log)
    system = [m for m in state["messages"] if m["author_kind"] == "system"]
    assert [(m["body"], m["metadata"]) for m in system] == [(handoff.AI_DECIDED, {"handoff": "ai_decided"})]
    assert not [m for m in state["messages"] if m["author_kind"] == "ai"]
    [cancelled] = events_log.frames("ai.cancelled")
    assert cancelled["reason"] == "handoff"
    assert events_log.frames("ai.completed") == [] and events_log.frames("ai.failed") == []


async def test_what_the_model_said_before_its_call_is_kept(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    # The arguments arrive in pieces over several deltas (OpenAI-style); they are pieced together.
    call = ToolCall("handoff_to_human", '{"reason": "order change after shipping"}')
    fake_groq.push(Script(text="Let me get a colleague to look at this.", tool_calls=[call], argument_pieces=4))
    ticket = await ask(client, customer, "can you change the address, it already shipped")
    state = await wait_handoff(client, customer, ticket, events_log)
    [reply] = [m for m in state["messages"] if m["author_kind"] == "ai"]
    assert reply["body"] == "Let me get a colleague to look at this."
    assert reply["metadata"]["finish_reason"] == "tool_calls"
    assert state["messages"][-1]["metadata"] == {"handoff": "ai_decided"}


async def test_a_call_to_an_unknown_tool_is_not_a_handoff(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    # The model is told the tool does not exist (tests/test_ai_actions.py) and answers in words.
    fake_groq.push(Script(text="", tool_calls=[ToolCall("refund_order", '{"order": 1042}')]))
    ticket = await ask(client, customer, "refund order 1042")
    [completed] = await _final(events_log)
    assert completed["type"] == "ai.completed"
    [tool] = [m for m in fake_groq.requests[1].body["messages"] if m["role"] == "tool"]
    assert "unknown tool" in tool["content"]
    after = (await (await client.get(f"/tickets/{ticket['id']}", headers=customer.headers)).json())["ticket"]
    assert after["waiting_for_agent"] is False


async def test_malformed_handoff_arguments_still_hand_off(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    fake_groq.push(Script(text="", tool_calls=[ToolCall("handoff_to_human", '{"reason": ')]))
    ticket = await ask(client, customer, "this is hopeless")
    state = await wait_handoff(client, customer, ticket, events_log)
    assert state["messages"][-1]["metadata"] == {"handoff": "ai_decided"}


async def _final(log: EventLog) -> list[dict[str, Any]]:
    await log.wait_for(lambda: bool(log.frames("ai.completed", "ai.failed", "ai.cancelled")))
    return log.frames("ai.completed", "ai.failed", "ai.cancelled")


# ---- the fake speaks tool calling through the real SDK -----------------------------------------


async def test_the_sdk_reads_streamed_tool_calls_and_sends_the_follow_up(fake_groq: FakeGroq) -> None:
    client = groq.AsyncGroq(api_key=FAKE_KEY, base_url=fake_groq.base_url, max_retries=0)
    try:
        call = ToolCall("handoff_to_human", '{"reason": "asked for a person"}')
        fake_groq.push(Script(text="", tool_calls=[call], argument_pieces=3), Script(text="Done."))
        messages: list[Any] = [{"role": "user", "content": "hi"}]
        stream = await client.chat.completions.create(
            model="m", messages=messages, tools=[handoff.HANDOFF_TOOL], stream=True
        )
        arguments, finish, name, call_id = "", None, None, None
        async for chunk in stream:
            choice = chunk.choices[0]
            for delta in choice.delta.tool_calls or []:
                call_id = delta.id or call_id
                if delta.function is not None:
                    name = delta.function.name or name
                    arguments += delta.function.arguments or ""
            finish = choice.finish_reason or finish
        assert (call_id, name, arguments, finish) == (call.id, "handoff_to_human", call.arguments, "tool_calls")
        follow_up = [
            *messages,
            {
                "role": "assistant",
                "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "handed off"},
        ]
        stream = await client.chat.completions.create(model="m", messages=follow_up, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
        assert text == "Done."
        with pytest.raises(groq.BadRequestError, match="does not match any tool call"):
            await client.chat.completions.create(
                model="m",
                messages=[*messages, {"role": "tool", "tool_call_id": "call_unknown", "content": "x"}],
                stream=True,
            )
    finally:
        await client.close()
