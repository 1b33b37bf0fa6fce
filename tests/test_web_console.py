"""The agent console's server side: login and logout with an encrypted session cookie, CSRF on every
state-changing request, the session's API token, cookie-authenticated sockets, inbox rows."""

from __future__ import annotations

import base64
import inspect
import re
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from aiohttp_session import STORAGE_KEY, Session
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from chatserver.app import create_app
from chatserver.handlers.identity import session_identity
from chatserver.keys import DB_POOL
from chatserver.services.auth import create_user
from chatserver.settings import Settings
from chatserver.web_session import (
    COOKIE_SOCKET_ROUTES,
    SESSION_COOKIE,
    SESSION_ROUTES,
    session_key,
    session_storage,
    uses_session,
)

from .conftest import PASSWORD, TEST_SECRET, MakeUser, User, create_ticket
from .wsutil import recv

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


async def csrf_from(client: TestClient, path: str = "/console/login") -> str:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    match = CSRF_FIELD.search(await resp.text())
    assert match, "no CSRF field in the page"
    return match.group(1)


async def console_login(client: TestClient, user: User) -> str:
    """Log in through the form; returns the console page's CSRF token."""
    token = await csrf_from(client)
    resp = await client.post(
        "/console/login",
        data={"email": user.email, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == "/console"
    return await csrf_from(client, "/console")


def own_origin(client: TestClient) -> str:
    return f"http://{client.server.host}:{client.server.port}"


async def test_login_page_has_a_csrf_token_and_strict_security_headers(client: TestClient) -> None:
    resp = await client.get("/console/login")
    assert resp.status == 200
    assert CSRF_FIELD.search(await resp.text())
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


async def test_agent_logs_in_and_sees_the_console(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent", name="Alex")
    await console_login(client, agent)
    resp = await client.get("/console")
    assert resp.status == 200
    text = await resp.text()
    assert "Alex" in text and "/static/js/console.js" in text


async def test_login_without_the_csrf_token_is_refused(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    await csrf_from(client)  # a session exists, but the form does not carry its token
    for token in (None, "forged"):
        data = {"email": agent.email, "password": PASSWORD}
        if token:
            data["csrf_token"] = token
        resp = await client.post("/console/login", data=data, allow_redirects=False)
        assert resp.status == 403
        assert "This form has expired" in await resp.text()
    assert (await client.get("/console", allow_redirects=False)).status == 303


async def test_login_from_another_site_is_refused(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    token = await csrf_from(client)
    resp = await client.post(
        "/console/login",
        data={"email": agent.email, "password": PASSWORD, "csrf_token": token},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert resp.status == 403


async def test_wrong_password_shows_the_form_again(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    token = await csrf_from(client)
    resp = await client.post(
        "/console/login", data={"email": agent.email, "password": "wrong password", "csrf_token": token}
    )
    assert resp.status == 401
    assert "Email or password is incorrect" in await resp.text()


async def test_a_customer_cannot_log_in_to_the_console(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    token = await csrf_from(client)
    resp = await client.post(
        "/console/login",
        data={"email": customer.email, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert "for support agents" in await resp.text()
    assert (await client.get("/console", allow_redirects=False)).status == 303


async def test_a_customer_session_cannot_open_the_console(
    client: TestClient, make_user: MakeUser, settings: Settings
) -> None:
    """Even a validly encrypted session (made here with the server's key) that names a customer."""
    customer = await make_user("customer")
    cookie = await session_cookie(settings, {"uid": customer.id, "role": "customer", "csrf": "t"})
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: cookie})
    resp = await client.get("/console", allow_redirects=False)
    assert resp.status == 403
    resp = await client.post("/console/api/token", headers={"X-CSRF-Token": "t"})
    assert resp.status == 403


async def session_cookie(settings: Settings, data: dict[str, Any]) -> str:
    """A session cookie as the server would set it, made with the server's own storage."""
    session = Session(None, data=None, new=True, max_age=None)
    session.update(data)
    response = web.Response()
    await session_storage(settings).save_session(make_mocked_request("GET", "/"), response, session)
    return response.cookies[SESSION_COOKIE].value


async def test_console_without_a_session_redirects_to_login(client: TestClient) -> None:
    resp = await client.get("/console", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"


async def test_logout_needs_the_csrf_token_and_ends_the_session(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    token = await console_login(client, agent)
    assert (await client.post("/console/logout", data={}, allow_redirects=False)).status == 403
    assert (await client.get("/console", allow_redirects=False)).status == 200
    resp = await client.post("/console/logout", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"
    assert (await client.get("/console", allow_redirects=False)).status == 303


async def test_api_token_needs_the_csrf_header(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    token = await console_login(client, agent)
    assert (await client.post("/console/api/token")).status == 403
    assert (await client.post("/console/api/token", headers={"X-CSRF-Token": "nope"})).status == 403
    resp = await client.post("/console/api/token", headers={"X-CSRF-Token": token})
    assert resp.status == 200
    body = await resp.json()
    assert body["expires_in"] == 15 * 60
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert (await me.json())["user"]["id"] == agent.id


async def test_api_token_needs_a_session(client: TestClient) -> None:
    assert (await client.post("/console/api/token", headers={"X-CSRF-Token": "x"})).status == 401


async def test_inbox_socket_accepts_the_session_cookie_from_our_own_origin(
    client: TestClient, make_user: MakeUser
) -> None:
    agent = await make_user("agent")
    await console_login(client, agent)
    ws = await client.ws_connect("/ws/inbox", headers={"Origin": own_origin(client)})
    assert (await recv(ws))["type"] == "inbox.ready"
    await ws.close()


async def test_cookie_socket_from_another_origin_is_refused(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    await console_login(client, agent)
    try:
        await client.ws_connect("/ws/inbox", headers={"Origin": "https://evil.example"})
    except aiohttp.WSServerHandshakeError as err:
        assert err.status == 403
    else:
        raise AssertionError("a foreign origin opened a cookie-authenticated socket")


async def test_cookie_socket_from_a_widget_origin_is_refused(
    aiohttp_client: Any, settings: Settings, make_user: MakeUser
) -> None:
    """ALLOWED_ORIGINS lets shops embed the widget; it must not let them use an agent's cookie."""
    shop = "https://shop.example"
    client = await aiohttp_client(create_app(settings.with_overrides(allowed_origins=(shop,)), bcrypt_rounds=4))
    email = f"agent-{uuid.uuid4().hex[:8]}@example.com"
    await create_user(client.app[DB_POOL], email=email, password=PASSWORD, role="agent", name="A", bcrypt_rounds=4)
    token = await (await client.post("/auth/login", json={"email": email, "password": PASSWORD})).json()
    await console_login(client, User(token["user"]["id"], email, "agent", token["access_token"]))
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect("/ws/inbox", headers={"Origin": shop})
    assert info.value.status == 403


async def test_room_socket_works_with_the_console_session(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer, message="Hello")
    await console_login(client, agent)
    ws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers={"Origin": own_origin(client)})
    joined = await recv(ws)
    assert joined["type"] == "joined" and joined["you"]["id"] == agent.id
    await ws.close()


async def test_inbox_rows_carry_the_customer_and_the_newest_message(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer", name="Cara")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer, "Late parcel", message="Where is it?")
    await client.post(
        f"/tickets/{ticket['id']}/messages", json={"body": "Checking", "internal": True}, headers=agent.headers
    )
    resp = await client.get("/console/api/inbox", headers=agent.headers)
    assert resp.status == 200
    [row] = (await resp.json())["tickets"]
    assert row["ticket"]["id"] == ticket["id"]
    assert row["customer"] == {
        "id": customer.id,
        "name": "Cara",
        "email": customer.email,
        "external_id": None,
        "anonymous": False,
    }
    assert row["last_message"]["body"] == "Checking" and row["last_message"]["visibility"] == "internal"
    one = await (await client.get(f"/console/api/inbox/{ticket['id']}", headers=agent.headers)).json()
    assert one == row


async def test_inbox_rows_filter_like_the_ticket_list(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    first = await create_ticket(client, customer, "One")
    await create_ticket(client, customer, "Two")
    await client.patch(f"/tickets/{first['id']}", json={"status": "pending"}, headers=agent.headers)
    resp = await client.get("/console/api/inbox?status=pending", headers=agent.headers)
    assert [r["ticket"]["subject"] for r in (await resp.json())["tickets"]] == ["One"]


async def test_console_api_is_for_staff_only(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    for path in ("/console/api/inbox", f"/console/api/inbox/{ticket['id']}", "/console/api/agents"):
        resp = await client.get(path, headers=customer.headers)
        assert resp.status == 403, path


async def test_agents_list_has_staff_and_no_customers(client: TestClient, make_user: MakeUser) -> None:
    await make_user("customer")
    agent = await make_user("agent", name="Alex")
    admin = await make_user("admin", name="Ada")
    resp = await client.get("/console/api/agents", headers=agent.headers)
    listed = {(a["id"], a["role"]) for a in (await resp.json())["agents"]}
    assert listed == {(agent.id, "agent"), (admin.id, "admin")}


def test_session_key_is_derived_from_the_secret_not_equal_to_it() -> None:
    key = session_key(TEST_SECRET)
    assert len(key) == 32 and key == session_key(TEST_SECRET)
    assert key != session_key(TEST_SECRET + "x")
    assert base64.urlsafe_b64encode(key).decode() not in TEST_SECRET
    assert isinstance(session_storage(Settings(secret_key=TEST_SECRET)), EncryptedCookieStorage)


# ---- which requests run the session middleware -----------------------------------------------


async def routed_request(app: web.Application, method: str, path: str, headers: Mapping[str, str]) -> web.Request:
    """A request as the app's router matches it (the session decision is made by route)."""
    request = make_mocked_request(method, path, headers=headers, app=app)
    request._match_info = await app.router.resolve(request)  # what Application._handle does
    return request


SOME_COOKIE = {"Cookie": f"{SESSION_COOKIE}=anything"}
SOME_ID = "8d2f6feb-f1e0-4f71-8da6-f41edbb50c5c"


@pytest.mark.parametrize(
    ("method", "path", "headers", "expected"),
    [
        ("GET", "/console", {}, True),
        ("GET", f"/console/tickets/{SOME_ID}", {}, True),
        ("GET", "/console/login", {}, True),
        ("POST", "/console/login", {}, True),
        ("POST", "/console/logout", {}, True),
        ("POST", "/console/api/token", {}, True),
        ("GET", "/ws/inbox", SOME_COOKIE, True),
        ("GET", f"/tickets/{SOME_ID}/ws", SOME_COOKIE, True),
        # A socket without the cookie authenticates otherwise: there is no session to read.
        ("GET", "/ws/inbox", {}, False),
        ("GET", f"/tickets/{SOME_ID}/ws", {"Authorization": "Bearer x"}, False),
        # The REST API (the console's too: it uses bearer tokens), the widget, probes, 404s.
        ("GET", "/tickets", SOME_COOKIE, False),
        ("GET", "/console/api/inbox", SOME_COOKIE, False),
        ("POST", "/widget/visitors", SOME_COOKIE, False),
        ("GET", "/healthz", SOME_COOKIE, False),
        ("GET", "/no/such/path", SOME_COOKIE, False),
    ],
)
async def test_only_console_routes_and_cookie_sockets_use_the_session(
    settings: Settings, method: str, path: str, headers: dict[str, str], expected: bool
) -> None:
    app = create_app(settings, bcrypt_rounds=4)
    assert uses_session(await routed_request(app, method, path, headers)) is expected


# What a handler calls when it reads, creates or ends the session (directly or, for the sockets,
# through socket_identity).
SESSION_CALLS = ("session_identity", "socket_identity", "get_session", "new_session", "csrf_token(", "check_csrf")


def test_every_handler_that_touches_the_session_is_on_a_session_route(settings: Settings) -> None:
    app = create_app(settings, bcrypt_rounds=4)
    touching, named = set(), set()
    for route in app.router.routes():
        if route.name is None or not inspect.isfunction(route.handler):
            continue
        named.add(route.name)
        if any(call in inspect.getsource(route.handler) for call in SESSION_CALLS):
            touching.add(route.name)
    assert named >= SESSION_ROUTES | COOKIE_SOCKET_ROUTES, "a session route was renamed or removed"
    assert touching == SESSION_ROUTES | COOKIE_SOCKET_ROUTES


async def session_probe(request: web.Request) -> web.Response:
    identity = await session_identity(request)
    return web.json_response({"session_middleware": STORAGE_KEY in request, "identity": identity is not None})


async def test_other_requests_never_see_the_session(aiohttp_client: Any, settings: Settings) -> None:
    """Even with a valid agent session cookie, a handler outside the session routes gets no session."""
    app = create_app(settings, bcrypt_rounds=4)
    app.router.add_get("/_test/session", session_probe, name="test-session")
    client: TestClient = await aiohttp_client(app)
    cookie = await session_cookie(settings, {"uid": str(uuid.uuid4()), "role": "agent", "csrf": "t"})
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: cookie})
    resp = await client.get("/_test/session")
    assert await resp.json() == {"session_middleware": False, "identity": False}
    assert SESSION_COOKIE not in resp.cookies


async def test_bearer_requests_work_beside_a_console_session_and_leave_it_alone(
    client: TestClient, make_user: MakeUser
) -> None:
    agent = await make_user("agent")
    await console_login(client, agent)
    resp = await client.get("/tickets", headers=agent.headers)
    assert resp.status == 200
    assert "Set-Cookie" not in resp.headers
    assert (await client.get("/console", allow_redirects=False)).status == 200


async def test_a_bearer_request_needs_no_cookie_at_all(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    await create_ticket(client, customer, "Mine")
    assert not client.session.cookie_jar.filter_cookies(client.make_url("/"))
    resp = await client.get("/tickets", headers=customer.headers)
    assert resp.status == 200
    assert [t["subject"] for t in (await resp.json())["tickets"]] == ["Mine"]
    assert "Set-Cookie" not in resp.headers
