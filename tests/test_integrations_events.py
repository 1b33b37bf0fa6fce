"""The outbox and the event feed (issue 16): every change records its event in the statement or
transaction that makes it; GET /events serves them in order, gap-free, long-polling, and tells a
client whose cursor fell out of retention to resync."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chatserver.db import events as events_db
from chatserver.db.pool import create_pool
from chatserver.keys import DB_POOL
from chatserver.services.outbox import purge_expired
from chatserver.settings import Settings
from chatserver.views import message_view, ticket_view

from .conftest import MakeUser, User, create_ticket
from .fake_groq import ai_settings


async def reset_outbox(client: TestClient) -> None:
    await client.app[DB_POOL].execute(
        "TRUNCATE events, webhook_deliveries, webhook_endpoints CASCADE;"
        " UPDATE event_positions SET purged_xid = '0', purged_id = 0, dispatched_xid = '0', dispatched_id = 0"
    )


@pytest.fixture
async def agent(client: TestClient, make_user: MakeUser) -> User:
    await reset_outbox(client)
    return await make_user("agent")


async def feed(client: TestClient, who: User, status: int = 200, **query: Any) -> dict[str, Any]:
    params = {"wait": "0", **{k: str(v) for k, v in query.items()}}
    resp = await client.get("/events", params=params, headers=who.headers)
    assert resp.status == status, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def all_events(client: TestClient, who: User, expect: int, **query: Any) -> list[dict[str, Any]]:
    """The feed from its start, until `expect` events came. An event is served once every older
    transaction in the cluster has ended (db/events.py), so it may take a moment: long-poll."""
    out: list[dict[str, Any]] = []
    cursor = None
    while len(out) < expect:
        page = await feed(client, who, wait=10, **({"after": cursor} if cursor else {}), **query)
        assert page["events"], f"only {len(out)} of {expect} events came: {[e['type'] for e in out]}"
        out += page["events"]
        cursor = page["next_cursor"]
    extra = await feed(client, who, after=cursor, **query)
    return out + extra["events"]


async def test_a_ticket_its_messages_and_its_changes_each_record_an_event(
    client: TestClient, make_user: MakeUser, agent: User
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Printer on fire", message="It is smoking")
    resp = await client.patch(f"/tickets/{ticket['id']}", json={"priority": "urgent"}, headers=agent.headers)
    assert resp.status == 200
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "On it"}, headers=agent.headers)
    assert resp.status == 201
    events = await all_events(client, agent, 4)
    assert [e["type"] for e in events] == ["ticket.created", "message.created", "ticket.updated", "message.created"]
    created, first, updated, reply = events
    assert created["data"]["ticket"]["id"] == ticket["id"] and created["data"]["ticket"]["subject"] == "Printer on fire"
    assert first["data"]["message"]["body"] == "It is smoking"
    assert updated["data"]["changes"] == ["priority"] and updated["data"]["by"] == agent.id
    assert updated["data"]["ticket"]["priority"] == "urgent"
    assert reply["data"]["message"]["author_kind"] == "agent" and reply["data"]["message"]["seq"] == 2
    assert all(e["id"].startswith("evt_") and e["created_at"] for e in events)


async def test_event_objects_are_shaped_as_rest_shows_them(
    client: TestClient, make_user: MakeUser, agent: User
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Shapes", message="hello")
    events = await all_events(client, agent, 2)
    rest_ticket = await (await client.get(f"/tickets/{ticket['id']}", headers=agent.headers)).json()
    rest_messages = await (await client.get(f"/tickets/{ticket['id']}/messages", headers=agent.headers)).json()
    event_ticket = events[0]["data"]["ticket"]
    assert set(event_ticket) == set(rest_ticket["ticket"]) == set(ticket_view(_Keys()))
    assert events[1]["data"]["message"] == rest_messages["messages"][0]
    assert set(events[1]["data"]["message"]) == set(message_view(_Keys()))


class _Keys(dict[str, Any]):
    """Any key: lets a view show which keys it produces."""

    def __missing__(self, key: str) -> None:
        return None


async def test_internal_notes_are_served_only_when_asked_for(
    client: TestClient, make_user: MakeUser, agent: User
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer, "Notes")
    resp = await client.post(
        f"/tickets/{ticket['id']}/messages", json={"body": "psst", "internal": True}, headers=agent.headers
    )
    assert resp.status == 201
    with_notes = await all_events(client, agent, 2, include_internal="true")
    assert [e["type"] for e in await all_events(client, agent, 1)] == ["ticket.created"]
    assert [e["type"] for e in with_notes] == ["ticket.created", "message.created"]
    assert with_notes[1]["data"]["message"]["visibility"] == "internal"


async def test_group_committed_messages_each_record_one_event_in_seq_order(
    client: TestClient, make_user: MakeUser, agent: User
) -> None:
    customers = [await make_user("customer") for _ in range(3)]
    tickets = [await create_ticket(client, c, "Busy") for c in customers]

    async def post(c: User, t: dict[str, Any], i: int) -> None:
        resp = await client.post(f"/tickets/{t['id']}/messages", json={"body": f"m{i}"}, headers=c.headers)
        assert resp.status == 201

    # Concurrent posts share statements (db/message_writer.py); each still records its event.
    await asyncio.gather(*(post(c, t, i) for i in range(15) for c, t in zip(customers, tickets, strict=True)))
    events = [e for e in await all_events(client, agent, 48) if e["type"] == "message.created"]
    assert len(events) == 45
    assert len({e["id"] for e in events}) == 45
    for t in tickets:
        seqs = [e["data"]["message"]["seq"] for e in events if e["data"]["message"]["ticket_id"] == t["id"]]
        assert seqs == list(range(1, 16))


async def test_the_feed_types_filter_and_cursor_resume_where_they_stopped(
    client: TestClient, make_user: MakeUser, agent: User
) -> None:
    customer = await make_user("customer")
    for i in range(3):
        await create_ticket(client, customer, f"T{i}", message="hi")
    await all_events(client, agent, 6)
    page = await feed(client, agent, types="ticket.created", limit=2)
    assert [e["data"]["ticket"]["subject"] for e in page["events"]] == ["T0", "T1"]
    rest = await feed(client, agent, types="ticket.created", after=page["next_cursor"])
    assert [e["data"]["ticket"]["subject"] for e in rest["events"]] == ["T2"]
    again = await feed(client, agent, types="ticket.created", after=rest["next_cursor"])
    assert again["events"] == [] and again["next_cursor"] == rest["next_cursor"]


async def test_after_latest_serves_only_what_happens_next(client: TestClient, make_user: MakeUser, agent: User) -> None:
    customer = await make_user("customer")
    await create_ticket(client, customer, "Old")
    await all_events(client, agent, 1)
    start = await feed(client, agent, after="latest")
    assert start["events"] == []
    await create_ticket(client, customer, "New")
    page = await feed(client, agent, after=start["next_cursor"], wait=10)
    assert [e["data"]["ticket"]["subject"] for e in page["events"]] == ["New"]


async def test_a_long_poll_returns_when_an_event_arrives(client: TestClient, make_user: MakeUser, agent: User) -> None:
    customer = await make_user("customer")
    start = await feed(client, agent, after="latest")
    poll = asyncio.create_task(
        client.get("/events", params={"after": start["next_cursor"], "wait": "25"}, headers=agent.headers)
    )
    await asyncio.sleep(0.3)
    assert not poll.done()
    await create_ticket(client, customer, "Wake up")
    resp = await asyncio.wait_for(poll, 20)
    page = await resp.json()
    assert [e["type"] for e in page["events"]] == ["ticket.created"]


async def test_a_long_poll_with_nothing_new_ends_empty_with_the_same_cursor(
    client: TestClient, make_user: MakeUser, agent: User
) -> None:
    start = await feed(client, agent, after="latest")
    page = await feed(client, agent, after=start["next_cursor"], wait=1)
    assert page == {"events": [], "next_cursor": start["next_cursor"]}


async def test_an_event_committed_later_with_a_lower_id_is_never_skipped(
    client: TestClient, make_user: MakeUser, agent: User, database_url: str
) -> None:
    customer = await make_user("customer")
    start = await feed(client, agent, after="latest")
    pool = await create_pool(database_url, 1, 1)
    slow = await pool.acquire()
    try:
        tx = slow.transaction()
        await tx.start()
        # The slow transaction takes the lower event id, then commits after a faster one.
        early = await events_db.record_event(slow, events_db.RATING_CREATED, {"rating": {"score": 5}})
        await create_ticket(client, customer, "Fast")
        held = await feed(client, agent, after=start["next_cursor"])
        # The fast event is not served while an older transaction may still add events before it.
        assert held["events"] == [] and held["next_cursor"] == start["next_cursor"]
        await tx.commit()
    finally:
        await pool.release(slow)
        await pool.close()
    page = await feed(client, agent, after=start["next_cursor"], wait=10)
    if len(page["events"]) < 2:
        page["events"] += (await feed(client, agent, after=page["next_cursor"], wait=10))["events"]
    assert [e["type"] for e in page["events"]] == ["rating.created", "ticket.created"]
    assert page["events"][0]["id"] == f"evt_{early['id']}"


async def test_a_cursor_past_retention_gets_410_telling_to_resync(
    client: TestClient, make_user: MakeUser, agent: User
) -> None:
    customer = await make_user("customer")
    await create_ticket(client, customer, "Ancient")
    await create_ticket(client, customer, "Old too")
    await all_events(client, agent, 2)
    first = await feed(client, agent, limit=1)
    pool = client.app[DB_POOL]
    await pool.execute("UPDATE events SET created_at = now() - interval '8 days'")
    await create_ticket(client, customer, "Recent")
    await all_events(client, agent, 3)
    assert await purge_expired(pool, 7.0) == 2
    resp = await client.get("/events", params={"after": first["next_cursor"], "wait": "0"}, headers=agent.headers)
    assert resp.status == 410
    error = (await resp.json())["error"]
    assert error["code"] == "cursor_expired" and "resync" in error["message"]
    # Without a cursor the feed starts at the oldest event kept.
    assert [e["data"]["ticket"]["subject"] for e in await all_events(client, agent, 1)] == ["Recent"]


async def test_customers_may_not_read_the_feed_and_bad_cursors_are_422(
    client: TestClient, make_user: MakeUser, agent: User
) -> None:
    customer = await make_user("customer")
    await feed(client, customer, status=403)
    for bad in ("x", "1.2.3", "-1.5", "99999999999999999999.1"):
        body = await feed(client, agent, status=422, after=bad)
        assert body["error"]["code"] == "validation_error"
    assert (await feed(client, agent, status=422, types="ticket.exploded"))["error"]["code"] == "validation_error"


class TestAiEvents:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return ai_settings(settings, None)  # the offline responder answers

    async def test_an_ai_reply_and_a_handoff_record_their_events(
        self, client: TestClient, make_user: MakeUser, agent: User
    ) -> None:
        customer = await make_user("customer")
        ticket = await create_ticket(client, customer, "Password")
        resp = await client.post(
            f"/tickets/{ticket['id']}/messages", json={"body": "I forgot my password"}, headers=customer.headers
        )
        assert resp.status == 201
        completed = await wait_for_type(client, agent, "ai.reply.completed")
        assert completed["data"]["message"]["author_kind"] == "ai"
        assert completed["data"]["ticket"]["id"] == ticket["id"] and completed["data"]["reply_id"]
        resp = await client.post(
            f"/tickets/{ticket['id']}/messages", json={"body": "let me talk to a human"}, headers=customer.headers
        )
        assert resp.status == 201
        handoff = await wait_for_type(client, agent, "ticket.handoff")
        assert handoff["data"]["reason"] == "customer_asked"
        assert handoff["data"]["ticket"]["waiting_for_agent"] is True
        assert handoff["data"]["message"]["author_kind"] == "system"


async def wait_for_type(client: TestClient, who: User, type_: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 20
    while asyncio.get_running_loop().time() < deadline:
        for event in (await feed(client, who, types=type_))["events"]:
            if event["type"] == type_:
                return event
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {type_} event")
