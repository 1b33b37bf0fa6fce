"""No GROQ_API_KEY: the offline responder answers from the knowledge base, labelled as such,
through the same events and endpoints; and `python -m chatserver load-kb` fills that base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.__main__ import main
from chatserver.ai.knowledge import parse_markdown, read_kb_dir, store_articles
from chatserver.ai.offline import LABEL, OFFLINE_MODEL
from chatserver.keys import DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser, create_ticket
from .fake_groq import EventLog, _events_log, ai_settings, clear_kb, read_sse, sse_text  # noqa: F401

KB_DIR = Path(__file__).resolve().parent / "kb"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return ai_settings(settings, None)


@pytest.fixture
async def sample_kb(client: TestClient) -> None:
    await clear_kb(client)
    await store_articles(client.app[DB_POOL], read_kb_dir(KB_DIR))


async def test_without_a_key_the_best_article_answers_clearly_labelled(
    client: TestClient, make_user: MakeUser, events_log: EventLog, sample_kb: None
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Locked out")
    resp = await client.post(
        f"/tickets/{ticket['id']}/messages", json={"body": "I forgot my password"}, headers=customer.headers
    )
    assert resp.status == 201
    completed = (await events_log.wait_type("ai.completed"))[0]
    message = completed["message"]
    assert message["body"].startswith(LABEL)
    assert "Resetting your password" in message["body"]
    assert "Forgot password?" in message["body"]
    assert message["metadata"]["model"] == OFFLINE_MODEL
    assert message["metadata"]["offline"] is True
    assert message["metadata"]["citations"][0]["slug"] == "reset-password"
    # The same event flow as a model's reply: started, deltas, completed.
    assert events_log.frames("ai.started")[0]["reply_id"] == completed["reply_id"]
    assert events_log.text_of(completed["reply_id"]) == message["body"]
    # And the same SSE endpoint.
    events = await read_sse(await client.get(f"/tickets/{ticket['id']}/ai-response", headers=customer.headers))
    assert events[-1][0] == "completed" and events[-1][1]["text"] == message["body"]


async def test_sse_streams_an_offline_reply_too(client: TestClient, make_user: MakeUser, sample_kb: None) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Export", message="How do I export my notes?")
    events = await read_sse(await client.get(f"/tickets/{ticket['id']}/ai-response", headers=customer.headers))
    assert events[-1][0] == "completed"
    text = events[-1][1]["text"]
    assert "Exporting your notes" in text
    if any(name == "delta" for name, _ in events):
        assert sse_text(events) == text


async def test_no_matching_article_says_so_and_offers_a_person(
    client: TestClient, make_user: MakeUser, events_log: EventLog
) -> None:
    await clear_kb(client)
    customer = await make_user("customer")
    await create_ticket(client, customer, "Odd", message="Qwxyz frobnication?")
    completed = (await events_log.wait_type("ai.completed"))[0]
    assert completed["message"]["body"].startswith(LABEL)
    assert "talk to a person" in completed["message"]["body"]
    assert completed["message"]["metadata"]["citations"] == []


async def test_the_offline_copilot_suggests_from_the_knowledge_base(
    client: TestClient, make_user: MakeUser, events_log: EventLog, sample_kb: None
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer, "2FA", message="I lost my phone with the authenticator app")
    await events_log.wait_type("ai.completed")
    resp = await client.post(f"/tickets/{ticket['id']}/copilot", headers=agent.headers)
    assert resp.status == 202
    reply_id = (await resp.json())["reply_id"]
    await events_log.wait_for(lambda: any(f["reply_id"] == reply_id for f in events_log.frames("ai.completed")))
    final = next(f for f in events_log.frames("ai.completed") if f["reply_id"] == reply_id)
    assert final["kind"] == "copilot"
    assert "Two-factor authentication" in final["text"]


def test_markdown_articles_take_their_title_from_the_first_heading(tmp_path: Path) -> None:
    (tmp_path / "My-Article.md").write_text("\n# A Title\n\nBody text.\n")
    (tmp_path / "untitled.md").write_text("Just a body.")
    assert parse_markdown(tmp_path / "My-Article.md") == ("my-article", "A Title", "Body text.", None)
    assert parse_markdown(tmp_path / "untitled.md") == ("untitled", "Untitled", "Just a body.", None)


async def test_load_kb_command_upserts_and_prunes(
    client: TestClient,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await clear_kb(client)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CHATSERVER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    pool = client.app[DB_POOL]
    count = len(list(KB_DIR.glob("*.md")))

    def run(*args: str) -> str:
        # The command runs its own event loop: keep it off this test's loop.
        assert main(["load-kb", *args]) == 0
        return capsys.readouterr().out

    import asyncio

    out = await asyncio.get_running_loop().run_in_executor(None, run, str(KB_DIR))
    assert f"{count} inserted" in out
    assert await pool.fetchval("SELECT count(*) FROM kb_articles") == count
    out = await asyncio.get_running_loop().run_in_executor(None, run, str(KB_DIR))
    assert f"{count} unchanged" in out

    small = tmp_path / "kb"
    small.mkdir()
    (small / "reset-password.md").write_text("# Resetting your password\n\nNew text.\n")
    out = await asyncio.get_running_loop().run_in_executor(None, run, str(small), "--prune")
    assert "1 updated" in out and f"{count - 1} deleted" in out
    rows: list[Any] = await pool.fetch("SELECT slug, body FROM kb_articles")
    assert [(r["slug"], r["body"]) for r in rows] == [("reset-password", "New text.")]


def test_load_kb_refuses_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load-kb", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
