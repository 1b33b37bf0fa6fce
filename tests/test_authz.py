"""The authorization matrix: every REST endpoint x anonymous / owner customer / other customer /
agent / admin. Another customer's ticket is 404 (indistinguishable from a missing one), never 403."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from .conftest import MakeUser, User, create_ticket

ROLES = ("anonymous", "owner", "other_customer", "agent", "admin")


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # {ticket} is replaced by the owner's ticket id
    body: dict[str, Any] | None
    expect: dict[str, int]  # role -> status


def statuses(anonymous: int, owner: int, other_customer: int, agent: int, admin: int) -> dict[str, int]:
    return dict(zip(ROLES, (anonymous, owner, other_customer, agent, admin), strict=True))


CASES = [
    Case("me", "GET", "/auth/me", None, statuses(401, 200, 200, 200, 200)),
    Case("list tickets", "GET", "/tickets", None, statuses(401, 200, 200, 200, 200)),
    Case("create ticket", "POST", "/tickets", {"subject": "New"}, statuses(401, 201, 201, 403, 403)),
    Case("get ticket", "GET", "/tickets/{ticket}", None, statuses(401, 200, 404, 200, 200)),
    Case("close ticket", "PATCH", "/tickets/{ticket}", {"status": "closed"}, statuses(401, 200, 404, 200, 200)),
    Case("reprioritize", "PATCH", "/tickets/{ticket}", {"priority": "high"}, statuses(401, 403, 404, 200, 200)),
    Case("set status pending", "PATCH", "/tickets/{ticket}", {"status": "pending"}, statuses(401, 403, 404, 200, 200)),
    Case("turn AI off", "PATCH", "/tickets/{ticket}", {"ai_enabled": False}, statuses(401, 403, 404, 200, 200)),
    Case("unassign", "PATCH", "/tickets/{ticket}", {"assignee_id": None}, statuses(401, 403, 404, 200, 200)),
    Case("customer panel", "GET", "/tickets/{ticket}/customer", None, statuses(401, 403, 403, 200, 200)),
    Case("history", "GET", "/tickets/{ticket}/messages", None, statuses(401, 200, 404, 200, 200)),
    Case("post message", "POST", "/tickets/{ticket}/messages", {"body": "Hi"}, statuses(401, 201, 404, 201, 201)),
    Case(
        "post internal note",
        "POST",
        "/tickets/{ticket}/messages",
        {"body": "Note", "internal": True},
        statuses(401, 403, 404, 201, 201),
    ),
    Case("websocket ticket", "POST", "/ws/tickets", None, statuses(401, 201, 201, 201, 201)),
    # The owner passes authorization and meets the ticket's state: an open ticket is not rateable.
    Case("rate ticket", "POST", "/tickets/{ticket}/rating", {"score": 5}, statuses(401, 409, 404, 403, 403)),
    Case("conversation history", "GET", "/widget/conversations", None, statuses(401, 200, 200, 403, 403)),
    # The agent workspace (tests/test_workspace.py has the rest): none of it for customers.
    Case("list labels", "GET", "/labels", None, statuses(401, 403, 403, 200, 200)),
    Case("create label", "POST", "/labels", {"name": "x", "color": "nope"}, statuses(401, 403, 403, 403, 422)),
    Case(
        "set ticket labels",
        "PUT",
        "/tickets/{ticket}/labels",
        {"label_ids": []},
        statuses(401, 403, 404, 200, 200),
    ),
    Case("ticket activity", "GET", "/tickets/{ticket}/activity", None, statuses(401, 403, 404, 200, 200)),
    Case("canned responses", "GET", "/canned-responses", None, statuses(401, 403, 403, 200, 200)),
    Case(
        "create canned response",
        "POST",
        "/canned-responses",
        {"shortcut": "Bad shortcut!", "body": "x"},
        statuses(401, 403, 403, 422, 422),
    ),
    # Agent availability (docs/web.md, "Never miss a customer"): for agents and admins only.
    Case("availability", "GET", "/console/api/availability", None, statuses(401, 403, 403, 200, 200)),
    Case("set availability", "PUT", "/console/api/availability", {"status": "away"}, statuses(401, 403, 403, 200, 200)),
    Case("queue", "GET", "/console/api/queue", None, statuses(401, 403, 403, 200, 200)),
    Case("list AI actions", "GET", "/admin/actions", None, statuses(401, 403, 403, 403, 200)),
    Case("tool-call log", "GET", "/tickets/{ticket}/tool-calls", None, statuses(401, 200, 404, 200, 200)),
    Case(
        "approve a tool call",
        "POST",
        "/tickets/{ticket}/tool-calls/00000000-0000-4000-8000-000000000000/approve",
        None,
        statuses(401, 404, 404, 404, 404),
    ),
]


@dataclass
class World:
    users: dict[str, User | None]
    ticket: dict[str, Any]


@pytest.fixture
async def world(client: TestClient, make_user: MakeUser) -> World:
    owner = await make_user("customer")
    users: dict[str, User | None] = {
        "anonymous": None,
        "owner": owner,
        "other_customer": await make_user("customer"),
        "agent": await make_user("agent"),
        "admin": await make_user("admin"),
    }
    ticket = await create_ticket(client, owner, "Printer on fire", message="Help")
    return World(users, ticket)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_authorization_matrix(client: TestClient, world: World, case: Case) -> None:
    """One row of the table per test: a failure shows every role's status side by side. Each
    row's requests leave the ticket in a state where the next role's expectation still holds."""
    path = case.path.replace("{ticket}", world.ticket["id"])
    actual = {}
    for role in ROLES:
        user = world.users[role]
        resp = await client.request(case.method, path, json=case.body, headers=user.headers if user else {})
        actual[role] = resp.status
        if resp.status >= 400:
            assert set((await resp.json())["error"]) >= {"code", "message"}
    assert actual == case.expect


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
async def test_operational_endpoints_are_public(client: TestClient, path: str) -> None:
    assert (await client.get(path)).status == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/tickets/{ticket}", None),
        ("PATCH", "/tickets/{ticket}", {"status": "closed"}),
        ("GET", "/tickets/{ticket}/messages", None),
        ("POST", "/tickets/{ticket}/messages", {"body": "Hi"}),
        ("PUT", "/tickets/{ticket}/labels", {"label_ids": []}),
        ("GET", "/tickets/{ticket}/activity", None),
    ],
)
async def test_another_customers_ticket_looks_exactly_like_a_missing_one(
    client: TestClient, world: World, method: str, path: str, body: dict[str, Any] | None
) -> None:
    other = world.users["other_customer"]
    assert other is not None
    theirs = await client.request(
        method, path.replace("{ticket}", world.ticket["id"]), json=body, headers=other.headers
    )
    missing = await client.request(
        method, path.replace("{ticket}", str(uuid.uuid4())), json=body, headers=other.headers
    )
    assert theirs.status == missing.status == 404
    assert await theirs.json() == await missing.json()


async def test_ticket_lists_show_customers_only_their_own(client: TestClient, world: World) -> None:
    def ids(page: dict[str, Any]) -> list[str]:
        return [t["id"] for t in page["tickets"]]

    listings = {}
    for role in ("owner", "other_customer", "agent", "admin"):
        user = world.users[role]
        assert user is not None
        listings[role] = ids(await (await client.get("/tickets", headers=user.headers)).json())
    assert listings["owner"] == [world.ticket["id"]]
    assert listings["other_customer"] == []
    assert listings["agent"] == listings["admin"] == [world.ticket["id"]]


async def test_a_token_for_a_role_is_not_upgraded_by_the_body(client: TestClient, world: World) -> None:
    """Unknown fields (such as a role or a customer_id) are refused, not ignored."""
    owner = world.users["owner"]
    assert owner is not None
    resp = await client.post("/tickets", json={"subject": "x", "customer_id": str(uuid.uuid4())}, headers=owner.headers)
    assert resp.status == 422
    assert (await resp.json())["error"]["details"]["fields"] == {"customer_id": "unknown field"}
