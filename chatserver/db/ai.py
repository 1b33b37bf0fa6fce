"""SQL for the AI layer: generation claims (one per ticket and kind, across instances),
per-ticket AI usage (the budget), per-user AI reply counters, and finding stored replies."""

from __future__ import annotations

import uuid

import asyncpg

from . import Executor
from .messages import MESSAGE_COLUMNS

# Claim only when nobody holds a live lease (an expired one is taken over).
CLAIM_IF_FREE = """
INSERT INTO ai_generations (ticket_id, kind, reply_id, instance_id, in_reply_to, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
ON CONFLICT (ticket_id, kind) DO UPDATE
SET reply_id = EXCLUDED.reply_id, instance_id = EXCLUDED.instance_id, in_reply_to = EXCLUDED.in_reply_to,
    started_at = now(), expires_at = EXCLUDED.expires_at
WHERE ai_generations.expires_at < now()
RETURNING reply_id
"""

# Claim unconditionally (a newer customer message supersedes the reply in flight); returns the
# live claim it replaced, if any, so its owner can be told. The row lock serialises racers.
TAKE_CLAIM = """
WITH previous AS (
    SELECT reply_id, instance_id FROM ai_generations
    WHERE ticket_id = $1 AND kind = $2 AND expires_at >= now()
    FOR UPDATE
), upserted AS (
    INSERT INTO ai_generations (ticket_id, kind, reply_id, instance_id, in_reply_to, expires_at)
    VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
    ON CONFLICT (ticket_id, kind) DO UPDATE
    SET reply_id = EXCLUDED.reply_id, instance_id = EXCLUDED.instance_id, in_reply_to = EXCLUDED.in_reply_to,
        started_at = now(), expires_at = EXCLUDED.expires_at
    RETURNING reply_id
)
SELECT (SELECT reply_id FROM previous) AS previous_reply_id,
       (SELECT instance_id FROM previous) AS previous_instance_id,
       (SELECT reply_id FROM upserted) AS reply_id
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

GET_CLAIM = """
SELECT reply_id, instance_id, in_reply_to, expires_at >= now() AS live
FROM ai_generations WHERE ticket_id = $1 AND kind = $2
"""

GET_USAGE = "SELECT replies, prompt_tokens, completion_tokens, total_tokens FROM ticket_ai_usage WHERE ticket_id = $1"

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

# Fixed window per user: the first hit after the window ends starts a new one.
HIT_USER_RATE = """
INSERT INTO ai_user_rate (user_id, window_start, count) VALUES ($1, now(), 1)
ON CONFLICT (user_id) DO UPDATE SET
    count = CASE WHEN ai_user_rate.window_start <= now() - make_interval(secs => $2)
                 THEN 1 ELSE ai_user_rate.count + 1 END,
    window_start = CASE WHEN ai_user_rate.window_start <= now() - make_interval(secs => $2)
                        THEN now() ELSE ai_user_rate.window_start END
RETURNING count
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


async def claim_if_free(
    conn: Executor,
    ticket_id: uuid.UUID,
    kind: str,
    reply_id: uuid.UUID,
    instance_id: str,
    in_reply_to: int | None,
    lease: float,
) -> bool:
    return await conn.fetchval(CLAIM_IF_FREE, ticket_id, kind, reply_id, instance_id, in_reply_to, lease) is not None


async def take_claim(
    conn: Executor,
    ticket_id: uuid.UUID,
    kind: str,
    reply_id: uuid.UUID,
    instance_id: str,
    in_reply_to: int | None,
    lease: float,
) -> asyncpg.Record:
    """Claim, replacing any live claim; the row has previous_reply_id / previous_instance_id."""
    return await conn.fetchrow(TAKE_CLAIM, ticket_id, kind, reply_id, instance_id, in_reply_to, lease)


async def extend_claim(conn: Executor, ticket_id: uuid.UUID, kind: str, reply_id: uuid.UUID, lease: float) -> bool:
    """False when the claim is no longer ours (superseded, or dropped by a takeover)."""
    return await conn.fetchval(EXTEND_CLAIM, ticket_id, kind, reply_id, lease) is not None


async def release_claim(conn: Executor, ticket_id: uuid.UUID, kind: str, reply_id: uuid.UUID) -> None:
    await conn.execute(RELEASE_CLAIM, ticket_id, kind, reply_id)


async def drop_claim(conn: Executor, ticket_id: uuid.UUID, kind: str) -> asyncpg.Record | None:
    return await conn.fetchrow(DROP_CLAIM, ticket_id, kind)


async def get_claim(conn: Executor, ticket_id: uuid.UUID, kind: str) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_CLAIM, ticket_id, kind)


async def get_usage(conn: Executor, ticket_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_USAGE, ticket_id)


async def add_usage(
    conn: Executor, ticket_id: uuid.UUID, *, replies: int, prompt_tokens: int, completion_tokens: int, total_tokens: int
) -> asyncpg.Record:
    return await conn.fetchrow(ADD_USAGE, ticket_id, replies, prompt_tokens, completion_tokens, total_tokens)


async def hit_user_rate(conn: Executor, user_id: uuid.UUID, window_seconds: float) -> int:
    """Count one AI reply for `user_id`; returns the count in the current window."""
    return int(await conn.fetchval(HIT_USER_RATE, user_id, float(window_seconds)))


async def latest_customer_message(conn: Executor, ticket_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(LATEST_CUSTOMER_MESSAGE, ticket_id)


async def reply_to(conn: Executor, ticket_id: uuid.UUID, in_reply_to: int) -> asyncpg.Record | None:
    return await conn.fetchrow(REPLY_TO, ticket_id, in_reply_to)
