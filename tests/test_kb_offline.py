"""Out of the box: a first start on an empty database loads the demo shop's sample knowledge base
(KB_SAMPLE_DIR), and with no Groq key the offline responder answers the demo page's questions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from chatserver.ai.knowledge import read_kb_dir
from chatserver.ai.offline import LABEL
from chatserver.app import create_app
from chatserver.keys import AI_SERVICE, DB_POOL
from chatserver.settings import SAMPLE_KB_DIR, Settings, load_settings

from .conftest import MakeUser, create_ticket
from .fake_groq import EventLog, _events_log, ai_settings  # noqa: F401  (_events_log: a fixture)


@pytest.fixture
def settings(settings: Settings, database_url: str) -> Settings:
    # The test database outlives one test: make it look like a first start (no articles, no flag).
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM kb_articles")
        conn.execute("DELETE FROM app_flags")
    return ai_settings(settings, None, kb_sample_dir=SAMPLE_KB_DIR)


async def _knowledge_ready(app: web.Application) -> None:
    """The sample loads in the background after startup (chatserver/ai/setup.py)."""
    ready = app[AI_SERVICE].knowledge_ready
    assert ready is not None
    await ready


async def test_a_first_start_loads_the_shop_sample(client: TestClient) -> None:
    await _knowledge_ready(client.app)
    slugs = {r["slug"] for r in await client.app[DB_POOL].fetch("SELECT slug FROM kb_articles")}
    assert {"orders", "shipping", "returns", "sizing", "warranty", "tent-care", "pack-care"} <= slugs
    assert await client.app[DB_POOL].fetchval("SELECT count(*) FROM app_flags WHERE name = 'kb_sample_loaded'") == 1


async def test_articles_an_admin_deleted_stay_deleted_after_a_restart(
    client: TestClient, make_user: MakeUser, aiohttp_client: Any, settings: Settings
) -> None:
    # `make run` = `python -m chatserver serve` in development: KB_SAMPLE_DIR is kb/ (last test).
    admin = await make_user("admin")
    await _knowledge_ready(client.app)
    page = await (await client.get("/admin/kb/articles", headers=admin.headers)).json()
    assert page["total"] == len(read_kb_dir(SAMPLE_KB_DIR))
    for article in page["articles"]:
        resp = await client.delete(f"/admin/kb/articles/{article['id']}", headers=admin.headers)
        assert resp.status == 204
    # A second start on the same database (a restart, or another instance): nothing comes back.
    again = create_app(settings, bcrypt_rounds=4)
    await aiohttp_client(again)
    await _knowledge_ready(again)
    assert await again[DB_POOL].fetchval("SELECT count(*) FROM kb_articles") == 0
    assert await again[AI_SERVICE].knowledge.search("Where is my order?", 3) == []


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("Where is my order?", "Tracking and changing your order"),
        ("How do I return my tent?", "Returns, exchanges and refunds"),
        ("What size Fjord 45 do I need?", "Sizing and fit guide"),
        ("Is the Ridgeline waterproof?", "Caring for your tent"),
    ],
)
async def test_the_offline_responder_answers_the_demo_shops_questions(
    client: TestClient, make_user: MakeUser, events_log: EventLog, question: str, title: str
) -> None:
    await _knowledge_ready(client.app)
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Shop")
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": question}, headers=customer.headers)
    assert resp.status == 201
    body = (await events_log.wait_type("ai.completed"))[0]["message"]["body"]
    assert body.startswith(LABEL) and f"**{title}**" in body, body


def test_the_sample_folder_defaults_to_kb_in_development_only(tmp_path: Path) -> None:
    base = {"CHATSERVER_DATA_DIR": str(tmp_path), "SECRET_KEY": "k" * 40}
    assert load_settings(base, read_dotenv=False).kb_sample_dir == SAMPLE_KB_DIR
    assert load_settings({**base, "KB_SAMPLE_DIR": ""}, read_dotenv=False).kb_sample_dir is None
    assert load_settings({**base, "KB_SAMPLE_DIR": str(tmp_path)}, read_dotenv=False).kb_sample_dir == tmp_path
    production = {**base, "CHATSERVER_ENV": "production"}
    assert load_settings(production, read_dotenv=False).kb_sample_dir is None


async def test_the_sample_loads_in_a_background_task_of_the_app(client: TestClient) -> None:
    # The sample goes through MiniLM (seconds on a first start) after startup, so the server
    # listens meanwhile; the task ends without an error and searches find the articles.
    ready = client.app[AI_SERVICE].knowledge_ready
    assert ready is not None
    resp = await client.get("/healthz")
    assert resp.status == 200
    await ready
    assert ready.exception() is None
    assert await client.app[AI_SERVICE].knowledge.search("Where is my order?", 3)
