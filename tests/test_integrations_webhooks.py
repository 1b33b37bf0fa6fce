"""Webhooks (issue 16) against a real HTTP receiver on loopback: signed deliveries of every event
type, retries with backoff on errors and timeouts, per-ticket order, the SSRF guard, disabling an
endpoint that keeps failing, "send again" and test events, and no event lost when an instance is
killed mid-delivery, and delivery left to a separate webhook-worker process."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from chatserver.db.pool import create_pool
from chatserver.keys import DB_POOL, WEBHOOKS
from chatserver.services.outbound import TargetGuard, TargetRefused
from chatserver.services.webhooks import backoff
from chatserver.settings import Settings

from .conftest import TEST_SECRET, MakeUser, User, backplane_env, create_ticket
from .services import ROOT, ServerProcess, running_servers
from .test_access_instances import make_account, sign_in
from .test_integrations_events import reset_outbox

ALL_TYPES = ["ticket.created", "ticket.updated", "message.created", "ticket.handoff", "ai.reply.completed"]


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check, as docs/integrations.md shows it (Standard Webhooks)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, sig.split(",", 1)[1]) for sig in headers["webhook-signature"].split())


@dataclass
class Call:
    headers: dict[str, str]
    body: bytes
    status: int = 200

    @property
    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(self.body)
        return data


Responder = Callable[[Call], Awaitable[int]]


@dataclass
class Receiver:
    server: TestServer
    calls: list[Call] = field(default_factory=list)
    respond: Responder | None = None

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))

    def delivered(self) -> list[Call]:
        return [c for c in self.calls if 200 <= c.status < 300]


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    holder: list[Receiver] = []

    async def hook(request: web.Request) -> web.Response:
        call = Call({k.lower(): v for k, v in request.headers.items()}, await request.read())
        rec = holder[0]
        rec.calls.append(call)
        if rec.respond is not None:
            call.status = await rec.respond(call)
        return web.Response(status=call.status, text="thanks " * 200)

    app = web.Application()
    app.router.add_post("/hook", hook)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/hook")

    app.router.add_post("/redirect", redirect)
    server = await aiohttp_server(app)
    holder.append(Receiver(server))
    return holder[0]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(
        settings,
        webhook_allow_private_networks=("127.0.0.0/8",),
        webhook_retry_base_seconds=0.05,
        webhook_timeout_seconds=1.0,
    )


@pytest.fixture
async def admin(client: TestClient, make_user: MakeUser) -> User:
    await reset_outbox(client)
    return await make_user("admin")


async def endpoint(client: TestClient, admin: User, url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "event_types": ALL_TYPES, **fields}
    resp = await client.post("/admin/webhooks", json=body, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    hook: dict[str, Any] = (await resp.json())["webhook"]
    return hook


async def until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def deliveries(client: TestClient, admin: User, hook: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.get(f"/admin/webhooks/{hook['id']}/deliveries", headers=admin.headers)
    assert resp.status == 200
    rows: list[dict[str, Any]] = (await resp.json())["deliveries"]
    return rows


async def settled(client: TestClient, admin: User, hook: dict[str, Any], count: int = 1) -> list[dict[str, Any]]:
    """The delivery log once `count` deliveries are no longer pending (outcomes are recorded just
    after the receiver answers)."""
    for _ in range(400):
        log = await deliveries(client, admin, hook)
        if len([d for d in log if d["status"] != "pending"]) >= count:
            return log
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries still pending: {log}")


async def test_every_event_type_arrives_signed_with_its_event_id(
    client: TestClient, make_user: MakeUser, admin: User, receiver: Receiver
) -> None:
    hook = await endpoint(client, admin, receiver.url)
    assert hook["secret"].startswith("whsec_")
    agent, customer = await make_user("agent"), await make_user("customer")
    ticket = await create_ticket(client, customer, "Signed", message="hello")
    await client.patch(f"/tickets/{ticket['id']}", json={"status": "pending"}, headers=agent.headers)
    await until(lambda: len(receiver.delivered()) >= 3)
    calls = receiver.delivered()
    assert [c.event["type"] for c in calls] == ["ticket.created", "message.created", "ticket.updated"]
    for call in calls:
        assert verify(hook["secret"], call.headers, call.body)
        assert call.headers["webhook-id"] == call.event["id"] and call.event["id"].startswith("evt_")
        assert call.headers["content-type"] == "application/json"
        assert not verify(hook["secret"], call.headers, call.body + b" ")
    assert calls[1].event["data"]["message"]["body"] == "hello"
    assert calls[2].event["data"]["changes"] == ["status"]
    # The log keeps only an excerpt of what the receiver answered.
    log = await settled(client, admin, hook, 3)
    assert {d["status"] for d in log} == {"delivered"} and all(len(d["response_excerpt"]) <= 500 for d in log)


async def test_internal_notes_go_only_to_endpoints_that_ask(
    client: TestClient, make_user: MakeUser, admin: User, receiver: Receiver
) -> None:
    public = await endpoint(client, admin, receiver.url + "?who=public")
    await endpoint(client, admin, receiver.url + "?who=all", include_internal=True)
    agent, customer = await make_user("agent"), await make_user("customer")
    ticket = await create_ticket(client, customer, "Notes")
    await client.post(
        f"/tickets/{ticket['id']}/messages", json={"body": "psst", "internal": True}, headers=agent.headers
    )
    await until(lambda: len(receiver.delivered()) >= 3)
    await asyncio.sleep(0.3)
    notes = [c for c in receiver.delivered() if c.event["type"] == "message.created"]
    assert len(notes) == 1 and notes[0].event["data"]["message"]["visibility"] == "internal"
    assert public["include_internal"] is False


async def test_a_500_is_retried_with_backoff_under_the_same_event_id(
    client: TestClient, make_user: MakeUser, admin: User, receiver: Receiver
) -> None:
    answers = iter([500, 503])

    async def flaky(call: Call) -> int:
        return next(answers, 200)

    receiver.respond = flaky
    hook = await endpoint(client, admin, receiver.url, event_types=["ticket.created"])
    customer = await make_user("customer")
    await create_ticket(client, customer, "Flaky")
    await until(lambda: receiver.delivered())
    assert [c.status for c in receiver.calls] == [500, 503, 200]
    assert len({c.headers["webhook-id"] for c in receiver.calls}) == 1
    log = await settled(client, admin, hook)
    assert log[0]["status"] == "delivered" and log[0]["attempts"] == 3 and log[0]["response_status"] == 200


async def test_a_timeout_is_retried(client: TestClient, make_user: MakeUser, admin: User, receiver: Receiver) -> None:
    async def slow_once(call: Call) -> int:
        if len(receiver.calls) == 1:
            await asyncio.sleep(3)  # beyond WEBHOOK_TIMEOUT_SECONDS (1 s here)
        return 200

    receiver.respond = slow_once
    hook = await endpoint(client, admin, receiver.url, event_types=["ticket.created"])
    await create_ticket(client, await make_user("customer"), "Slow")
    await until(lambda: len(receiver.calls) >= 2 and receiver.calls[1].status == 200)
    row = (await settled(client, admin, hook))[0]
    assert row["attempts"] == 2 and row["status"] == "delivered"


async def test_only_delivery_bookkeeping_skips_the_wal_flush_wait(client: TestClient) -> None:
    """Delivery's claims and outcomes commit without waiting for the disk (a crash only means
    sending again); the pool that stores messages and everything else keeps durable commits."""
    dispatcher = client.app[WEBHOOKS]
    assert dispatcher.pool is not client.app[DB_POOL]
    assert await dispatcher.pool.fetchval("SHOW synchronous_commit") == "off"
    assert await client.app[DB_POOL].fetchval("SHOW synchronous_commit") == "on"


def test_backoff_doubles_from_the_base_with_jitter() -> None:
    import random

    rng = random.Random(7)
    delays = [backoff(n, 10.0, rng) for n in range(1, 6)]
    for n, delay in enumerate(delays, start=1):
        full = 10.0 * 2 ** (n - 1)
        assert full / 2 <= delay <= full
    assert backoff(40, 10.0, rng) <= 3600.0


async def test_one_tickets_events_arrive_in_order_while_an_earlier_one_is_retried(
    client: TestClient, make_user: MakeUser, admin: User, receiver: Receiver
) -> None:
    failures = {"left": 3}

    async def first_fails(call: Call) -> int:
        event = call.event
        if event["type"] == "ticket.created" and event["data"]["ticket"]["subject"] == "A" and failures["left"]:
            failures["left"] -= 1
            return 500
        return 200

    receiver.respond = first_fails
    await endpoint(client, admin, receiver.url, event_types=["ticket.created", "message.created"])
    one, two = await make_user("customer"), await make_user("customer")
    a = await create_ticket(client, one, "A")
    for i in range(3):
        await client.post(f"/tickets/{a['id']}/messages", json={"body": f"a{i}"}, headers=one.headers)
    b = await create_ticket(client, two, "B", message="b0")
    await until(lambda: len(receiver.delivered()) >= 6)

    def of(ticket_id: str, calls: list[Call]) -> list[Call]:
        def tid(c: Call) -> str:
            data = c.event["data"]
            return str(data["ticket"]["id"] if "ticket" in data else data["message"]["ticket_id"])

        return [c for c in calls if tid(c) == ticket_id]

    sent_a = of(a["id"], receiver.calls)
    # Nothing later of ticket A was even attempted before its first event got through.
    assert [c.status for c in sent_a[:4]] == [500, 500, 500, 200]
    assert [c.event["type"] for c in sent_a] == ["ticket.created"] * 4 + ["message.created"] * 3
    assert [c.event["data"]["message"]["seq"] for c in sent_a[4:]] == [1, 2, 3]
    assert len(of(b["id"], receiver.delivered())) == 2


async def test_the_ssrf_guard_refuses_private_targets_unless_allowed(
    client: TestClient, admin: User, receiver: Receiver
) -> None:
    guard = TargetGuard()
    for url in (
        "http://127.0.0.1/x",
        "http://10.0.0.5/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "ftp://example.com/x",
        "file:///etc/passwd",
    ):
        with pytest.raises(TargetRefused):
            guard.check_url(url)
        if "127.0.0.1" not in url:  # the app under test allows 127.0.0.0/8 (mapped forms too)
            resp = await client.post(
                "/admin/webhooks", json={"url": url, "event_types": ["ticket.created"]}, headers=admin.headers
            )
            assert resp.status == 422, url
    guard.check_url("https://example.com/hook")
    TargetGuard.from_cidrs(["127.0.0.0/8"]).check_url("http://127.0.0.1:8080/x")


async def test_a_name_resolving_to_loopback_is_refused_at_delivery(
    client: TestClient, make_user: MakeUser, admin: User, receiver: Receiver
) -> None:
    # The app under test allows 127.0.0.0/8; a dispatcher with the default guard must refuse.
    from chatserver.keys import WEBHOOKS
    from chatserver.services.webhooks import WebhookDispatcher

    strict = WebhookDispatcher(client.app[DB_POOL], TargetGuard(), retry_base=1, timeout=1, workers=1)
    strict.start()
    try:
        url = f"http://localhost:{receiver.server.port}/hook"
        outcome = await strict.post(url, "whsec_" + base64.b64encode(b"k" * 32).decode(), "evt_1", b"{}")
        assert not outcome.ok and "refused" in (outcome.error or "")
        assert receiver.calls == []
        # Redirects are not followed, even to an allowed place.
        loose = client.app[WEBHOOKS]
        outcome = await loose.post(str(receiver.server.make_url("/redirect")), "whsec_AAAA", "evt_2", b"{}")
        assert not outcome.ok and outcome.status == 302 and receiver.calls == []
    finally:
        await strict.close()


class TestGivingUp:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return replace(settings, webhook_retry_for_seconds=1.0)

    async def test_an_endpoint_that_keeps_failing_is_disabled_with_a_notice(
        self, client: TestClient, make_user: MakeUser, admin: User, receiver: Receiver
    ) -> None:
        async def down(call: Call) -> int:
            return 500

        receiver.respond = down
        hook = await endpoint(client, admin, receiver.url, event_types=["ticket.created"])
        await create_ticket(client, await make_user("customer"), "Doomed")

        async def disabled() -> dict[str, Any]:
            got: dict[str, Any] = (
                await (await client.get(f"/admin/webhooks/{hook['id']}", headers=admin.headers)).json()
            )["webhook"]
            return got

        for _ in range(200):
            got = await disabled()
            if not got["active"]:
                break
            await asyncio.sleep(0.1)
        assert got["active"] is False and "kept failing" in got["disabled_reason"]
        log = await deliveries(client, admin, hook)
        assert log[0]["status"] == "failed" and log[0]["attempts"] >= 2
        resp = await client.get(
            "/events", params={"types": "webhook.endpoint_disabled", "wait": "10"}, headers=admin.headers
        )
        notice = (await resp.json())["events"][0]["data"]
        assert notice["endpoint"]["id"] == hook["id"]
        # Re-enabling clears the reason.
        resp = await client.patch(f"/admin/webhooks/{hook['id']}", json={"active": True}, headers=admin.headers)
        assert (await resp.json())["webhook"]["disabled_reason"] is None


async def test_send_again_and_a_test_event(
    client: TestClient, make_user: MakeUser, admin: User, receiver: Receiver
) -> None:
    hook = await endpoint(client, admin, receiver.url, event_types=["ticket.created"])
    await create_ticket(client, await make_user("customer"), "Again")
    await until(lambda: receiver.delivered())
    first = (await settled(client, admin, hook))[0]
    resp = await client.post(f"/admin/webhooks/{hook['id']}/deliveries/{first['id']}/resend", headers=admin.headers)
    assert resp.status == 202
    await until(lambda: len(receiver.delivered()) >= 2)
    a, b = receiver.delivered()[:2]
    assert a.headers["webhook-id"] == b.headers["webhook-id"] and a.event == b.event
    resp = await client.post(f"/admin/webhooks/{hook['id']}/test", headers=admin.headers)
    assert resp.status == 202 and (await resp.json())["delivery"]["test"] is True
    await until(lambda: len(receiver.delivered()) >= 3)
    test = receiver.delivered()[2]
    assert test.event["type"] == "webhook.test" and verify(hook["secret"], test.headers, test.body)
    resp = await client.post(f"/admin/webhooks/{hook['id']}/deliveries/999999/resend", headers=admin.headers)
    assert resp.status == 404


async def test_only_admins_manage_webhooks_and_the_secret_is_shown_once(
    client: TestClient, make_user: MakeUser, admin: User, receiver: Receiver
) -> None:
    agent = await make_user("agent")
    resp = await client.post(
        "/admin/webhooks", json={"url": receiver.url, "event_types": ["ticket.created"]}, headers=agent.headers
    )
    assert resp.status == 403
    hook = await endpoint(client, admin, receiver.url)
    listed = (await (await client.get("/admin/webhooks", headers=admin.headers)).json())["webhooks"]
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    resp = await client.patch(
        f"/admin/webhooks/{hook['id']}", json={"event_types": ["ticket.bogus"]}, headers=admin.headers
    )
    assert resp.status == 422
    resp = await client.patch(
        f"/admin/webhooks/{hook['id']}", json={"active": False, "description": "paused"}, headers=admin.headers
    )
    assert (await resp.json())["webhook"]["active"] is False
    assert (await client.delete(f"/admin/webhooks/{hook['id']}", headers=admin.headers)).status == 204
    assert (await client.get(f"/admin/webhooks/{hook['id']}", headers=admin.headers)).status == 404


# ---- two instances ------------------------------------------------------------------------------


@pytest.fixture
def two_servers(database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    env = backplane_env(
        database_url,
        redis_url,
        redis_prefix,
        tmp_path,
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="127.0.0.0/8",
        WEBHOOK_RETRY_BASE_SECONDS="0.05",
        WEBHOOK_TIMEOUT_SECONDS="2",
        # Two deliveries in flight per instance: with four at the receiver, both are sending.
        WEBHOOK_WORKERS="2",
    )
    with running_servers(env, tmp_path) as servers:
        yield servers


async def test_no_event_is_lost_when_an_instance_is_killed_mid_delivery(
    two_servers: list[ServerProcess], database_url: str, receiver: Receiver
) -> None:
    a, b = two_servers

    in_flight = [0]

    async def slowish(call: Call) -> int:
        in_flight[0] += 1
        try:
            await asyncio.sleep(1.0)
        finally:
            in_flight[0] -= 1
        return 200

    receiver.respond = slowish
    admin_email = await make_account(database_url, "admin")
    customer_email = await make_account(database_url, "customer")
    async with aiohttp.ClientSession() as http:
        admin = {"Authorization": f"Bearer {(await sign_in(http, a.base_url, admin_email))['access_token']}"}
        customer = {"Authorization": f"Bearer {(await sign_in(http, b.base_url, customer_email))['access_token']}"}
        async with http.post(
            f"{a.base_url}/admin/webhooks",
            json={"url": receiver.url, "event_types": ["message.created"]},
            headers=admin,
        ) as resp:
            assert resp.status == 201
        # Four tickets' worth of events, so both instances are delivering when A dies.
        tickets = []
        for t in range(4):
            async with http.post(f"{b.base_url}/tickets", json={"subject": f"load {t}"}, headers=customer) as resp:
                tickets.append((await resp.json())["ticket"]["id"])
        posted = []
        for i in range(5):
            for ticket_id in tickets:
                async with http.post(
                    f"{b.base_url}/tickets/{ticket_id}/messages", json={"body": f"m{i}"}, headers=customer
                ) as resp:
                    posted.append((await resp.json())["message"]["id"])
        await until(lambda: in_flight[0] >= 4)
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait(10)
        await until(lambda: len({c.event["data"]["message"]["id"] for c in receiver.delivered()}) >= 20, timeout=60)
    pool = await create_pool(database_url, 1, 1)
    try:
        retried = await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE attempts > 1")
    finally:
        await pool.close()
    # The killed instance's claims lapsed, and B sent those deliveries again.
    assert retried >= 1
    delivered = receiver.delivered()
    assert {c.event["data"]["message"]["id"] for c in delivered} == set(posted)
    # A repeat (a lapsed claim sent again) carries the same event id and body: at least once.
    by_id: dict[str, bytes] = {}
    for call in delivered:
        assert by_id.setdefault(call.headers["webhook-id"], call.body) == call.body
    # Each ticket's events in order, counting first arrivals.
    for ticket_id in tickets:
        firsts: list[int] = []
        for call in delivered:
            message = call.event["data"]["message"]
            if message["ticket_id"] == ticket_id and message["seq"] not in firsts:
                firsts.append(message["seq"])
        assert firsts == [1, 2, 3, 4, 5]


def test_allowed_private_networks_are_cidrs_checked_at_startup(tmp_path: Path) -> None:
    from chatserver.settings import ConfigError, load_settings

    base = {"CHATSERVER_DATA_DIR": str(tmp_path), "SECRET_KEY": TEST_SECRET}
    settings = load_settings({**base, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/8, 10.1.0.0/16"})
    assert settings.webhook_allow_private_networks == ("127.0.0.0/8", "10.1.0.0/16")
    assert load_settings(base).webhook_allow_private_networks == ()
    with pytest.raises(ConfigError) as info:
        load_settings({**base, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "localhost"})
    assert "WEBHOOK_ALLOW_PRIVATE_NETWORKS" in str(info.value)


# ---- a delivery-only worker process -------------------------------------------------------------


def start_webhook_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "chatserver", "webhook-worker"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )


async def test_an_instance_with_delivery_off_leaves_it_to_a_webhook_worker_process(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path, receiver: Receiver
) -> None:
    pool = await create_pool(database_url, 1, 1)
    try:
        await pool.execute(
            "TRUNCATE events, webhook_deliveries, webhook_endpoints CASCADE;"
            " UPDATE event_positions SET dispatched_xid = '0', dispatched_id = 0"
        )
        env = backplane_env(
            database_url,
            redis_url,
            redis_prefix,
            tmp_path,
            WEBHOOK_ALLOW_PRIVATE_NETWORKS="127.0.0.0/8",
            WEBHOOK_RETRY_BASE_SECONDS="0.05",
            WEBHOOK_TIMEOUT_SECONDS="2",
        )
        with running_servers({**env, "WEBHOOK_DELIVERY": "off"}, tmp_path, count=1) as [server]:
            admin_email = await make_account(database_url, "admin")
            customer_email = await make_account(database_url, "customer")
            base = server.base_url
            async with aiohttp.ClientSession() as http:

                async def bearer(email: str) -> dict[str, str]:
                    return {"Authorization": f"Bearer {(await sign_in(http, base, email))['access_token']}"}

                admin, customer = await bearer(admin_email), await bearer(customer_email)
                hook = {"url": receiver.url, "event_types": ["message.created"]}
                async with http.post(f"{base}/admin/webhooks", json=hook, headers=admin) as resp:
                    assert resp.status == 201
                    secret = (await resp.json())["webhook"]["secret"]
                async with http.post(f"{base}/tickets", json={"subject": "worker"}, headers=customer) as resp:
                    ticket_id = (await resp.json())["ticket"]["id"]

                async def post(body: str) -> str:
                    async with http.post(
                        f"{base}/tickets/{ticket_id}/messages", json={"body": body}, headers=customer
                    ) as resp:
                        assert resp.status == 201
                        message_id: str = (await resp.json())["message"]["id"]
                        return message_id

                before = [await post(f"before {i}") for i in range(3)]
                # The events are in the outbox, but this instance sends nothing: several of the
                # dispatcher's poll intervals pass without a delivery row or a request.
                assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'message.created'") == 3
                await asyncio.sleep(1.5)
                assert receiver.calls == []
                assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries") == 0

                worker = start_webhook_worker(env, tmp_path / "worker.log")
                try:
                    await until(lambda: len(receiver.delivered()) >= 3)
                    after = await post("while the worker runs")
                    await until(lambda: len(receiver.delivered()) >= 4)
                finally:
                    worker.send_signal(signal.SIGTERM)
                    code = worker.wait(15)
        assert code == 0, (tmp_path / "worker.log").read_text()
        delivered = receiver.delivered()
        assert [c.event["data"]["message"]["id"] for c in delivered] == [*before, after]
        assert all(verify(secret, c.headers, c.body) for c in delivered)
        statuses = await pool.fetch("SELECT status FROM webhook_deliveries")
        assert [r["status"] for r in statuses] == ["delivered"] * 4
    finally:
        await pool.close()


def test_the_webhook_worker_needs_the_shared_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(CHATSERVER_DATA_DIR=str(tmp_path), SECRET_KEY=TEST_SECRET)
    done = subprocess.run(
        [sys.executable, "-m", "chatserver", "webhook-worker"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    assert b"webhook-worker needs DATABASE_URL" in done.stdout + done.stderr
