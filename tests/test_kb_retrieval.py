"""Hybrid retrieval: the shop's sample articles are split into sections, embedded once and stored
in PostgreSQL; paraphrases find the right article; every instance sees a change at its next
search; nothing relevant means the model is told so; the sample loads once on a first start;
and eval-ai's offline figures meet the thresholds kept in the repo."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.__main__ import main
from chatserver.ai.embedding import MODEL_NAME, RetrievalEmbedder, without_function_words
from chatserver.ai.fake_groq import FakeGroq, Script, ToolCall
from chatserver.ai.knowledge import (
    KnowledgeBase,
    ParsedArticle,
    load_sample_once,
    read_kb_dir,
    split_sections,
    store_articles,
)
from chatserver.keys import AI_SERVICE, DB_POOL
from chatserver.settings import SAMPLE_KB_DIR, Settings, load_settings

from .conftest import MakeUser, create_ticket
from .fake_groq import EventLog, _events_log, _fake_groq, ai_settings, clear_kb  # noqa: F401  (fixtures)


@pytest.fixture
def settings(settings: Settings, fake_groq: FakeGroq) -> Settings:
    return ai_settings(settings, fake_groq)


@pytest.fixture
async def shop_kb(client: TestClient) -> KnowledgeBase:
    await clear_kb(client)
    await store_articles(client.app[DB_POOL], read_kb_dir(SAMPLE_KB_DIR))
    kb: KnowledgeBase = client.app[AI_SERVICE].knowledge
    return kb


def test_articles_split_into_sections_at_their_headings() -> None:
    body = "Intro.\n\n## Where is my order?\n\nTrack it.\n\n## Cancelling\n\nBefore packing."
    assert split_sections("Orders", body) == [
        ("Orders", "Intro."),
        ("Orders: Where is my order?", "Track it."),
        ("Orders: Cancelling", "Before packing."),
    ]


async def test_each_section_is_stored_with_its_embedding(client: TestClient, shop_kb: KnowledgeBase) -> None:
    pool = client.app[DB_POOL]
    articles = await pool.fetchval("SELECT count(*) FROM kb_articles")
    rows = await pool.fetch("SELECT heading, embedding, model FROM kb_chunks")
    assert len(rows) > articles, "articles are split into several chunks"
    # WordLlama (256) and all-MiniLM-L6-v2 (384) side by side, as float32.
    assert {len(r["embedding"]) for r in rows} == {640 * 4}
    assert {r["model"] for r in rows} == {"wordllama-l2_supercat-256+all-minilm-l6-v2"}
    # Each article's own vector (its context for the vector ranking) is stored with it.
    vectors = await pool.fetch("SELECT embedding FROM kb_articles")
    assert len(vectors) == articles and {len(r["embedding"]) for r in vectors} == {640 * 4}


@pytest.mark.parametrize(
    ("question", "slug"),
    [
        # Paraphrases that share few or no words with the article that answers them.
        ("what does postage cost", "shipping"),
        ("how much space do I need in a rucksack for three nights", "sizing"),
        ("my rucksack stinks, can I wash it", "pack-care"),
        ("will there be import fees for my country", "shipping"),
        ("can't log in", "account"),
    ],
)
async def test_paraphrases_find_the_article_that_answers_them(shop_kb: KnowledgeBase, question: str, slug: str) -> None:
    found = [a.slug for a in await shop_kb.search(question, 3)]
    assert slug in found, found


async def test_a_tickets_subject_is_context_and_does_not_outvote_the_question(shop_kb: KnowledgeBase) -> None:
    # "Shop" shares a word with the warranty article ("another shop") and, embedded with the
    # question, pulled the vector towards tent care: the subject is searched as words only.
    found = [a.slug for a in await shop_kb.search("How do I return my tent?", 3, context="Shop")]
    assert found[0] == "returns", found
    alone = [a.slug for a in await shop_kb.search("Where is my order?", 3, context="Where is my order?")]
    assert alone[0] == "orders", alone


def test_wordllama_embeds_a_question_without_its_function_words() -> None:
    assert without_function_words("How do I return my tent?") == "How return tent"
    assert without_function_words("can I wash it?") == "wash"
    assert without_function_words("I'd like a different size instead") == "like different size instead"
    # Nothing left: the question as it is (an embedding of nothing matches nothing).
    assert without_function_words("is it?") == "is it?"


async def test_a_change_made_elsewhere_is_seen_by_the_next_search(client: TestClient, shop_kb: KnowledgeBase) -> None:
    assert [a.slug for a in await shop_kb.search("do you sell kayaks", 3)][:1] != ["kayaks"]
    # Another instance (here: the load-kb path on the same database) adds an article.
    await store_articles(
        client.app[DB_POOL], [ParsedArticle("kayaks", "Kayaks and paddles", "We sell inflatable kayaks and paddles.")]
    )
    found = await shop_kb.search("do you sell kayaks", 3)
    assert found[0].slug == "kayaks"
    await client.app[DB_POOL].execute("DELETE FROM kb_articles WHERE slug = 'kayaks'")
    assert "kayaks" not in [a.slug for a in await shop_kb.search("do you sell kayaks", 3)]


async def test_articles_stored_without_chunks_are_indexed_at_the_next_search(
    client: TestClient, shop_kb: KnowledgeBase
) -> None:
    pool = client.app[DB_POOL]
    # As after migration 0008: articles, no chunks.
    await pool.execute("DELETE FROM kb_chunks")
    assert await pool.fetchval("SELECT count(*) FROM kb_chunks") == 0
    found = await shop_kb.search("how do I return something", 3)
    assert found and found[0].slug == "returns"
    assert await pool.fetchval("SELECT count(DISTINCT article_id) FROM kb_chunks") == await pool.fetchval(
        "SELECT count(*) FROM kb_articles"
    )


async def post(client: TestClient, user: Any, ticket: dict[str, Any], body: str) -> None:
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": body}, headers=user.headers)
    assert resp.status == 201, await resp.text()


async def test_replies_cite_the_sections_used(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog, shop_kb: KnowledgeBase
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Tent")
    fake_groq.push(Script(text="Dry it within 24 hours."))
    await post(client, customer, ticket, "I packed my tent away wet, will it go mouldy?")
    completed = (await events_log.wait_type("ai.completed"))[0]
    system = fake_groq.requests[0].body["messages"][0]["content"]
    assert "Never store a tent wet" in system
    citation = completed["message"]["metadata"]["citations"][0]
    assert citation["slug"] == "tent-care"
    assert "Caring for your tent: Drying and storing: avoiding mould" in citation["sections"]


async def test_with_nothing_relevant_the_model_is_told_to_say_it_does_not_know(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog, shop_kb: KnowledgeBase
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Question")
    fake_groq.push(Script(text="I don't know, but a person can help."))
    await post(client, customer, ticket, "zzzz qqqq")
    completed = (await events_log.wait_type("ai.completed"))[0]
    system = fake_groq.requests[0].body["messages"][0]["content"]
    assert "NO HELP-CENTER ARTICLE MATCHES THIS QUESTION" in system
    assert "say plainly that you don't know" in system.lower()
    assert completed["message"]["metadata"]["citations"] == []


async def test_with_only_loose_matches_the_model_is_told_they_may_not_answer(
    client: TestClient, make_user: MakeUser, fake_groq: FakeGroq, events_log: EventLog, shop_kb: KnowledgeBase
) -> None:
    # Shares words with the shipping and care articles, answered by none of them.
    question = "Do you have a physical store in Manchester?"
    assert await shop_kb.search(question, 3)
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Shop")
    fake_groq.push(Script(text="I don't know; write talk to a person and a colleague will help."))
    await post(client, customer, ticket, question)
    completed = (await events_log.wait_type("ai.completed"))[0]
    system = fake_groq.requests[0].body["messages"][0]["content"]
    assert "closest does not\nmean relevant" in system
    assert "say plainly that you don't know, and offer a human agent" in system
    assert "Answer only from the help-center articles below" in system
    # What the model was shown is what the reply cites.
    assert completed["message"]["metadata"]["citations"]


def test_the_copilot_is_told_to_say_the_help_center_does_not_cover_it() -> None:
    from chatserver.ai.knowledge import Article
    from chatserver.ai.prompts import PromptBuilder

    builder = PromptBuilder(product_name="Northwind", history_token_budget=6000)
    ticket = {"subject": "Q", "description": "", "status": "open", "priority": "normal"}
    history = [{"author_kind": "customer", "visibility": "public", "body": "Are you hiring?", "metadata": {}}]
    article = Article(id="1", slug="returns", title="Returns", body="Free returns for 60 days.", rank=1.0)
    for articles in ([], [article]):
        copilot = builder.copilot(ticket, {"name": "C"}, history, articles).messages[0]["content"]
        assert "help center does not" in copilot and "talk to a person" not in copilot
        reply = builder.reply(ticket, {"name": "C"}, history, articles).messages[0]["content"]
        assert "offer a human agent" in reply and "talk to a person" in reply


async def test_the_sample_loads_once_and_stays_deleted(client: TestClient) -> None:
    pool = client.app[DB_POOL]
    await clear_kb(client)
    await pool.execute("DELETE FROM app_flags")
    embedder = RetrievalEmbedder()
    count = len(read_kb_dir(SAMPLE_KB_DIR))
    assert await load_sample_once(pool, SAMPLE_KB_DIR, embedder) == count
    assert await pool.fetchval("SELECT count(*) FROM kb_articles") == count
    # An admin deletes the sample; the next start does not bring it back.
    await clear_kb(client)
    assert await load_sample_once(pool, SAMPLE_KB_DIR, embedder) is None
    assert await pool.fetchval("SELECT count(*) FROM kb_articles") == 0


def test_eval_ai_meets_the_thresholds_offline(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CHATSERVER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    assert main(["eval-ai"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for name in (
        "retrieval",
        "retrieval_heldout",
        "retrieval_fresh",
        "retrieval_unseen",
        "retrieval_round3",
        "handoff",
        "handoff_heldout",
        "handoff_round3",
        "handoff_round4",
        "handoff_round5",
        "handoff_round6",
        "retrieval_round4",
    ):
        assert name in out
    assert "hit@3" in out and "false_positive_rate" in out
    assert "answer checks: skipped (no GROQ_API_KEY" in out


async def test_embedding_a_question_twice_uses_the_cache() -> None:
    embedder = RetrievalEmbedder()
    first = await embedder.embed_query("where is my order")
    assert await embedder.embed_query("where is my order") is first
    await asyncio.sleep(0)


def _eval_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path, fake: FakeGroq) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CHATSERVER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.setenv("GROQ_API_KEY", "gsk_test_fake_key")
    monkeypatch.setenv("GROQ_BASE_URL", fake.base_url)
    monkeypatch.setenv("GROQ_MAX_RETRIES", "0")


async def test_with_a_groq_key_eval_ai_checks_the_models_answers(
    fake_groq: FakeGroq,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from chatserver.ai.evaluate import load_set

    _eval_env(monkeypatch, database_url, tmp_path, fake_groq)
    answers = load_set("answers")
    # A model that answers from the articles, and hands off what they do not cover.
    fake_groq.push(*(Script(text=f"Good news: {case['facts'][0]}.") for case in answers["answerable"]))
    fake_groq.push(
        *(
            Script(text="", tool_calls=[ToolCall("handoff_to_human", '{"reason": "not covered"}')])
            for _ in answers["unanswerable"]
        )
    )
    code = await asyncio.get_running_loop().run_in_executor(None, main, ["eval-ai"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "grounded" in out and "cites_right" in out and "offers_human" in out
    # Every request carried the prompt a real reply has: the articles, and the handoff tool.
    assert len(fake_groq.requests) == len(answers["answerable"]) + len(answers["unanswerable"])
    assert "60 days" in fake_groq.requests[0].body["messages"][0]["content"]
    assert fake_groq.requests[0].body["tools"][0]["function"]["name"] == "handoff_to_human"


async def test_eval_ai_fails_when_the_model_invents_answers(
    fake_groq: FakeGroq,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _eval_env(monkeypatch, database_url, tmp_path, fake_groq)
    fake_groq.default = Script(text="Sure, that is possible.")  # never grounded, never offers a person
    code = await asyncio.get_running_loop().run_in_executor(None, main, ["eval-ai"])
    out, err = capsys.readouterr()
    assert code == 1 and "offers_human" in out
    assert "below threshold: answers: grounded" in err and "below threshold: answers: offers_human" in err


async def test_eval_ai_checks_answers_against_any_openai_compatible_server(
    fake_groq: FakeGroq,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from chatserver.ai.evaluate import load_set

    # No Groq key at all: the key comes from the variable named, the server from --base-url,
    # in OpenAI's layout (the version in the base URL, then /chat/completions).
    _eval_env(monkeypatch, database_url, tmp_path, fake_groq)
    monkeypatch.delenv("GROQ_API_KEY")
    monkeypatch.delenv("GROQ_BASE_URL")
    monkeypatch.setenv("OTHER_LLM_KEY", "gsk_test_fake_key")
    answers = load_set("answers")
    fake_groq.push(
        *(Script(text=f"According to our help center: {case['facts'][0]}.") for case in answers["answerable"])
    )
    fake_groq.push(*(Script(text="I don't know; a person from our team can help.") for _ in answers["unanswerable"]))
    argv = ["eval-ai", "--base-url", f"{fake_groq.base_url}/openai/v1/", "--model", "local-model"]
    code = await asyncio.get_running_loop().run_in_executor(None, main, [*argv, "--api-key-env", "OTHER_LLM_KEY"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"answer checks: against {fake_groq.base_url}/openai/v1/chat/completions, model local-model" in out
    assert {r.body["model"] for r in fake_groq.requests} == {"local-model"}


async def test_eval_ai_says_why_the_answer_checks_are_skipped(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CHATSERVER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.delenv("OTHER_LLM_KEY", raising=False)
    code = await asyncio.get_running_loop().run_in_executor(
        None, main, ["eval-ai", "--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "OTHER_LLM_KEY"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "answer checks: skipped (no OTHER_LLM_KEY set" in out and "answers" not in out.split("answer checks")[0]


async def test_with_minilm_turned_off_articles_are_re_embedded_by_wordllama_alone(
    client: TestClient, shop_kb: KnowledgeBase
) -> None:
    assert load_settings({"AI_RETRIEVAL_MINILM": "false"}, read_dotenv=False).ai_retrieval_minilm is False
    pool = client.app[DB_POOL]
    # An instance started with AI_RETRIEVAL_MINILM=false meets vectors of the pair: it re-embeds
    # them with its own model at its first search instead of comparing vectors of two models.
    wordllama_only = KnowledgeBase(pool, RetrievalEmbedder(minilm=False))
    found = [a.slug for a in await wordllama_only.search("where is my parcel", 3)]
    assert "orders" in found, found
    chunks = await pool.fetch("SELECT DISTINCT model, length(embedding) AS size FROM kb_chunks")
    assert [(r["model"], r["size"]) for r in chunks] == [(MODEL_NAME, 256 * 4)]
    assert {r["size"] for r in await pool.fetch("SELECT length(embedding) AS size FROM kb_articles")} == {256 * 4}


async def test_minilm_runs_only_when_full_text_and_wordllama_disagree(
    client: TestClient, shop_kb: KnowledgeBase
) -> None:
    embedder = shop_kb.embedder
    before = embedder.questions_embedded
    # Full text and WordLlama both put the tracking article first: that ranking is kept, and the
    # question never goes through MiniLM (~1 ms of CPU per token before the Groq request).
    assert next(a.slug for a in await shop_kb.search("Where is my order?", 3)) == "orders"
    assert embedder.questions_embedded == before
    # Full text and WordLlama disagree on "can't log in": MiniLM is asked, and the pair decides.
    found = [a.slug for a in await shop_kb.search("can't log in", 3)]
    assert embedder.questions_embedded == before + 1
    assert found[0] == "account", found
    # Asked again: the full vector is cached, nothing is embedded twice.
    await shop_kb.search("can't log in", 3)
    assert embedder.questions_embedded == before + 1


async def test_without_the_shortcut_every_question_goes_through_minilm(
    client: TestClient, shop_kb: KnowledgeBase
) -> None:
    always = KnowledgeBase(client.app[DB_POOL], RetrievalEmbedder(), skip_minilm_when_sure=False)
    assert next(a.slug for a in await always.search("Where is my order?", 3)) == "orders"
    assert always.embedder.questions_embedded == 1
