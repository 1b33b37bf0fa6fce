"""The widget's conversation history (issue 13): GET /widget/conversations lists the caller's own
tickets, newest activity first, each with its newest *public* message as a preview."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from .conftest import MakeUser, User, create_ticket


async def history(client: TestClient, who: User, status: int = 200, **query: str) -> dict[str, Any]:
    resp = await client.get("/widget/conversations", params=query, headers=who.headers)
    assert resp.status == status, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def test_a_customer_sees_their_own_conversations_with_the_last_public_message(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    other = await make_user("customer")
    agent = await make_user("agent")
    first = await create_ticket(client, customer, "Billing", message="Invoice missing")
    second = await create_ticket(client, customer, "Login", message="Cannot log in")
    await create_ticket(client, other, "Someone else's secret", message="My card number is 4111")
    await client.post(f"/tickets/{first['id']}/messages", json={"body": "Sent again"}, headers=agent.headers)
    await client.post(
        f"/tickets/{first['id']}/messages", json={"body": "VIP, be nice", "internal": True}, headers=agent.headers
    )
    page = await history(client, customer)
    rows = page["conversations"]
    # Newest activity first: the first ticket got the later messages.
    assert [r["ticket"]["id"] for r in rows] == [first["id"], second["id"]]
    assert rows[0]["last_message"]["body"] == "Sent again"
    assert rows[1]["last_message"]["body"] == "Cannot log in"
    text = str(page)
    assert "VIP" not in text and "4111" not in text
    assert page["next_cursor"] is None


async def test_history_pages_and_refuses_bad_queries(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    for n in range(3):
        await create_ticket(client, customer, f"T{n}")
    page = await history(client, customer, limit="2")
    assert len(page["conversations"]) == 2 and page["next_cursor"]
    assert page["conversations"][0]["last_message"] is None
    rest = await history(client, customer, limit="2", cursor=page["next_cursor"])
    assert len(rest["conversations"]) == 1 and rest["next_cursor"] is None
    for query in ({"limit": "0"}, {"limit": "51"}, {"limit": "x"}, {"cursor": "nope"}, {"before": "x"}):
        err = await history(client, customer, 422, **query)
        assert err["error"]["code"] == "validation_error"


async def test_history_is_for_customers(client: TestClient, make_user: MakeUser) -> None:
    for role in ("agent", "admin"):
        assert (await history(client, await make_user(role), 403))["error"]["code"] == "forbidden"
    resp = await client.get("/widget/conversations")
    assert resp.status == 401
