"""The widget's server side: anonymous visitors, HMAC-identified visitors, token refresh, the
loader script and the framed panel's Origin rules."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.app import create_app
from chatserver.keys import DB_POOL
from chatserver.services.auth import create_user
from chatserver.settings import Settings

from .conftest import PASSWORD, create_ticket

SECRET = "widget-identity-secret-for-tests"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(
        widget_identity_secret=SECRET,
        widget_visitors_per_window=3,
        allowed_origins=("https://shop.example",),
    )


def sign(external_id: str, secret: str = SECRET) -> str:
    """What a host site's server computes (docs/web.md)."""
    return hmac.new(secret.encode(), external_id.encode(), hashlib.sha256).hexdigest()


async def me(client: TestClient, token: str) -> dict:
    resp = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["user"]


async def test_anonymous_visitor_gets_a_customer_token_with_an_unguessable_address(client: TestClient) -> None:
    resp = await client.post("/widget/visitors", json={})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    user = await me(client, body["access_token"])
    assert user["role"] == "customer"
    assert user["email"].startswith("visitor-") and user["email"].endswith("@visitors.invalid")
    assert user["name"] == "Visitor"
    # the token opens tickets like any customer's
    resp = await client.post(
        "/tickets", json={"subject": "Hi"}, headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert resp.status == 201


async def test_each_anonymous_visitor_is_a_different_customer(client: TestClient) -> None:
    first = await (await client.post("/widget/visitors", json={})).json()
    second = await (await client.post("/widget/visitors", json={"name": "Sam"})).json()
    assert first["user"]["id"] != second["user"]["id"]
    assert second["user"]["name"] == "Sam"


async def test_anonymous_visitors_are_rate_limited_per_client_address(client: TestClient) -> None:
    for _ in range(3):
        assert (await client.post("/widget/visitors", json={})).status == 201
    resp = await client.post("/widget/visitors", json={})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await resp.json())["error"]["code"] == "rate_limited"


