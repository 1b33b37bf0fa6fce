"""Group commit (chatserver/db/message_writer.py and messages.INSERT_MESSAGES): messages posted at
the same moment are stored in one statement, each with exactly the result it would get alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from chatserver.db import messages as messages_db
from chatserver.db.message_writer import MessageWriter
from chatserver.db.messages import VisibleInsert, VisibleMessage
from chatserver.errors import ApiError
from chatserver.keys import DB_POOL, MESSAGE_WRITER, PUBLISHER
from chatserver.security import Identity
from chatserver.services.messages import post_message

from .conftest import MakeUser, User, create_ticket


@pytest.fixture
async def writer(client: TestClient) -> AsyncIterator[MessageWriter]:
    """One statement in flight at a time: the first message goes alone, and everything sent
    while it runs waits and goes next, as one batch. So the tests know what shares a batch."""
    writer = MessageWriter(client.app[DB_POOL], max_in_flight=1)
    yield writer
    await writer.close()


def pool(client: TestClient) -> asyncpg.Pool:
    return client.app[DB_POOL]


def tid(ticket: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(ticket["id"])


def uid(user: User) -> uuid.UUID:
    return uuid.UUID(user.id)


async def send(
    writer: MessageWriter, ticket: dict[str, Any], author: User, body: str, client_id: str | None = None
) -> VisibleInsert | None:
    """A post as post_message makes it: a customer only in their own ticket, staff anywhere."""
    return await writer.insert_visible(
        VisibleMessage(
            ticket_id=tid(ticket),
            owner_id=uid(author) if author.role == "customer" else None,
            author_id=uid(author),
            author_kind="customer" if author.role == "customer" else "agent",
            body=body,
            client_id=client_id,
        )
    )


def stored(result: VisibleInsert | None) -> asyncpg.Record:
    assert result is not None
    return result[0]


async def stored_bodies(client: TestClient, ticket: dict[str, Any]) -> list[tuple[int, str]]:
    rows = await pool(client).fetch("SELECT seq, body FROM messages WHERE ticket_id = $1 ORDER BY seq", tid(ticket))
    return [(r["seq"], r["body"]) for r in rows]


async def last_seq(client: TestClient, ticket: dict[str, Any]) -> int:
    value: int = await pool(client).fetchval("SELECT last_seq FROM tickets WHERE id = $1", tid(ticket))
    return value


# ---- batching -------------------------------------------------------------------------------


async def test_concurrent_posts_share_statements_and_keep_gapless_seqs_per_ticket(
    client: TestClient, make_user: MakeUser
) -> None:
    customers = [await make_user("customer") for _ in range(4)]
    tickets = [await create_ticket(client, c) for c in customers]
    writer = MessageWriter(pool(client), max_in_flight=2, max_batch=16)
    try:
        sends = [(i, n) for n in range(12) for i in range(4)]
        results = await asyncio.gather(*(send(writer, tickets[i], customers[i], f"t{i} m{n}") for i, n in sends))
    finally:
        await writer.close()
    for (i, n), result in zip(sends, results, strict=True):
        row = stored(result)
        assert (row["ticket_id"], row["body"], result and result[1]) == (tid(tickets[i]), f"t{i} m{n}", True)
    for ticket in tickets:
        assert [seq for seq, _ in await stored_bodies(client, ticket)] == list(range(1, 13))
        assert await last_seq(client, ticket) == 12
    assert writer.messages == 48
    assert writer.statements < 48 / 4, "messages posted together must share statements"


async def test_rest_posts_go_through_the_apps_writer(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    before = client.app[MESSAGE_WRITER].messages
    resp = await client.post(f"/tickets/{ticket['id']}/messages", json={"body": "hi"}, headers=customer.headers)
    assert resp.status == 201
    assert client.app[MESSAGE_WRITER].messages == before + 1


async def test_a_message_sent_while_nothing_is_in_flight_goes_alone(
    client: TestClient, make_user: MakeUser, writer: MessageWriter
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    for n in range(3):
        await send(writer, ticket, customer, f"m{n}")
    assert (writer.statements, writer.messages) == (3, 3)


async def test_one_tickets_messages_in_one_batch_get_consecutive_seqs_in_order(
    client: TestClient, make_user: MakeUser
) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    ticket, other = await create_ticket(client, customer), await create_ticket(client, customer)
    await messages_db.insert_visible_message(
        pool(client), ticket_id=tid(ticket), owner_id=None, author_id=uid(agent), author_kind="agent", body="m0",
        client_id=None,
    )  # fmt: skip
    items = [
        VisibleMessage(tid(ticket), uid(customer), uid(customer), "customer", "m1", None),
        VisibleMessage(tid(other), uid(customer), uid(customer), "customer", "o1", None),
        VisibleMessage(tid(ticket), None, uid(agent), "agent", "m2", None),
        VisibleMessage(tid(ticket), uid(customer), uid(customer), "customer", "m3", "c-3"),
    ]
    results = await messages_db.insert_visible_messages(pool(client), items)
    assert [(stored(r)["body"], stored(r)["seq"]) for r in results] == [("m1", 2), ("o1", 1), ("m2", 3), ("m3", 4)]
    # Each message gets the ticket as it left it: last_seq is the message's own seq.
    assert [r and r[2] and r[2]["last_seq"] for r in results] == [2, 1, 3, 4]
    assert all(r is not None and r[1] for r in results)
    assert (await last_seq(client, ticket), await last_seq(client, other)) == (4, 1)


async def test_a_batch_item_for_another_customers_ticket_is_not_found_and_the_rest_are_stored(
    client: TestClient, make_user: MakeUser
) -> None:
    alice, mallory = await make_user("customer"), await make_user("customer")
    agent = await make_user("agent")
    ticket = await create_ticket(client, alice)
    items = [
        VisibleMessage(tid(ticket), uid(alice), uid(alice), "customer", "mine", None),
        VisibleMessage(tid(ticket), uid(mallory), uid(mallory), "customer", "not mine", None),
        VisibleMessage(tid(ticket), None, uid(agent), "agent", "staff may", None),
        VisibleMessage(uuid.uuid4(), None, uid(agent), "agent", "no such ticket", None),
    ]
    results = await messages_db.insert_visible_messages(pool(client), items)
    assert [None if r is None else stored(r)["seq"] for r in results] == [1, None, 2, None]
    assert await stored_bodies(client, ticket) == [(1, "mine"), (2, "staff may")]


# ---- resends ----------------------------------------------------------------------------------


async def test_resends_inside_and_across_batches_return_the_original(
    client: TestClient, make_user: MakeUser, writer: MessageWriter
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    original = stored(await send(writer, ticket, customer, "a", "c-a"))
    # While "filler" is in flight, three wait: the resend of "a" and a new "b" go out together;
    # the resend of "b" may not share b's statement, so it goes after b's commit.
    _, resent_a, new_b, resent_b = await asyncio.gather(
        send(writer, ticket, customer, "filler"),
        send(writer, ticket, customer, "a", "c-a"),
        send(writer, ticket, customer, "b", "c-b"),
        send(writer, ticket, customer, "b", "c-b"),
    )
    assert resent_a is not None and resent_a[0]["id"] == original["id"]
    assert (resent_a[1], resent_a[2]) == (False, None), "a resend reports no creation and no ticket"
    assert new_b is not None and new_b[1] is True
    assert resent_b is not None and (resent_b[0]["id"], resent_b[1]) == (new_b[0]["id"], False)
    assert writer.statements == 4, "a, filler, [a again, b], b again"
    assert await stored_bodies(client, ticket) == [(1, "a"), (2, "filler"), (3, "b")]
    assert await last_seq(client, ticket) == 3


# ---- failures and cancellation ------------------------------------------------------------------


async def test_a_deleted_author_in_a_batch_fails_only_that_caller(
    client: TestClient, make_user: MakeUser, writer: MessageWriter
) -> None:
    customer, agent, gone = await make_user("customer"), await make_user("agent"), await make_user("agent")
    ticket = await create_ticket(client, customer)
    await pool(client).execute("DELETE FROM users WHERE id = $1", uid(gone))

    async def post(author: User, body: str) -> tuple[dict[str, Any], bool]:
        who = Identity(uid(author), author.role)
        return await post_message(
            pool(client), writer, client.app[PUBLISHER], who, tid(ticket), body=body, client_id=None
        )

    first = asyncio.create_task(post(customer, "alone"))
    results = await asyncio.gather(
        post(customer, "one"), post(gone, "ghost"), post(agent, "two"), return_exceptions=True
    )
    await first
    error = results[1]
    assert isinstance(error, ApiError) and (error.status, str(error)) == (401, "Account no longer exists")
    assert await stored_bodies(client, ticket) == [(1, "alone"), (2, "one"), (3, "two")]
    assert writer.statements == 1 + 1 + 3, "the refused batch was retried one message at a time"


async def test_a_caller_cancelled_while_queued_withdraws_only_its_message(
    client: TestClient, make_user: MakeUser, writer: MessageWriter
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    sends = [asyncio.create_task(send(writer, ticket, customer, f"m{n}")) for n in range(5)]
    await asyncio.sleep(0)  # m0 is in flight, m1..m4 queued behind it
    sends[2].cancel()
    results = await asyncio.gather(*sends, return_exceptions=True)
    assert isinstance(results[2], asyncio.CancelledError)
    assert [stored(r)["body"] for r in results if not isinstance(r, BaseException)] == ["m0", "m1", "m3", "m4"]
    assert await stored_bodies(client, ticket) == [(1, "m0"), (2, "m1"), (3, "m3"), (4, "m4")]
    assert (writer.statements, writer.messages) == (2, 4)


async def test_a_caller_cancelled_after_its_statement_was_sent_still_has_its_message_stored(
    client: TestClient, make_user: MakeUser, writer: MessageWriter
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    sent = asyncio.create_task(send(writer, ticket, customer, "sent"))
    other = asyncio.create_task(send(writer, ticket, customer, "other"))
    await asyncio.sleep(0)  # "sent" is in flight, "other" waits for it
    sent.cancel()
    assert stored(await other)["seq"] == 2
    with pytest.raises(asyncio.CancelledError):
        await sent
    assert await stored_bodies(client, ticket) == [(1, "sent"), (2, "other")]


async def test_close_stores_every_accepted_message_then_refuses_new_ones(
    client: TestClient, make_user: MakeUser, writer: MessageWriter
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    sends = [asyncio.create_task(send(writer, ticket, customer, f"m{n}")) for n in range(4)]
    await asyncio.sleep(0)
    await writer.close()
    assert len(await stored_bodies(client, ticket)) == 4
    assert [stored(r)["seq"] for r in await asyncio.gather(*sends)] == [1, 2, 3, 4]
    with pytest.raises(RuntimeError):
        await send(writer, ticket, customer, "too late")
