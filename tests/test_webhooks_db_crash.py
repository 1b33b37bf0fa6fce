"""Webhook delivery across a PostgreSQL crash (issue 16, at least once): the dispatcher's
bookkeeping commits without waiting for the WAL flush (services/webhooks.py, delivery_pool), so an
immediate shutdown may take back its last claims and outcomes. What was taken back is sent again:
every stored message still reaches the endpoint, each under one event id with one body."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from chatserver.app import create_app
from chatserver.keys import DB_POOL

from .services import PostgresProcess
from .test_db_outage import login, outage_settings, postgres  # noqa: F401  (postgres: fixture)
from .test_integrations_webhooks import Call, Receiver, receiver, verify  # noqa: F401  (receiver: fixture)


async def test_deliveries_taken_back_by_a_database_crash_are_sent_again(
    aiohttp_client: Any,
    postgres: PostgresProcess,  # noqa: F811  (the imported fixture)
    tmp_path: Path,
    receiver: Receiver,  # noqa: F811  (the imported fixture)
) -> None:
    settings = outage_settings(
        postgres,
        tmp_path,
        webhook_allow_private_networks=("127.0.0.0/8",),
        webhook_retry_base_seconds=0.05,
        webhook_timeout_seconds=2.0,
        webhook_workers=4,
    )
    client: TestClient = await aiohttp_client(create_app(settings, bcrypt_rounds=4))

    async def slowish(call: Call) -> int:
        await asyncio.sleep(0.1)  # deliveries are in flight, claimed, when the database dies
        return 200

    receiver.respond = slowish
    admin, customer = await login(client, "admin"), await login(client, "customer")
    resp = await client.post(
        "/admin/webhooks", json={"url": receiver.url, "event_types": ["message.created"]}, headers=admin
    )
    assert resp.status == 201
    secret = (await resp.json())["webhook"]["secret"]
    posted = []
    for t in range(4):
        resp = await client.post("/tickets", json={"subject": f"crash {t}"}, headers=customer)
        ticket_id = (await resp.json())["ticket"]["id"]
        for i in range(5):
            resp = await client.post(f"/tickets/{ticket_id}/messages", json={"body": f"m{i}"}, headers=customer)
            assert resp.status == 201
            posted.append((await resp.json())["message"]["id"])

    for _ in range(200):  # some delivered, most not yet
        if len(receiver.delivered()) >= 3:
            break
        await asyncio.sleep(0.05)
    assert 3 <= len(receiver.delivered()) < len(posted)
    postgres.stop("immediate")  # a crash: no checkpoint, WAL buffers not yet written are gone
    await asyncio.sleep(1.0)
    postgres.start()

    def ids() -> set[str]:
        return {c.event["data"]["message"]["id"] for c in receiver.delivered()}

    for _ in range(600):
        if ids() >= set(posted):
            break
        await asyncio.sleep(0.1)
    assert ids() == set(posted)
    bodies: dict[str, bytes] = {}
    for call in receiver.delivered():
        assert verify(secret, call.headers, call.body)
        assert bodies.setdefault(call.headers["webhook-id"], call.body) == call.body  # a repeat is the same event
    # Once the database is back, the log says delivered for every one of them.
    pool = client.app[DB_POOL]
    for _ in range(100):
        pending = await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'")
        if pending == 0:
            break
        await asyncio.sleep(0.1)
    assert pending == 0