async def test_visitor_endpoints_refuse_an_origin_that_is_not_allowed(client: TestClient) -> None:
    resp = await client.post("/widget/visitors", json={}, headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    resp = await client.post(
        "/widget/identify",
        json={"external_id": "u1", "signature": sign("u1")},
        headers={"Origin": "https://evil.example"},
    )
    assert resp.status == 403


async def test_visitor_endpoints_accept_own_and_allowed_origins(client: TestClient) -> None:
    own = f"http://{client.server.host}:{client.server.port}"
    assert (await client.post("/widget/visitors", json={}, headers={"Origin": own})).status == 201
    allowed = await client.post("/widget/visitors", json={}, headers={"Origin": "https://shop.example"})
    assert allowed.status == 201


async def test_identified_visitor_with_a_valid_signature_is_the_same_customer_every_time(client: TestClient) -> None:
    payload = {"external_id": "shop-user-42", "signature": sign("shop-user-42"), "name": "Robin", "email": "r@x.io"}
    first = await client.post("/widget/identify", json=payload)
    assert first.status == 200, await first.text()
    first_body = await first.json()
    second_body = await (await client.post("/widget/identify", json=payload)).json()
    assert first_body["user"]["id"] == second_body["user"]["id"]
    assert first_body["user"]["role"] == "customer"
    assert first_body["user"]["name"] == "Robin"


async def test_identified_visitor_continues_their_tickets(client: TestClient) -> None:
    payload = {"external_id": "shop-user-7", "signature": sign("shop-user-7")}
    token = (await (await client.post("/widget/identify", json=payload)).json())["access_token"]
    resp = await client.post(
        "/tickets", json={"subject": "Where is my order?"}, headers={"Authorization": f"Bearer {token}"}
    )
    ticket_id = (await resp.json())["ticket"]["id"]
    # Later, on another device: a new token for the same user sees the same ticket.
    later = (await (await client.post("/widget/identify", json=payload)).json())["access_token"]
    resp = await client.get("/tickets", headers={"Authorization": f"Bearer {later}"})
    assert [t["id"] for t in (await resp.json())["tickets"]] == [ticket_id]


@pytest.mark.parametrize(
    "signature",
    [
        sign("someone-else"),
        sign("shop-user-42", "a-different-secret"),
        "0" * 64,
        "not-hex-at-all",
    ],
)
async def test_badly_signed_identity_is_refused(client: TestClient, signature: str) -> None:
    resp = await client.post("/widget/identify", json={"external_id": "shop-user-42", "signature": signature})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "identity_unverified"


async def test_unsigned_identity_is_refused(client: TestClient) -> None:
    resp = await client.post("/widget/identify", json={"external_id": "shop-user-42"})
    assert resp.status == 422


async def test_identified_visitors_are_refused_when_no_secret_is_configured(
    aiohttp_client: Any, settings: Settings
) -> None:
    app = create_app(settings.with_overrides(widget_identity_secret=None), bcrypt_rounds=4)
    other: TestClient = await aiohttp_client(app)
    resp = await other.post("/widget/identify", json={"external_id": "u", "signature": sign("u")})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "identity_unverified"


async def test_host_supplied_email_never_selects_an_existing_account(client: TestClient) -> None:
    await create_user(
        client.app[DB_POOL],
        email="owner@example.com",
        password=PASSWORD,
        role="customer",
        name="Owner",
        bcrypt_rounds=4,
    )
    owner = await (await client.post("/auth/login", json={"email": "owner@example.com", "password": PASSWORD})).json()
    resp = await client.post(
        "/widget/identify",
        json={"external_id": "attacker", "signature": sign("attacker"), "email": "owner@example.com"},
    )
    visitor = await resp.json()
    assert visitor["user"]["id"] != owner["user"]["id"]
    assert visitor["user"]["email"].endswith("@visitors.invalid")


async def test_a_valid_token_can_be_exchanged_for_a_fresh_one(client: TestClient) -> None:
    visitor = await (await client.post("/widget/visitors", json={})).json()
    resp = await client.post("/widget/token", json={}, headers={"Authorization": f"Bearer {visitor['access_token']}"})
    assert resp.status == 200
    fresh = await resp.json()
    assert fresh["user"]["id"] == visitor["user"]["id"]
    assert (await me(client, fresh["access_token"]))["id"] == visitor["user"]["id"]


async def test_token_refresh_needs_a_valid_token(client: TestClient) -> None:
    resp = await client.post("/widget/token", json={}, headers={"Authorization": "Bearer nonsense"})
    assert resp.status == 401


async def test_loader_script_is_served_as_javascript(client: TestClient) -> None:
    resp = await client.get("/widget.js")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/javascript")
    assert "attachShadow" in await resp.text()


async def test_panel_may_be_framed_only_by_this_server_and_allowed_origins(client: TestClient) -> None:
    resp = await client.get("/widget/frame")
    assert resp.status == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://shop.example" in csp
    assert "script-src 'self'" in csp
    assert "X-Frame-Options" not in resp.headers


async def test_demo_page_embeds_the_widget_and_signs_a_demo_user_on_the_server(client: TestClient) -> None:
    html = await (await client.get("/demo")).text()
    assert 'src="/widget.js"' in html
    assert "data-user-signature" not in html
    html = await (await client.get("/demo?user=demo-user-42&name=Robin")).text()
    assert f'data-user-signature="{sign("demo-user-42")}"' in html


async def test_anonymous_visitor_cannot_see_another_visitors_ticket(client: TestClient) -> None:
    a = await (await client.post("/widget/visitors", json={})).json()
    b = await (await client.post("/widget/visitors", json={})).json()

    class Token:
        def __init__(self, token: str) -> None:
            self.headers = {"Authorization": f"Bearer {token}"}

    ticket = await create_ticket(client, Token(a["access_token"]), "Mine")  # type: ignore[arg-type]
    resp = await client.get(f"/tickets/{ticket['id']}", headers={"Authorization": f"Bearer {b['access_token']}"})
    assert resp.status == 404
