"""Attacks on the widget's sign-in: the /demo page as a signing oracle, and /widget/token as a way to
keep any token alive forever (issue 12, findings 1 and 3)."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient

from chatserver.app import create_app
from chatserver.keys import DB_POOL
from chatserver.security import issue_token
from chatserver.settings import Settings

from .conftest import TEST_SECRET, MakeUser

SECRET = "widget-identity-secret-for-tests"
MAX_AGE = 3600


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(widget_identity_secret=SECRET, visitor_session_max_age=MAX_AGE)


def host_site_signature(external_id: str) -> str:
    """What the host site's backend computes for its own signed-in user."""
    return hmac.new(SECRET.encode(), external_id.encode(), hashlib.sha256).hexdigest()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def identify(client: TestClient, external_id: str, signature: str) -> Any:
    return await client.post("/widget/identify", json={"external_id": external_id, "signature": signature})


def demo_identity(html: str) -> tuple[str, str]:
    user_id = re.search(r'data-user-id="([^"]*)"', html)
    signature = re.search(r'data-user-signature="([^"]*)"', html)
    assert user_id and signature, "the demo page signed nobody in"
    return user_id.group(1), signature.group(1)


# ---- finding 1: /demo signs whatever it is asked to ---------------------------------------


async def test_a_signature_fetched_from_the_demo_does_not_sign_in_as_the_victim(client: TestClient) -> None:
    victim_id = "shop-user-1001"
    victim = await identify(client, victim_id, host_site_signature(victim_id))
    assert victim.status == 200

    # The attacker asks the demo to play the victim and replays what it signed.
    page = await client.get(f"/demo?user={victim_id}")
    played_id, signature = demo_identity(await page.text())
    resp = await identify(client, victim_id, signature)
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "identity_unverified"

    # What the demo did sign is an id of its own namespace: a different customer.
    assert played_id == f"demo-{victim_id}"
    demo = await identify(client, played_id, signature)
    assert demo.status == 200
    assert (await demo.json())["user"]["id"] != (await victim.json())["user"]["id"]


async def test_the_demo_is_not_served_in_production(aiohttp_client: Any, settings: Settings) -> None:
    app = create_app(settings.with_overrides(production=True), bcrypt_rounds=4)
    client = await aiohttp_client(app)
    for path in ("/demo", "/demo?user=shop-user-1001"):
        resp = await client.get(path)
        assert resp.status == 404
        assert "data-user-signature" not in await resp.text()


async def test_production_refuses_demo_namespace_identities(aiohttp_client: Any, settings: Settings) -> None:
    app = create_app(settings.with_overrides(production=True), bcrypt_rounds=4)
    client = await aiohttp_client(app)
    await app[DB_POOL].execute("TRUNCATE users, tickets, messages CASCADE")
    # Even correctly signed (a demo run elsewhere with the same secret signed it).
    resp = await identify(client, "demo-shop-user-1001", host_site_signature("demo-shop-user-1001"))
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "identity_unverified"
    ordinary = await identify(client, "shop-user-1001", host_site_signature("shop-user-1001"))
    assert ordinary.status == 200


# ---- finding 3: /widget/token renews any token forever ------------------------------------


@pytest.mark.parametrize("role", ["agent", "admin"])
async def test_staff_tokens_are_never_renewed(client: TestClient, make_user: MakeUser, role: str) -> None:
    staff = await make_user(role)
    resp = await client.post("/widget/token", json={}, headers=staff.headers)
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "renewal_refused"


async def test_signed_up_customers_tokens_are_not_renewed(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    resp = await client.post("/widget/token", json={}, headers=customer.headers)
    assert resp.status == 403


async def test_a_visitor_token_is_renewed_only_up_to_the_cap_from_sign_in(client: TestClient) -> None:
    visitor = await (await client.post("/widget/visitors", json={})).json()
    signed_in = jwt.decode(visitor["access_token"], options={"verify_signature": False})["auth_time"]

    renewed = await client.post("/widget/token", json={}, headers=bearer(visitor["access_token"]))
    assert renewed.status == 200
    claims = jwt.decode((await renewed.json())["access_token"], options={"verify_signature": False})
    # The renewal keeps the original sign-in time, and never outlives the cap.
    assert claims["auth_time"] == signed_in
    assert claims["exp"] <= signed_in + MAX_AGE

    # A visitor token whose session began longer ago than the cap (time travel: the server's own
    # key makes a token as it would have been renewed until now).
    user_id = uuid.UUID(visitor["user"]["id"])
    old = issue_token(TEST_SECRET, user_id, "customer", 600, signed_in_at=int(time.time()) - MAX_AGE - 1)
    resp = await client.post("/widget/token", json={}, headers=bearer(old))
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "session_expired"


async def test_visitor_accounts_have_no_password_anyone_could_use(client: TestClient) -> None:
    """A visitor holds a token, never a password: its account's hash is one nobody knows, and no
    bcrypt work is spent making it (the process's one unusable hash, cost 4)."""
    emails = []
    for _ in range(2):
        resp = await client.post("/widget/visitors", json={})
        assert resp.status == 201, await resp.text()
        token = (await resp.json())["access_token"]
        me = await (await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})).json()
        emails.append(me["user"]["email"])
    hashes = await client.app[DB_POOL].fetch("SELECT password_hash FROM users WHERE email = ANY($1)", emails)
    assert len(hashes) == 2 and all(row["password_hash"].startswith("$2b$04$") for row in hashes)
    for email in emails:
        for password in ("", "password", email, hashes[0]["password_hash"]):
            resp = await client.post("/auth/login", json={"email": email, "password": password})
            assert resp.status in (401, 422), await resp.text()
