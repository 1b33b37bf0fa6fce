"""What the model sees: the system prompt from the templates, history trimmed to the token
budget, no internal notes in customer-facing replies, knowledge-base excerpts cited in the reply's
metadata, and the agents' copilot (which does see internal notes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.ai.fake_groq import FakeGroq, Script
from chatserver.ai.knowledge import excerpt, read_kb_dir, store_articles
from chatserver.ai.prompts import PromptBuilder, estimate_tokens
from chatserver.db.messages import insert_message
from chatserver.keys import AI_SERVICE, DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .fake_groq import EventLog, _events_log, _fake_groq, ai_settings, clear_kb  # noqa: F401  (fixtures)

KB_DIR = Path(__file__).resolve().parent / "kb"
BUDGET = 800


@pytest.fixture
def settings(settings: Settings, fake_groq: FakeGroq) -> Settings:
    return ai_settings(settings, fake_groq, ai_history_token_budget=BUDGET, ai_product_name="Nimbus Notes")


@pytest.fixture
async def sample_kb(client: TestClient) -> None:
    await clear_kb(client)
    await store_articles(client.app[DB_POOL], read_kb_dir(KB_DIR))


async def post(client: TestClient, user: User, ticket: dict[str, Any], body: str, **extra: Any) -> dict[str, Any]:
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": body, **extra}, headers=user.headers)
    assert resp.status == 201, await resp.text()
    message: dict[str, Any] = (await resp.json())["message"]
    return message


def prompt_text(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


async def test_long_tickets_are_trimmed_to_the_token_budget(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Long story")
    pool = client.app[DB_POOL]
    import uuid

    for i in range(120):
        await insert_message(
            pool,
            ticket_id=uuid.UUID(ticket["id"]),
            author_id=uuid.UUID(customer.id),
            author_kind="customer",
            body=f"old message {i} " + "blah " * 40,
            client_id=None,
        )
    await post(client, customer, ticket, "So what is the answer?")
    completed = (await events_log.wait_type("ai.completed"))[0]
    sent = fake_groq.requests[0].body["messages"]
    assert sent[0]["role"] == "system"
    assert sent[-1] == {"role": "user", "content": "So what is the answer?"}
    assert sum(estimate_tokens(m["content"]) for m in sent) <= BUDGET
    assert len(sent) > 2, "as much recent history as fits is kept"
    kept = [m["content"] for m in sent[1:-1]]
    assert kept[-1].startswith("old message 119 "), "the newest history is kept"
    assert "old message 0 " not in prompt_text(sent)
    trimmed = completed["message"]["metadata"]["prompt"]["trimmed_messages"]
    assert trimmed == 121 - (len(sent) - 1)
    assert f"{trimmed} older message(s)" in sent[0]["content"]


async def test_a_question_longer_than_the_budget_is_cut_not_dropped() -> None:
    builder = PromptBuilder(product_name="X", history_token_budget=600)
    ticket = {"subject": "s", "description": "", "status": "open", "priority": "normal"}
    history = [{"author_kind": "customer", "visibility": "public", "body": "word " * 5000, "metadata": {}}]
    prompt = builder.reply(ticket, {"name": "C"}, history, [])
    assert prompt.messages[-1]["role"] == "user"
    assert prompt.messages[-1]["content"].endswith("word ")
    assert len(prompt.messages[-1]["content"]) < 5000


async def test_internal_notes_never_reach_a_customer_facing_prompt(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer, "Secrets")
    await post(client, agent, ticket, "INTERNAL-ONLY: customer is on the refund watchlist", internal=True)
    await post(client, customer, ticket, "Can I get a refund?")
    await events_log.wait_type("ai.completed")
    assert "INTERNAL-ONLY" not in prompt_text(fake_groq.requests[0].body["messages"])


async def test_the_system_prompt_is_rendered_from_the_templates(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    customer = await make_user("customer", name="Casey Jones")
    ticket = await create_ticket(client, customer, "Sync is broken", description="Since Monday")
    await post(client, customer, ticket, "My notes are not syncing")
    await events_log.wait_type("ai.completed")
    system = fake_groq.requests[0].body["messages"][0]["content"]
    assert "Nimbus Notes" in system
    assert "Subject: Sync is broken" in system
    assert "Description: Since Monday" in system
    assert "Customer: Casey Jones" in system
    assert "talk to a person" in system
    assert customer.email not in system, "the model does not need the customer's email"


async def test_knowledge_base_articles_ground_and_are_cited_in_the_reply(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog, sample_kb: None
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Money back")
    fake_groq.push(Script(text="Yearly plans are refundable within 30 days."))
    await post(client, customer, ticket, "Can I get a refund for my yearly plan?")
    completed = (await events_log.wait_type("ai.completed"))[0]
    system = fake_groq.requests[0].body["messages"][0]["content"]
    assert "Refunds and billing" in system
    assert "full refund within 30 days" in system
    citations = completed["message"]["metadata"]["citations"]
    assert citations[0]["slug"] == "refunds-and-billing"
    assert citations[0]["title"] == "Refunds and billing"
    # The article's public page, from its front matter (tests/kb/refunds-and-billing.md).
    assert citations[0]["url"] == "https://help.nimbusnotes.example/articles/refunds-and-billing"
    assert set(citations[0]) == {"id", "slug", "title", "sections", "url"}
    # The sections (chunks) the excerpt came from, by heading.
    assert citations[0]["sections"] and all(h.startswith("Refunds and billing") for h in citations[0]["sections"])


async def test_search_ranks_the_matching_article_first(client: TestClient, sample_kb: None) -> None:
    cases = {
        "I forgot my password": "reset-password",
        "how do I export my notes to markdown": "export-your-notes",
        "my phone with the authenticator app was stolen": "two-factor-authentication",
        "notes not syncing on my laptop": "sync-troubleshooting",
        "how much does the team plan cost": "plans-and-pricing",
    }
    kb = client.app[AI_SERVICE].knowledge
    for question, slug in cases.items():
        found = await kb.search(question, 3)
        assert found and found[0].slug == slug, (question, [a.slug for a in found])
    assert await kb.search("zzzz qqqq", 3) == []


def test_excerpts_keep_the_paragraphs_that_match() -> None:
    body = "Intro about nothing.\n\nRefunds take ten days.\n\nUnrelated closing words."
    assert excerpt(body, "how long do refunds take", 30) == "Refunds take ten days."
    assert excerpt(body, "refunds", 1000) == body


async def test_the_copilot_streams_to_agents_only_and_sees_internal_notes(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer, "Copilot")
    fake_groq.push(Script(text="Customer-facing answer."))
    await post(client, customer, ticket, "What are my options?")
    await events_log.wait_type("ai.completed")
    await post(client, agent, ticket, "NOTE: offer the student discount", internal=True)

    fake_groq.push(Script(text="Hi! As a student you get 50% off."))
    resp = await client.post(f"/tickets/{ticket['id']}/copilot", headers=agent.headers)
    assert resp.status == 202
    reply_id = (await resp.json())["reply_id"]
    await events_log.wait_for(lambda: any(f["reply_id"] == reply_id for f in events_log.frames("ai.completed")))
    copilot_events = [e for e in events_log.events if e.frame.get("reply_id") == reply_id]
    assert copilot_events and all(e.staff_only for e in copilot_events)
    assert {e.frame.get("kind") for e in copilot_events if e.frame["type"] != "ai.delta"} == {"copilot"}
    final = copilot_events[-1].frame
    assert (final["message"], final["text"]) == (None, "Hi! As a student you get 50% off.")
    assert "NOTE: offer the student discount" in prompt_text(fake_groq.requests[1].body["messages"])
    # Not stored, and it did not turn the AI off.
    history = await (await client.get(f"/tickets/{ticket['id']}/messages", headers=agent.headers)).json()
    assert [m["author_kind"] for m in history["messages"]] == ["customer", "ai", "agent"]
    assert (await (await client.get(f"/tickets/{ticket['id']}", headers=agent.headers)).json())["ticket"][
        "ai_enabled"
    ] is True


async def test_only_agents_may_ask_the_copilot(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Copilot")
    resp = await client.post(f"/tickets/{ticket['id']}/copilot", headers=customer.headers)
    assert resp.status == 403
