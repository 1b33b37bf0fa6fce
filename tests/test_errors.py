"""Every way a request can be wrong gets a 4xx in the one JSON error shape, with a clear message:
never a 500, never a stack trace."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.app import create_app
from chatserver.keys import DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket

SOME_ID = "8d2f6feb-f1e0-4f71-8da6-f41edbb50c5c"


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def assert_error(resp: Any, status: int, code: str, fragment: str = "") -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    text = await resp.text()
    assert "Traceback" not in text
    body: dict[str, Any] = json.loads(text)
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert fragment in body["error"]["message"]
    return body["error"]


@pytest.fixture
async def customer(make_user: MakeUser) -> User:
    return await make_user("customer")


@pytest.fixture
async def agent(make_user: MakeUser) -> User:
    return await make_user("agent")


# ---- bodies ---------------------------------------------------------------------------------

JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("raw", "status", "code", "fragment"),
    [
        (b'{"subject": ', 400, "bad_request", "Malformed JSON"),
        (b"{'subject': 'single quotes'}", 400, "bad_request", "Malformed JSON"),
        (b"", 400, "bad_request", "empty"),
        (b'{"subject": "\\ud800"}', 400, "bad_request", "Malformed JSON"),
        (b'{"subject": "\xff\xfe"}', 400, "bad_request", "Malformed JSON"),
        (b"[" * 5000 + b"]" * 5000, 400, "bad_request", "Malformed JSON"),
        (b"1e400", 400, "bad_request", "Malformed JSON"),
        (b'["subject"]', 422, "validation_error", "JSON object"),
        (b'"subject"', 422, "validation_error", "JSON object"),
        (b"null", 422, "validation_error", "JSON object"),
        (b"42", 422, "validation_error", "JSON object"),
    ],
)
async def test_malformed_bodies(
    client: TestClient, customer: User, raw: bytes, status: int, code: str, fragment: str
) -> None:
    resp = await client.post("/tickets", data=raw, headers={**customer.headers, **JSON_HEADERS})
    await assert_error(resp, status, code, fragment)


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_bodies_must_be_json(client: TestClient, customer: User, content_type: str | None) -> None:
    headers = dict(customer.headers)
    if content_type:
        headers["Content-Type"] = content_type
    resp = await client.post("/tickets", data=b'{"subject": "x"}', headers=headers)
    await assert_error(resp, 415, "unsupported_media_type", "application/json")


async def test_json_with_a_charset_is_fine(client: TestClient, customer: User) -> None:
    resp = await client.post(
        "/tickets",
        data=b'{"subject": "x"}',
        headers={**customer.headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert resp.status == 201


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"subject": 5}, {"subject": "must be a string"}),
        ({"subject": None}, {"subject": "must not be null"}),
        ({"subject": ["a"]}, {"subject": "must be a string"}),
        ({"subject": "x" * 201}, {"subject": "must be at most 200 characters"}),
        ({"subject": 10**30}, {"subject": "must be a string"}),
        ({}, {"subject": "is required"}),
        (
            {"subject": "ok", "status": "closed", "priority": "high"},
            {"status": "unknown field", "priority": "unknown field"},
        ),
        ({"subject": True, "extra": 1}, {"subject": "must be a string", "extra": "unknown field"}),
    ],
)
async def test_wrong_types_and_unknown_fields_name_every_offending_field(
    client: TestClient, customer: User, body: dict[str, Any], fields: dict[str, str]
) -> None:
    error = await assert_error(
        await client.post("/tickets", json=body, headers=customer.headers), 422, "validation_error"
    )
    assert error["details"]["fields"] == fields
    for name in fields:
        assert name in error["message"]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"status": "reopened"}, {"status": "must be one of open, pending, resolved, closed"}),
        ({"priority": 1}, {"priority": "must be one of low, normal, high, urgent"}),
        ({"assignee_id": "bob"}, {"assignee_id": "must be a UUID"}),
        ({"assignee_id": 12}, {"assignee_id": "must be a UUID string"}),
        ({"ai_enabled": "false"}, {"ai_enabled": "must be true or false"}),
        ({"ai_enabled": 0}, {"ai_enabled": "must be true or false"}),
        ({"waiting_for_agent": True}, {"waiting_for_agent": "unknown field"}),
    ],
)
async def test_patch_validation(
    client: TestClient, customer: User, agent: User, body: dict[str, Any], fields: dict[str, str]
) -> None:
    ticket = await create_ticket(client, customer)
    resp = await client.patch(f"/tickets/{ticket['id']}", json=body, headers=agent.headers)
    error = await assert_error(resp, 422, "validation_error")
    assert error["details"]["fields"] == fields


@pytest.fixture
async def small_client(aiohttp_client: Any, settings: Settings) -> AsyncIterator[TestClient]:
    client: TestClient = await aiohttp_client(create_app(settings.with_overrides(max_body_bytes=1024), bcrypt_rounds=4))
    yield client


async def test_oversize_bodies_are_413(small_client: TestClient) -> None:
    body = {"email": "big@example.com", "password": "p" * 10, "name": "n" * 2000}
    resp = await small_client.post("/auth/signup", json=body)
    await assert_error(resp, 413, "payload_too_large", "too large")
    fits = await small_client.post("/auth/signup", json={**body, "name": "n" * 50})
    assert fits.status == 201


async def test_oversize_bodies_without_content_length_are_413(small_client: TestClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "chunked@example.com", "password": "password1", "name": "'
        for _ in range(20):
            yield b"n" * 100
        yield b'"}'

    resp = await small_client.post("/auth/signup", data=chunks(), headers=JSON_HEADERS)
    await assert_error(resp, 413, "payload_too_large")


# ---- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["123", "not-a-uuid", "00000000-0000-0000-0000-00000000000g", "%20", "'--"])
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"status": "closed"}),
        ("GET", "/messages", None),
        ("POST", "/messages", {"body": "x"}),
    ],
)
async def test_bad_ticket_ids_are_404(
    client: TestClient, agent: User, bad_id: str, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    resp = await client.request(method, f"/tickets/{bad_id}{suffix}", json=body, headers=agent.headers)
    await assert_error(resp, 404, "not_found", "Ticket not found")


async def test_unknown_paths_are_404_json(client: TestClient) -> None:
    await assert_error(await client.get("/nope"), 404, "not_found", "No such endpoint")
    await assert_error(await client.get("/tickets/a/b/c/d"), 404, "not_found")


async def test_wrong_methods_are_405_with_allow(client: TestClient) -> None:
    resp = await client.delete("/tickets")
    await assert_error(resp, 405, "method_not_allowed", "DELETE")
    assert set(resp.headers["Allow"].split(",")) >= {"GET", "POST"}
    await assert_error(await client.put(f"/tickets/{uuid.uuid4()}"), 405, "method_not_allowed")


# ---- query strings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=101", "limit"),
        ("limit=1.5", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("status=bogus", "status"),
        ("priority=HIGH", "priority"),
        ("waiting=maybe", "waiting"),
        ("assignee=bob", "assignee"),
        ("assignee=12", "assignee"),
        ("sort=asc", "sort"),
        ("cursor=%%%", "cursor"),
        ("cursor=bm90IGpzb24", "cursor"),  # base64 of "not json"
        (f"cursor={cursor_of(['2024-01-01T00:00:00', SOME_ID])}", "cursor"),  # naive timestamp
        (f"cursor={cursor_of(['2024-01-01T00:00:00+00:00', 'nope'])}", "cursor"),
        (f"cursor={cursor_of(['2024-01-01T00:00:00+00:00', 5])}", "cursor"),
        (f"cursor={cursor_of(['2024-01-01T00:00:00+00:00', {'a': 1}])}", "cursor"),
        (f"cursor={cursor_of(['2024-01-01T00:00:00+00:00', None])}", "cursor"),
        (f"cursor={cursor_of([1, 2])}", "cursor"),
        (f"cursor={cursor_of({'a': 1, 'b': 2})}", "cursor"),
        (f"cursor={cursor_of(['0001-01-01T00:00:00+14:00', SOME_ID])}", "cursor"),
        (f"cursor={cursor_of(['9999-12-31T23:59:59-14:00', SOME_ID])}", "cursor"),
        (f"cursor={cursor_of(None)}", "cursor"),
    ],
)
async def test_bad_ticket_list_queries_are_422(client: TestClient, agent: User, query: str, field: str) -> None:
    error = await assert_error(await client.get(f"/tickets?{query}", headers=agent.headers), 422, "validation_error")
    assert field in error["details"]["fields"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("after_seq=-1", "after_seq"),
        ("after_seq=abc", "after_seq"),
        ("before_seq=0", "before_seq"),
        ("before_seq=1e3", "before_seq"),
        (f"after_seq={2**63}", "after_seq"),
        ("limit=201", "limit"),
        ("limit=0", "limit"),
        ("since=1", "since"),
    ],
)
async def test_bad_history_queries_are_422(client: TestClient, customer: User, query: str, field: str) -> None:
    ticket = await create_ticket(client, customer)
    resp = await client.get(f"/tickets/{ticket['id']}/messages?{query}", headers=customer.headers)
    error = await assert_error(resp, 422, "validation_error")
    assert field in error["details"]["fields"]


# ---- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer not.a.jwt", "Bearer ünïcode"],
)
async def test_missing_or_malformed_credentials_are_401(client: TestClient, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    resp = await client.get("/tickets", headers=headers)
    await assert_error(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_a_token_whose_account_was_deleted_is_401_not_500(
    client: TestClient, make_user: MakeUser, agent: User
) -> None:
    gone = await make_user("customer")
    ticket = await create_ticket(client, gone)
    staff_ticket = await create_ticket(client, await make_user("customer"))
    await client.app[DB_POOL].execute("DELETE FROM users WHERE id = ANY($1::uuid[])", [gone.id, agent.id])
    await assert_error(await client.get("/auth/me", headers=gone.headers), 401, "unauthorized", "no longer exists")
    await assert_error(await client.post("/tickets", json={"subject": "x"}, headers=gone.headers), 401, "unauthorized")
    # The deleted customer's tickets went with the account (ON DELETE CASCADE).
    await assert_error(await client.get(f"/tickets/{ticket['id']}", headers=gone.headers), 404, "not_found")
    resp = await client.post(f"/tickets/{staff_ticket['id']}/messages", json={"body": "x"}, headers=agent.headers)
    await assert_error(resp, 401, "unauthorized", "no longer exists")
