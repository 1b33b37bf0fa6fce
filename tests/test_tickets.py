"""/tickets: creating, reading, changing, and listing with keyset pagination and filters."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.db import tickets as tickets_db
from chatserver.keys import DB_POOL, SETTINGS
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Pagination needs more tickets than one customer may open in an hour by default; the caps
    have their own tests (tests/test_limits.py)."""
    return settings.with_overrides(tickets_per_customer_per_hour=1000, open_tickets_per_customer=1000)


async def list_all(client: TestClient, user: User, query: str = "", limit: int = 2) -> list[list[dict[str, Any]]]:
    """Follow next_cursor to the end; returns the pages."""
    pages = []
    cursor = None
    for _ in range(100):
        url = f"/tickets?limit={limit}{'&' + query if query else ''}"
        if cursor:
            url += f"&cursor={cursor}"
        resp = await client.get(url, headers=user.headers)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        pages.append(body["tickets"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("pagination did not end")


def ids(tickets: list[dict[str, Any]]) -> list[str]:
    return [t["id"] for t in tickets]


# ---- create and read -----------------------------------------------------------------------


async def test_create_ticket_returns_201_with_defaults(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    resp = await client.post(
        "/tickets", json={"subject": "  Refund  ", "description": "Order 42"}, headers=customer.headers
    )
    assert resp.status == 201
    body = await resp.json()
    ticket = body["ticket"]
    assert body["message"] is None
    assert ticket["subject"] == "Refund"
    assert ticket["description"] == "Order 42"
    assert ticket["customer_id"] == customer.id
    assert (ticket["status"], ticket["priority"], ticket["assignee_id"]) == ("open", "normal", None)
    assert ticket["ai_enabled"] is client.app[SETTINGS].ai_default_enabled
    assert ticket["waiting_for_agent"] is False
    assert ticket["last_seq"] == 0


async def test_create_ticket_with_a_first_message_stores_it_as_seq_1(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    resp = await client.post(
        "/tickets", json={"subject": "Hi", "message": "My order", "client_id": "c-1"}, headers=customer.headers
    )
    body = await resp.json()
    assert body["message"]["seq"] == 1
    assert body["message"]["client_id"] == "c-1"
    assert body["message"]["author_kind"] == "customer"
    assert body["ticket"]["last_seq"] == 1
    history = await (await client.get(f"/tickets/{body['ticket']['id']}/messages", headers=customer.headers)).json()
    assert [m["body"] for m in history["messages"]] == ["My order"]


async def test_get_ticket_returns_the_same_ticket(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Lost parcel")
    resp = await client.get(f"/tickets/{ticket['id']}", headers=customer.headers)
    assert resp.status == 200
    assert (await resp.json())["ticket"] == ticket


# ---- pagination -----------------------------------------------------------------------------


async def test_pages_have_exact_sizes_and_the_last_has_no_cursor(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    created = [await create_ticket(client, customer, f"T{i}") for i in range(5)]
    pages = await list_all(client, customer, limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [t["subject"] for p in pages for t in p] == ["T4", "T3", "T2", "T1", "T0"]
    assert sorted(ids([t for p in pages for t in p])) == sorted(t["id"] for t in created)


async def test_a_full_last_page_has_no_cursor(client: TestClient, make_user: MakeUser) -> None:
    """Four tickets in pages of two: two pages, not a third empty one."""
    customer = await make_user("customer")
    for i in range(4):
        await create_ticket(client, customer, f"T{i}")
    pages = await list_all(client, customer, limit=2)
    assert [len(p) for p in pages] == [2, 2]
    exact = await (await client.get("/tickets?limit=4", headers=customer.headers)).json()
    assert len(exact["tickets"]) == 4
    assert exact["next_cursor"] is None


async def test_an_empty_list_is_one_empty_page(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    body = await (await client.get("/tickets", headers=customer.headers)).json()
    assert body == {"tickets": [], "next_cursor": None}


async def test_default_page_size_is_20_and_max_is_100(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    for i in range(21):
        await create_ticket(client, customer, f"T{i}")
    default = await (await client.get("/tickets", headers=customer.headers)).json()
    assert len(default["tickets"]) == 20
    assert default["next_cursor"] is not None
    assert (await client.get("/tickets?limit=100", headers=customer.headers)).status == 200
    assert (await client.get("/tickets?limit=101", headers=customer.headers)).status == 422


async def test_a_new_message_moves_its_ticket_to_the_top(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    oldest, middle, newest = [await create_ticket(client, customer, s) for s in ("A", "B", "C")]
    before = await (await client.get("/tickets", headers=customer.headers)).json()
    assert ids(before["tickets"]) == [newest["id"], middle["id"], oldest["id"]]
    resp = await client.post(f"/tickets/{oldest['id']}/messages", json={"body": "Any news?"}, headers=customer.headers)
    assert resp.status == 201
    after = await (await client.get("/tickets", headers=customer.headers)).json()
    assert ids(after["tickets"]) == [oldest["id"], newest["id"], middle["id"]]


async def test_tickets_with_equal_activity_times_are_neither_skipped_nor_repeated(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    created = [await create_ticket(client, customer, f"T{i}") for i in range(5)]
    # Same instant for all: only the id tie-breaker orders them.
    for ticket in created:
        await client.app[DB_POOL].execute(
            "UPDATE tickets SET last_activity_at = '2030-01-01T00:00:00Z' WHERE id = $1", uuid.UUID(ticket["id"])
        )
    pages = await list_all(client, customer, limit=2)
    seen = ids([t for p in pages for t in p])
    assert seen == sorted((t["id"] for t in created), reverse=True)


async def test_cursor_keeps_working_while_tickets_move(client: TestClient, make_user: MakeUser) -> None:
    """Keyset pagination: activity on an already listed ticket does not shift later pages."""
    customer = await make_user("customer")
    created = [await create_ticket(client, customer, f"T{i}") for i in range(4)]
    first = await (await client.get("/tickets?limit=2", headers=customer.headers)).json()
    assert ids(first["tickets"]) == [created[3]["id"], created[2]["id"]]
    await client.post(f"/tickets/{created[3]['id']}/messages", json={"body": "bump"}, headers=customer.headers)
    second = await (
        await client.get(f"/tickets?limit=2&cursor={first['next_cursor']}", headers=customer.headers)
    ).json()
    assert ids(second["tickets"]) == [created[1]["id"], created[0]["id"]]
    assert second["next_cursor"] is None


# ---- filters --------------------------------------------------------------------------------


@pytest.fixture
async def inbox(client: TestClient, make_user: MakeUser) -> dict[str, Any]:
    """Five tickets in different states, and the agents who hold them."""
    alice = await make_user("customer")
    agent = await make_user("agent")
    other_agent = await make_user("agent")
    tickets = {name: await create_ticket(client, alice, name) for name in ("new", "mine", "theirs", "urgent", "done")}
    patches = {
        "mine": {"assignee_id": agent.id, "status": "pending"},
        "theirs": {"assignee_id": other_agent.id},
        "urgent": {"priority": "urgent"},
        "done": {"status": "resolved", "assignee_id": agent.id},
    }
    for name, patch in patches.items():
        resp = await client.patch(f"/tickets/{tickets[name]['id']}", json=patch, headers=agent.headers)
        assert resp.status == 200, await resp.text()
    await tickets_db.update_ticket(client.app[DB_POOL], uuid.UUID(tickets["new"]["id"]), {"waiting_for_agent": True})
    return {"customer": alice, "agent": agent, "other_agent": other_agent, "tickets": tickets}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=open", {"new", "theirs", "urgent"}),
        ("status=pending", {"mine"}),
        ("status=resolved", {"done"}),
        ("status=closed", set()),
        ("priority=urgent", {"urgent"}),
        ("priority=normal", {"new", "mine", "theirs", "done"}),
        ("assignee=me", {"mine", "done"}),
        ("assignee=none", {"new", "urgent"}),
        ("waiting=true", {"new"}),
        ("waiting=false", {"mine", "theirs", "urgent", "done"}),
        ("assignee=me&status=pending", {"mine"}),
        ("assignee=none&priority=urgent", {"urgent"}),
    ],
)
async def test_filters(client: TestClient, inbox: dict[str, Any], query: str, expected: set[str]) -> None:
    pages = await list_all(client, inbox["agent"], query, limit=1)
    subjects = [t["subject"] for p in pages for t in p]
    assert len(subjects) == len(set(subjects))
    assert set(subjects) == expected


async def test_filter_by_assignee_id(client: TestClient, inbox: dict[str, Any]) -> None:
    pages = await list_all(client, inbox["agent"], f"assignee={inbox['other_agent'].id}")
    assert [t["subject"] for p in pages for t in p] == ["theirs"]


async def test_customers_filters_apply_within_their_own_tickets(
    client: TestClient, inbox: dict[str, Any], make_user: MakeUser
) -> None:
    stranger = await make_user("customer")
    await create_ticket(client, stranger, "stranger's")
    pages = await list_all(client, inbox["customer"], "status=open", limit=10)
    assert {t["subject"] for p in pages for t in p} == {"new", "theirs", "urgent"}


# ---- changes --------------------------------------------------------------------------------


async def test_agent_changes_status_priority_assignee_and_ai(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    patch = {"status": "pending", "priority": "high", "assignee_id": agent.id, "ai_enabled": False}
    resp = await client.patch(f"/tickets/{ticket['id']}", json=patch, headers=agent.headers)
    assert resp.status == 200
    changed = (await resp.json())["ticket"]
    assert {k: changed[k] for k in patch} == patch
    assert changed["updated_at"] > ticket["updated_at"]
    fetched = await (await client.get(f"/tickets/{ticket['id']}", headers=customer.headers)).json()
    # The customer's view is the agent's without the labels (agents only).
    assert fetched["ticket"] == {k: v for k, v in changed.items() if k != "labels"}


async def test_unassigning_with_null(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    admin = await make_user("admin")
    ticket = await create_ticket(client, customer)
    await client.patch(f"/tickets/{ticket['id']}", json={"assignee_id": admin.id}, headers=admin.headers)
    resp = await client.patch(f"/tickets/{ticket['id']}", json={"assignee_id": None}, headers=admin.headers)
    assert (await resp.json())["ticket"]["assignee_id"] is None


async def test_assignee_must_be_an_existing_agent_or_admin(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    for assignee in (customer.id, str(uuid.uuid4())):
        resp = await client.patch(f"/tickets/{ticket['id']}", json={"assignee_id": assignee}, headers=agent.headers)
        assert resp.status == 422
        assert (await resp.json())["error"]["details"]["fields"] == {"assignee_id": "must be an agent or admin"}


async def test_turning_ai_off_means_nobody_is_waiting_for_an_agent_any_more(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    await tickets_db.update_ticket(client.app[DB_POOL], uuid.UUID(ticket["id"]), {"waiting_for_agent": True})
    resp = await client.patch(f"/tickets/{ticket['id']}", json={"ai_enabled": False}, headers=agent.headers)
    assert (await resp.json())["ticket"]["waiting_for_agent"] is False


async def test_a_change_to_the_same_values_changes_nothing(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    resp = await client.patch(
        f"/tickets/{ticket['id']}", json={"status": "open", "priority": "normal"}, headers=agent.headers
    )
    assert resp.status == 200
    # The customer's ticket (from POST /tickets) is the agent's without the labels.
    assert (await resp.json())["ticket"] == {**ticket, "labels": []}
    assigned = await client.patch(f"/tickets/{ticket['id']}", json={"assignee_id": agent.id}, headers=agent.headers)
    again = await client.patch(f"/tickets/{ticket['id']}", json={"assignee_id": agent.id}, headers=agent.headers)
    assert (await again.json())["ticket"] == (await assigned.json())["ticket"]


async def test_customer_may_close_but_not_reopen_or_reprioritize(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    url = f"/tickets/{ticket['id']}"
    closed = await client.patch(url, json={"status": "closed"}, headers=customer.headers)
    assert closed.status == 200
    assert (await closed.json())["ticket"]["status"] == "closed"
    assert (await client.patch(url, json={"status": "closed"}, headers=customer.headers)).status == 200
    for patch in ({"status": "open"}, {"priority": "urgent"}, {"status": "closed", "priority": "low"}, {}):
        resp = await client.patch(url, json=patch, headers=customer.headers)
        assert resp.status == 403, patch
        assert (await resp.json())["error"]["code"] == "forbidden"
    final = await (await client.get(url, headers=customer.headers)).json()
    assert (final["ticket"]["status"], final["ticket"]["priority"]) == ("closed", "normal")
