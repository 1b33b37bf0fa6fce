"""SQL for the AI layer: generation claims (one per ticket and kind, across instances),
per-ticket AI usage (the budget), per-user AI reply counters, the one statement that starts a
generation with all three, and finding stored replies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from . import Executor
from .messages import MESSAGE_COLUMNS
from .tickets import TICKET_COLUMNS

TICKET_FIELDS = [name.strip() for name in TICKET_COLUMNS.split(",")]

# Everything a generation writes, and the ticket it reads, before its Groq request, in one
# statement: one round trip and one commit (docs/ai.md, "Before the request").
# The commit does not wait for its WAL flush (`no_flush_wait`: synchronous_commit off for this
# statement's own transaction only; set_config's `true` ends it with the transaction, so the
# pooled connection's later statements, messages included, still wait for theirs). That wait was
# ~1 ms of an idle reply's time to first token on this project's machine. What it risks: a
# PostgreSQL crash within ~0.6 s of the commit can forget the claim and one count of the budget
# and rate; the reply itself is stored with a synchronous commit, which flushes these earlier
# records with it. Other sessions see the claim at once, as with any commit.
# In this order, each step only when the one before allowed it:
# 1. claim the ticket's generation (a lease of $6 seconds, extended while it streams): with $7 (a
#    newer customer message supersedes the reply in flight) even from a live claim, else only a
#    free or expired one. The row lock serialises racers; nothing below happens without the claim.
# 2. read the ticket and its customer's display name;
# 3. for a customer-facing reply ($8) in a ticket whose AI is on: the ticket's budget ($9 replies,
#    $10 tokens) must not be spent; only then is the customer's rate hit (a fixed window of $12
#    seconds: the first hit after the window ends starts a new one); only when the count is
#    within $11 is the reply counted in the ticket's usage.
# `refused` says why the reply may not go ahead: reply_budget, token_budget or rate_limit.
# Racing replies of one ticket check its budget one after the other (the usage row is locked),
# except the very first ones, when there is no row to lock yet; a customer's rate is exact.
START_GENERATION = f"""
WITH no_flush_wait AS (
    SELECT set_config('synchronous_commit', 'off', true)
),
claimed AS (
    INSERT INTO ai_generations (ticket_id, kind, reply_id, instance_id, in_reply_to, expires_at, attempt)
    VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $13)
    ON CONFLICT (ticket_id, kind) DO UPDATE
    SET reply_id = EXCLUDED.reply_id, instance_id = EXCLUDED.instance_id, in_reply_to = EXCLUDED.in_reply_to,
        started_at = now(), expires_at = EXCLUDED.expires_at, attempt = EXCLUDED.attempt
    WHERE $7::boolean OR ai_generations.expires_at < now()
    RETURNING reply_id
),
ticket AS (
    SELECT {", ".join(f"t.{name}" for name in TICKET_FIELDS)}, u.display_name AS customer_name
    FROM tickets t LEFT JOIN users u ON u.id = t.customer_id
    WHERE t.id = $1 AND EXISTS (SELECT FROM claimed)
),
charged AS (
    SELECT customer_id FROM ticket WHERE $8::boolean AND ai_enabled
),
spent AS (
    SELECT CASE WHEN replies >= $9::integer THEN 'reply_budget'
                WHEN total_tokens >= $10::bigint THEN 'token_budget' END AS reason
    FROM ticket_ai_usage
    WHERE ticket_id = $1 AND EXISTS (SELECT FROM charged)
    FOR UPDATE
),
rate AS (
    INSERT INTO ai_user_rate (user_id, window_start, count)
    SELECT customer_id, now(), 1 FROM charged
    WHERE NOT EXISTS (SELECT FROM spent WHERE reason IS NOT NULL)
    ON CONFLICT (user_id) DO UPDATE SET
        count = CASE WHEN ai_user_rate.window_start <= now() - make_interval(secs => $12)
                     THEN 1 ELSE ai_user_rate.count + 1 END,
        window_start = CASE WHEN ai_user_rate.window_start <= now() - make_interval(secs => $12)
                            THEN now() ELSE ai_user_rate.window_start END
    RETURNING count
),
counted AS (
    INSERT INTO ticket_ai_usage (ticket_id, replies)
    SELECT $1, 1 FROM rate WHERE count <= $11::integer
    ON CONFLICT (ticket_id) DO UPDATE SET replies = ticket_ai_usage.replies + 1, updated_at = now()
    RETURNING replies
)
SELECT EXISTS (SELECT FROM claimed) AS claimed,
       coalesce((SELECT reason FROM spent),
                CASE WHEN (SELECT count FROM rate) > $11::integer THEN 'rate_limit' END) AS refused,
       ticket.*
