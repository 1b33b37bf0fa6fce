"""Taking access away across instances: two real server processes over Redis, with account caches
that would not run out during the test, so only the backplane's invalidation can explain the
refusals (issue 12, finding 2)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import aiohttp
import pytest

from chatserver.db.pool import create_pool
from chatserver.services.auth import create_user

from .conftest import PASSWORD
from .services import ServerProcess
from .wsutil import close_code, recv_type


async def make_account(database_url: str, role: str) -> str:
    pool = await create_pool(database_url, 1, 1)
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    try:
        await create_user(pool, email=email, password=PASSWORD, role=role, name=role, bcrypt_rounds=4)
    finally:
        await pool.close()
    return email


async def sign_in(http: aiohttp.ClientSession, base: str, email: str) -> dict[str, Any]:
    async with http.post(f"{base}/auth/login", json={"email": email, "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = await resp.json()
    return data


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("change", ["disable", "demote"])
async def test_a_change_made_on_one_instance_takes_access_away_on_the_other(
    two_servers: list[ServerProcess], database_url: str, change: str
) -> None:
    a, b = two_servers
    admin_email = await make_account(database_url, "admin")
    agent_email = await make_account(database_url, "agent")
    async with aiohttp.ClientSession() as http:
        admin = await sign_in(http, a.base_url, admin_email)
        agent = await sign_in(http, b.base_url, agent_email)
        token = agent["access_token"]
        # Instance B has checked (and cached) the agent's account, and holds the agent's socket.
        async with http.get(f"{b.base_url}/tickets", headers=auth(token)) as resp:
            assert resp.status == 200
        inbox = await http.ws_connect(f"{b.base_url.replace('http', 'ws')}/ws/inbox", headers=auth(token))
        await recv_type(inbox, "inbox.ready")

        path, body = ("disable", {}) if change == "disable" else ("role", {"role": "customer"})
        async with http.post(
            f"{a.base_url}/admin/users/{agent['user']['id']}/{path}", json=body, headers=auth(admin["access_token"])
        ) as resp:
            assert resp.status == 200, await resp.text()

        assert await close_code(inbox) == 4003
        async with http.get(f"{b.base_url}/tickets", headers=auth(token)) as resp:
            assert resp.status == (403 if change == "disable" else 401)


async def test_logging_out_on_one_instance_ends_the_session_on_the_other(
    two_servers: list[ServerProcess], database_url: str
) -> None:
    a, b = two_servers
    agent_email = await make_account(database_url, "agent")
    async with (
        aiohttp.ClientSession() as http,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
    ):
        token = (await sign_in(http, b.base_url, agent_email))["access_token"]
        async with http.get(f"{b.base_url}/tickets", headers=auth(token)) as resp:
            assert resp.status == 200
        inbox = await http.ws_connect(f"{b.base_url.replace('http', 'ws')}/ws/inbox", headers=auth(token))
        await recv_type(inbox, "inbox.ready")

        # The console on instance A: log in, then log out.
        async with browser.get(f"{a.base_url}/console/login") as page:
            csrf = _csrf(await page.text())
        login = {"email": agent_email, "password": PASSWORD, "csrf_token": csrf}
        async with browser.post(f"{a.base_url}/console/login", data=login, allow_redirects=False) as resp:
            assert resp.status == 303
        async with browser.get(f"{a.base_url}/console") as page:
            csrf = _csrf(await page.text())
        stolen = {c.key: c.value for c in browser.cookie_jar}
        async with (
            aiohttp.ClientSession(cookies=stolen, cookie_jar=aiohttp.CookieJar(unsafe=True)) as attacker,
            attacker.get(f"{b.base_url}/console", allow_redirects=False) as page,
        ):
            assert page.status == 200, "the copied cookie works on the other instance before the logout"
        logout = {"csrf_token": csrf}
        async with browser.post(f"{a.base_url}/console/logout", data=logout, allow_redirects=False) as resp:
            assert resp.status == 303

        # Logout ends every session of the account: the cookie copied before it, on either
        # instance, and the bearer token and socket held on B.
        assert await close_code(inbox) == 4003
        async with http.get(f"{b.base_url}/tickets", headers=auth(token)) as resp:
            assert resp.status == 401
    async with aiohttp.ClientSession(cookies=stolen, cookie_jar=aiohttp.CookieJar(unsafe=True)) as attacker:
        for server in (a, b):
            async with attacker.get(f"{server.base_url}/console", allow_redirects=False) as page:
                assert page.status == 303


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)
