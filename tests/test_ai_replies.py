"""AI replies end to end over REST: a customer message starts a reply from (fake) Groq through
the real SDK; it streams as ai.* events and over SSE, is stored with its metadata, and stops on
takeover, on a newer message, on failures, on handoff and when the budget runs out."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.ai import handoff
from chatserver.ai.fake_groq import FakeGroq, Script, filler_text
from chatserver.keys import DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .fake_groq import (  # noqa: F401  (_events_log, _fake_groq: pytest fixtures)
    EventLog,
    _events_log,
    _fake_groq,
    ai_settings,
    iter_sse,
    read_sse,
    sse_text,
)

SLOW = 40  # tokens per second for replies a test interrupts mid-stream


@pytest.fixture
def settings(settings: Settings, fake_groq: FakeGroq) -> Settings:
    return ai_settings(settings, fake_groq)


async def post(client: TestClient, user: User, ticket: dict[str, Any], body: str) -> dict[str, Any]:
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": body}, headers=user.headers)
    assert resp.status == 201, await resp.text()
    message: dict[str, Any] = (await resp.json())["message"]
    return message


async def messages(client: TestClient, user: User, ticket: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.get(f"/tickets/{ticket['id']}/messages", headers=user.headers)
    assert resp.status == 200
    result: list[dict[str, Any]] = (await resp.json())["messages"]
    return result


async def get_ticket(client: TestClient, user: User, ticket: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (await (await client.get(f"/tickets/{ticket['id']}", headers=user.headers)).json())[
        "ticket"
    ]
    return result


def final_frames(log: EventLog) -> list[dict[str, Any]]:
    return log.frames("ai.completed", "ai.failed", "ai.cancelled")


async def wait_final(log: EventLog, count: int = 1) -> list[dict[str, Any]]:
    await log.wait_for(lambda: len(final_frames(log)) >= count)
    return final_frames(log)


@pytest.fixture
async def customer(make_user: MakeUser) -> User:
    return await make_user("customer", name="Casey")


@pytest.fixture
async def agent(make_user: MakeUser) -> User:
    return await make_user("agent", name="Ava")


# ---- the happy path -------------------------------------------------------------------------


async def test_a_customer_message_gets_a_streamed_and_stored_reply(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    fake_groq.push(Script(text="Choose Forgot password on the sign-in page."))
    ticket = await create_ticket(client, customer, "Password")
    question = await post(client, customer, ticket, "How do I reset my password?")

    [completed] = await wait_final(events_log)
    assert completed["type"] == "ai.completed"
    reply_id = completed["reply_id"]
    [started] = events_log.frames("ai.started")
    assert (started["reply_id"], started["kind"], started["in_reply_to"]) == (reply_id, "reply", question["seq"])
    assert events_log.text_of(reply_id) == "Choose Forgot password on the sign-in page."

    stored = completed["message"]
    assert stored["seq"] == question["seq"] + 1
    assert (stored["author_kind"], stored["author_id"], stored["body"]) == (
        "ai",
        None,
        "Choose Forgot password on the sign-in page.",
    )
    meta = stored["metadata"]
    assert meta["model"] == "llama-3.3-70b-versatile"
    assert meta["finish_reason"] == "stop"
    assert meta["incomplete"] is False
    assert meta["in_reply_to"] == question["seq"]
    assert meta["reply_id"] == reply_id
    assert meta["groq_request_id"].startswith("req_")
    assert set(meta["usage"]) >= {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "queue_time",
        "prompt_time",
        "completion_time",
        "total_time",
    }
    assert (await messages(client, customer, ticket))[-1] == stored
    # The inbox hears of the new message too.
    assert any(f["message"]["id"] == stored["id"] for f in events_log.frames("inbox.message_created"))


async def test_the_first_message_of_a_new_ticket_gets_a_reply(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    fake_groq.push(Script(text="Hello!"))
    ticket = await create_ticket(client, customer, "Hi", message="Is anyone there?")
    assert ticket["ai_enabled"] is True
    [completed] = await wait_final(events_log)
    assert completed["message"]["body"] == "Hello!"
    assert completed["message"]["metadata"]["in_reply_to"] == 1


async def test_ai_can_be_off_by_default(aiohttp_client: Any, settings: Settings, fake_groq: FakeGroq) -> None:
    from chatserver.app import create_app

    off = await aiohttp_client(create_app(settings.with_overrides(ai_default_enabled=False), bcrypt_rounds=4))
    resp = await off.post(
        "/auth/signup", json={"email": f"o-{uuid.uuid4().hex[:6]}@example.com", "password": "password123"}
    )
    headers = {"Authorization": f"Bearer {(await resp.json())['access_token']}"}
    ticket = await (await off.post("/tickets", json={"subject": "x", "message": "hello"}, headers=headers)).json()
    assert ticket["ticket"]["ai_enabled"] is False
    await asyncio.sleep(0.2)
    assert fake_groq.requests == []


# ---- SSE ------------------------------------------------------------------------------------


async def test_sse_streams_the_reply_as_valid_events(client: TestClient, customer: User, fake_groq: FakeGroq) -> None:
    text = filler_text(40)
    fake_groq.push(Script(text=text, tokens_per_second=400))
    ticket = await create_ticket(client, customer, "Question")
    await post(client, customer, ticket, "Where are my settings?")
    resp = await client.get(f"/tickets/{ticket['id']}/ai-response", headers=customer.headers)
    events = await read_sse(resp)
    names = [name for name, _ in events]
    assert names[0] == "started"
    assert names[-1] == "completed"
    assert set(names[1:-1]) <= {"delta"}
    assert sse_text(events) == text
    assert events[-1][1]["message"]["body"] == text
    assert resp.headers["Cache-Control"] == "no-cache"


async def test_sse_after_completion_sends_the_stored_reply_at_once(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    fake_groq.push(Script(text="Already done."))
    ticket = await create_ticket(client, customer, "Question")
    await post(client, customer, ticket, "Quick one?")
    [completed] = await wait_final(events_log)
    events = await read_sse(await client.get(f"/tickets/{ticket['id']}/ai-response", headers=customer.headers))
    assert events == [
        (
            "completed",
            {
                "reply_id": completed["reply_id"],
                "kind": "reply",
                "message": completed["message"],
                "text": "Already done.",
            },
        )
    ]
    assert len(fake_groq.requests) == 1, "no second generation"


async def test_every_participant_receives_identical_text_and_late_joiners_catch_up(
    client: TestClient, customer: User, agent: User, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    text = filler_text(60)
    script = Script(text=text, tokens_per_second=300, hold_after=20)
    fake_groq.push(script)
    admin = await make_user("admin")
    ticket = await create_ticket(client, customer, "Question")
    await post(client, customer, ticket, "Tell me everything")
    early = [
        asyncio.create_task(read_sse(await client.get(f"/tickets/{ticket['id']}/ai-response", headers=u.headers)))
        for u in (customer, agent)
    ]
    # The fake holds the stream after 20 tokens: a late joiner arrives mid-stream.
    so_far = "".join(script.pieces()[:20])
    reply_id = (await events_log.wait_type("ai.started"))[0]["reply_id"]
    await events_log.wait_for(lambda: events_log.text_of(reply_id) == so_far)
    late_resp = await client.get(f"/tickets/{ticket['id']}/ai-response", headers=admin.headers)
    late_events = iter_sse(late_resp)
    assert await anext(late_events) == ("started", {"reply_id": reply_id, "kind": "reply", "in_reply_to": 1})
    assert await anext(late_events) == ("delta", {"reply_id": reply_id, "offset": 0, "text": so_far})
    script.release.set()
    late = [("started", {}), ("delta", {"offset": 0, "text": so_far})] + [e async for e in late_events]
    results = [await t for t in early] + [late]
    for events in results:
        assert sse_text(events) == text
        assert events[-1][0] == "completed"
    assert len(fake_groq.requests) == 1


async def test_sse_refuses_other_customers_and_tickets_without_a_question(
    client: TestClient, customer: User, make_user: MakeUser
) -> None:
    ticket = await create_ticket(client, customer, "Empty")
    resp = await client.get(f"/tickets/{ticket['id']}/ai-response", headers=customer.headers)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "conflict"
    other = await make_user("customer")
    resp = await client.get(f"/tickets/{ticket['id']}/ai-response", headers=other.headers)
    assert resp.status == 404


# ---- takeover, handback, newer messages -----------------------------------------------------


async def _mid_stream(client: TestClient, customer: User, ticket: dict[str, Any], fake: FakeGroq, log: EventLog) -> str:
    fake.push(Script(text=filler_text(200), tokens_per_second=SLOW))
    await post(client, customer, ticket, "Explain it all, slowly")
    await log.wait_for(lambda: len(log.frames("ai.delta")) >= 1)
    reply_id: str = log.frames("ai.started")[-1]["reply_id"]
    return reply_id


def assert_no_ai_text_after_takeover(log: EventLog, reply_id: str) -> None:
    types = [e.frame["type"] for e in log.events]
    takeover = next(
        i
        for i, e in enumerate(log.events)
        if e.frame["type"] == "ticket.updated" and not e.frame["ticket"]["ai_enabled"]
    )
    later = [e.frame for e in log.events[takeover:] if e.frame.get("reply_id") == reply_id]
    assert all(f["type"] == "ai.cancelled" for f in later), (types, later)


async def test_an_agent_message_takes_over_and_stops_the_reply_at_once(
    client: TestClient, customer: User, agent: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    ticket = await create_ticket(client, customer, "Slow")
    reply_id = await _mid_stream(client, customer, ticket, fake_groq, events_log)
    await post(client, agent, ticket, "I'll take it from here.")

    [cancelled] = await wait_final(events_log)
    assert cancelled == {"type": "ai.cancelled", "reply_id": reply_id, "kind": "reply", "reason": "takeover"}
    assert (await get_ticket(client, customer, ticket))["ai_enabled"] is False
    assert_no_ai_text_after_takeover(events_log, reply_id)
    # The cancelled text is not stored, and Groq's stream was closed.
    assert [m["author_kind"] for m in await messages(client, customer, ticket)] == ["customer", "agent"]
    assert await fake_groq.wait_for_outcome(0) == "client_gone"
    # Customers writing now reach the agent only.
    await post(client, customer, ticket, "ok thanks")
    await asyncio.sleep(0.2)
    assert len(fake_groq.requests) == 1


async def test_patch_ai_off_stops_the_reply_and_patch_on_hands_back(
    client: TestClient, customer: User, agent: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    ticket = await create_ticket(client, customer, "Slow")
    reply_id = await _mid_stream(client, customer, ticket, fake_groq, events_log)
    resp = await client.patch(f"/tickets/{ticket['id']}", json={"ai_enabled": False}, headers=agent.headers)
    assert resp.status == 200
    [cancelled] = await wait_final(events_log)
    assert (cancelled["type"], cancelled["reason"]) == ("ai.cancelled", "takeover")
    assert_no_ai_text_after_takeover(events_log, reply_id)

    # Handing back: the next customer message is answered again.
    resp = await client.patch(f"/tickets/{ticket['id']}", json={"ai_enabled": True}, headers=agent.headers)
    assert (await resp.json())["ticket"]["ai_enabled"] is True
    fake_groq.push(Script(text="Back again."))
    await post(client, customer, ticket, "hello?")
    finals = await wait_final(events_log, 2)
    assert finals[-1]["type"] == "ai.completed" and finals[-1]["message"]["body"] == "Back again."


async def test_a_newer_customer_message_supersedes_the_reply_in_flight(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    ticket = await create_ticket(client, customer, "Two questions")
    first_reply = await _mid_stream(client, customer, ticket, fake_groq, events_log)
    fake_groq.push(Script(text="Both answered."))
    second = await post(client, customer, ticket, "Also, how do refunds work?")

    finals = await wait_final(events_log, 2)
    assert finals[0] == {"type": "ai.cancelled", "reply_id": first_reply, "kind": "reply", "reason": "superseded"}
    assert finals[1]["type"] == "ai.completed"
    assert finals[1]["message"]["metadata"]["in_reply_to"] == second["seq"]
    # The new reply saw both customer messages.
    prompt = fake_groq.requests[1].body["messages"]
    user_turns = [m["content"] for m in prompt if m["role"] == "user"]
    assert user_turns[-2:] == ["Explain it all, slowly", "Also, how do refunds work?"]
    # One generation at a time: the first stream was closed.
    assert await fake_groq.wait_for_outcome(0) == "client_gone"


async def test_internal_notes_neither_start_nor_stop_the_ai(
    client: TestClient, customer: User, agent: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    ticket = await create_ticket(client, customer, "Notes")
    fake_groq.push(Script(text="Answer."))
    await post(client, customer, ticket, "Question?")
    resp = await client.post(
        f"/tickets/{ticket['id']}/messages", json={"body": "VIP customer", "internal": True}, headers=agent.headers
    )
    assert resp.status == 201
    [completed] = await wait_final(events_log)
    assert completed["type"] == "ai.completed"
    assert (await get_ticket(client, customer, ticket))["ai_enabled"] is True


# ---- handoff to a human ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "phrase",
    [
        "Talk to a person",
        "agent please",
        "Can I speak with a real human?",
        "Connect me to an agent!",
        "I want a human",
        "HUMAN",
        "I don't want a bot",
        "Je voudrais parler à un humain, s'il vous plaît.",
        "un conseiller svp",
    ],
)
async def test_asking_for_a_human_hands_the_ticket_over(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog, phrase: str
) -> None:
    ticket = await create_ticket(client, customer, "Help")
    await post(client, customer, ticket, phrase)
    await events_log.wait_for(
        lambda: any(f["message"]["author_kind"] == "system" for f in events_log.frames("message.created"))
    )
    after = await get_ticket(client, customer, ticket)
    assert (after["ai_enabled"], after["waiting_for_agent"]) == (False, True)
    system = (await messages(client, customer, ticket))[-1]
    assert (system["author_kind"], system["body"]) == ("system", handoff.CUSTOMER_ASKED)
    assert system["metadata"] == {"handoff": "customer_asked"}
    inbox = events_log.frames("inbox.ticket_updated")
    assert inbox and inbox[-1]["ticket"]["waiting_for_agent"] is True
    assert fake_groq.requests == []


async def test_a_handoff_phrase_cancels_the_reply_in_flight(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    ticket = await create_ticket(client, customer, "Slow")
    reply_id = await _mid_stream(client, customer, ticket, fake_groq, events_log)
    await post(client, customer, ticket, "agent please")
    [cancelled] = await wait_final(events_log)
    assert (cancelled["type"], cancelled["reply_id"]) == ("ai.cancelled", reply_id)
    assert_no_ai_text_after_takeover(events_log, reply_id)
    assert (await get_ticket(client, customer, ticket))["waiting_for_agent"] is True


async def test_waiting_tickets_show_in_the_agents_inbox_filter(
    client: TestClient, customer: User, agent: User, events_log: EventLog
) -> None:
    ticket = await create_ticket(client, customer, "Help")
    await post(client, customer, ticket, "talk to a person")
    await events_log.wait_type("inbox.ticket_updated")
    waiting = await (await client.get("/tickets?waiting=true", headers=agent.headers)).json()
    assert [t["id"] for t in waiting["tickets"]] == [ticket["id"]]


# ---- budgets and rate limits ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"ai_max_replies_per_ticket": 1}, "reply_budget"),
        ({"ai_max_tokens_per_ticket": 10}, "token_budget"),
        ({"ai_user_replies_per_window": 1}, "rate_limit"),
    ],
)
async def test_an_exhausted_budget_hands_off_with_a_message(
    aiohttp_client: Any, settings: Settings, fake_groq: FakeGroq, overrides: dict[str, Any], reason: str
) -> None:
    from chatserver.app import create_app

    from .fake_groq import attach_log

    client = await aiohttp_client(create_app(settings.with_overrides(**overrides), bcrypt_rounds=4))
    log = attach_log(client.app)
    signup = await client.post(
        "/auth/signup", json={"email": f"b-{uuid.uuid4().hex[:6]}@example.com", "password": "password123"}
    )
    headers = {"Authorization": f"Bearer {(await signup.json())['access_token']}"}
    ticket = (await (await client.post("/tickets", json={"subject": "Budget"}, headers=headers)).json())["ticket"]
    fake_groq.push(Script(text="First answer, and a long one at that."))
    await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "first"}, headers=headers)
    await log.wait_type("ai.completed")
    await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "second"}, headers=headers)
    await log.wait_for(lambda: any(f["message"]["author_kind"] == "system" for f in log.frames("message.created")))
    history = (await (await client.get(f"/tickets/{ticket['id']}/messages", headers=headers)).json())["messages"]
    assert [m["author_kind"] for m in history] == ["customer", "ai", "customer", "system"]
    assert history[-1]["metadata"] == {"handoff": reason}
    after = (await (await client.get(f"/tickets/{ticket['id']}", headers=headers)).json())["ticket"]
    assert (after["ai_enabled"], after["waiting_for_agent"]) == (False, True)
    assert len(fake_groq.requests) == 1


async def test_usage_is_counted_per_ticket(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    fake_groq.push(Script(text="one two three"))
    ticket = await create_ticket(client, customer, "Usage")
    await post(client, customer, ticket, "count me")
    [completed] = await wait_final(events_log)
    row = await client.app[DB_POOL].fetchrow(
        "SELECT replies, completion_tokens, total_tokens FROM ticket_ai_usage WHERE ticket_id = $1",
        uuid.UUID(ticket["id"]),
    )
    assert row["replies"] == 1
    assert row["completion_tokens"] == completed["message"]["metadata"]["usage"]["completion_tokens"] == 3
    assert row["total_tokens"] == completed["message"]["metadata"]["usage"]["total_tokens"]


# ---- failures and retries -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "code", "retryable"),
    [
        (Script(status=429, retry_after="9"), "rate_limited", True),
        (Script(status=500), "ai_unavailable", True),
        (Script(status=503), "ai_unavailable", True),
    ],
)
async def test_a_failed_request_ends_with_a_clear_event_and_a_usable_ticket(
    client: TestClient,
    customer: User,
    fake_groq: FakeGroq,
    events_log: EventLog,
    script: Script,
    code: str,
    retryable: bool,
) -> None:
    fake_groq.push(script)
    ticket = await create_ticket(client, customer, "Fails")
    await post(client, customer, ticket, "Will this work?")
    [failed] = await wait_final(events_log)
    assert (failed["type"], failed["code"], failed["retryable"], failed["partial"]) == (
        "ai.failed",
        code,
        retryable,
        None,
    )
    if code == "rate_limited":
        assert failed["retry_after"] == 9.0
    assert (await get_ticket(client, customer, ticket))["ai_enabled"] is True
    # The customer asks for a retry, and it works.
    fake_groq.push(Script(text="Works now."))
    resp = await client.post(f"/tickets/{ticket['id']}/ai/retry", headers=customer.headers)
    assert resp.status == 202
    accepted = await resp.json()
    finals = await wait_final(events_log, 2)
    assert finals[-1]["type"] == "ai.completed" and finals[-1]["reply_id"] == accepted["reply_id"]
    assert [m["author_kind"] for m in await messages(client, customer, ticket)] == ["customer", "ai"]


@pytest.mark.parametrize(
    ("script", "code", "settings_overrides"),
    [
        (Script(text=filler_text(20), x_groq_error_after=5), "ai_stream_error", {}),
        (Script(text=filler_text(20), reset_after=5), "ai_connection_lost", {}),
        (Script(text=filler_text(20), stall_after=5), "ai_timeout", {"groq_timeout": 0.3}),
    ],
)
async def test_a_failure_mid_stream_keeps_the_partial_text_marked_incomplete(
    aiohttp_client: Any,
    settings: Settings,
    make_user: MakeUser,
    fake_groq: FakeGroq,
    script: Script,
    code: str,
    settings_overrides: dict[str, Any],
) -> None:
    from chatserver.app import create_app

    from .fake_groq import attach_log

    client = await aiohttp_client(create_app(settings.with_overrides(**settings_overrides), bcrypt_rounds=4))
    log = attach_log(client.app)
    signup = await client.post(
        "/auth/signup", json={"email": f"f-{uuid.uuid4().hex[:6]}@example.com", "password": "password123"}
    )
    headers = {"Authorization": f"Bearer {(await signup.json())['access_token']}"}
    ticket = (await (await client.post("/tickets", json={"subject": "Mid"}, headers=headers)).json())["ticket"]
    fake_groq.push(script)
    await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "go"}, headers=headers)
    await log.wait_type("ai.failed")
    [failed] = log.frames("ai.failed")
    partial_text = "".join(script.pieces()[:5])
    assert (failed["code"], failed["retryable"]) == (code, True)
    partial = failed["partial"]
    assert partial["body"] == partial_text
    assert partial["metadata"]["incomplete"] is True
    assert partial["metadata"]["error"] == code
    # Everything streamed reached the room before the failure event.
    assert log.text_of(failed["reply_id"]) == partial_text
    history = (await (await client.get(f"/tickets/{ticket['id']}/messages", headers=headers)).json())["messages"]
    assert history[-1] == partial
    # A retry replaces it with a complete reply; the SSE endpoint then serves that one.
    fake_groq.push(Script(text="Complete this time."))
    assert (await client.post(f"/tickets/{ticket['id']}/ai/retry", headers=headers)).status == 202
    await log.wait_type("ai.completed")
    events = await read_sse(await client.get(f"/tickets/{ticket['id']}/ai-response", headers=headers))
    assert events[-1][0] == "completed" and events[-1][1]["text"] == "Complete this time."


async def test_bad_credentials_fail_for_good_and_hand_off(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    fake_groq.push(Script(status=401))
    ticket = await create_ticket(client, customer, "Auth")
    await post(client, customer, ticket, "hello")
    [failed] = await wait_final(events_log)
    assert (failed["code"], failed["retryable"]) == ("ai_auth_failed", False)
    await events_log.wait_for(
        lambda: any(f["message"]["author_kind"] == "system" for f in events_log.frames("message.created"))
    )
    after = await get_ticket(client, customer, ticket)
    assert (after["ai_enabled"], after["waiting_for_agent"]) == (False, True)


async def test_retry_rules(
    client: TestClient, customer: User, agent: User, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    ticket = await create_ticket(client, customer, "Retry")
    # Nothing to answer yet.
    assert (await client.post(f"/tickets/{ticket['id']}/ai/retry", headers=customer.headers)).status == 409
    await _mid_stream(client, customer, ticket, fake_groq, events_log)
    # Busy: one generation per ticket.
    resp = await client.post(f"/tickets/{ticket['id']}/ai/retry", headers=agent.headers)
    assert resp.status == 409
    # Another customer cannot even see the ticket.
    other = await make_user("customer")
    assert (await client.post(f"/tickets/{ticket['id']}/ai/retry", headers=other.headers)).status == 404
    # With the AI off, there is nothing to retry.
    await client.patch(f"/tickets/{ticket['id']}", json={"ai_enabled": False}, headers=agent.headers)
    await wait_final(events_log)
    resp = await client.post(f"/tickets/{ticket['id']}/ai/retry", headers=customer.headers)
    assert resp.status == 409


async def test_a_client_leaving_the_sse_stream_does_not_stop_the_reply(
    client: TestClient, customer: User, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    text = filler_text(30)
    fake_groq.push(Script(text=text, tokens_per_second=100))
    ticket = await create_ticket(client, customer, "Leave")
    await post(client, customer, ticket, "go")
    resp = await client.get(f"/tickets/{ticket['id']}/ai-response", headers=customer.headers)
    async for name, _ in iter_sse(resp):
        if name == "delta":
            break
    resp.close()
    [completed] = await wait_final(events_log)
    assert completed["type"] == "ai.completed" and completed["text"] == text