FROM no_flush_wait LEFT JOIN ticket ON true
"""

EXTEND_CLAIM = """
UPDATE ai_generations SET expires_at = now() + make_interval(secs => $4)
WHERE ticket_id = $1 AND kind = $2 AND reply_id = $3
RETURNING reply_id
"""

RELEASE_CLAIM = "DELETE FROM ai_generations WHERE ticket_id = $1 AND kind = $2 AND reply_id = $3"

# A takeover ends whatever reply is in flight, wherever it runs: its owner notices the claim is
# gone (at its next heartbeat, or at once through the ticket.updated event).
DROP_CLAIM = """
DELETE FROM ai_generations WHERE ticket_id = $1 AND kind = $2
RETURNING reply_id, instance_id, expires_at >= now() AS live
"""

# Orphans: claims whose lease ran out, i.e. whose instance stopped extending them (it died, or
# lost the database for a whole lease). Every instance runs this every AI_SWEEP_INTERVAL_SECONDS;
# SKIP LOCKED hands each orphan to exactly one of them (a row another sweeper, or a generation
# claiming it anew, holds is left to that one), and deleting the row is the takeover: the owner,
# if it is alive after all, finds its claim gone at its next heartbeat and stops.
TAKE_ORPHANS = """
DELETE FROM ai_generations g
USING (
    SELECT ticket_id, kind FROM ai_generations
    WHERE expires_at < now()
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
) orphan
WHERE g.ticket_id = orphan.ticket_id AND g.kind = orphan.kind
RETURNING g.ticket_id, g.kind, g.reply_id, g.instance_id, g.in_reply_to, g.attempt
"""

# Which of these replies still hold a claim (live or not yet swept).
CLAIMED_REPLIES = "SELECT reply_id FROM ai_generations WHERE reply_id = ANY($1::uuid[])"

# A stored AI reply by its reply_id (metadata.reply_id), complete or not.
STORED_REPLY = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE ticket_id = $1 AND author_kind = 'ai' AND metadata ->> 'reply_id' = $2::text
ORDER BY seq DESC LIMIT 1
"""

GET_CLAIM = """
SELECT reply_id, instance_id, in_reply_to, expires_at >= now() AS live
FROM ai_generations WHERE ticket_id = $1 AND kind = $2
"""

ADD_USAGE = """
INSERT INTO ticket_ai_usage (ticket_id, replies, prompt_tokens, completion_tokens, total_tokens)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (ticket_id) DO UPDATE SET
    replies = ticket_ai_usage.replies + EXCLUDED.replies,
    prompt_tokens = ticket_ai_usage.prompt_tokens + EXCLUDED.prompt_tokens,
    completion_tokens = ticket_ai_usage.completion_tokens + EXCLUDED.completion_tokens,
    total_tokens = ticket_ai_usage.total_tokens + EXCLUDED.total_tokens,
    updated_at = now()
RETURNING replies, prompt_tokens, completion_tokens, total_tokens
"""

LATEST_CUSTOMER_MESSAGE = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE ticket_id = $1 AND author_kind = 'customer' AND visibility = 'public'
ORDER BY seq DESC LIMIT 1
"""

# The newest stored AI reply to customer message `in_reply_to` (complete or not).
REPLY_TO = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE ticket_id = $1 AND author_kind = 'ai' AND metadata -> 'in_reply_to' = to_jsonb($2::bigint)
ORDER BY seq DESC LIMIT 1
"""


