"""The visitor context sent with POST /tickets and the customer panel, GET /tickets/{id}/customer."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.keys import DB_POOL
from chatserver.services.customer_panel import describe_user_agent, is_web_url
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket

CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
CONTEXT = {
    "page_url": "https://shop.example/checkout?step=2",
    "referrer": "https://www.search.example/",
    "user_agent": CHROME_MAC,
    "language": "fr-CA",
    "time_zone": "America/Toronto",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(tickets_per_customer_per_hour=1000, open_tickets_per_customer=1000)


async def panel(client: TestClient, user: User, ticket_id: str) -> dict[str, Any]:
    resp = await client.get(f"/tickets/{ticket_id}/customer", headers=user.headers)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_the_panel_shows_the_visitor_context_and_the_parsed_browser(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer", name="Camille")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer, "Checkout fails", context=CONTEXT)
    assert "context" not in ticket and "visitor_context" not in ticket  # never shown to the customer
    body = await panel(client, agent, ticket["id"])
    assert body["customer"]["id"] == customer.id and body["customer"]["name"] == "Camille"
    assert body["customer"]["email"] == customer.email
    context = body["context"]
    assert context["page_url"] == CONTEXT["page_url"] and context["page_url_is_web"] is True
    assert context["browser"] == "Chrome 120 on macOS"
    assert (context["language"], context["time_zone"]) == ("fr-CA", "America/Toronto")


async def test_the_panel_lists_the_customers_other_tickets_newest_first(
    client: TestClient, make_user: MakeUser
) -> None:
    customer, other, admin = await make_user("customer"), await make_user("customer"), await make_user("admin")
    first = await create_ticket(client, customer, "First")
    second = await create_ticket(client, customer, "Second")
    await create_ticket(client, other, "Not theirs")
    current = await create_ticket(client, customer, "Now")
    body = await panel(client, admin, current["id"])
    assert [t["id"] for t in body["other_tickets"]] == [second["id"], first["id"]]
    assert body["other_total"] == 2
    assert body["other_tickets"][0]["subject"] == "Second"
    assert (await panel(client, admin, first["id"]))["other_total"] == 2


async def test_a_ticket_without_context_has_none(client: TestClient, make_user: MakeUser) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    ticket = await create_ticket(client, customer, "Plain")
    body = await panel(client, agent, ticket["id"])
    assert body["context"] is None and body["other_tickets"] == [] and body["other_total"] == 0


async def test_a_non_web_page_url_is_stored_as_given_but_not_marked_as_a_link(
    client: TestClient, make_user: MakeUser
) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    url = "javascript:alert(document.cookie)"
    ticket = await create_ticket(client, customer, "Odd page", context={"page_url": url, "referrer": ""})
    context = (await panel(client, agent, ticket["id"]))["context"]
    assert context["page_url"] == url and context["page_url_is_web"] is False
    assert context["referrer"] is None


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({"page_url": "https://x.example/" + "a" * 2100}, "context.page_url"),
        ({"user_agent": "x" * 600}, "context.user_agent"),
        ({"page_url": "https://x.example/\nSet-Cookie: a=b"}, "context.page_url"),
        ({"language": "en_US; drop"}, "context.language"),
        ({"time_zone": "../../etc/passwd"}, "context.time_zone"),
        ({"screen": "1920x1080"}, "context.screen"),
        ({"language": 7}, "context.language"),
        ("https://x.example", "context"),
    ],
)
async def test_bad_visitor_context_is_a_422_naming_the_field(
    client: TestClient, make_user: MakeUser, context: Any, field: str
) -> None:
    customer = await make_user("customer")
    resp = await client.post("/tickets", json={"subject": "Hi", "context": context}, headers=customer.headers)
    assert resp.status == 422, await resp.text()
    assert field in (await resp.json())["error"]["details"]["fields"]
    assert await client.app[DB_POOL].fetchval("SELECT count(*) FROM tickets") == 0


@pytest.mark.parametrize("role", ["customer", "other"])
async def test_customers_get_403_for_any_ticket(client: TestClient, make_user: MakeUser, role: str) -> None:
    owner = await make_user("customer")
    caller = owner if role == "customer" else await make_user("customer")
    ticket = await create_ticket(client, owner, "Mine", context=CONTEXT)
    resp = await client.get(f"/tickets/{ticket['id']}/customer", headers=caller.headers)
    assert resp.status == 403


async def test_an_unknown_ticket_is_404(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    resp = await client.get("/tickets/00000000-0000-0000-0000-000000000000/customer", headers=agent.headers)
    assert resp.status == 404
    assert (await client.get("/tickets/nope/customer", headers=agent.headers)).status == 404


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (CHROME_MAC, "Chrome 120 on macOS"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/121.0.0.0 Safari/537.36 Edg/121.0.2277.83",
            "Edge 121 on Windows",
        ),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0", "Firefox 122 on Linux"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.2 Mobile/15E148 Safari/604.1",
            "Safari 17 on iOS",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.6099.144 Mobile Safari/537.36",
            "Chrome 120 on Android",
        ),
        ("curl/8.4.0", None),
    ],
)
def test_user_agents_are_described_briefly(agent: str, expected: str | None) -> None:
    assert describe_user_agent(agent) == expected


def test_only_http_urls_with_a_host_are_links() -> None:
    assert is_web_url("https://a.example/x") and is_web_url("HTTP://a.example")
    for url in ("javascript:alert(1)", "data:text/html,x", "/relative", "https://", "file:///etc/passwd", None):
        assert not is_web_url(url)
