"""Availability and automatic assignment across two real server processes sharing one database
and one Redis: concurrent routing on both never passes the per-agent limit, an agent's status
is the same on both, and a killed instance's agents go offline after the presence TTL, their
waiting tickets moving to an agent still online."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chatserver.db.pool import create_pool
from chatserver.services.auth import create_user

from .conftest import PASSWORD, backplane_env
from .services import ServerProcess, running_servers
from .wsutil import recv_type

LIMIT = 2


@pytest.fixture
def routing_servers(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    env = backplane_env(
        database_url,
        redis_url,
        redis_prefix,
        tmp_path,
        AUTO_ASSIGN="true",
        AGENT_PRESENCE_TTL_SECONDS="3",
        AGENT_OFFLINE_AFTER_SECONDS="0",
        AGENT_MAX_OPEN_CONVERSATIONS=str(LIMIT),
        TICKETS_PER_CUSTOMER_PER_HOUR="100",
    )
    with running_servers(env, tmp_path) as servers:
        yield servers


@pytest.fixture
async def db(database_url: str) -> Any:
    """The shared database, emptied of the accounts and tickets earlier tests left."""
    pool = await create_pool(database_url, 1, 2)
    await pool.execute("TRUNCATE users, tickets, messages CASCADE")
    yield pool
    await pool.close()


async def account(pool: Any, http: aiohttp.ClientSession, base: str, role: str) -> dict[str, Any]:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    await create_user(pool, email=email, password=PASSWORD, role=role, name=email, bcrypt_rounds=4)
    async with http.post(f"{base}/auth/login", json={"email": email, "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = await resp.json()
    return {"id": data["user"]["id"], "headers": {"Authorization": f"Bearer {data['access_token']}"}}


async def console(http: aiohttp.ClientSession, server: ServerProcess, user: dict[str, Any]) -> Any:
    inbox = await http.ws_connect(f"{server.base_url.replace('http', 'ws')}/ws/inbox", headers=user["headers"])
    await recv_type(inbox, "inbox.ready")
    return inbox


async def statuses(http: aiohttp.ClientSession, server: ServerProcess, user: dict[str, Any]) -> dict[str, str]:
    async with http.get(f"{server.base_url}/console/api/availability", headers=user["headers"]) as resp:
        assert resp.status == 200, await resp.text()
        return {a["id"]: a["status"] for a in (await resp.json())["agents"]}


async def wait_statuses(
    http: aiohttp.ClientSession, server: ServerProcess, user: dict[str, Any], wanted: dict[str, str]
) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        current = await statuses(http, server, user)
        if all(current.get(k) == v for k, v in wanted.items()):
            return
        assert asyncio.get_running_loop().time() < deadline, f"statuses {current}, wanted {wanted}"
        await asyncio.sleep(0.1)


async def availability_frame(inbox: Any, user_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        frame = await recv_type(inbox, "agent.availability", timeout=max(0.01, remaining))
        if frame["agent"]["id"] == user_id and frame["agent"]["status"] == status:
            return frame


async def new_ticket(http: aiohttp.ClientSession, server: ServerProcess, customer: dict[str, Any], i: int) -> str:
    body = {"subject": f"Question {i}", "message": "Is anyone there?"}
    async with http.post(f"{server.base_url}/tickets", json=body, headers=customer["headers"]) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["ticket"]["id"])


async def test_two_instances_routing_at_once_never_pass_the_limit(
    routing_servers: list[ServerProcess], db: Any
) -> None:
    a, b = routing_servers
    async with aiohttp.ClientSession() as http:
        first = await account(db, http, a.base_url, "agent")
        second = await account(db, http, b.base_url, "agent")
        customers = [await account(db, http, a.base_url, "customer") for _ in range(2)]
        consoles = [await console(http, a, first), await console(http, b, second)]
        await wait_statuses(http, a, first, {first["id"]: "online", second["id"]: "online"})

        # Ten tickets at once, half through each instance: room for four.
        created = await asyncio.gather(*(new_ticket(http, (a, b)[i % 2], customers[i % 2], i) for i in range(10)))
        assert len(set(created)) == 10
        await asyncio.sleep(2.5)  # two sweeps on both instances: they must not add any
        rows = await db.fetch("SELECT assignee_id FROM tickets")
        per_agent = Counter(str(r["assignee_id"]) for r in rows if r["assignee_id"] is not None)
        assert per_agent == {first["id"]: LIMIT, second["id"]: LIMIT}
        for inbox in consoles:
            await inbox.close()


async def test_an_agent_with_a_console_on_either_instance_is_online(
    routing_servers: list[ServerProcess], db: Any
) -> None:
    a, b = routing_servers
    async with aiohttp.ClientSession() as http:
        agent = await account(db, http, a.base_url, "agent")
        watcher = await account(db, http, a.base_url, "admin")
        watching = await console(http, a, watcher)
        tabs = [await console(http, a, agent), await console(http, b, agent)]
        await availability_frame(watching, agent["id"], "online")
        await tabs[0].close()
        await asyncio.sleep(2.5)  # two sweeps on each instance
        assert (await statuses(http, b, watcher))[agent["id"]] == "online"
        await tabs[1].close()
        # Announced once, by whichever instance saw it first, and heard on both.
        await availability_frame(watching, agent["id"], "offline")
        assert (await statuses(http, b, watcher))[agent["id"]] == "offline"
        await watching.close()


async def test_a_killed_instances_agents_go_offline_and_their_waiting_tickets_move(
    routing_servers: list[ServerProcess], db: Any
) -> None:
    a, b = routing_servers
    async with aiohttp.ClientSession() as http:
        doomed = await account(db, http, b.base_url, "agent")
        survivor = await account(db, http, a.base_url, "agent")
        customer = await account(db, http, a.base_url, "customer")
        doomed_console = await console(http, b, doomed)  # noqa: F841 (kept open: B is killed below)
        surviving = await console(http, a, survivor)
        await wait_statuses(http, a, survivor, {doomed["id"]: "online", survivor["id"]: "online"})
        # The survivor steps away for a moment, so the ticket goes to the agent on B.
        async with http.put(
            f"{a.base_url}/console/api/availability", json={"status": "away"}, headers=survivor["headers"]
        ) as resp:
            assert resp.status == 200
        ticket_id = await new_ticket(http, a, customer, 0)
        row = await db.fetchrow("SELECT assignee_id FROM tickets WHERE id = $1", uuid.UUID(ticket_id))
        assert str(row["assignee_id"]) == doomed["id"]
        async with http.put(
            f"{a.base_url}/console/api/availability", json={"status": "online"}, headers=survivor["headers"]
        ) as resp:
            assert resp.status == 200

        assert b.proc is not None
        b.proc.kill()  # no shutdown: B's consoles are never closed, its heartbeat just stops
        b.proc.wait(10)
        await availability_frame(surviving, doomed["id"], "offline")
        while True:
            frame = await recv_type(surviving, "inbox.ticket_updated")
            if frame["ticket"]["id"] == ticket_id and "assignee_id" in frame["changes"]:
                break
        assert frame["ticket"]["assignee_id"] == survivor["id"]
        await surviving.close()
