"""Account management: REST /admin/users (admins only) and the CLI's set-role, disable-user and
enable-user, which take effect on running servers too."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chatserver.db.pool import create_pool
from chatserver.services.auth import create_user

from .conftest import PASSWORD, TEST_SECRET, MakeUser, User
from .dbutil import throwaway_database
from .services import ServerProcess
from .wsutil import close_code, recv_type

REPO = Path(__file__).resolve().parent.parent


async def test_only_admins_manage_accounts(client: TestClient, make_user: MakeUser) -> None:
    target = await make_user("customer")
    calls = [
        ("GET", "/admin/users", None),
        ("POST", "/admin/users", {"email": "x@example.com", "password": PASSWORD, "role": "admin"}),
        ("GET", f"/admin/users/{target.id}", None),
        ("POST", f"/admin/users/{target.id}/role", {"role": "admin"}),
        ("POST", f"/admin/users/{target.id}/disable", None),
        ("POST", f"/admin/users/{target.id}/enable", None),
        ("POST", f"/admin/users/{target.id}/password", {"password": "attacker chosen"}),
    ]
    for role in ("customer", "agent"):
        attacker = await make_user(role)
        for method, path, body in calls:
            resp = await client.request(method, path, json=body, headers=attacker.headers)
            assert resp.status == 403, f"{role} {method} {path}: {resp.status}"
    for method, path, body in calls:
        assert (await client.request(method, path, json=body)).status == 401
    # Nothing changed: the customer still signs in with their password, as a customer.
    login = await client.post("/auth/login", json={"email": target.email, "password": PASSWORD})
    assert (await login.json())["user"]["role"] == "customer"


async def test_admin_creates_lists_and_reads_accounts(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    email = f"new-agent-{uuid.uuid4().hex[:6]}@example.com"
    body = {"email": email, "password": PASSWORD, "role": "agent", "name": "Nia"}
    resp = await client.post("/admin/users", json=body, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    created = (await resp.json())["user"]
    assert created["role"] == "agent" and created["disabled"] is False

    agents = await (await client.get("/admin/users?role=agent", headers=admin.headers)).json()
    assert [u["email"] for u in agents["users"]] == [email]
    by_email = await (await client.get(f"/admin/users?email={email[:12].upper()}", headers=admin.headers)).json()
    assert [u["id"] for u in by_email["users"]] == [created["id"]]
    one = await (await client.get(f"/admin/users/{created['id']}", headers=admin.headers)).json()
    assert one["user"]["email"] == email

    duplicate = await client.post(
        "/admin/users", json={"email": email, "password": PASSWORD, "role": "agent"}, headers=admin.headers
    )
    assert duplicate.status == 409


async def test_the_account_list_pages(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    for _ in range(4):
        await make_user("customer")
    seen: list[str] = []
    after = ""
    while True:
        page = await (await client.get(f"/admin/users?limit=2{after}", headers=admin.headers)).json()
        seen += [u["id"] for u in page["users"]]
        if page["next_after"] is None:
            break
        after = f"&after={page['next_after']}"
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/admin/users/{id}/role", {"role": "superuser"}, 422),
        ("/admin/users/{id}/password", {"password": "short"}, 422),
        ("/admin/users/00000000-0000-0000-0000-000000000000/disable", None, 404),
        ("/admin/users/not-a-uuid/enable", None, 404),
    ],
)
async def test_bad_account_changes_are_refused(
    client: TestClient, make_user: MakeUser, path: str, body: Any, status: int
) -> None:
    admin = await make_user("admin")
    target = await make_user("agent")
    resp = await client.post(path.replace("{id}", target.id), json=body, headers=admin.headers)
    assert resp.status == status


async def test_disable_then_enable_lets_the_account_sign_in_again(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    agent = await make_user("agent")
    disabled = await client.post(f"/admin/users/{agent.id}/disable", headers=admin.headers)
    assert (await disabled.json())["user"]["disabled"] is True
    assert (await client.post("/auth/login", json={"email": agent.email, "password": PASSWORD})).status == 403
    enabled = await client.post(f"/admin/users/{agent.id}/enable", headers=admin.headers)
    assert (await enabled.json())["user"]["disabled"] is False
    login = await client.post("/auth/login", json={"email": agent.email, "password": PASSWORD})
    assert login.status == 200
    # The tokens the disable ended stay ended.
    assert (await client.get("/tickets", headers=agent.headers)).status == 401


async def test_the_last_enabled_admin_cannot_be_demoted_or_disabled(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    for path, body in ((f"/admin/users/{admin.id}/role", {"role": "agent"}), (f"/admin/users/{admin.id}/disable", {})):
        resp = await client.post(path, json=body, headers=admin.headers)
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "last_admin"
    other = await make_user("admin")
    resp = await client.post(f"/admin/users/{admin.id}/role", json={"role": "agent"}, headers=other.headers)
    assert resp.status == 200


# ---- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli_db(server_url: str) -> Iterator[str]:
    with throwaway_database(server_url) as url:
        yield url


def cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatserver", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(PYTHONPATH=str(REPO), CHATSERVER_DATA_DIR=str(tmp_path / "data"), LOG_LEVEL="WARNING", **extra)
    return env


async def login(http: aiohttp.ClientSession, base: str, email: str) -> aiohttp.ClientResponse:
    return await http.post(f"{base}/auth/login", json={"email": email, "password": PASSWORD})


async def test_cli_account_changes_reach_a_running_server_at_once(
    cli_db: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    env = clean_env(tmp_path, DATABASE_URL=cli_db, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix)
    assert cli(env, "migrate", cwd=tmp_path).returncode == 0
    pool = await create_pool(cli_db, 1, 1)
    email = f"agent-{uuid.uuid4().hex[:8]}@example.com"
    try:
        await create_user(pool, email=email, password=PASSWORD, role="agent", name="", bcrypt_rounds=4)
    finally:
        await pool.close()
    # Caches that never run out and no socket re-checks: only the CLI's announcement can act.
    server = ServerProcess(
        {
            **env,
            "SECRET_KEY": TEST_SECRET,
            "ACCOUNT_CACHE_SECONDS": "300",
            "ACCOUNT_RECHECK_SECONDS": "3600",
            "AI_DEFAULT_ENABLED": "false",
        },
        tmp_path / "server.log",
    )
    server.start()
    try:
        async with aiohttp.ClientSession() as http:
            token = (await (await login(http, server.base_url, email)).json())["access_token"]
            agent = User("", email, "agent", token)
            async with http.get(f"{server.base_url}/tickets", headers=agent.headers) as resp:
                assert resp.status == 200
            inbox = await http.ws_connect(f"{server.base_url.replace('http', 'ws')}/ws/inbox", headers=agent.headers)
            await recv_type(inbox, "inbox.ready")

            done = cli(env, "disable-user", "--email", email, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            assert "disabled" in done.stdout
            assert await close_code(inbox) == 4003
            async with http.get(f"{server.base_url}/tickets", headers=agent.headers) as resp:
                assert resp.status == 403
            assert (await login(http, server.base_url, email)).status == 403

            assert cli(env, "enable-user", "--email", email, cwd=tmp_path).returncode == 0
            relogin = await login(http, server.base_url, email)
            assert relogin.status == 200
            token = (await relogin.json())["access_token"]

            done = cli(env, "set-role", "--email", email, "--role", "customer", cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            async with http.get(f"{server.base_url}/tickets", headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 401
            relogin = await login(http, server.base_url, email)
            assert (await relogin.json())["user"]["role"] == "customer"
    finally:
        server.stop()


def test_cli_account_change_for_an_unknown_email_fails_cleanly(cli_db: str, tmp_path: Path) -> None:
    env = clean_env(tmp_path, DATABASE_URL=cli_db)
    done = cli(env, "disable-user", "--email", "nobody@example.com", cwd=tmp_path)
    assert done.returncode == 1
    assert "User not found" in done.stderr
    assert "Traceback" not in done.stderr
