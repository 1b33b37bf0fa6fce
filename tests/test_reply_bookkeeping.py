"""Reports' reply bookkeeping on the ticket (first_reply_at, first_human_reply_at/by,
first_handoff_at, ai_replied, human_replied; migrations 0017 and 0018): kept by the statements that
store messages (db/messages.py), batch or single, with the meanings of db/reports.py; and by
tickets_recount_replies() for bulk writers. Each test also checks that the statements left exactly
what a recount from the messages gives (the recount then changes no ticket)."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from chatserver.db import messages as messages_db
from chatserver.db.message_writer import MessageWriter
from chatserver.db.messages import VisibleMessage
from chatserver.keys import DB_POOL

from .conftest import MakeUser, create_ticket

FIGURES = "first_reply_at, first_human_reply_at, first_human_reply_by, first_handoff_at, ai_replied, human_replied"


def pool(client: TestClient) -> asyncpg.Pool:
    return client.app[DB_POOL]


async def figures(client: TestClient, ticket_id: uuid.UUID) -> dict[str, Any]:
    row = await pool(client).fetchrow(f"SELECT {FIGURES} FROM tickets WHERE id = $1", ticket_id)
    assert row is not None
    return dict(row)


async def created_at(client: TestClient, message_id: uuid.UUID) -> Any:
    return await pool(client).fetchval("SELECT created_at FROM messages WHERE id = $1", message_id)


async def assert_recount_changes_nothing(client: TestClient, *tickets: uuid.UUID) -> None:
    """What the statements kept equals what the messages say (the recount's definition)."""
    changed = await pool(client).fetchval("SELECT tickets_recount_replies($1::uuid[])", list(tickets))
    assert changed == 0


NOTHING = {
    "first_reply_at": None,
    "first_human_reply_at": None,
    "first_human_reply_by": None,
    "first_handoff_at": None,
    "ai_replied": False,
    "human_replied": False,
}


async def test_one_group_commit_batch_keeps_the_first_replies_of_each_of_its_tickets(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    alice, bob = await make_user("agent"), await make_user("agent")
    a, b, c = [uuid.UUID((await create_ticket(client, customer))["id"]) for _ in range(3)]
    cid, aid, bid = uuid.UUID(customer.id), uuid.UUID(alice.id), uuid.UUID(bob.id)
    items = [
        # Ticket a: the customer writes, then Alice and Bob reply in the same batch: Alice's is
        # the first human reply (the arrays' order is the seq order).
        VisibleMessage(a, cid, cid, "customer", "where is my order?", None),
        VisibleMessage(b, None, None, "ai", "the AI answers b", None),
        VisibleMessage(a, None, aid, "agent", "Alice answers a", None),
        VisibleMessage(b, None, aid, "agent", "an internal note is not a reply", None, "internal"),
        VisibleMessage(a, None, bid, "agent", "Bob answers a too", None),
        VisibleMessage(b, None, bid, "agent", "Bob answers b", None),
        # Ticket c: only the customer and a note: nothing to record.
        VisibleMessage(c, cid, cid, "customer", "hello?", None),
        VisibleMessage(c, None, aid, "agent", "note", None, "internal"),
    ]
    results = await messages_db.insert_visible_messages(pool(client), items)
    assert all(r is not None and r[1] for r in results)
    # One statement, one transaction: every message has the same created_at.
    at = await created_at(client, results[0][0]["id"])  # type: ignore[index]
    assert {await created_at(client, r[0]["id"]) for r in results if r is not None} == {at}

    assert await figures(client, a) == {
        **NOTHING, "first_reply_at": at, "first_human_reply_at": at, "first_human_reply_by": aid,
        "human_replied": True,
    }  # fmt: skip
    assert await figures(client, b) == {
        **NOTHING, "first_reply_at": at, "first_human_reply_at": at, "first_human_reply_by": bid,
        "ai_replied": True, "human_replied": True,
    }  # fmt: skip
    assert await figures(client, c) == NOTHING
    await assert_recount_changes_nothing(client, a, b, c)


async def test_a_batch_mixing_a_customer_message_and_a_reply_to_one_ticket_records_the_reply(
    client: TestClient, make_user: MakeUser
) -> None:
    customer, alice = await make_user("customer"), await make_user("agent")
    ticket = uuid.UUID((await create_ticket(client, customer))["id"])
    cid, aid = uuid.UUID(customer.id), uuid.UUID(alice.id)
    results = await messages_db.insert_visible_messages(
        pool(client),
        [
            VisibleMessage(ticket, cid, cid, "customer", "hello", "c-1"),
            VisibleMessage(ticket, None, aid, "agent", "hi, how can I help?", "a-1"),
        ],
    )
    assert [r and (r[0]["seq"], r[1]) for r in results] == [(1, True), (2, True)]
    at = await created_at(client, results[1][0]["id"])  # type: ignore[index]
    assert await figures(client, ticket) == {
        **NOTHING, "first_reply_at": at, "first_human_reply_at": at, "first_human_reply_by": aid,
        "human_replied": True,
    }  # fmt: skip
    # A resend of both stores nothing and changes nothing.
    again = await messages_db.insert_visible_messages(
        pool(client),
        [
            VisibleMessage(ticket, cid, cid, "customer", "hello", "c-1"),
            VisibleMessage(ticket, None, aid, "agent", "hi, how can I help?", "a-1"),
        ],
    )
    assert [r and r[1] for r in again] == [False, False]
    assert (await figures(client, ticket))["first_reply_at"] == at
    await assert_recount_changes_nothing(client, ticket)


async def test_later_replies_keep_the_first_ones(client: TestClient, make_user: MakeUser) -> None:
    customer = await make_user("customer")
    alice, bob = await make_user("agent"), await make_user("agent")
    ticket = uuid.UUID((await create_ticket(client, customer))["id"])
    aid, bid = uuid.UUID(alice.id), uuid.UUID(bob.id)
    first = await messages_db.insert_visible_messages(
        pool(client), [VisibleMessage(ticket, None, None, "ai", "the AI first", None)]
    )
    ai_at = await created_at(client, first[0][0]["id"])  # type: ignore[index]
    await messages_db.insert_visible_messages(pool(client), [VisibleMessage(ticket, None, aid, "agent", "Alice", None)])
    kept = await figures(client, ticket)
    await messages_db.insert_visible_messages(
        pool(client),
        [VisibleMessage(ticket, None, bid, "agent", "Bob", None), VisibleMessage(ticket, None, None, "ai", "AI", None)],
    )
    assert await figures(client, ticket) == kept
    assert kept["first_reply_at"] == ai_at and kept["first_human_reply_by"] == aid
    assert kept["first_human_reply_at"] > ai_at and kept["ai_replied"] and kept["human_replied"]
    await assert_recount_changes_nothing(client, ticket)


async def test_the_message_writer_batches_keep_the_figures(client: TestClient, make_user: MakeUser) -> None:
    """Through the group commit as the server runs it: many posts at once go out as a few batches."""
    customer, alice = await make_user("customer"), await make_user("agent")
    tickets = [uuid.UUID((await create_ticket(client, customer))["id"]) for _ in range(4)]
    cid, aid = uuid.UUID(customer.id), uuid.UUID(alice.id)
    writer = MessageWriter(pool(client), max_in_flight=1)
    try:
        posts = []
        for n, ticket in enumerate(tickets):
            posts.append(VisibleMessage(ticket, cid, cid, "customer", f"question {n}", None))
            if n % 2 == 0:
                posts.append(VisibleMessage(ticket, None, aid, "agent", f"answer {n}", None))
        await asyncio.gather(*(writer.insert_visible(p) for p in posts))
        assert writer.statements < writer.messages  # some shared a statement
    finally:
        await writer.close()
    for n, ticket in enumerate(tickets):
        got = await figures(client, ticket)
        assert got["human_replied"] == (n % 2 == 0) and (got["first_human_reply_by"] == aid) == (n % 2 == 0)
    await assert_recount_changes_nothing(client, *tickets)


async def test_the_single_message_statement_records_ai_replies_human_replies_and_handoffs(
    client: TestClient, make_user: MakeUser
) -> None:
    customer, alice = await make_user("customer"), await make_user("agent")
    ticket = uuid.UUID((await create_ticket(client, customer))["id"])
    aid = uuid.UUID(alice.id)

    async def store(kind: str, author: uuid.UUID | None, **extra: Any) -> Any:
        stored = await messages_db.insert_message(
            pool(client), ticket_id=ticket, author_id=author, author_kind=kind, body=kind, client_id=None, **extra
        )
        assert stored is not None and stored[1]
        return await created_at(client, stored[0]["id"])

    # Not replies: the customer, an internal note, an ordinary system line, an integration.
    await store("customer", uuid.UUID(customer.id))
    await store("agent", aid, visibility="internal")
    await store("system", None, metadata={"status": "pending"})
    await store("integration", None)
    assert await figures(client, ticket) == NOTHING

    ai_at = await store("ai", None, metadata={"model": "m"})
    handoff_at = await store("system", None, metadata={"handoff": "customer_asked"})
    human_at = await store("agent", aid)
    await store("system", None, metadata={"handoff": "again"})
    await store("agent", None)  # a later reply by a deleted agent changes nothing
    assert await figures(client, ticket) == {
        "first_reply_at": ai_at, "first_human_reply_at": human_at, "first_human_reply_by": aid,
        "first_handoff_at": handoff_at, "ai_replied": True, "human_replied": True,
    }  # fmt: skip
    assert ai_at < handoff_at < human_at
    await assert_recount_changes_nothing(client, ticket)


async def test_the_recount_gives_a_bulk_writers_tickets_their_figures(client: TestClient, make_user: MakeUser) -> None:
    """An import writes messages with their own times straight into the table, in any order; the
    recount then sets the figures from the messages, earliest first (ties: the lower seq)."""
    customer, alice, bob = await make_user("customer"), await make_user("agent"), await make_user("agent")
    ticket = uuid.UUID((await create_ticket(client, customer))["id"])
    rows = [  # seq, author, kind, visibility, metadata, minute
        (1, uuid.UUID(customer.id), "customer", "public", {}, 0),
        (2, uuid.UUID(bob.id), "agent", "public", {}, 9),
        (3, uuid.UUID(alice.id), "agent", "public", {}, 5),
        (4, uuid.UUID(bob.id), "agent", "public", {}, 5),
        (5, None, "system", "public", {"handoff": "customer_asked"}, 4),
        (6, uuid.UUID(alice.id), "agent", "internal", {}, 1),
    ]
    for seq, author, kind, visibility, metadata, minute in rows:
        await pool(client).execute(
            """INSERT INTO messages (ticket_id, seq, author_id, author_kind, body, visibility, metadata, created_at)
               VALUES ($1, $2, $3, $4, 'x', $5, $6, '2026-11-02T09:00:00Z'::timestamptz + $7 * interval '1 minute')""",
            ticket, seq, author, kind, visibility, metadata, minute,
        )  # fmt: skip
    assert await figures(client, ticket) == NOTHING  # nothing but the server's statements keeps them
    assert await pool(client).fetchval("SELECT tickets_recount_replies($1::uuid[])", [ticket]) == 1
    got = await figures(client, ticket)
    assert got["first_human_reply_by"] == uuid.UUID(alice.id)
    assert [got[k].minute for k in ("first_reply_at", "first_human_reply_at", "first_handoff_at")] == [5, 5, 4]
    assert (got["ai_replied"], got["human_replied"]) == (False, True)
    await assert_recount_changes_nothing(client, ticket)


def test_every_statement_that_stores_messages_keeps_the_figures() -> None:
    """No trigger keeps them any more (migration 0018): a new INSERT INTO messages in the server
    would store replies the reports never count. The only ones are db/messages.py's two statement
    templates, and every statement built from them carries the bookkeeping."""
    root = Path(messages_db.__file__).resolve().parent.parent
    found = {
        str(path.relative_to(root)): len(re.findall(r"insert\s+into\s+messages\b", path.read_text(), re.I))
        for path in root.rglob("*.py")
    }
    assert {path: n for path, n in found.items() if n} == {"db/messages.py": 2}
    for statement in (messages_db.INSERT_MESSAGE, messages_db.INSERT_MESSAGE_WITH_ATTACHMENTS):
        for column in ("first_reply_at", "first_human_reply_by", "first_handoff_at", "ai_replied", "human_replied"):
            assert f"{column} =" in statement
    for column in ("first_reply_at", "first_human_reply_by", "ai_replied", "human_replied"):
        assert f"{column} =" in messages_db.INSERT_MESSAGES
