"""The limits of docs/operations.md ("Limits"), each shown as the attack it stops: the requests an
attacker sends, and the refusal (429 with Retry-After, or a closed connection).

Different client addresses are real: Linux routes all of 127.0.0.0/8 to loopback, so a client
bound to 127.0.0.2 reaches the server from another address than one bound to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chatserver.app import create_app
from chatserver.handlers.ws import TYPING_MIN_GAP
from chatserver.keys import SETTINGS
from chatserver.settings import Settings, load_settings

from .conftest import PASSWORD, TEST_SECRET, MakeUser, User, create_ticket
from .services import ServerProcess
from .wsutil import drain, recv, recv_type


@asynccontextmanager
async def from_address(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose connections come from `address` (a loopback address)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


def assert_throttled(resp: aiohttp.ClientResponse, body: dict[str, Any], code: str = "rate_limited") -> None:
    assert resp.status == 429, body
    assert int(resp.headers["Retry-After"]) >= 1
    assert body["error"]["code"] == code
    assert body["error"]["details"]["retry_after"] == int(resp.headers["Retry-After"])


# ---- sign-up -----------------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(signup_limit_per_address=3)


def signup_body() -> dict[str, str]:
    return {"email": f"new-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD}


async def test_a_signup_flood_from_one_address_is_refused_with_retry_after(client: TestClient) -> None:
    for _ in range(3):
        assert (await client.post("/auth/signup", json=signup_body())).status == 201
    resp = await client.post("/auth/signup", json=signup_body())
    assert_throttled(resp, await resp.json())
    # Another address still signs up.
    async with from_address("127.0.0.2") as other:
        resp = await other.post(client.make_url("/auth/signup"), json=signup_body())
        assert resp.status == 201


async def test_probing_for_taken_emails_counts_against_the_signup_throttle(
    client: TestClient, make_user: MakeUser
) -> None:
    victim = await make_user("agent")
    # 409 says "this account exists": the throttle bounds how many addresses one client can test.
    for _ in range(3):
        resp = await client.post("/auth/signup", json={"email": victim.email, "password": PASSWORD})
        assert resp.status == 409
    resp = await client.post("/auth/signup", json={"email": victim.email, "password": PASSWORD})
    assert_throttled(resp, await resp.json())


# ---- failed logins -----------------------------------------------------------------------


async def login_from(address: str, client: TestClient, email: str, password: str) -> aiohttp.ClientResponse:
    async with from_address(address) as session:
        resp = await session.post(client.make_url("/auth/login"), json={"email": email, "password": password})
        await resp.read()
        return resp


async def test_an_attacker_elsewhere_cannot_lock_a_user_out_of_their_own_address(
    client: TestClient, make_user: MakeUser
) -> None:
    user = await make_user("agent")
    limit = client.app[SETTINGS].login_max_failures
    for _ in range(limit):
        assert (await login_from("127.0.0.2", client, user.email, "wrong password!")).status == 401
    # The attacker is locked out of this account, even with the right password...
    assert (await login_from("127.0.0.2", client, user.email, PASSWORD)).status == 429
    # ...the user, at their own address, is not.
    assert (await login_from("127.0.0.1", client, user.email, PASSWORD)).status == 200


async def test_one_address_spraying_many_accounts_is_throttled(client: TestClient, make_user: MakeUser) -> None:
    # The defaults: 5 failures per account and address, 50 per address.
    users = [await make_user("customer") for _ in range(11)]
    statuses = []
    for user in users:
        for _ in range(5):
            statuses.append((await login_from("127.0.0.3", client, user.email, "wrong password!")).status)
    assert statuses[:50] == [401] * 50
    assert set(statuses[50:]) == {429}
    resp = await login_from("127.0.0.3", client, users[-1].email, PASSWORD)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1


@pytest.fixture
def few_account_failures(settings: Settings) -> Settings:
    return settings.with_overrides(login_account_max_failures=3)


async def test_guessing_one_password_from_many_addresses_is_capped_except_where_the_user_signs_in(
    aiohttp_client: Any, few_account_failures: Settings, client: TestClient
) -> None:
    client = await aiohttp_client(create_app(few_account_failures, bcrypt_rounds=4))
    user = await _make_user(client)
    # The user has signed in from 127.0.0.1 before the attack.
    assert (await login_from("127.0.0.1", client, user.email, PASSWORD)).status == 200
    for address in ("127.0.0.4", "127.0.0.5", "127.0.0.6"):
        assert (await login_from(address, client, user.email, "wrong password!")).status == 401
    # A fourth address is refused before its password is even checked...
    assert (await login_from("127.0.0.7", client, user.email, PASSWORD)).status == 429
    # ...the address the user signs in from is not.
    assert (await login_from("127.0.0.1", client, user.email, PASSWORD)).status == 200


async def _make_user(client: TestClient, role: str = "customer") -> User:
    from chatserver.keys import DB_POOL
    from chatserver.services.auth import create_user

    email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
    row = await create_user(client.app[DB_POOL], email=email, password=PASSWORD, role=role, name=role, bcrypt_rounds=4)
    return User(str(row["id"]), email, role, "")


# ---- message posts -----------------------------------------------------------------------


@pytest.fixture
def slow_sends(settings: Settings) -> Settings:
    # A budget that does not refill during the test: 5 posts, then nothing.
    return settings.with_overrides(ws_send_rate=0.01, ws_send_burst=5)


@pytest.fixture
async def slow_client(aiohttp_client: Any, slow_sends: Settings, client: TestClient) -> TestClient:
    # `client` first: it empties the database.
    return await aiohttp_client(create_app(slow_sends, bcrypt_rounds=4))


async def post(client: TestClient, user: User, ticket: dict[str, Any], body: str) -> aiohttp.ClientResponse:
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": body}, headers=user.headers)
    await resp.read()
    return resp


async def test_rest_message_posts_are_rate_limited_per_user(slow_client: TestClient) -> None:
    customer = await _login(slow_client, await _make_user(slow_client))
    ticket = await create_ticket(slow_client, customer)
    statuses = [(await post(slow_client, customer, ticket, f"spam {i}")).status for i in range(8)]
    assert statuses == [201] * 5 + [429] * 3
    resp = await slow_client.post(f"/tickets/{ticket['id']}/messages", json={"body": "x"}, headers=customer.headers)
    assert_throttled(resp, await resp.json())
    listed = await (await slow_client.get(f"/tickets/{ticket['id']}/messages", headers=customer.headers)).json()
    assert len(listed["messages"]) == 5


async def test_rest_and_socket_posts_share_one_budget(slow_client: TestClient) -> None:
    customer = await _login(slow_client, await _make_user(slow_client))
    ticket = await create_ticket(slow_client, customer)
    ws = await slow_client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer.headers)
    assert (await recv(ws))["type"] == "joined"
    for i in range(3):
        await ws.send_json({"type": "message.send", "client_id": f"c{i}", "body": f"socket {i}"})
        await recv_type(ws, "ack")
    assert [(await post(slow_client, customer, ticket, f"rest {i}")).status for i in range(3)] == [201, 201, 429]
    # And the socket is out of budget too, with the rate_limited error frame.
    await ws.send_json({"type": "message.send", "client_id": "c9", "body": "one more"})
    error = await recv_type(ws, "error")
    assert error["code"] == "rate_limited" and error["retry_after"] > 0
    await ws.close()


async def test_a_users_sockets_share_one_budget(slow_client: TestClient) -> None:
    customer = await _login(slow_client, await _make_user(slow_client))
    ticket = await create_ticket(slow_client, customer)
    sockets = [await slow_client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer.headers) for _ in range(2)]
    for ws in sockets:
        assert (await recv(ws))["type"] == "joined"
    outcomes = []
    for i in range(6):
        ws = sockets[i % 2]
        await ws.send_json({"type": "message.send", "client_id": f"c{i}", "body": f"m{i}"})
        frame = await recv_type(ws, "ack") if i < 5 else await recv_type(ws, "error")
        outcomes.append(frame["type"])
    assert outcomes == ["ack"] * 5 + ["error"]
    for ws in sockets:
        await ws.close()


async def _login(client: TestClient, user: User) -> User:
    resp = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return User(user.id, user.email, user.role, (await resp.json())["access_token"])


# ---- typing ------------------------------------------------------------------------------


async def test_alternating_typing_frames_are_not_all_relayed(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, customer)
    cws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=customer.headers)
    aws = await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=agent.headers)
    await recv(cws)
    await recv(aws)
    started = time.monotonic()
    for i in range(400):
        await cws.send_json({"type": "typing", "active": i % 2 == 0})
    await cws.send_json({"type": "ping", "ref": 1})
    await recv_type(cws, "pong")
    elapsed = time.monotonic() - started
    frames = [f for f in await drain(aws, quiet=TYPING_MIN_GAP + 0.5) if f["type"] == "typing"]
    # At most one typing broadcast per gap, whatever the client sends; the last word is the
    # client's last state (not typing).
    allowed = 2 + int((time.monotonic() - started) / TYPING_MIN_GAP)
    assert 1 <= len(frames) <= allowed, (len(frames), elapsed)
    assert frames[-1]["active"] is False
    await cws.close()
    await aws.close()


# ---- tickets -----------------------------------------------------------------------------


@pytest.fixture
def few_tickets(settings: Settings) -> Settings:
    return settings.with_overrides(tickets_per_customer_per_hour=3, open_tickets_per_customer=100)


async def test_a_customer_opening_tickets_in_a_flood_is_capped_per_hour(
    aiohttp_client: Any, few_tickets: Settings, client: TestClient
) -> None:
    capped = await aiohttp_client(create_app(few_tickets, bcrypt_rounds=4))
    # An anonymous widget visitor, the cheapest account there is.
    visitor = await (await capped.post("/widget/visitors", json={})).json()
    headers = {"Authorization": f"Bearer {visitor['access_token']}"}
    # All at once: the cap is counted in the database under a lock, so a burst cannot race it.
    responses = await asyncio.gather(
        *(capped.post("/tickets", json={"subject": "flood"}, headers=headers) for _ in range(12))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] * 3 + [429] * 9
    refused = next(r for r in responses if r.status == 429)
    assert_throttled(refused, await refused.json())
    # The oldest of the hour's tickets frees a slot in about an hour.
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600


@pytest.fixture
def few_open_tickets(settings: Settings) -> Settings:
    return settings.with_overrides(tickets_per_customer_per_hour=100, open_tickets_per_customer=2)


async def test_open_tickets_per_customer_are_capped_until_one_is_closed(
    aiohttp_client: Any, few_open_tickets: Settings, client: TestClient
) -> None:
    capped = await aiohttp_client(create_app(few_open_tickets, bcrypt_rounds=4))
    customer = await _login(capped, await _make_user(capped))
    first = await create_ticket(capped, customer, "one")
    await create_ticket(capped, customer, "two")
    resp = await capped.post("/tickets", json={"subject": "three"}, headers=customer.headers)
    assert_throttled(resp, await resp.json(), code="too_many_open_tickets")
    closed = await capped.patch(f"/tickets/{first['id']}", json={"status": "closed"}, headers=customer.headers)
    assert closed.status == 200
    await create_ticket(capped, customer, "three")


async def test_the_ticket_caps_are_shared_by_instances(
    aiohttp_client: Any, few_tickets: Settings, client: TestClient
) -> None:
    a = await aiohttp_client(create_app(few_tickets, bcrypt_rounds=4))
    b = await aiohttp_client(create_app(few_tickets, bcrypt_rounds=4))
    customer = await _login(a, await _make_user(a))
    for instance in (a, b, a):
        await create_ticket(instance, customer)
    resp = await b.post("/tickets", json={"subject": "fourth"}, headers=customer.headers)
    assert resp.status == 429


# ---- sockets -----------------------------------------------------------------------------


@pytest.fixture
def few_sockets(settings: Settings) -> Settings:
    return settings.with_overrides(sockets_per_user=3, sockets_per_address=5)


@pytest.fixture
async def socket_client(aiohttp_client: Any, few_sockets: Settings, client: TestClient) -> TestClient:
    return await aiohttp_client(create_app(few_sockets, bcrypt_rounds=4))


async def raw_handshake(client: TestClient, user: User, path: str) -> tuple[int, dict[str, str], bytes]:
    """A WebSocket handshake whose refusal we can read: (status, headers, body)."""
    resp = await client.get(
        path,
        headers={
            **user.headers,
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        },
    )
    body = await resp.read() if resp.status != 101 else b""
    status, headers = resp.status, dict(resp.headers)
    resp.close()
    return status, headers, body


async def test_one_token_cannot_hold_more_than_sockets_per_user(socket_client: TestClient) -> None:
    customer = await _login(socket_client, await _make_user(socket_client))
    ticket = await create_ticket(socket_client, customer)
    path = f"/tickets/{ticket['id']}/ws"
    held = [await socket_client.ws_connect(path, headers=customer.headers) for _ in range(3)]
    status, headers, body = await raw_handshake(socket_client, customer, path)
    assert status == 429
    assert int(headers["Retry-After"]) >= 1
    assert b'"code":"rate_limited"' in body and headers["Content-Type"].startswith("application/json")
    # Closing one frees its slot.
    await held.pop().close()
    await asyncio.sleep(0.1)
    held.append(await socket_client.ws_connect(path, headers=customer.headers))
    for ws in held:
        await ws.close()


async def test_the_inbox_counts_toward_sockets_per_user(socket_client: TestClient) -> None:
    agent = await _login(socket_client, await _make_user(socket_client, "agent"))
    held = [await socket_client.ws_connect("/ws/inbox", headers=agent.headers) for _ in range(3)]
    status, _, _ = await raw_handshake(socket_client, agent, "/ws/inbox")
    assert status == 429
    for ws in held:
        await ws.close()


async def test_one_address_cannot_hold_more_than_sockets_per_address(socket_client: TestClient) -> None:
    users = [await _login(socket_client, await _make_user(socket_client)) for _ in range(3)]
    held = []
    for user in users[:2]:
        ticket = await create_ticket(socket_client, user)
        for _ in range(3 if user is users[0] else 2):
            held.append(await socket_client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=user.headers))
    ticket = await create_ticket(socket_client, users[2])
    status, _, body = await raw_handshake(socket_client, users[2], f"/tickets/{ticket['id']}/ws")
    assert status == 429 and b"address" in body
    # The same user from another address is welcome.
    async with from_address("127.0.0.2") as other:
        ws = await other.ws_connect(socket_client.make_url(f"/tickets/{ticket['id']}/ws"), headers=users[2].headers)
        assert (await recv(ws))["type"] == "joined"
        await ws.close()
    for ws in held:
        await ws.close()


# ---- slow requests -----------------------------------------------------------------------


@pytest.fixture
def short_timeouts(settings: Settings) -> Settings:
    return settings.with_overrides(http_body_timeout=0.5)


async def test_a_body_that_dribbles_in_gets_408(aiohttp_client: Any, short_timeouts: Settings) -> None:
    client = await aiohttp_client(create_app(short_timeouts, bcrypt_rounds=4))
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    await writer.drain()
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), head
    writer.close()


@pytest.fixture
def slow_header_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "CHATSERVER_DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
        "AI_DEFAULT_ENABLED": "false",
        "HTTP_HEADER_TIMEOUT_SECONDS": "1",
    }
    server = ServerProcess(env, tmp_path / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_slowloris_connection_is_closed_while_healthz_answers(slow_header_server: ServerProcess) -> None:
    # The real `serve` command, so this checks the timeout it starts aiohttp with.
    reader, writer = await asyncio.open_connection("127.0.0.1", slow_header_server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    closed = asyncio.ensure_future(reader.read())
    async with aiohttp.ClientSession() as http:
        for i in range(40):
            if closed.done():
                break
            # Headers, one at a time: never the blank line that would end them.
            writer.write(f"X-Slow-{i}: {'y' * 10}\r\n".encode())
            resp = await http.get(f"{slow_header_server.base_url}/healthz")
            assert resp.status == 200
            await asyncio.sleep(0.2)
    async with asyncio.timeout(5):
        try:
            answer = await closed
        except ConnectionResetError:
            # Closed while our last header was still unread in the server's buffer: TCP then
            # sends a reset instead of a FIN. Either way, closed without an answer.
            answer = b""
        assert answer == b""
    writer.close()


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    script = (
        "import resource\n"
        "from chatserver.http_limits import raise_fd_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
        "before, after = raise_fd_limit()\n"
        "print(before, after, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    before, after, now, hard = (int(x) for x in out.split())
    assert before == min(256, hard)
    assert after == now == min(hard, 1 << 20)


# ---- settings ----------------------------------------------------------------------------


def test_every_limit_has_the_documented_default(tmp_path: Path) -> None:
    s = load_settings({"CHATSERVER_DATA_DIR": str(tmp_path), "SECRET_KEY": "k" * 40})
    assert (s.signup_limit_per_address, s.signup_window_seconds) == (20, 600)
    assert (s.tickets_per_customer_per_hour, s.open_tickets_per_customer) == (10, 20)
    assert (s.sockets_per_user, s.sockets_per_address) == (20, 200)
    assert (s.login_max_failures, s.login_address_max_failures, s.login_account_max_failures) == (5, 50, 100)
    assert (s.http_header_timeout, s.http_body_timeout) == (20.0, 30.0)


def test_every_limit_is_read_from_the_environment(tmp_path: Path) -> None:
    s = load_settings(
        {
            "CHATSERVER_DATA_DIR": str(tmp_path),
            "SECRET_KEY": "k" * 40,
            "SIGNUP_LIMIT_PER_ADDRESS": "7",
            "TICKETS_PER_CUSTOMER_PER_HOUR": "8",
            "OPEN_TICKETS_PER_CUSTOMER": "9",
            "SOCKETS_PER_USER": "11",
            "SOCKETS_PER_ADDRESS": "12",
            "LOGIN_ADDRESS_MAX_FAILURES": "13",
            "LOGIN_ACCOUNT_MAX_FAILURES": "14",
            "HTTP_HEADER_TIMEOUT_SECONDS": "2.5",
            "HTTP_BODY_TIMEOUT_SECONDS": "3.5",
        }
    )
    assert (s.signup_limit_per_address, s.tickets_per_customer_per_hour, s.open_tickets_per_customer) == (7, 8, 9)
    assert (s.sockets_per_user, s.sockets_per_address) == (11, 12)
    assert (s.login_address_max_failures, s.login_account_max_failures) == (13, 14)
    assert (s.http_header_timeout, s.http_body_timeout) == (2.5, 3.5)
