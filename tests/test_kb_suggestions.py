"""Knowledge-base suggestions: agents read the articles and suggest a new one or a new text; the AI
never answers from a suggestion; an admin publishes it (indexed at once) or rejects it. Each
endpoint for each role: anonymous, customer, the author, another agent, an admin, an API key."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.ai.knowledge import KnowledgeBase
from chatserver.keys import AI_SERVICE, DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser, User
from .fake_groq import ai_settings, clear_kb

KAYAKS = {"title": "Kayak rentals", "body": "We rent sea kayaks by the day from our Bristol shop.", "note": "Asked 3x"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return ai_settings(settings, None)


@pytest.fixture
async def admin(client: TestClient, make_user: MakeUser) -> User:
    await clear_kb(client)
    await client.app[DB_POOL].execute("DELETE FROM kb_suggestions")
    return await make_user("admin")


def kb(client: TestClient) -> KnowledgeBase:
    knowledge: KnowledgeBase = client.app[AI_SERVICE].knowledge
    return knowledge


async def call(client: TestClient, method: str, path: str, user: User | None, body: Any = None) -> tuple[int, Any]:
    headers = user.headers if user else {}
    resp = await client.request(method, path, json=body, headers=headers)
    data = await resp.json() if resp.content_type == "application/json" else None
    return resp.status, data


async def suggest(client: TestClient, user: User, body: dict[str, Any]) -> dict[str, Any]:
    status, data = await call(client, "POST", "/kb/suggestions", user, body)
    assert status == 201, data
    suggestion: dict[str, Any] = data["suggestion"]
    return suggestion


async def test_a_suggested_article_is_not_searched_until_an_admin_publishes_it(
    client: TestClient, make_user: MakeUser, admin: User
) -> None:
    agent = await make_user("agent", name="Sam Agent")
    suggestion = await suggest(client, agent, KAYAKS)
    assert suggestion["article"] is None and suggestion["author"]["name"] == "Sam Agent"
    assert suggestion["note"] == "Asked 3x"
    # Waiting for review: the AI does not answer from it.
    assert await kb(client).search("can I rent a sea kayak", 3) == []
    assert await client.app[DB_POOL].fetchval("SELECT count(*) FROM kb_chunks") == 0

    status, listed = await call(client, "GET", "/kb/suggestions", admin)
    assert status == 200 and [s["id"] for s in listed["suggestions"]] == [suggestion["id"]]
    status, published = await call(client, "POST", f"/admin/kb/suggestions/{suggestion['id']}/publish", admin, {})
    assert status == 201, published
    assert published["article"]["slug"] == "kayak-rentals"
    assert [a.slug for a in await kb(client).search("can I rent a sea kayak", 3)][:1] == ["kayak-rentals"]
    # Published once: the suggestion is gone.
    assert (await call(client, "GET", f"/kb/suggestions/{suggestion['id']}", agent))[0] == 404
    assert (await call(client, "POST", f"/admin/kb/suggestions/{suggestion['id']}/publish", admin, {}))[0] == 404


async def test_a_suggested_edit_replaces_the_articles_text_when_published(
    client: TestClient, make_user: MakeUser, admin: User
) -> None:
    status, created = await call(
        client,
        "POST",
        "/admin/kb/articles",
        admin,
        {"title": "Gift wrap", "body": "We gift wrap for £2.", "url": "https://help.example.com/gift"},
    )
    assert status == 201
    article = created["article"]
    agent = await make_user("agent")
    # Agents read the knowledge base to suggest an edit.
    status, page = await call(client, "GET", "/kb/articles", agent)
    assert status == 200 and [a["id"] for a in page["articles"]] == [article["id"]]
    status, read = await call(client, "GET", f"/kb/articles/{article['id']}", agent)
    assert status == 200 and read["article"]["body"] == "We gift wrap for £2."

    edit = await suggest(
        client, agent, {"article_id": article["id"], "title": "Gift wrap", "body": "Gift wrapping is free in December."}
    )
    assert edit["article"] == {"id": article["id"], "slug": "gift-wrap", "title": "Gift wrap"}
    # Not live yet: the article still says what it said.
    assert "£2" in (await kb(client).search("gift wrap", 1))[0].body

    status, published = await call(
        client, "POST", f"/admin/kb/suggestions/{edit['id']}/publish", admin, {"title": "Gift wrapping"}
    )
    assert status == 200, published
    assert published["article"]["id"] == article["id"] and published["article"]["title"] == "Gift wrapping"
    assert published["article"]["url"] == "https://help.example.com/gift"  # kept: the edit named none
    [found] = await kb(client).search("is gift wrapping free", 3)
    assert "free in December" in found.body and "£2" not in found.body


async def test_agents_see_and_delete_only_their_own_suggestions_and_admins_reject_any(
    client: TestClient, make_user: MakeUser, admin: User
) -> None:
    author, other = await make_user("agent"), await make_user("agent")
    mine = await suggest(client, author, KAYAKS)
    second = await suggest(client, author, {"title": "Bike racks", "body": "We fit bike racks."})
    assert (await call(client, "GET", "/kb/suggestions", other))[1]["suggestions"] == []
    assert len((await call(client, "GET", "/kb/suggestions", author))[1]["suggestions"]) == 2
    assert (await call(client, "GET", f"/kb/suggestions/{mine['id']}", other))[0] == 404
    assert (await call(client, "DELETE", f"/kb/suggestions/{mine['id']}", other))[0] == 404
    assert (await call(client, "GET", f"/kb/suggestions/{mine['id']}", admin))[0] == 200
    # Withdrawn by its author; rejected by an admin.
    assert (await call(client, "DELETE", f"/kb/suggestions/{mine['id']}", author))[0] == 204
    assert (await call(client, "DELETE", f"/kb/suggestions/{second['id']}", admin))[0] == 204
    assert await client.app[DB_POOL].fetchval("SELECT count(*) FROM kb_suggestions") == 0
    assert await client.app[DB_POOL].fetchval("SELECT count(*) FROM kb_articles") == 0


async def test_bad_suggestions_get_a_json_error(client: TestClient, make_user: MakeUser, admin: User) -> None:
    agent = await make_user("agent")
    missing = "00000000-0000-0000-0000-000000000000"
    cases = [
        ("POST", "/kb/suggestions", {"title": "T"}, 422),
        ("POST", "/kb/suggestions", {"title": "T", "body": "B", "article_id": "nope"}, 422),
        ("POST", "/kb/suggestions", {"title": "T", "body": "B", "article_id": missing}, 404),
        ("POST", "/kb/suggestions", {"title": "T", "body": "B", "url": "javascript:alert(1)"}, 422),
        ("POST", "/kb/suggestions", [1, 2], 422),
        ("GET", "/kb/suggestions/nope", None, 404),
        ("GET", f"/kb/suggestions/{missing}", None, 404),
        ("GET", "/kb/articles?limit=0", None, 422),
        ("GET", "/kb/articles?color=red", None, 422),
    ]
    for method, path, body, expected in cases:
        status, data = await call(client, method, path, agent, body)
        assert status == expected, (path, body, data)
        assert set(data["error"]) >= {"code", "message"}
    # Publishing under a slug that is taken: 409, and the suggestion waits on.
    await call(client, "POST", "/admin/kb/articles", admin, {"title": "Kayak rentals", "body": "Old."})
    suggestion = await suggest(client, agent, KAYAKS)
    status, data = await call(client, "POST", f"/admin/kb/suggestions/{suggestion['id']}/publish", admin, {})
    assert status == 409 and data["error"]["code"] == "conflict"
    status, data = await call(
        client, "POST", f"/admin/kb/suggestions/{suggestion['id']}/publish", admin, {"slug": "Bad Slug"}
    )
    assert status == 422
    status, data = await call(
        client, "POST", f"/admin/kb/suggestions/{suggestion['id']}/publish", admin, {"slug": "kayaks"}
    )
    assert status == 201 and data["article"]["slug"] == "kayaks"


async def new_key(client: TestClient, admin: User, scopes: list[str]) -> str:
    resp = await client.post("/admin/api-keys", json={"name": "CRM", "scopes": scopes}, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    key: str = (await resp.json())["api_key"]["key"]
    return key


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/kb/articles", None),
        ("GET", "/kb/articles/{article}", None),
        ("GET", "/kb/suggestions", None),
        ("POST", "/kb/suggestions", {"title": "T", "body": "B"}),
        ("GET", "/kb/suggestions/{suggestion}", None),
        ("DELETE", "/kb/suggestions/{suggestion}", None),
        ("POST", "/admin/kb/suggestions/{suggestion}/publish", {}),
    ],
)
async def test_who_may_call_each_endpoint(
    client: TestClient, make_user: MakeUser, admin: User, method: str, path: str, body: Any
) -> None:
    agent = await make_user("agent")
    _, created = await call(client, "POST", "/admin/kb/articles", admin, {"title": "A", "body": "Text."})
    article = created["article"]["id"]
    expected = {
        "anonymous": 401,
        "customer": 403,
        "api key": 403,
        "agent": 403 if "/admin/" in path else {"POST": 201, "DELETE": 204}.get(method, 200),
        "admin": {"POST": 201, "DELETE": 204}.get(method, 200),
    }
    customer = await make_user("customer")
    key = await new_key(client, admin, ["tickets:read", "tickets:write", "messages:write"])
    for who in ("anonymous", "customer", "api key", "agent", "admin"):
        suggestion = (await suggest(client, agent, {"title": f"S {who}", "body": "B"}))["id"]
        url = path.format(article=article, suggestion=suggestion)
        headers = {
            "anonymous": {},
            "customer": customer.headers,
            "api key": {"Authorization": f"Bearer {key}"},
            "agent": agent.headers,
            "admin": admin.headers,
        }[who]
        resp = await client.request(method, url, json=body, headers=headers)
        assert resp.status == expected[who], (who, await resp.text())
        if resp.status >= 400:
            assert "error" in await resp.json()


async def test_the_specs_url_and_slug_patterns_agree_with_the_server(
    client: TestClient, make_user: MakeUser, admin: User
) -> None:
    import re

    from chatserver.openapi import SCHEMAS

    agent = await make_user("agent")
    url_pattern = re.compile(SCHEMAS["KbSuggestRequest"]["properties"]["url"]["pattern"])
    for url in ("https://help.example/a", "HTTP://X", " https://a.example ", "ftp://x", "javascript:alert(1)", "0"):
        status, _ = await call(client, "POST", "/kb/suggestions", agent, {"title": "T", "body": "B", "url": url})
        assert (status == 201) == bool(url_pattern.search(url)), (url, status)
    slug_pattern = re.compile(SCHEMAS["KbCreateArticleRequest"]["properties"]["slug"]["pattern"])
    for i, slug in enumerate(("ok-slug", "a_b", "Bad", "-x", " y ", "ü")):
        status, _ = await call(
            client, "POST", "/admin/kb/articles", admin, {"title": f"T{i}", "body": "B", "slug": slug}
        )
        assert (status == 201) == bool(slug_pattern.search(slug)), (slug, status)
