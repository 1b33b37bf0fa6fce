"""Sign-up, login, tokens and the login throttle, against a real server and database."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
from aiohttp.test_utils import TestClient

from .conftest import PASSWORD, TEST_SECRET, MakeUser


async def test_signup_creates_customer_and_returns_token(client: TestClient) -> None:
    resp = await client.post(
        "/auth/signup", json={"email": "Ann@Example.com", "password": "s3cret-pass", "name": "Ann"}
    )
    assert resp.status == 201
    data = await resp.json()
    assert data["token_type"] == "bearer"
    assert data["user"]["role"] == "customer"
    assert data["user"]["name"] == "Ann"
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {data['access_token']}"})
    assert me.status == 200
    assert (await me.json())["user"]["email"] == "Ann@Example.com"


async def test_signup_email_is_unique_ignoring_case(client: TestClient) -> None:
    first = await client.post("/auth/signup", json={"email": "bob@example.com", "password": "password1"})
    assert first.status == 201
    second = await client.post("/auth/signup", json={"email": "BOB@example.com", "password": "password1"})
    assert second.status == 409
    assert (await second.json())["error"]["code"] == "conflict"


async def test_concurrent_signups_with_one_email_give_one_201_and_one_409(client: TestClient) -> None:
    body = {"email": "race@example.com", "password": "password1"}
    results = await asyncio.gather(*(client.post("/auth/signup", json=body) for _ in range(2)))
    assert sorted(r.status for r in results) == [201, 409]


async def test_password_rules_are_enforced(client: TestClient) -> None:
    short = await client.post("/auth/signup", json={"email": "c@example.com", "password": "short"})
    assert short.status == 422
    assert "at least 8" in (await short.json())["error"]["message"]
    long = await client.post("/auth/signup", json={"email": "c@example.com", "password": "é" * 40})
    assert long.status == 422
    assert "72 bytes" in (await long.json())["error"]["message"]


async def test_signup_rejects_bad_email_and_unknown_fields(client: TestClient) -> None:
    bad = await client.post("/auth/signup", json={"email": "not-an-email", "password": "password1"})
    assert bad.status == 422
    extra = await client.post("/auth/signup", json={"email": "d@example.com", "password": "password1", "role": "admin"})
    assert extra.status == 422
    assert (await extra.json())["error"]["details"]["fields"]["role"] == "unknown field"


async def test_login_returns_bearer_token(client: TestClient, make_user: MakeUser) -> None:
    user = await make_user("agent")
    resp = await client.post("/auth/login", json={"email": user.email.upper(), "password": PASSWORD})
    assert resp.status == 200
    data = await resp.json()
    assert data["token_type"] == "bearer"
    claims = jwt.decode(data["access_token"], TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == user.id and claims["role"] == "agent"
    assert claims["exp"] > claims["iat"]


async def test_login_with_wrong_password_is_401(client: TestClient, make_user: MakeUser) -> None:
    user = await make_user()
    resp = await client.post("/auth/login", json={"email": user.email, "password": "wrong-password"})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_credentials"
    unknown = await client.post("/auth/login", json={"email": "nobody@example.com", "password": "whatever1"})
    assert unknown.status == 401


async def test_login_in_query_string_is_not_accepted(client: TestClient, make_user: MakeUser) -> None:
    user = await make_user()
    resp = await client.post(f"/auth/login?email={user.email}&password={PASSWORD}")
    assert resp.status == 415


async def test_repeated_login_failures_are_throttled_with_retry_after(client: TestClient, make_user: MakeUser) -> None:
    user = await make_user()
    for _ in range(5):
        resp = await client.post("/auth/login", json={"email": user.email, "password": "wrong-password"})
        assert resp.status == 401
    locked = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    assert locked.status == 429
    assert int(locked.headers["Retry-After"]) >= 1
    assert (await locked.json())["error"]["code"] == "rate_limited"


async def test_me_requires_a_token(client: TestClient) -> None:
    resp = await client.get("/auth/me")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_expired_token_is_refused(client: TestClient, make_user: MakeUser) -> None:
    user = await make_user()
    now = int(time.time())
    token = jwt.encode(
        {"sub": user.id, "role": "customer", "iat": now - 100, "exp": now - 10, "typ": "access"},
        TEST_SECRET,
        algorithm="HS256",
    )
    resp = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401
    assert "expired" in (await resp.json())["error"]["message"]


async def test_tampered_tokens_are_refused(client: TestClient, make_user: MakeUser) -> None:
    user = await make_user("customer")
    now = int(time.time())
    claims = {"sub": user.id, "role": "admin", "iat": now, "exp": now + 60, "typ": "access"}
    wrong_key = jwt.encode(claims, "another-secret-" + "y" * 40, algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    header, _payload, signature = user.token.split(".")
    forged_claims = jwt.utils.force_bytes(json.dumps(claims))
    forged_payload = jwt.utils.base64url_encode(forged_claims).decode()
    spliced = f"{header}.{forged_payload}.{signature}"
    for token in (wrong_key, unsigned, spliced, "garbage"):
        resp = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401, token
