"""GET /tickets?q=: full-text search across subjects, descriptions, messages (internal notes for
staff only) and customers' names and emails, with the list's filters, its cursor and match snippets."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.db import search as search_db
from chatserver.keys import DB_POOL
from chatserver.services import search as search_service
from chatserver.services.search import MAX_QUERY_CHARS, highlight_ranges, snippet, tsquery_text
from chatserver.services.search_indexer import index_until_caught_up
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(tickets_per_customer_per_hour=1000, open_tickets_per_customer=1000)


async def search(client: TestClient, user: User, q: str, extra: str = "") -> dict[str, Any]:
    """GET /tickets?q=... (and the query string `extra`)."""
    resp = await client.get(f"/tickets?{extra}", params={"q": q}, headers=user.headers)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def post(client: TestClient, user: User, ticket_id: str, body: str, internal: bool = False) -> dict[str, Any]:
    resp = await client.post(
        f"/tickets/{ticket_id}/messages", json={"body": body, "internal": internal}, headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    message: dict[str, Any] = (await resp.json())["message"]
    return message


def found(body: dict[str, Any]) -> list[str]:
    return [t["id"] for t in body["tickets"]]


def highlighted(match: dict[str, Any]) -> list[str]:
    chars = list(match["snippet"])
    return ["".join(chars[a:b]) for a, b in match["highlights"]]


# ---- what is found ----------------------------------------------------------------------------


async def test_agent_finds_a_ticket_by_a_word_of_a_message_with_its_snippet(
    client: TestClient, make_user: MakeUser
) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    ticket = await create_ticket(client, customer, "Order question", message="Hello there")
    other = await create_ticket(client, customer, "Something else", message="Nothing to see")
    message = await post(client, customer, ticket["id"], "My parcel was refunded twice, order ZX-1234?")
    body = await search(client, agent, "refund")
    assert found(body) == [ticket["id"]]
    assert other["id"] not in found(body)
    match = body["tickets"][0]["match"]
    assert match["field"] == "message"
    assert match["message_id"] == message["id"] and match["seq"] == message["seq"]
    assert highlighted(match) == ["refund"]
    assert body["terms"] == ["refund"]


async def test_every_word_must_match_and_words_match_by_prefix_in_any_case(
    client: TestClient, make_user: MakeUser
) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    both = await create_ticket(client, customer, "Billing", message="The INVOICE for March is missing")
    one = await create_ticket(client, customer, "Billing", message="The invoice for April")
    assert found(await search(client, agent, "invoice mar")) == [both["id"]]
    assert set(found(await search(client, agent, "Invoic"))) == {both["id"], one["id"]}


async def test_subject_description_and_customer_matches_say_which_field(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer", email="zoe.quinlan@shop.example", name="Zoë Quinlan")
    agent = await make_user("agent")
    by_subject = await create_ticket(client, customer, "Broken kettle lid")
    by_description = await create_ticket(client, customer, "Help", description="The toaster sparks")
    assert (await search(client, agent, "kettle"))["tickets"][0]["match"]["field"] == "subject"
    match = (await search(client, agent, "toaster"))["tickets"][0]["match"]
    assert match["field"] == "description" and highlighted(match) == ["toaster"]
    by_name = await search(client, agent, "quinlan")
    assert set(found(by_name)) == {by_subject["id"], by_description["id"]}
    assert {t["match"]["field"] for t in by_name["tickets"]} == {"customer"}
    assert highlighted(by_name["tickets"][0]["match"]) == ["Quinlan", "quinlan"]
    assert len(found(await search(client, agent, "zoe.quinlan@shop.example"))) == 2
    assert len(found(await search(client, agent, "shop.example"))) == 2


async def test_internal_notes_are_searched_for_staff_only(client: TestClient, make_user: MakeUser) -> None:
    customer, agent, admin = await make_user("customer"), await make_user("agent"), await make_user("admin")
    ticket = await create_ticket(client, customer, "Delivery", message="Where is my parcel?")
    await post(client, agent, ticket["id"], "Customer is a known chargeback risk", internal=True)
    for staff in (agent, admin):
        body = await search(client, staff, "chargeback")
        assert found(body) == [ticket["id"]]
        assert body["tickets"][0]["match"]["visibility"] == "internal"
    assert found(await search(client, customer, "chargeback")) == []
    # A note and a public message in one ticket: the customer's snippet is the public one.
    await post(client, agent, ticket["id"], "Parcel note: chargeback filed", internal=True)
    body = await search(client, customer, "parcel")
    assert found(body) == [ticket["id"]]
    assert body["tickets"][0]["match"]["snippet"] == "Where is my parcel?"


async def test_customers_find_only_their_own_tickets_and_not_by_customer_names(
    client: TestClient, make_user: MakeUser
) -> None:
    alice = await make_user("customer", name="Alice Zimmerwald")
    bob = await make_user("customer")
    mine = await create_ticket(client, alice, "Passport photo")
    await create_ticket(client, bob, "Passport renewal")
    assert found(await search(client, alice, "passport")) == [mine["id"]]
    assert found(await search(client, bob, "zimmerwald")) == []
    assert found(await search(client, alice, "zimmerwald")) == []


async def test_search_combines_with_filters_and_pages_with_the_cursor(client: TestClient, make_user: MakeUser) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    tickets = [await create_ticket(client, customer, f"Printer jam {i}") for i in range(5)]
    await create_ticket(client, customer, "Scanner issue")
    resp = await client.patch(f"/tickets/{tickets[0]['id']}", json={"status": "pending"}, headers=agent.headers)
    assert resp.status == 200
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        query = "status=open&limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = await search(client, agent, "printer", extra=query)
        assert len(body["tickets"]) <= 2
        seen += found(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [t["id"] for t in reversed(tickets[1:])]
    pending = await search(client, agent, "printer", extra="status=pending")
    assert found(pending) == [tickets[0]["id"]]


async def test_the_console_inbox_searches_too_and_puts_the_match_on_the_row(
    client: TestClient, make_user: MakeUser
) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    ticket = await create_ticket(client, customer, "Warranty", message="The hinge cracked")
    resp = await client.get("/console/api/inbox", params={"q": "hinge", "status": ""}, headers=agent.headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [row["ticket"]["id"] for row in body["tickets"]] == [ticket["id"]]
    assert body["tickets"][0]["match"]["field"] == "message"
    assert "match" not in body["tickets"][0]["ticket"]


# ---- what cannot go wrong ---------------------------------------------------------------------


@pytest.mark.parametrize("q", ["'", "&|!", "\\", "a:*", "(", "!!!", "''''", ":*|", "<->"])
async def test_query_syntax_characters_are_never_parsed_as_tsquery(
    client: TestClient, make_user: MakeUser, q: str
) -> None:
    agent = await make_user("agent")
    resp = await client.get("/tickets", params={"q": q}, headers=agent.headers)
    assert resp.status in (200, 422), await resp.text()
    if resp.status == 422:
        assert (await resp.json())["error"]["code"] == "validation_error"


@pytest.mark.parametrize("q", ["it's", "o'brien & co", "a\\b", "x | y", "!not", "50% off", "c++"])
async def test_queries_with_quotes_and_operators_find_what_they_say(
    client: TestClient, make_user: MakeUser, q: str
) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    ticket = await create_ticket(client, customer, "Odd", message=f"Literally: {q} here")
    assert found(await search(client, agent, q)) == [ticket["id"]]


async def test_too_long_too_many_words_or_no_words_is_a_422_naming_q(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    for q in ("x" * (MAX_QUERY_CHARS + 1), "a b c d e f g h i", "&|!", "a\x00b"):
        resp = await client.get("/tickets", params={"q": q}, headers=agent.headers)
        assert resp.status == 422, q
        assert "q" in (await resp.json())["error"]["details"]["fields"]


async def test_blank_q_is_the_plain_list(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Anything")
    resp = await client.get("/tickets", params={"q": "  "}, headers=customer.headers)
    body = await resp.json()
    assert found(body) == [ticket["id"]] and "terms" not in body


async def test_search_needs_a_sign_in(client: TestClient) -> None:
    assert (await client.get("/tickets", params={"q": "x"})).status == 401


# ---- the pieces -------------------------------------------------------------------------------


def test_tsquery_text_quotes_every_lexeme() -> None:
    assert tsquery_text(["it's", "a\\b", "x"]) == "'it''s':* & 'a\\\\b':* & 'x'"


def test_highlights_start_at_words_and_ignore_case() -> None:
    assert highlight_ranges("Refunds, prerefund, REFUND", ["refund"]) == [(0, 6), (20, 26)]


def test_snippets_are_cut_around_the_first_match_with_offsets_into_the_snippet() -> None:
    text = "word " * 40 + "the\nneedle is here " + "tail " * 60
    result = snippet(text, ["needle"])
    assert result["snippet"].startswith("…") and result["snippet"].endswith("…")
    (start, end), *_ = result["highlights"]
    assert result["snippet"][start:end] == "needle"
    assert "\n" not in result["snippet"]


async def test_a_common_word_is_searched_window_by_window_with_the_same_pages(
    client: TestClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a search for a word in thousands of messages does (services/search.py find_tickets),
    forced here on a few tickets: the same tickets, pages and matches as collecting every match."""
    customer = await make_user("customer", name="Petra Window")
    agent = await make_user("agent")
    tickets = []
    for i in range(7):
        ticket = await create_ticket(client, customer, f"Case {i}", message=f"filler text {i}")
        if i % 2 == 0:
            await post(client, customer, ticket["id"], f"The lantern {i} flickers")
        tickets.append(ticket)
    await create_ticket(client, customer, "Lantern in the subject")

    async def pages(q: str) -> list[list[tuple[str, str | None]]]:
        out, cursor = [], None
        for _ in range(20):
            extra = "limit=2" + (f"&cursor={cursor}" if cursor else "")
            body = await search(client, agent, q, extra=extra)
            out.append([(t["id"], t["match"]["field"]) for t in body["tickets"]])
            cursor = body["next_cursor"]
            if cursor is None:
                return out
        raise AssertionError("pagination did not end")

    by_union = {q: await pages(q) for q in ("lantern", "window", "filler")}
    monkeypatch.setattr(search_service, "UNION_MAX_CANDIDATES", -1)
    monkeypatch.setattr(search_service, "WINDOW_MIN", 1)
    monkeypatch.setattr(search_service, "WINDOW_MAX", 3)
    for q, expected in by_union.items():
        assert await pages(q) == expected, q
    assert sum(len(page) for page in by_union["lantern"]) == 5
    assert sum(len(page) for page in by_union["window"]) == 8