@dataclass(frozen=True)
class Budget:
    """What a customer-facing reply is charged against (docs/ai.md)."""

    max_replies: int  # per ticket
    max_tokens: int  # per ticket, counted from Groq's usage
    user_replies: int  # per customer and window, across their tickets
    user_window_seconds: float


@dataclass(frozen=True)
class GenerationStart:
    claimed: bool
    # The ticket's row (TICKET_COLUMNS); None when the claim was not ours or the ticket is gone.
    ticket: dict[str, Any] | None
    customer_name: str
    # reply_budget, token_budget or rate_limit: the reply was not counted and must not go ahead.
    refused: str | None


async def start_generation(
    conn: Executor,
    ticket_id: uuid.UUID,
    kind: str,
    reply_id: uuid.UUID,
    instance_id: str,
    in_reply_to: int | None,
    lease: float,
    *,
    supersede: bool,
    budget: Budget | None,
    attempt: int = 1,
) -> GenerationStart:
    """Claim the generation, read the ticket, and (with a `budget`: a customer-facing reply)
    charge the reply to the ticket's budget and its customer's rate. See START_GENERATION."""
    charge = budget is not None
    row = await conn.fetchrow(
        START_GENERATION,
        ticket_id,
        kind,
        reply_id,
        instance_id,
        in_reply_to,
        lease,
        supersede,
        charge,
        budget.max_replies if budget else 0,
        budget.max_tokens if budget else 0,
        budget.user_replies if budget else 0,
        float(budget.user_window_seconds) if budget else 0.0,
        attempt,
    )
    ticket = {name: row[name] for name in TICKET_FIELDS} if row["id"] is not None else None
    return GenerationStart(row["claimed"], ticket, row["customer_name"] or "", row["refused"])


async def extend_claim(conn: Executor, ticket_id: uuid.UUID, kind: str, reply_id: uuid.UUID, lease: float) -> bool:
    """False when the claim is no longer ours (superseded, or dropped by a takeover)."""
    return await conn.fetchval(EXTEND_CLAIM, ticket_id, kind, reply_id, lease) is not None


async def release_claim(conn: Executor, ticket_id: uuid.UUID, kind: str, reply_id: uuid.UUID) -> None:
    await conn.execute(RELEASE_CLAIM, ticket_id, kind, reply_id)


async def drop_claim(conn: Executor, ticket_id: uuid.UUID, kind: str) -> asyncpg.Record | None:
    return await conn.fetchrow(DROP_CLAIM, ticket_id, kind)


async def take_orphans(conn: Executor, limit: int) -> list[asyncpg.Record]:
    """Delete up to `limit` expired claims no other session holds, returning them (TAKE_ORPHANS)."""
    return list(await conn.fetch(TAKE_ORPHANS, limit))


async def claimed_replies(conn: Executor, reply_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    return {row["reply_id"] for row in await conn.fetch(CLAIMED_REPLIES, reply_ids)}


async def stored_reply(conn: Executor, ticket_id: uuid.UUID, reply_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(STORED_REPLY, ticket_id, str(reply_id))


async def get_claim(conn: Executor, ticket_id: uuid.UUID, kind: str) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_CLAIM, ticket_id, kind)


async def add_usage(
    conn: Executor, ticket_id: uuid.UUID, *, replies: int, prompt_tokens: int, completion_tokens: int, total_tokens: int
) -> asyncpg.Record:
    return await conn.fetchrow(ADD_USAGE, ticket_id, replies, prompt_tokens, completion_tokens, total_tokens)


async def latest_customer_message(conn: Executor, ticket_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(LATEST_CUSTOMER_MESSAGE, ticket_id)


async def reply_to(conn: Executor, ticket_id: uuid.UUID, in_reply_to: int) -> asyncpg.Record | None:
    return await conn.fetchrow(REPLY_TO, ticket_id, in_reply_to)
