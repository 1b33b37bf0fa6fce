"""The statement that starts a generation (chatserver/db/ai.py, START_GENERATION) against the real
PostgreSQL: the claim, the ticket with its customer's name, and a reply charged to the ticket's
budget and the customer's rate, in that order, each step only when the one before allowed it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from chatserver.db import ai as ai_db
from chatserver.db import tickets as tickets_db
from chatserver.db import users as users_db
from chatserver.db.pool import create_pool
from chatserver.keys import DB_POOL

BUDGET = ai_db.Budget(max_replies=3, max_tokens=1_000, user_replies=5, user_window_seconds=600)
LEASE = 30.0


@pytest.fixture
def pool(client: TestClient) -> asyncpg.Pool:
    # `client` empties the tables (users, tickets and everything that hangs off them).
    return client.app[DB_POOL]


@pytest.fixture
async def wide_pool(database_url: str, client: TestClient) -> AsyncIterator[asyncpg.Pool]:
    """Enough connections for 20 statements to run at once."""
    pool = await create_pool(database_url, 1, 20)
    yield pool
    await pool.close()


async def customer(pool: asyncpg.Pool, name: str = "Casey") -> uuid.UUID:
    row = await users_db.insert_user(pool, f"c-{uuid.uuid4().hex[:10]}@example.com", "x", "customer", name)
    return uuid.UUID(str(row["id"]))


async def ticket(pool: asyncpg.Pool, customer_id: uuid.UUID, *, ai_enabled: bool = True) -> uuid.UUID:
    row = await tickets_db.insert_ticket(pool, customer_id, "Sync is broken", "", ai_enabled)
    return uuid.UUID(str(row["id"]))


async def start(
    pool: asyncpg.Pool | asyncpg.Connection,
    ticket_id: uuid.UUID,
    *,
    kind: str = "reply",
    supersede: bool = True,
    budget: ai_db.Budget | None = BUDGET,
) -> ai_db.GenerationStart:
    return await ai_db.start_generation(
        pool, ticket_id, kind, uuid.uuid4(), "instance", 1, LEASE, supersede=supersede, budget=budget
    )


async def replies(pool: asyncpg.Pool, ticket_id: uuid.UUID) -> int | None:
    value: int | None = await pool.fetchval("SELECT replies FROM ticket_ai_usage WHERE ticket_id = $1", ticket_id)
    return value


async def rate(pool: asyncpg.Pool, user_id: uuid.UUID) -> int | None:
    value: int | None = await pool.fetchval("SELECT count FROM ai_user_rate WHERE user_id = $1", user_id)
    return value


async def set_usage(pool: asyncpg.Pool, ticket_id: uuid.UUID, **columns: Any) -> None:
    await pool.execute("INSERT INTO ticket_ai_usage (ticket_id) VALUES ($1) ON CONFLICT DO NOTHING", ticket_id)
    for name, value in columns.items():
        assert name in ("replies", "total_tokens")
        await pool.execute(f"UPDATE ticket_ai_usage SET {name} = $2 WHERE ticket_id = $1", ticket_id, value)


async def test_a_reply_within_budget_is_claimed_counted_and_gets_the_ticket(pool: asyncpg.Pool) -> None:
    user = await customer(pool, "Casey Jones")
    ticket_id = await ticket(pool, user)
    started = await start(pool, ticket_id)
    assert started.claimed and started.refused is None
    assert started.ticket is not None
    assert (started.ticket["id"], started.ticket["subject"], started.ticket["customer_id"]) == (
        ticket_id,
        "Sync is broken",
        user,
    )
    assert started.customer_name == "Casey Jones"
    assert (await replies(pool, ticket_id), await rate(pool, user)) == (1, 1)
    claim = await ai_db.get_claim(pool, ticket_id, "reply")
    assert claim is not None and claim["live"]


async def test_a_spent_reply_budget_refuses_without_hitting_the_rate_or_counting(pool: asyncpg.Pool) -> None:
    user = await customer(pool)
    ticket_id = await ticket(pool, user)
    await set_usage(pool, ticket_id, replies=BUDGET.max_replies)
    started = await start(pool, ticket_id)
    assert started.claimed and started.refused == "reply_budget"
    assert (await replies(pool, ticket_id), await rate(pool, user)) == (BUDGET.max_replies, None)


async def test_a_spent_token_budget_refuses_without_hitting_the_rate_or_counting(pool: asyncpg.Pool) -> None:
    user = await customer(pool)
    ticket_id = await ticket(pool, user)
    await set_usage(pool, ticket_id, replies=1, total_tokens=BUDGET.max_tokens)
    started = await start(pool, ticket_id)
    assert started.refused == "token_budget"
    assert (await replies(pool, ticket_id), await rate(pool, user)) == (1, None)


async def test_the_reply_budget_is_checked_before_the_token_budget(pool: asyncpg.Pool) -> None:
    user = await customer(pool)
    ticket_id = await ticket(pool, user)
    await set_usage(pool, ticket_id, replies=BUDGET.max_replies, total_tokens=BUDGET.max_tokens)
    assert (await start(pool, ticket_id)).refused == "reply_budget"


async def test_an_exceeded_rate_is_hit_but_the_reply_is_not_counted(pool: asyncpg.Pool) -> None:
    user = await customer(pool)
    tickets = [await ticket(pool, user) for _ in range(BUDGET.user_replies + 1)]
    for ticket_id in tickets[:-1]:
        assert (await start(pool, ticket_id)).refused is None
    started = await start(pool, tickets[-1])
    assert started.claimed and started.refused == "rate_limit"
    assert await rate(pool, user) == BUDGET.user_replies + 1
    assert await replies(pool, tickets[-1]) is None


async def test_a_rate_window_that_ended_starts_again(pool: asyncpg.Pool) -> None:
    user = await customer(pool)
    ticket_id = await ticket(pool, user)
    await pool.execute(
        "INSERT INTO ai_user_rate (user_id, window_start, count) VALUES ($1, now() - interval '1 hour', 99)", user
    )
    assert (await start(pool, ticket_id)).refused is None
    assert await rate(pool, user) == 1


async def test_a_spent_budget_is_checked_before_the_rate(pool: asyncpg.Pool) -> None:
    user = await customer(pool)
    ticket_id = await ticket(pool, user)
    await set_usage(pool, ticket_id, replies=BUDGET.max_replies)
    await pool.execute("INSERT INTO ai_user_rate (user_id, window_start, count) VALUES ($1, now(), 99)", user)
    assert (await start(pool, ticket_id)).refused == "reply_budget"
    assert await rate(pool, user) == 99


async def test_the_copilot_and_tickets_with_the_ai_off_are_not_charged(pool: asyncpg.Pool) -> None:
    user = await customer(pool)
    off = await ticket(pool, user, ai_enabled=False)
    started = await start(pool, off)
    assert started.claimed and started.refused is None
    assert started.ticket is not None and started.ticket["ai_enabled"] is False
    on = await ticket(pool, user)
    copilot = await start(pool, on, kind="copilot", supersede=False, budget=None)
    assert copilot.claimed and copilot.ticket is not None and copilot.refused is None
    assert (await replies(pool, off), await replies(pool, on), await rate(pool, user)) == (None, None, None)


async def test_a_live_claim_is_only_taken_over_by_a_superseding_reply(pool: asyncpg.Pool) -> None:
    user = await customer(pool)
    ticket_id = await ticket(pool, user)
    assert (await start(pool, ticket_id)).claimed
    refused = await start(pool, ticket_id, supersede=False)
    # Not ours: no ticket, nothing charged.
    assert (refused.claimed, refused.ticket, refused.refused) == (False, None, None)
    assert await replies(pool, ticket_id) == 1
    assert (await start(pool, ticket_id, supersede=True)).claimed
    assert await replies(pool, ticket_id) == 2


async def test_an_expired_claim_is_free(pool: asyncpg.Pool) -> None:
    user = await customer(pool)
    ticket_id = await ticket(pool, user)
    assert (await start(pool, ticket_id)).claimed
    await pool.execute(
        "UPDATE ai_generations SET expires_at = now() - interval '1 second' WHERE ticket_id = $1", ticket_id
    )
    assert (await start(pool, ticket_id, supersede=False)).claimed


async def test_concurrent_replies_of_one_customer_are_counted_exactly(wide_pool: asyncpg.Pool) -> None:
    user = await customer(wide_pool)
    tickets = [await ticket(wide_pool, user) for _ in range(20)]
    starts = await asyncio.gather(*(start(wide_pool, t) for t in tickets))
    allowed = [t for t, s in zip(tickets, starts, strict=True) if s.refused is None]
    assert len(allowed) == BUDGET.user_replies
    assert sorted(s.refused or "" for s in starts) == [""] * BUDGET.user_replies + ["rate_limit"] * 15
    assert await rate(wide_pool, user) == 20
    counted = await wide_pool.fetch("SELECT ticket_id, replies FROM ticket_ai_usage WHERE ticket_id = ANY($1)", tickets)
    assert sorted((r["ticket_id"], r["replies"]) for r in counted) == sorted((t, 1) for t in allowed)


async def test_concurrent_replies_of_one_ticket_respect_its_budget(wide_pool: asyncpg.Pool) -> None:
    user = await customer(wide_pool)
    ticket_id = await ticket(wide_pool, user)
    await set_usage(wide_pool, ticket_id, replies=0)
    budget = ai_db.Budget(max_replies=5, max_tokens=1_000, user_replies=100, user_window_seconds=600)
    starts = await asyncio.gather(*(start(wide_pool, ticket_id, budget=budget) for _ in range(20)))
    assert all(s.claimed for s in starts)
    assert sorted(s.refused or "" for s in starts) == [""] * 5 + ["reply_budget"] * 15
    assert await replies(wide_pool, ticket_id) == 5
    # The rate is hit only by the replies the budget allowed.
    assert await rate(wide_pool, user) == 5


async def test_the_statement_commits_without_a_flush_wait_and_the_connection_keeps_its_own(
    pool: asyncpg.Pool,
) -> None:
    # The claim's commit does not wait for its WAL flush; everything else on the pooled connection
    # after it (a customer's message, say) must still wait for its own.
    ticket_id = await ticket(pool, await customer(pool))
    async with pool.acquire() as conn:
        async with conn.transaction():
            started = await start(conn, ticket_id)
            inside = await conn.fetchval("SELECT current_setting('synchronous_commit')")
        after = await conn.fetchval("SELECT current_setting('synchronous_commit')")
        await start(conn, ticket_id)
        after_its_own_transaction = await conn.fetchval("SELECT current_setting('synchronous_commit')")
    assert started.claimed
    assert inside == "off"
    assert (after, after_its_own_transaction) == ("on", "on")
