"""Ticket ratings (issue 13): the customer rates a resolved or closed ticket once, 1-5 with an
optional comment; agents see it in the ticket's REST representation and live (ticket.updated with
changes ["rating"]); integrations get the rating.created event in the feed."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from .conftest import MakeUser, User, create_ticket
from .test_integrations_events import all_events, reset_outbox
from .wsutil import recv_type


async def close(client: TestClient, who: User, ticket: dict[str, Any], status: str = "closed") -> None:
    resp = await client.patch(f"/tickets/{ticket['id']}", json={"status": status}, headers=who.headers)
    assert resp.status == 200, await resp.text()


async def rate(client: TestClient, who: User | None, ticket_id: str, body: Any, status: int) -> dict[str, Any]:
    headers = who.headers if who else {}
    resp = await client.post(f"/tickets/{ticket_id}/rating", json=body, headers=headers)
    assert resp.status == status, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


@pytest.fixture
async def customer(make_user: MakeUser) -> User:
    return await make_user("customer")


@pytest.fixture
async def agent(make_user: MakeUser) -> User:
    return await make_user("agent")


async def test_the_customer_rates_a_closed_ticket_and_it_shows_on_the_ticket(
    client: TestClient, customer: User, agent: User
) -> None:
    ticket = await create_ticket(client, customer, "Refund", message="Where is my refund?")
    assert ticket["rating"] is None and ticket["rating_comment"] is None and ticket["rated_at"] is None
    await close(client, customer, ticket)
    data = await rate(client, customer, ticket["id"], {"score": 4, "comment": "  Quick and kind.  "}, 201)
    rating = data["rating"]
    assert rating["ticket_id"] == ticket["id"] and rating["score"] == 4 and rating["comment"] == "Quick and kind."
    assert data["ticket"]["rating"] == 4 and data["ticket"]["rated_at"] == rating["created_at"]
    for who in (customer, agent):
        got = await (await client.get(f"/tickets/{ticket['id']}", headers=who.headers)).json()
        assert got["ticket"]["rating"] == 4 and got["ticket"]["rating_comment"] == "Quick and kind."
        listed = await (await client.get("/tickets?status=closed", headers=who.headers)).json()
        assert [t["rating"] for t in listed["tickets"] if t["id"] == ticket["id"]] == [4]


async def test_a_resolved_ticket_can_be_rated_without_a_comment(
    client: TestClient, customer: User, agent: User
) -> None:
    ticket = await create_ticket(client, customer)
    await close(client, agent, ticket, "resolved")
    data = await rate(client, customer, ticket["id"], {"score": 1, "comment": ""}, 201)
    assert data["rating"]["score"] == 1 and data["rating"]["comment"] is None


async def test_a_score_written_as_a_whole_float_is_that_integer(client: TestClient, customer: User) -> None:
    """JSON Schema's integer (the OpenAPI spec) includes 4.0."""
    ticket = await create_ticket(client, customer)
    await close(client, customer, ticket)
    assert (await rate(client, customer, ticket["id"], {"score": 4.0}, 201))["rating"]["score"] == 4


async def test_a_second_rating_is_a_conflict_and_the_first_stays(client: TestClient, customer: User) -> None:
    ticket = await create_ticket(client, customer)
    await close(client, customer, ticket)
    await rate(client, customer, ticket["id"], {"score": 5}, 201)
    err = await rate(client, customer, ticket["id"], {"score": 1, "comment": "changed my mind"}, 409)
    assert err["error"]["code"] == "already_rated"
    got = await (await client.get(f"/tickets/{ticket['id']}", headers=customer.headers)).json()
    assert got["ticket"]["rating"] == 5 and got["ticket"]["rating_comment"] is None


@pytest.mark.parametrize("status", ["open", "pending"])
async def test_an_unfinished_ticket_cannot_be_rated(
    client: TestClient, customer: User, agent: User, status: str
) -> None:
    ticket = await create_ticket(client, customer)
    if status != "open":
        await close(client, agent, ticket, status)
    err = await rate(client, customer, ticket["id"], {"score": 3}, 409)
    assert err["error"]["code"] == "ticket_not_closed"


