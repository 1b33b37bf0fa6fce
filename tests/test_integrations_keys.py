"""API keys (issue 16): created by admins and shown once, stored as a hash, accepted as a bearer
token on REST and room sockets within their scopes, acting as a named integration; revoked on
every instance at once; rate-limited per key; last use recorded."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chatserver.keys import DB_POOL
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .services import ServerProcess
from .test_access_instances import make_account, sign_in
from .wsutil import close_code, recv_type


async def new_key(client: TestClient, admin: User, scopes: list[str], **extra: Any) -> dict[str, Any]:
    resp = await client.post(
        "/admin/api-keys", json={"name": "CRM sync", "scopes": scopes, **extra}, headers=admin.headers
    )
    assert resp.status == 201, await resp.text()
    key: dict[str, Any] = (await resp.json())["api_key"]
    return key


def bearer(key: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


async def test_a_key_is_shown_once_and_stored_only_as_its_hash(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    key = await new_key(client, admin, ["tickets:read"])
    secret = key["key"]
    assert secret.startswith("csk_") and len(secret) >= 40 and key["prefix"] == secret[:12]
    listed = (await (await client.get("/admin/api-keys", headers=admin.headers)).json())["api_keys"]
    assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0]
    assert (
        "key" not in (await (await client.get(f"/admin/api-keys/{key['id']}", headers=admin.headers)).json())["api_key"]
    )
    row = await client.app[DB_POOL].fetchrow("SELECT secret_hash FROM api_keys WHERE id = $1", key["id"])
    assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
    dump = await client.app[DB_POOL].fetchval("SELECT string_agg(t::text, ' ') FROM api_keys t")
    assert secret not in dump and secret[12:] not in dump


async def test_only_admins_manage_keys_and_bad_input_is_422(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    for role in ("customer", "agent"):
        user = await make_user(role)
        resp = await client.post("/admin/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=user.headers)
        assert resp.status == 403
    for body in (
        {"name": "x", "scopes": ["tickets:delete"]},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": "admin"},
        {"name": "", "scopes": ["admin"]},
        {"name": "x", "scopes": ["admin"], "expires_at": "yesterday"},
        {"name": "x", "scopes": ["admin"], "expires_at": "2001-01-01T00:00:00+00:00"},
    ):
        resp = await client.post("/admin/api-keys", json=body, headers=admin.headers)
        assert resp.status == 422, body


async def test_a_key_acts_as_its_integration_within_its_scopes(client: TestClient, make_user: MakeUser) -> None:
    admin, agent, customer = await make_user("admin"), await make_user("agent"), await make_user("customer")
    ticket = await create_ticket(client, customer, "Order 42")
    reader = await new_key(client, admin, ["tickets:read"])
    writer = await new_key(client, admin, ["tickets:read", "messages:write"])
    # Reading every ticket, as staff do.
    resp = await client.get("/tickets", headers=bearer(reader))
    assert resp.status == 200 and [t["id"] for t in (await resp.json())["tickets"]] == [ticket["id"]]
    # Writing needs its own scope.
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "hi"}, headers=bearer(reader))
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "insufficient_scope"
    resp = await client.patch(f"/tickets/{ticket['id']}", json={"status": "pending"}, headers=bearer(writer))
    assert resp.status == 403
    resp = await client.post(
        f"/tickets/{ticket['id']}/messages", json={"body": "Order shipped"}, headers=bearer(writer)
    )
    assert resp.status == 201
    message = (await resp.json())["message"]
    # Authored by the integration, and agents see it as such.
    assert message["author_kind"] == "integration" and message["author_id"] == writer["integration_user_id"]
    shown = (await (await client.get(f"/tickets/{ticket['id']}/messages", headers=agent.headers)).json())["messages"]
    assert shown[-1]["author_kind"] == "integration"
    me = await (await client.get("/auth/me", headers=bearer(writer))).json()
    assert me["user"]["role"] == "integration" and me["user"]["name"] == "CRM sync"


async def test_a_key_cannot_reach_routes_beyond_its_scopes(client: TestClient, make_user: MakeUser) -> None:
    admin, customer = await make_user("admin"), await make_user("customer")
    ticket = await create_ticket(client, customer, "Scope")
    key = await new_key(client, admin, ["tickets:read", "tickets:write", "messages:write"])
    for method, path, body in [
        ("GET", "/admin/users", None),
        ("GET", "/admin/api-keys", None),
        ("POST", "/admin/api-keys", {"name": "more", "scopes": ["admin"]}),
        ("GET", "/events", None),
        ("POST", "/tickets", {"subject": "x"}),
        ("POST", f"/tickets/{ticket['id']}/copilot", None),
        ("POST", "/ws/tickets", None),
        ("GET", "/console/api/inbox", None),
    ]:
        resp = await client.request(method, path, json=body, headers=bearer(key))
        assert resp.status == 403, f"{method} {path}: {resp.status}"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws/inbox", headers=bearer(key))
    assert refused.value.status == 403


async def test_an_admin_scoped_key_manages_and_an_events_key_reads_the_feed(
    client: TestClient, make_user: MakeUser
) -> None:
    admin = await make_user("admin")
    root = await new_key(client, admin, ["admin"])
    resp = await client.post("/admin/api-keys", json={"name": "feed", "scopes": ["events:read"]}, headers=bearer(root))
    assert resp.status == 201
    feed_key = (await resp.json())["api_key"]
    resp = await client.get("/events", params={"wait": "0"}, headers=bearer(feed_key))
    assert resp.status == 200
    assert (await client.get("/tickets", headers=bearer(feed_key))).status == 403


async def test_unknown_expired_and_revoked_keys_are_refused(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    resp = await client.get("/tickets", headers={"Authorization": "Bearer csk_nottherightkeyatall"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_api_key"
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).isoformat()
    expiring = await new_key(client, admin, ["tickets:read"], expires_at=soon)
    key = await new_key(client, admin, ["tickets:read"])
    assert (await client.get("/tickets", headers=bearer(key))).status == 200
    resp = await client.post(f"/admin/api-keys/{key['id']}/revoke", headers=admin.headers)
    assert resp.status == 200 and (await resp.json())["api_key"]["revoked_at"]
    resp = await client.get("/tickets", headers=bearer(key))
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_api_key"
    # The integration account cannot sign in any other way either.
    email = await client.app[DB_POOL].fetchval("SELECT email FROM users WHERE id = $1", key["integration_user_id"])
    assert (await client.post("/auth/login", json={"email": email, "password": "whatever1"})).status == 401
    await asyncio.sleep(1.1)
    resp = await client.get("/tickets", headers=bearer(expiring))
    assert resp.status == 401 and "expired" in (await resp.json())["error"]["message"]


async def test_last_use_is_recorded(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    key = await new_key(client, admin, ["tickets:read"])
    assert key["last_used_at"] is None
    for _ in range(3):
        assert (await client.get("/tickets", headers=bearer(key))).status == 200
    for _ in range(50):
        got = (await (await client.get(f"/admin/api-keys/{key['id']}", headers=admin.headers)).json())["api_key"]
        if got["last_used_at"]:
            break
        await asyncio.sleep(0.05)
    assert got["last_used_at"] is not None


class TestRateLimit:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return replace(settings, api_key_rate=0.1, api_key_burst=3)

    async def test_each_key_has_its_own_request_budget(self, client: TestClient, make_user: MakeUser) -> None:
        admin = await make_user("admin")
        one, two = await new_key(client, admin, ["tickets:read"]), await new_key(client, admin, ["tickets:read"])
        statuses = [(await client.get("/tickets", headers=bearer(one))).status for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        resp = await client.get("/tickets", headers=bearer(one))
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await client.get("/tickets", headers=bearer(two))).status == 200


async def test_a_key_joins_a_room_socket_and_posts_only_with_its_scope(client: TestClient, make_user: MakeUser) -> None:
    admin, customer = await make_user("admin"), await make_user("customer")
    ticket = await create_ticket(client, customer, "Socket")
    reader = await new_key(client, admin, ["tickets:read"])
    ws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=bearer(reader))
    await recv_type(ws, "joined")
    await ws.send_json({"type": "message.send", "body": "hello", "client_id": "c1"})
    error = await recv_type(ws, "error")
    assert error["code"] == "insufficient_scope"
    await ws.send_json({"type": "ai.takeover"})
    assert (await recv_type(ws, "error"))["code"] == "insufficient_scope"
    await ws.close()
    writer = await new_key(client, admin, ["tickets:read", "messages:write"])
    ws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=bearer(writer))
    await recv_type(ws, "joined")
    await ws.send_json({"type": "message.send", "body": "hello", "client_id": "c1"})
    ack = await recv_type(ws, "ack")
    assert ack["message"]["author_kind"] == "integration"
    await ws.close()


async def test_a_key_revoked_on_one_instance_is_refused_on_the_other_at_once(
    two_servers: list[ServerProcess], database_url: str
) -> None:
    a, b = two_servers
    admin_email = await make_account(database_url, "admin")
    customer_email = await make_account(database_url, "customer")
    async with aiohttp.ClientSession() as http:
        admin = {"Authorization": f"Bearer {(await sign_in(http, a.base_url, admin_email))['access_token']}"}
        customer = {"Authorization": f"Bearer {(await sign_in(http, b.base_url, customer_email))['access_token']}"}
        async with http.post(f"{b.base_url}/tickets", json={"subject": "x"}, headers=customer) as resp:
            ticket = (await resp.json())["ticket"]
        async with http.post(
            f"{a.base_url}/admin/api-keys", json={"name": "bot", "scopes": ["tickets:read"]}, headers=admin
        ) as resp:
            key = (await resp.json())["api_key"]
        headers = bearer(key)
        # B has checked (and cached) the key, and holds a socket opened with it.
        async with http.get(f"{b.base_url}/tickets", headers=headers) as resp:
            assert resp.status == 200
        ws = await http.ws_connect(f"{b.base_url.replace('http', 'ws')}/tickets/{ticket['id']}/ws", headers=headers)
        await recv_type(ws, "joined")
        async with http.post(f"{a.base_url}/admin/api-keys/{key['id']}/revoke", headers=admin) as resp:
            assert resp.status == 200
        assert await close_code(ws) == 4003
        async with http.get(f"{b.base_url}/tickets", headers=headers) as resp:
            assert resp.status == 401


async def test_integration_answers_match_the_openapi_spec(client: TestClient, make_user: MakeUser) -> None:
    from .test_openapi import assert_matches_spec

    admin = await make_user("admin")
    resp = await client.post(
        "/admin/api-keys", json={"name": "spec", "scopes": ["events:read", "tickets:read"]}, headers=admin.headers
    )
    key = (await assert_matches_spec(resp, "post", "/admin/api-keys"))["api_key"]
    await assert_matches_spec(await client.get("/admin/api-keys", headers=admin.headers), "get", "/admin/api-keys")
    resp = await client.post(
        "/admin/webhooks",
        json={"url": "https://example.com/hook", "event_types": ["ticket.created"]},
        headers=admin.headers,
    )
    hook = (await assert_matches_spec(resp, "post", "/admin/webhooks"))["webhook"]
    resp = await client.post(f"/admin/webhooks/{hook['id']}/test", headers=admin.headers)
    await assert_matches_spec(resp, "post", "/admin/webhooks/{endpoint_id}/test")
    resp = await client.get(f"/admin/webhooks/{hook['id']}/deliveries", headers=admin.headers)
    await assert_matches_spec(resp, "get", "/admin/webhooks/{endpoint_id}/deliveries")
    await create_ticket(client, await make_user("customer"), "Spec", message="hi")
    resp = await client.get("/events", params={"wait": "5"}, headers=bearer(key))
    await assert_matches_spec(resp, "get", "/events")
    me = await client.get("/auth/me", headers=bearer(key))
    await assert_matches_spec(me, "get", "/auth/me")
    resp = await client.get("/events", params={"after": "nope"}, headers=bearer(key))
    await assert_matches_spec(resp, "get", "/events")


def test_rolling_back_0009_keeps_integration_messages_as_authorless_agent_messages(server_url: str) -> None:
    import psycopg

    from chatserver.db.migrate import apply_migrations, rollback_migrations

    from .dbutil import throwaway_database

    with throwaway_database(server_url) as url:
        apply_migrations(url)
        with psycopg.connect(url, autocommit=True) as conn:
            ids = conn.execute(
                "INSERT INTO users (email, password_hash, role) VALUES ('c@x.io', 'x', 'customer'),"
                " ('k@integrations.invalid', 'x', 'integration') RETURNING id"
            ).fetchall()
            customer, integration = ids[0][0], ids[1][0]
            ticket = conn.execute(
                "INSERT INTO tickets (customer_id, subject) VALUES (%s, 's') RETURNING id", (customer,)
            ).fetchone()
            assert ticket is not None
            conn.execute(
                "INSERT INTO messages (ticket_id, seq, author_id, author_kind, body)"
                " VALUES (%s, 1, %s, 'integration', 'shipped')",
                (ticket[0], integration),
            )
        assert rollback_migrations(url, 1) == 1
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT author_id, author_kind, body FROM messages").fetchone()
            roles = conn.execute("SELECT role FROM users").fetchall()
        assert row == (None, "agent", "shipped") and roles == [("customer",)]
        assert apply_migrations(url) == 1
