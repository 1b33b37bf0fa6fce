"""/tickets/{id}/messages: posting (idempotent by client_id, seq monotonic per ticket), history
paging, internal notes, and a customer's message reopening a closed ticket."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.keys import DB_POOL

from .conftest import MakeUser, User, create_ticket


async def post(client: TestClient, user: User, ticket: dict[str, Any], **body: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json=body, headers=user.headers)
    return resp.status, await resp.json()


async def history(client: TestClient, user: User, ticket: dict[str, Any], query: str = "") -> dict[str, Any]:
    resp = await client.get(f"/tickets/{ticket['id']}/messages{query}", headers=user.headers)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def stored_count(client: TestClient, ticket: dict[str, Any]) -> int:
    count: int = await client.app[DB_POOL].fetchval(
        "SELECT count(*) FROM messages WHERE ticket_id = $1", uuid.UUID(ticket["id"])
    )
    return count


async def get_ticket(client: TestClient, user: User, ticket: dict[str, Any]) -> dict[str, Any]:
    ticket_now: dict[str, Any] = (await (await client.get(f"/tickets/{ticket['id']}", headers=user.headers)).json())[
        "ticket"
    ]
    return ticket_now


# ---- posting and seq ------------------------------------------------------------------------


async def test_posting_returns_201_and_seqs_count_up_per_ticket(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    first, second = await create_ticket(client, customer, "one"), await create_ticket(client, customer, "two")
    status, body = await post(client, customer, first, body="  hello  ")
    assert status == 201
    assert body["created"] is True
    message = body["message"]
    assert (message["seq"], message["body"], message["author_id"]) == (1, "hello", customer.id)
    assert (message["author_kind"], message["visibility"], message["client_id"]) == ("customer", "public", None)
    assert (await post(client, agent, first, body="hi"))[1]["message"]["seq"] == 2
    assert (await post(client, agent, first, body="?"))[1]["message"]["author_kind"] == "agent"
    assert (await post(client, customer, second, body="other ticket"))[1]["message"]["seq"] == 1
    assert (await get_ticket(client, customer, first))["last_seq"] == 3


async def test_concurrent_posts_get_distinct_contiguous_seqs(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    sends = [post(client, customer if i % 2 else agent, ticket, body=f"m{i}") for i in range(20)]
    results = await asyncio.gather(*sends)
    assert all(status == 201 for status, _ in results)
    assert sorted(body["message"]["seq"] for _, body in results) == list(range(1, 21))
    listed = await history(client, agent, ticket, "?limit=200")
    assert [m["seq"] for m in listed["messages"]] == list(range(1, 21))


# ---- idempotency ----------------------------------------------------------------------------


async def test_a_retry_with_the_same_client_id_returns_the_original(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    status1, first = await post(client, customer, ticket, body="Where is my order?", client_id="c-42")
    status2, again = await post(client, customer, ticket, body="Where is my order?", client_id="c-42")
    assert (status1, status2) == (201, 200)
    assert (first["created"], again["created"]) == (True, False)
    assert again["message"] == first["message"]
    assert (await get_ticket(client, customer, ticket))["last_seq"] == 1, "a retry must not use up a seq"
    assert (await post(client, customer, ticket, body="next"))[1]["message"]["seq"] == 2
    assert await stored_count(client, ticket) == 2


async def test_concurrent_identical_posts_store_exactly_one(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    results = await asyncio.gather(
        *(post(client, customer, ticket, body="double click", client_id="dup") for _ in range(8))
    )
    assert sorted(status for status, _ in results) == [200] * 7 + [201]
    assert len({body["message"]["id"] for _, body in results}) == 1
    assert await stored_count(client, ticket) == 1
    assert (await get_ticket(client, customer, ticket))["last_seq"] == 1
    assert (await post(client, customer, ticket, body="after"))[1]["message"]["seq"] == 2


async def test_client_ids_are_scoped_to_author_and_ticket(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket, other_ticket = await create_ticket(client, customer), await create_ticket(client, customer)
    assert (await post(client, customer, ticket, body="a", client_id="same"))[0] == 201
    assert (await post(client, agent, ticket, body="b", client_id="same"))[0] == 201
    assert (await post(client, customer, other_ticket, body="c", client_id="same"))[0] == 201
    assert await stored_count(client, ticket) == 2


# ---- history --------------------------------------------------------------------------------


@pytest.fixture
async def conversation(client: TestClient, make_user: MakeUser) -> dict[str, Any]:
    """Seven messages: public 1, 2, note 3, public 4, 5, note 6, public 7."""
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    for seq in range(1, 8):
        internal = seq in (3, 6)
        author = agent if internal or seq % 2 == 0 else customer
        status, _ = await post(client, author, ticket, body=f"m{seq}", **({"internal": True} if internal else {}))
        assert status == 201
    return {"customer": customer, "agent": agent, "ticket": ticket}


def seqs(page: dict[str, Any]) -> list[int]:
    return [m["seq"] for m in page["messages"]]


async def test_internal_notes_are_hidden_from_customers(client: TestClient, conversation: dict[str, Any]) -> None:
    customer, agent, ticket = conversation["customer"], conversation["agent"], conversation["ticket"]
    theirs = await history(client, customer, ticket)
    assert seqs(theirs) == [1, 2, 4, 5, 7]
    assert all(m["visibility"] == "public" for m in theirs["messages"])
    assert "m3" not in str(theirs)
    staff = await history(client, agent, ticket)
    assert seqs(staff) == [1, 2, 3, 4, 5, 6, 7]
    assert [m["visibility"] for m in staff["messages"] if m["seq"] in (3, 6)] == ["internal", "internal"]
    assert theirs["last_seq"] == staff["last_seq"] == 7


async def test_customers_cannot_write_internal_notes(client: TestClient, conversation: dict[str, Any]) -> None:
    status, body = await post(client, conversation["customer"], conversation["ticket"], body="x", internal=True)
    assert status == 403
    assert body["error"]["code"] == "forbidden"


async def test_paging_forward_with_after_seq(client: TestClient, conversation: dict[str, Any]) -> None:
    customer, agent, ticket = conversation["customer"], conversation["agent"], conversation["ticket"]
    page = await history(client, agent, ticket, "?after_seq=2&limit=3")
    assert (seqs(page), page["has_more"]) == ([3, 4, 5], True)
    page = await history(client, agent, ticket, "?after_seq=5&limit=2")
    assert (seqs(page), page["has_more"]) == ([6, 7], False)
    page = await history(client, agent, ticket, "?after_seq=7")
    assert (seqs(page), page["has_more"]) == ([], False)
    # Customers page over what they can see: the notes neither appear nor count.
    page = await history(client, customer, ticket, "?after_seq=2&limit=2")
    assert (seqs(page), page["has_more"]) == ([4, 5], True)
    page = await history(client, customer, ticket, "?after_seq=5&limit=1")
    assert (seqs(page), page["has_more"]) == ([7], False)


async def test_paging_back_with_before_seq(client: TestClient, conversation: dict[str, Any]) -> None:
    customer, agent, ticket = conversation["customer"], conversation["agent"], conversation["ticket"]
    page = await history(client, agent, ticket, "?before_seq=8&limit=3")
    assert (seqs(page), page["has_more"]) == ([5, 6, 7], True)
    page = await history(client, agent, ticket, "?before_seq=5&limit=4")
    assert (seqs(page), page["has_more"]) == ([1, 2, 3, 4], False)
    page = await history(client, customer, ticket, "?before_seq=7&limit=2")
    assert (seqs(page), page["has_more"]) == ([4, 5], True)
    page = await history(client, customer, ticket, "?before_seq=1")
    assert (seqs(page), page["has_more"]) == ([], False)


async def test_after_and_before_together_are_refused(client: TestClient, conversation: dict[str, Any]) -> None:
    resp = await client.get(
        f"/tickets/{conversation['ticket']['id']}/messages?after_seq=1&before_seq=5",
        headers=conversation["agent"].headers,
    )
    assert resp.status == 422
    assert "not both" in (await resp.json())["error"]["message"]


# ---- closed tickets ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["closed", "resolved"])
async def test_a_customer_writing_on_a_finished_ticket_reopens_it(
    client: TestClient, make_user: MakeUser, status: str
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    await client.patch(f"/tickets/{ticket['id']}", json={"status": status}, headers=agent.headers)
    code, _ = await post(client, customer, ticket, body="It broke again")
    assert code == 201
    assert (await get_ticket(client, customer, ticket))["status"] == "open"


async def test_an_agent_writing_on_a_closed_ticket_leaves_it_closed(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    await client.patch(f"/tickets/{ticket['id']}", json={"status": "closed"}, headers=customer.headers)
    code, _ = await post(client, agent, ticket, body="For the record")
    assert code == 201
    assert (await get_ticket(client, customer, ticket))["status"] == "closed"


async def test_an_agent_answer_ends_waiting_for_agent_but_a_note_does_not(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    await client.app[DB_POOL].execute(
        "UPDATE tickets SET waiting_for_agent = true, ai_enabled = false WHERE id = $1", uuid.UUID(ticket["id"])
    )
    code, _ = await post(client, agent, ticket, body="looking into it", internal=True)
    assert code == 201
    assert (await get_ticket(client, customer, ticket))["waiting_for_agent"] is True
    code, _ = await post(client, agent, ticket, body="Hi, I'm Alex and I can help")
    assert code == 201
    assert (await get_ticket(client, customer, ticket))["waiting_for_agent"] is False


async def test_a_retried_message_does_not_reopen_a_ticket_closed_since(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    assert (await post(client, customer, ticket, body="thanks", client_id="bye"))[0] == 201
    await client.patch(f"/tickets/{ticket['id']}", json={"status": "closed"}, headers=customer.headers)
    assert (await post(client, customer, ticket, body="thanks", client_id="bye"))[0] == 200
    assert (await get_ticket(client, customer, ticket))["status"] == "closed"


# ---- body validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({}, "body", "is required"),
        ({"body": "   "}, "body", "must not be empty"),
        ({"body": "x" * 10_001}, "body", "must be at most 10000 characters"),
        ({"body": 5}, "body", "must be a string"),
        ({"body": "nul\x00byte"}, "body", "must not contain NUL characters"),
        ({"body": "ok", "client_id": ""}, "client_id", "must not be empty"),
        ({"body": "ok", "client_id": "c" * 101}, "client_id", "must be at most 100 characters"),
        ({"body": "ok", "client_id": 7}, "client_id", "must be a string"),
        ({"body": "ok", "internal": "yes"}, "internal", "must be true or false"),
        ({"body": "ok", "seq": 99}, "seq", "unknown field"),
    ],
)
async def test_invalid_messages_are_refused_with_the_field_named(
    client: TestClient, make_user: MakeUser, body: dict[str, Any], field: str, problem: str
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    status, answer = await post(client, customer, ticket, **body)
    assert status == 422
    assert answer["error"]["details"]["fields"][field] == problem
    assert await stored_count(client, ticket) == 0