async def test_only_the_tickets_customer_may_rate_it(client: TestClient, make_user: MakeUser, customer: User) -> None:
    ticket = await create_ticket(client, customer)
    await close(client, customer, ticket)
    other = await make_user("customer")
    assert (await rate(client, other, ticket["id"], {"score": 1}, 404))["error"]["code"] == "not_found"
    for role in ("agent", "admin"):
        staff = await make_user(role)
        assert (await rate(client, staff, ticket["id"], {"score": 5}, 403))["error"]["code"] == "forbidden"
    assert (await rate(client, None, ticket["id"], {"score": 5}, 401))["error"]["code"] == "unauthorized"
    await rate(client, customer, "00000000-0000-0000-0000-000000000000", {"score": 5}, 404)
    await rate(client, customer, "not-a-uuid", {"score": 5}, 404)
    got = await (await client.get(f"/tickets/{ticket['id']}", headers=customer.headers)).json()
    assert got["ticket"]["rating"] is None


async def test_an_api_key_cannot_rate(client: TestClient, make_user: MakeUser, customer: User) -> None:
    admin = await make_user("admin")
    resp = await client.post("/admin/api-keys", json={"name": "CRM", "scopes": ["admin"]}, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    key = (await resp.json())["api_key"]["key"]
    ticket = await create_ticket(client, customer)
    await close(client, customer, ticket)
    resp = await client.post(
        f"/tickets/{ticket['id']}/rating", json={"score": 5}, headers={"Authorization": f"Bearer {key}"}
    )
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] in ("insufficient_scope", "forbidden")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"score": 0},
        {"score": 6},
        {"score": "5"},
        {"score": 4.5},
        {"score": True},
        {"score": None},
        {"score": 3, "comment": 7},
        {"score": 3, "comment": "x" * 1001},
        {"score": 3, "stars": 3},
        [3],
        "5",
    ],
)
async def test_malformed_ratings_are_refused_with_422(client: TestClient, customer: User, body: Any) -> None:
    ticket = await create_ticket(client, customer)
    await close(client, customer, ticket)
    err = await rate(client, customer, ticket["id"], body, 422)
    assert err["error"]["code"] == "validation_error"


async def test_a_body_that_is_not_json_is_a_4xx(client: TestClient, customer: User) -> None:
    ticket = await create_ticket(client, customer)
    await close(client, customer, ticket)
    path = f"/tickets/{ticket['id']}/rating"
    resp = await client.post(path, data=b"{nope", headers={**customer.headers, "Content-Type": "application/json"})
    assert resp.status == 400
    resp = await client.post(path, data=b"score=5", headers={**customer.headers, "Content-Type": "text/plain"})
    assert resp.status == 415


async def test_agents_in_the_room_and_the_inbox_see_the_rating_live(
    client: TestClient, customer: User, agent: User
) -> None:
    ticket = await create_ticket(client, customer, message="Hello")
    await close(client, customer, ticket)
    room = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=agent.headers)
    inbox = await client.ws_connect("/ws/inbox", headers=agent.headers)
    try:
        await recv_type(room, "joined")
        await recv_type(inbox, "inbox.ready")
        await rate(client, customer, ticket["id"], {"score": 2, "comment": "Slow"}, 201)
        frame = await recv_type(room, "ticket.updated")
        assert frame["changes"] == ["rating"] and frame["by"] == customer.id
        assert frame["ticket"]["rating"] == 2 and frame["ticket"]["rating_comment"] == "Slow"
        live = await recv_type(inbox, "inbox.ticket_updated")
        assert live["changes"] == ["rating"] and live["ticket"]["rating"] == 2
    finally:
        await room.close()
        await inbox.close()


async def test_a_rating_records_the_rating_created_event(client: TestClient, customer: User, agent: User) -> None:
    await reset_outbox(client)
    ticket = await create_ticket(client, customer)
    await close(client, customer, ticket)
    data = await rate(client, customer, ticket["id"], {"score": 5, "comment": "Great"}, 201)
    events = await all_events(client, agent, 1, types="rating.created")
    assert [e["type"] for e in events] == ["rating.created"]
    event = events[0]["data"]
    # Shaped as REST shows them.
    assert event["rating"] == data["rating"]
    # The ticket as agents see it over REST (the customer's answer leaves out the labels).
    as_agent = await (await client.get(f"/tickets/{ticket['id']}", headers=agent.headers)).json()
    assert event["ticket"] == as_agent["ticket"]
    assert {k: v for k, v in event["ticket"].items() if k != "labels"} == data["ticket"]
    # A refused rating records nothing.
    await rate(client, customer, ticket["id"], {"score": 1}, 409)
    assert [e["type"] for e in await all_events(client, agent, 1, types="rating.created")] == ["rating.created"]
