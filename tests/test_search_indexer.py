"""The search indexer (services/search_indexer.py, migration 0019): each ticket's search documents
kept off the message write path, and what a search finds before and after it runs: a new message at
once, internal notes never for customers, renamed subjects and customers at once, and several
instances' indexers taking turns without indexing a ticket twice."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import psycopg
import pytest
from aiohttp.test_utils import TestClient

from chatserver.db import search as search_db
from chatserver.db import widget as widget_db
from chatserver.db.migrate import MIGRATIONS_DIR, apply_migrations, rollback_migrations
from chatserver.keys import DB_POOL
from chatserver.services import search as search_service
from chatserver.services.search_indexer import index_until_caught_up
from chatserver.settings import Settings

from .conftest import MakeUser, User, create_ticket
from .dbutil import throwaway_database
from .test_search import found, highlighted, post, search


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The background indexer only sweeps at start-up: each test runs the passes it needs itself,
    # so what a search finds before a pass comes from the messages' tail.
    return settings.with_overrides(
        tickets_per_customer_per_hour=1000, open_tickets_per_customer=1000, search_index_seconds=3600
    )


async def index_state(pool: asyncpg.Pool, ticket_id: str) -> tuple[int, int | None]:
    """(the ticket's last_seq, its indexed_seq or None without documents)."""
    row = await pool.fetchrow(
        "SELECT t.last_seq, s.indexed_seq FROM tickets t LEFT JOIN ticket_search s ON s.ticket_id = t.id"
        " WHERE t.id = $1",
        uuid.UUID(ticket_id),
    )
    assert row is not None
    return row["last_seq"], row["indexed_seq"]


async def both_ways(client: TestClient, user: User, q: str, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """What `user` finds for `q` by the union of matches and window by window (staff)."""
    union = found(await search(client, user, q))
    with monkeypatch.context() as patched:
        patched.setattr(search_service, "UNION_MAX_CANDIDATES", -1)
        patched.setattr(search_service, "WINDOW_MIN", 1)
        window = found(await search(client, user, q))
    return [union, window]


async def test_a_new_message_is_found_at_once_and_still_after_the_indexer_ran(
    client: TestClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    pool = client.app[DB_POOL]
    ticket = await create_ticket(client, customer, "Hello", message="My order is late")
    await index_until_caught_up(pool)
    message = await post(client, customer, ticket["id"], "The zeppelin model arrived dented")
    last_seq, indexed_seq = await index_state(pool, ticket["id"])
    assert indexed_seq is not None and indexed_seq < last_seq  # only in the tail so far
    assert await both_ways(client, agent, "zeppelin", monkeypatch) == [[ticket["id"]]] * 2
    assert found(await search(client, customer, "zeppelin")) == [ticket["id"]]
    # Words split between an indexed message and the new one: the ticket has them all.
    assert await both_ways(client, agent, "late zeppelin", monkeypatch) == [[ticket["id"]]] * 2

    assert await index_until_caught_up(pool) == 1
    assert await index_state(pool, ticket["id"]) == (last_seq, last_seq)
    assert await both_ways(client, agent, "zeppelin", monkeypatch) == [[ticket["id"]]] * 2
    assert await both_ways(client, agent, "late zeppelin", monkeypatch) == [[ticket["id"]]] * 2
    body = await search(client, agent, "zeppelin")
    match = body["tickets"][0]["match"]
    assert match["message_id"] == message["id"] and highlighted(match) == ["zeppelin"]
    assert found(await search(client, customer, "zeppelin")) == [ticket["id"]]
    assert await both_ways(client, agent, "blimp", monkeypatch) == [[], []]


async def test_a_ticket_never_indexed_is_found_by_its_messages(
    client: TestClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    ticket = await create_ticket(client, customer, "New", message="The quokka plush is missing an ear")
    assert (await index_state(client.app[DB_POOL], ticket["id"]))[1] is None
    assert await both_ways(client, agent, "quokka", monkeypatch) == [[ticket["id"]]] * 2
    assert found(await search(client, customer, "quokka ear")) == [ticket["id"]]


async def test_words_split_across_messages_match_and_the_snippet_is_the_newest_with_one_of_them(
    client: TestClient, make_user: MakeUser
) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    ticket = await create_ticket(client, customer, "Hi", message="The walrus mug broke")
    reply = await post(client, agent, ticket["id"], "We will send a replacement mug")
    await index_until_caught_up(client.app[DB_POOL])
    body = await search(client, agent, "walrus replacement")
    assert found(body) == [ticket["id"]]
    match = body["tickets"][0]["match"]
    assert match["message_id"] == reply["id"] and highlighted(match) == ["replacement"]


@pytest.mark.parametrize("indexed", [False, True])
async def test_internal_notes_never_match_for_customers_only_for_staff(
    client: TestClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch, indexed: bool
) -> None:
    customer, agent, admin = await make_user("customer"), await make_user("agent"), await make_user("admin")
    pool = client.app[DB_POOL]
    ticket = await create_ticket(client, customer, "Parcel", message="Where is my parcel?")
    await index_until_caught_up(pool)  # public words indexed before the note: the public document changes
    await post(client, agent, ticket["id"], "Flagged for chargeback review", internal=True)
    await post(client, agent, ticket["id"], "It left the depot today")
    if indexed:
        await index_until_caught_up(pool)
    for staff in (agent, admin):
        assert await both_ways(client, staff, "chargeback", monkeypatch) == [[ticket["id"]]] * 2
        assert await both_ways(client, staff, "parcel chargeback", monkeypatch) == [[ticket["id"]]] * 2
    assert found(await search(client, customer, "chargeback")) == []
    assert found(await search(client, customer, "parcel chargeback")) == []
    assert found(await search(client, customer, "flagged")) == []
    body = await search(client, customer, "parcel depot")
    assert found(body) == [ticket["id"]]
    assert body["tickets"][0]["match"]["visibility"] == "public"
    # Another customer finds nothing of it, public words included.
    other = await make_user("customer")
    assert found(await search(client, other, "parcel")) == []


async def test_a_renamed_subject_or_customer_is_found_at_once(
    client: TestClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subjects and customers are not in the documents (their own indexes, always current): no
    indexer pass is needed. There is no API to change a subject: it is changed here in SQL, as an
    operator would."""
    customer, agent = await make_user("customer", name="Ada Plain"), await make_user("agent")
    pool = client.app[DB_POOL]
    ticket = await create_ticket(client, customer, "Old subject", message="hello")
    await index_until_caught_up(pool)
    await pool.execute("UPDATE tickets SET subject = 'Gramophone needle' WHERE id = $1", uuid.UUID(ticket["id"]))
    assert await both_ways(client, agent, "gramophone", monkeypatch) == [[ticket["id"]]] * 2
    assert found(await search(client, customer, "gramophone")) == [ticket["id"]]
    assert await both_ways(client, agent, "old subject", monkeypatch) == [[], []]

    async with pool.acquire() as conn:
        assert await widget_db.link_external_id(conn, "ext-renamed", uuid.UUID(customer.id), "old@example.com")
        await widget_db.update_profile(
            conn, "ext-renamed", uuid.UUID(customer.id), "Ada Lovelace", "ada@engine.example"
        )
    assert await both_ways(client, agent, "lovelace", monkeypatch) == [[ticket["id"]]] * 2
    assert await both_ways(client, agent, "engine.example", monkeypatch) == [[ticket["id"]]] * 2
    assert await both_ways(client, agent, "old@example.com", monkeypatch) == [[], []]


async def test_the_documents_hold_every_message_once_internal_notes_in_the_staff_one_only(
    client: TestClient, make_user: MakeUser
) -> None:
    customer, agent = await make_user("customer"), await make_user("agent")
    pool = client.app[DB_POOL]
    plain = await create_ticket(client, customer, "A", message="alpha beta")
    noted = await create_ticket(client, customer, "B", message="gamma")
    await index_until_caught_up(pool)
    await post(client, customer, plain["id"], "beta delta")
    await post(client, agent, noted["id"], "secretnote", internal=True)
    await post(client, agent, noted["id"], "epsilon")
    await index_until_caught_up(pool)
    rows = {
        str(r["ticket_id"]): r
        for r in await pool.fetch("SELECT ticket_id, staff_document::text, public_document::text FROM ticket_search")
    }
    assert rows[plain["id"]]["staff_document"] == "'alpha' 'beta' 'delta'"
    assert rows[plain["id"]]["public_document"] is None  # no note: the staff document's words
    assert rows[noted["id"]]["staff_document"] == "'epsilon' 'gamma' 'secretnote'"
    assert rows[noted["id"]]["public_document"] == "'epsilon' 'gamma'"


async def test_two_instances_indexers_take_turns_and_index_each_ticket_once(
    client: TestClient, make_user: MakeUser, settings: Settings
) -> None:
    """Two instances' pools, several passes at once on each: the advisory lock lets one pass at a
    time work, so the tickets done add up to the tickets there were (two passes working at once
    would both take the same tickets, and count them twice) and the documents are exact."""
    customer, agent = await make_user("customer"), await make_user("agent")
    pool = client.app[DB_POOL]
    tickets = [await create_ticket(client, customer, f"T{i}", message=f"first{i} common") for i in range(12)]
    await index_until_caught_up(pool)
    for i, ticket in enumerate(tickets):
        await post(client, agent, ticket["id"], f"second{i} common", internal=i % 3 == 0)
    other = await asyncpg.create_pool(settings.database_url, min_size=4, max_size=4)
    try:
        done: list[int] = []

        async def passes(on: asyncpg.Pool) -> None:
            while True:
                count = await search_db.index_pending(on, 2)
                if count is None:
                    await asyncio.sleep(0.001)
                    continue
                done.append(count)
                if count == 0:
                    return

        await asyncio.gather(*(passes(p) for p in (pool, other, pool, other, pool, other)))
    finally:
        await other.close()
    assert sum(done) == len(tickets)
    mismatched = await pool.fetchval(
        """SELECT count(*) FROM ticket_search s JOIN (
               SELECT ticket_id, max(seq) AS last, strip(tsvector_agg(search_vector)) AS words FROM messages
               GROUP BY ticket_id) m ON m.ticket_id = s.ticket_id
           WHERE s.indexed_seq <> m.last OR s.staff_document <> m.words"""
    )
    assert mismatched == 0
    assert found(await search(client, agent, "second5")) == [tickets[5]["id"]]


async def test_a_pass_waits_its_turn_while_another_instance_holds_the_lock(
    client: TestClient, make_user: MakeUser, settings: Settings
) -> None:
    customer = await make_user("customer")
    pool = client.app[DB_POOL]
    ticket = await create_ticket(client, customer, "Lock", message="first")
    other = await asyncpg.connect(settings.database_url)
    try:
        async with other.transaction():
            assert await other.fetchval(search_db.INDEXER_LOCK)
            assert await search_db.index_pending(pool, 10) is None
            assert (await index_state(pool, ticket["id"]))[1] is None
        assert await search_db.index_pending(pool, 10) == 1
    finally:
        await other.close()


async def test_the_indexer_keeps_going_over_a_backlog_bigger_than_a_pass(
    client: TestClient, make_user: MakeUser
) -> None:
    customer = await make_user("customer")
    pool = client.app[DB_POOL]
    tickets = [await create_ticket(client, customer, f"Backlog {i}", message=f"word{i}") for i in range(7)]
    assert await index_until_caught_up(pool, batch=2) == len(tickets)
    states = [await index_state(pool, t["id"]) for t in tickets]
    assert all(indexed == last for last, indexed in states)


async def test_a_ticket_with_too_many_words_for_a_document_does_not_stop_the_indexer(
    client: TestClient, make_user: MakeUser
) -> None:
    """A tsvector holds at most 1 MB of words: a ticket past that is skipped (logged), the others
    of its pass are indexed."""
    customer, agent = await make_user("customer"), await make_user("agent")
    pool = client.app[DB_POOL]
    huge = await create_ticket(client, customer, "Huge")
    normal = await create_ticket(client, customer, "Normal", message="ordinary words")
    # 200 messages of 200 distinct 32-character words each: 1.28 MB of words in one ticket.
    await pool.execute(
        """WITH made AS (
               INSERT INTO messages (ticket_id, seq, author_kind, body)
               SELECT $1, g, 'customer',
                      (SELECT string_agg(md5(g::text || '-' || w::text), ' ') FROM generate_series(1, 200) w)
               FROM generate_series(1, 200) g
               RETURNING seq)
           UPDATE tickets SET last_seq = (SELECT max(seq) FROM made), last_activity_at = now() WHERE id = $1""",
        uuid.UUID(huge["id"]),
    )
    assert await index_until_caught_up(pool) == 2
    assert await index_state(pool, huge["id"]) == (200, 200)
    assert await index_state(pool, normal["id"]) == (1, 1)
    assert found(await search(client, agent, "ordinary")) == [normal["id"]]


def test_the_migration_builds_the_documents_the_indexer_would(server_url: str) -> None:
    """Migration 0019 fills ticket_search for the tickets already there with its own statement:
    the same documents as the indexer's (INDEX_EVERYTHING, what bench/dataset.py uses)."""
    with throwaway_database(server_url) as url:
        apply_migrations(url)
        with psycopg.connect(url) as conn:
            conn.execute(
                """INSERT INTO users (email, password_hash, role, display_name)
                   VALUES ('c@example.com', 'x', 'customer', 'C')"""
            )
            conn.execute(
                """INSERT INTO tickets (customer_id, subject, last_seq)
                   SELECT id, 'T' || g, 3 FROM users, generate_series(1, 4) g"""
            )
            conn.execute(
                """INSERT INTO messages (ticket_id, seq, author_kind, body, visibility)
                   SELECT t.id, s, 'agent', 'word' || s || ' ' || t.subject || ' shared',
                          CASE WHEN s = 2 AND t.subject IN ('T1', 'T3') THEN 'internal' ELSE 'public' END
                   FROM tickets t, generate_series(1, 3) s"""
            )
        # Back to before 0019 (and the migrations after it), then forward: 0019 now has tickets to fill in.
        since = [p for p in MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql") and p.name >= "0019"]
        assert rollback_migrations(url, len(since)) == len(since)
        assert apply_migrations(url) == len(since)
        snapshot = """SELECT t.subject, s.indexed_seq, s.staff_document::text, s.public_document::text
                      FROM ticket_search s JOIN tickets t ON t.id = s.ticket_id ORDER BY t.subject"""
        with psycopg.connect(url) as conn:
            by_migration = conn.execute(snapshot).fetchall()
            conn.execute("DELETE FROM ticket_search")
            conn.execute(search_db.INDEX_EVERYTHING)  # type: ignore[arg-type]  # our own constant SQL
            by_indexer = conn.execute(snapshot).fetchall()
    assert len(by_migration) == 4
    assert by_migration == by_indexer
    assert by_migration[0][2] == "'shared' 't1' 'word1' 'word2' 'word3'"
    assert by_migration[0][3] == "'shared' 't1' 'word1' 'word3'"  # T1's note (seq 2) is staff only
    assert by_migration[1][3] is None  # T2: no note