async def test_the_estimate_follows_each_query_even_from_a_cached_statement(
    client: TestClient, make_user: MakeUser
) -> None:
    """find_tickets picks its way from estimate_candidates, an EXPLAIN that asyncpg prepares once
    per connection: PostgreSQL must plan it with each query's own words, not a generic plan."""
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Seed")
    pool = client.app[DB_POOL]
    # 2,000 tickets with one message each, as the message statements leave them (last_seq bumped),
    # then their documents by the indexer: the estimate counts matching tickets.
    await pool.execute(
        """WITH made AS (
               INSERT INTO tickets (customer_id, subject, last_seq)
               SELECT customer_id, 'Copy ' || g, 1 FROM tickets, generate_series(1, 2000) g WHERE id = $1
               RETURNING id, subject)
           INSERT INTO messages (ticket_id, seq, author_kind, body)
           SELECT id, 1, 'customer', CASE WHEN subject = 'Copy 1' THEN 'rareword here' ELSE 'commonword ' || subject END
           FROM made""",
        uuid.UUID(ticket["id"]),
    )
    await index_until_caught_up(pool)
    await pool.execute("ANALYZE ticket_search")
    await pool.execute("ANALYZE tickets")
    async with pool.acquire() as conn:
        for _ in range(8):  # past the 5 executions after which a generic plan may be chosen
            common = (await search_db.estimate_candidates(conn, "'commonword':*")).by_messages
            rare = (await search_db.estimate_candidates(conn, "'rareword':*")).by_messages
            assert common > 1000 > 10 > rare, (common, rare)
