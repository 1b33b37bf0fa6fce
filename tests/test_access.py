"""Access that can be taken back (issue 12, finding 2): every authenticated request and socket is
checked against the account (exists, enabled, current role and session generation), so a disabled,
demoted or deleted user loses access at once, their open sockets close with 4003, and logout ends
the session on the server. Staff tokens are shorter-lived than customers'."""

from __future__ import annotations

import re
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chatserver.keys import DB_POOL
from chatserver.realtime.events import CLOSE_POLICY
from chatserver.settings import Settings

from .conftest import PASSWORD, MakeUser, User, create_ticket
from .wsutil import close_code, recv_type

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A long cache: what these tests show is the invalidation, not the cache running out.
    return settings.with_overrides(account_cache_seconds=300.0)


async def admin_post(client: TestClient, admin: User, path: str, **body: Any) -> dict[str, Any]:
    resp = await client.post(path, json=body, headers=admin.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def error_code(resp: aiohttp.ClientResponse) -> str:
    return str((await resp.json())["error"]["code"])


async def expect_closed_with_4003(ws: aiohttp.ClientWebSocketResponse) -> None:
    assert await close_code(ws) == CLOSE_POLICY


async def open_room(client: TestClient, user: User, ticket_id: str) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(f"/tickets/{ticket_id}/ws", headers=user.headers)
    await recv_type(ws, "joined")
    return ws


@pytest.mark.parametrize("role", ["customer", "agent", "admin"])
async def test_a_disabled_account_loses_rest_and_sockets_at_once(
    client: TestClient, make_user: MakeUser, role: str
) -> None:
    admin = await make_user("admin")
    victim = await make_user(role)
    customer = victim if role == "customer" else await make_user("customer")
    ticket = await create_ticket(client, customer)
    assert (await client.get("/tickets", headers=victim.headers)).status == 200  # cached as allowed
    ws = await open_room(client, victim, ticket["id"])

    await admin_post(client, admin, f"/admin/users/{victim.id}/disable")

    resp = await client.get(f"/tickets/{ticket['id']}", headers=victim.headers)
    assert resp.status == 403
    assert await error_code(resp) == "account_disabled"
    await expect_closed_with_4003(ws)
    # No way back in: not with the token, a socket, a socket ticket, or the password.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(f"/tickets/{ticket['id']}/ws", headers=victim.headers)
    assert refused.value.status == 403
    assert (await client.post("/ws/tickets", headers=victim.headers)).status == 403
    login = await client.post("/auth/login", json={"email": victim.email, "password": PASSWORD})
    assert login.status == 403
    assert await error_code(login) == "account_disabled"


async def test_a_socket_ticket_taken_before_the_disable_is_refused(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    agent = await make_user("agent")
    ticket = (await (await client.post("/ws/tickets", headers=agent.headers)).json())["ticket"]
    await admin_post(client, admin, f"/admin/users/{agent.id}/disable")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(f"/ws/inbox?ticket={ticket}")
    assert refused.value.status == 403


async def test_a_demoted_agent_no_longer_reads_internal_notes(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    agent = await make_user("agent")
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    note = await client.post(
        f"/tickets/{ticket['id']}/messages", json={"body": "refund approved", "internal": True}, headers=agent.headers
    )
    assert note.status == 201
    inbox = await client.ws_connect("/ws/inbox", headers=agent.headers)
    await recv_type(inbox, "inbox.ready")

    await admin_post(client, admin, f"/admin/users/{agent.id}/role", role="customer")

    resp = await client.get(f"/tickets/{ticket['id']}/messages", headers=agent.headers)
    assert resp.status == 401
    assert await error_code(resp) == "session_ended"
    await expect_closed_with_4003(inbox)
    # Signing in again gives a customer's token, which sees no one else's tickets.
    login = await client.post("/auth/login", json={"email": agent.email, "password": PASSWORD})
    token = (await login.json())["access_token"]
    resp = await client.get(f"/tickets/{ticket['id']}/messages", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 404


async def test_a_deleted_agent_is_refused(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    customer = await make_user("customer")
    await create_ticket(client, customer)
    await client.app[DB_POOL].execute("DELETE FROM users WHERE id = $1", uuid.UUID(agent.id))
    resp = await client.get("/tickets", headers=agent.headers)
    assert resp.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws/inbox", headers=agent.headers)
    assert refused.value.status == 401


async def test_a_password_reset_ends_every_session(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    customer = await make_user("customer")
    await admin_post(client, admin, f"/admin/users/{customer.id}/password", password="a brand new secret")
    assert (await client.get("/tickets", headers=customer.headers)).status == 401
    old = await client.post("/auth/login", json={"email": customer.email, "password": PASSWORD})
    assert old.status == 401
    new = await client.post("/auth/login", json={"email": customer.email, "password": "a brand new secret"})
    assert new.status == 200


async def test_staff_tokens_live_shorter_than_customers(client: TestClient, settings: Settings) -> None:
    assert settings.staff_token_ttl < settings.access_token_ttl
    for role, ttl in (("customer", settings.access_token_ttl), ("agent", settings.staff_token_ttl)):
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        from chatserver.services.auth import create_user

        await create_user(client.app[DB_POOL], email=email, password=PASSWORD, role=role, name="", bcrypt_rounds=4)
        login = await (await client.post("/auth/login", json={"email": email, "password": PASSWORD})).json()
        assert login["expires_in"] == ttl


# ---- console sessions ---------------------------------------------------------------------


async def console_login(client: TestClient, user: User) -> str:
    page = await client.get("/console/login")
    match = CSRF_FIELD.search(await page.text())
    assert match
    resp = await client.post(
        "/console/login",
        data={"email": user.email, "password": PASSWORD, "csrf_token": match.group(1)},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    console = await client.get("/console")
    match = CSRF_FIELD.search(await console.text())
    assert match
    return match.group(1)


async def test_a_copied_console_cookie_stops_working_after_logout(client: TestClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    csrf = await console_login(client, agent)
    stolen = {c.key: c.value for c in client.session.cookie_jar}
    token_resp = await client.post("/console/api/token", headers={"X-CSRF-Token": csrf})
    api_token = (await token_resp.json())["access_token"]

    base = str(client.make_url(""))
    jar = aiohttp.CookieJar(unsafe=True)
    async with (
        aiohttp.ClientSession(cookies=stolen, cookie_jar=jar) as attacker,
        attacker.get(f"{base}/console", allow_redirects=False) as page,
    ):
        assert page.status == 200, "the copied cookie works before the logout"

    resp = await client.post("/console/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303

    # The attacker replays the cookie they copied before the logout.
    async with aiohttp.ClientSession(cookies=stolen, cookie_jar=aiohttp.CookieJar(unsafe=True)) as attacker:
        async with attacker.get(f"{base}/console", allow_redirects=False) as page:
            assert page.status == 303
            assert page.headers["Location"] == "/console/login"
        async with attacker.post(f"{base}/console/api/token", headers={"X-CSRF-Token": csrf}) as token:
            assert token.status == 401
        origin = base.rstrip("/")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await attacker.ws_connect(f"{base}/ws/inbox", headers={"Origin": origin})
        assert refused.value.status == 401
    # And the API token the session handed out has ended with it.
    assert (await client.get("/tickets", headers={"Authorization": f"Bearer {api_token}"})).status == 401


async def test_a_disabled_agents_console_session_ends(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    agent = await make_user("agent")
    await console_login(client, agent)
    await admin_post(client, admin, f"/admin/users/{agent.id}/disable")
    resp = await client.get("/console", allow_redirects=False)
    assert resp.status == 303
    page = await client.get("/console/login")
    match = CSRF_FIELD.search(await page.text())
    assert match
    login = await client.post(
        "/console/login", data={"email": agent.email, "password": PASSWORD, "csrf_token": match.group(1)}
    )
    assert login.status == 403
    assert "disabled" in await login.text()


def test_staff_token_lifetime_defaults_below_customers_and_is_validated() -> None:
    from chatserver.settings import ConfigError, load_settings

    base = {"SECRET_KEY": "k" * 40, "CHATSERVER_DATA_DIR": "/nonexistent"}
    defaults = load_settings(base, read_dotenv=False)
    assert defaults.staff_token_ttl == 12 * 3600 < defaults.access_token_ttl
    assert load_settings({**base, "ACCESS_TOKEN_TTL_SECONDS": "3600"}, read_dotenv=False).staff_token_ttl == 3600
    with pytest.raises(ConfigError, match="STAFF_TOKEN_TTL_SECONDS"):
        load_settings(
            {**base, "ACCESS_TOKEN_TTL_SECONDS": "3600", "STAFF_TOKEN_TTL_SECONDS": "7200"}, read_dotenv=False
        )
