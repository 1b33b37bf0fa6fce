"""/admin/kb/articles: admins list, view, create, edit and delete knowledge-base articles; a save
re-indexes the article, so the next search (on any instance) finds what it now says."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from chatserver.ai.knowledge import KnowledgeBase
from chatserver.keys import AI_SERVICE, DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser, User
from .fake_groq import ai_settings, clear_kb

URL = "/admin/kb/articles"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return ai_settings(settings, None)


@pytest.fixture
async def admin(client: TestClient, make_user: MakeUser) -> User:
    await clear_kb(client)
    return await make_user("admin")


def kb(client: TestClient) -> KnowledgeBase:
    knowledge: KnowledgeBase = client.app[AI_SERVICE].knowledge
    return knowledge


async def test_an_admin_creates_an_article_and_the_next_search_finds_it(client: TestClient, admin: User) -> None:
    body = {"title": "Kayak hire", "body": "## Renting a kayak\n\nKayaks can be hired by the day at our lake shop."}
    resp = await client.post(URL, json=body, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    article = (await resp.json())["article"]
    assert (article["slug"], article["title"]) == ("kayak-hire", "Kayak hire")
    chunks = await client.app[DB_POOL].fetchval("SELECT count(*) FROM kb_chunks WHERE article_id = $1", article["id"])
    assert chunks == 1
    found = await kb(client).search("can I rent a kayak for a day", 3)
    assert found[0].slug == "kayak-hire"
    listing = await (await client.get(URL, headers=admin.headers)).json()
    assert listing["total"] == 1 and [a["slug"] for a in listing["articles"]] == ["kayak-hire"]
    assert "body" not in listing["articles"][0]
    one = await (await client.get(f"{URL}/{article['id']}", headers=admin.headers)).json()
    assert one["article"]["body"] == body["body"]


async def test_an_edit_is_re_indexed_on_save(client: TestClient, admin: User) -> None:
    resp = await client.post(URL, json={"title": "Opening hours", "body": "We open at nine."}, headers=admin.headers)
    article = (await resp.json())["article"]
    resp = await client.patch(
        f"{URL}/{article['id']}",
        json={"body": "Our lake shop also rents paddleboards by the hour."},
        headers=admin.headers,
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["article"]["title"] == "Opening hours"
    found = await kb(client).search("paddleboards", 3)
    assert [a.slug for a in found] == ["opening-hours"]
    assert "paddleboards" in found[0].body and "nine" not in found[0].body


async def test_a_deleted_article_is_no_longer_found(client: TestClient, admin: User) -> None:
    resp = await client.post(URL, json={"title": "Gift wrap", "body": "We gift wrap for free."}, headers=admin.headers)
    article = (await resp.json())["article"]
    assert (await kb(client).search("gift wrap", 3))[0].slug == "gift-wrap"
    assert (await client.delete(f"{URL}/{article['id']}", headers=admin.headers)).status == 204
    assert await kb(client).search("gift wrap", 3) == []
    assert await client.app[DB_POOL].fetchval("SELECT count(*) FROM kb_chunks") == 0
    assert (await client.get(f"{URL}/{article['id']}", headers=admin.headers)).status == 404


async def test_bad_input_gets_a_json_error(client: TestClient, admin: User) -> None:
    ok = {"title": "A", "body": "B", "slug": "dup"}
    assert (await client.post(URL, json=ok, headers=admin.headers)).status == 201
    cases = [
        (client.post(URL, json=ok, headers=admin.headers), 409, "conflict"),
        (client.post(URL, json={**ok, "slug": "Not A Slug!"}, headers=admin.headers), 422, "validation_error"),
        (client.post(URL, json={"title": "No body"}, headers=admin.headers), 422, "validation_error"),
        (client.get(f"{URL}/not-a-uuid", headers=admin.headers), 404, "not_found"),
        (client.get(f"{URL}?limit=0", headers=admin.headers), 422, "validation_error"),
    ]
    for request, status, code in cases:
        resp = await request
        assert resp.status == status, await resp.text()
        assert (await resp.json())["error"]["code"] == code


@pytest.mark.parametrize("role", ["agent", "customer"])
async def test_only_admins_manage_the_knowledge_base(client: TestClient, make_user: MakeUser, role: str) -> None:
    user = await make_user(role)
    assert (await client.get(URL, headers=user.headers)).status == 403
    resp = await client.post(URL, json={"title": "T", "body": "B"}, headers=user.headers)
    assert resp.status == 403


async def test_an_article_url_set_over_rest_is_cited_and_can_be_removed(client: TestClient, admin: User) -> None:
    page = "https://help.example.com/articles/kayaks"
    body = {"title": "Kayak hire", "body": "Kayaks can be hired by the day at our lake shop.", "url": page}
    resp = await client.post(URL, json=body, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    article = (await resp.json())["article"]
    assert article["url"] == page
    [found] = await kb(client).search("can I rent a kayak", 3)
    assert found.citation()["url"] == page
    # Only the url changes: no re-index, yet the next search cites the change.
    resp = await client.patch(f"{URL}/{article['id']}", json={"url": None}, headers=admin.headers)
    assert resp.status == 200 and (await resp.json())["article"]["url"] is None
    [found] = await kb(client).search("can I rent a kayak", 3)
    assert "url" not in found.citation()


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "ftp://example.com/x", "https://a b"])
async def test_an_article_url_other_than_http_is_refused(client: TestClient, admin: User, bad: str) -> None:
    resp = await client.post(URL, json={"title": "Bad", "body": "Body.", "url": bad}, headers=admin.headers)
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["error"]["code"] == "validation_error"
    assert await client.app[DB_POOL].fetchval("SELECT count(*) FROM kb_articles") == 0
