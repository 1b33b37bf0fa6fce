"""SQL for email: the mail jobs every instance claims (FOR UPDATE SKIP LOCKED and a lease), and
what a reply notification or a transcript reads from tickets and messages."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from . import Executor

JOB_COLUMNS = (
    "id, kind, ticket_id, user_id, recipient, status, attempts, next_attempt_at, last_error, sent_at, created_at"
)

# A reply job for a ticket whose visitor gave an address; one pending job per ticket: a reply that
# finds one marks it dirty, so a job being sent right now runs again for what it missed.
ENQUEUE_REPLY = """
INSERT INTO mail_jobs (kind, ticket_id)
SELECT 'reply', id FROM tickets WHERE id = $1 AND contact_email IS NOT NULL
ON CONFLICT (ticket_id) WHERE status = 'pending' AND kind = 'reply' DO UPDATE SET dirty = true
RETURNING id
"""

ENQUEUE_TRANSCRIPT = f"""
INSERT INTO mail_jobs (kind, ticket_id, recipient) VALUES ('transcript', $1, $2)
RETURNING {JOB_COLUMNS}
"""

# An invitation to an account, for the session generation its link is made for.
ENQUEUE_INVITATION = f"""
INSERT INTO mail_jobs (kind, user_id, user_generation, recipient) VALUES ('invitation', $1, $2, $3)
RETURNING {JOB_COLUMNS}
"""

RECENT_INVITATIONS = """
SELECT count(*) FROM mail_jobs
WHERE user_id = $1 AND kind = 'invitation' AND created_at > now() - make_interval(secs => $2)
"""

# The account an invitation job is for, as it is now.
INVITATION_FOR_MAIL = """
SELECT id, email, role, display_name, session_generation, invited_at, disabled_at FROM users WHERE id = $1
"""

RECENT_TRANSCRIPTS = """
SELECT count(*) FROM mail_jobs
WHERE ticket_id = $1 AND kind = 'transcript' AND created_at > now() - make_interval(secs => $2)
"""

# Due jobs, claimed for `$2` seconds: until then no other instance takes them; a dead
# instance's claim lapses and another one sends (at least once).
CLAIM_DUE = """
WITH due AS (
    SELECT id FROM mail_jobs
    WHERE status = 'pending' AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until < now())
    ORDER BY next_attempt_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE mail_jobs j
SET locked_until = now() + make_interval(secs => $2), attempts = j.attempts + 1, dirty = false
FROM due WHERE j.id = due.id
RETURNING j.id, j.kind, j.ticket_id, j.user_id, j.user_generation, j.recipient, j.attempts
"""

# Done (sent or nothing to send); a job marked dirty meanwhile stays pending and runs again.
FINISH = """
UPDATE mail_jobs
SET status = CASE WHEN dirty THEN 'pending' ELSE $2 END,
    sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END,
    attempts = CASE WHEN dirty THEN 0 ELSE attempts END,
    next_attempt_at = now(), locked_until = NULL, last_error = NULL, dirty = false
WHERE id = $1
"""

# Not yet (the visitor left too recently): try at `$2`, and this claim did not count as an attempt.
POSTPONE = """
UPDATE mail_jobs SET next_attempt_at = $2, locked_until = NULL, attempts = greatest(attempts - 1, 0)
WHERE id = $1
"""

# A send failed: again after `$2` seconds, or failed for good after `$3` attempts.
FAIL = """
UPDATE mail_jobs
SET status = CASE WHEN attempts >= $3 THEN 'failed' ELSE 'pending' END,
    next_attempt_at = now() + make_interval(secs => $2), locked_until = NULL, last_error = $4
WHERE id = $1
"""

TICKET_FOR_MAIL = """
SELECT t.id, t.customer_id, t.subject, t.status, t.contact_email, t.visitor_left_at, t.reply_mailed_seq,
       t.created_at, u.email AS customer_email, u.role AS customer_role, u.session_generation,
       u.display_name AS customer_name
FROM tickets t JOIN users u ON u.id = t.customer_id
WHERE t.id = $1
"""

# Agent (and integration) messages the visitor has not seen: public, after the last one mailed,
# and written after the visitor left (what came while they were connected, they read).
UNSEEN_REPLIES = """
SELECT m.seq, m.body, m.author_kind, m.created_at, coalesce(u.display_name, '') AS author_name
FROM messages m LEFT JOIN users u ON u.id = m.author_id
WHERE m.ticket_id = $1 AND m.visibility = 'public' AND m.author_kind IN ('agent', 'integration')
  AND m.seq > $2 AND ($3::timestamptz IS NULL OR m.created_at > $3)
ORDER BY m.seq
LIMIT $4
"""

TRANSCRIPT = """
SELECT m.seq, m.body, m.author_kind, m.created_at, coalesce(u.display_name, '') AS author_name
FROM messages m LEFT JOIN users u ON u.id = m.author_id
WHERE m.ticket_id = $1 AND m.visibility = 'public'
ORDER BY m.seq
LIMIT $2
"""

MARK_MAILED = "UPDATE tickets SET reply_mailed_seq = greatest(reply_mailed_seq, $2) WHERE id = $1"

NOTE_VISITOR_LEFT = "UPDATE tickets SET visitor_left_at = now() WHERE id = $1 AND customer_id = $2"

JOBS_FOR_TICKET = f"SELECT {JOB_COLUMNS} FROM mail_jobs WHERE ticket_id = $1 ORDER BY id"


async def enqueue_reply(conn: Executor, ticket_id: uuid.UUID) -> bool:
    """False when the ticket has no contact address (nothing to do)."""
    return await conn.fetchval(ENQUEUE_REPLY, ticket_id) is not None


async def enqueue_transcript(conn: Executor, ticket_id: uuid.UUID, recipient: str) -> asyncpg.Record:
    return await conn.fetchrow(ENQUEUE_TRANSCRIPT, ticket_id, recipient)


async def enqueue_invitation(conn: Executor, user_id: uuid.UUID, generation: int, recipient: str) -> asyncpg.Record:
    return await conn.fetchrow(ENQUEUE_INVITATION, user_id, generation, recipient)


async def recent_invitations(conn: Executor, user_id: uuid.UUID, window_seconds: float) -> int:
    return int(await conn.fetchval(RECENT_INVITATIONS, user_id, window_seconds))


async def invitation_for_mail(conn: Executor, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(INVITATION_FOR_MAIL, user_id)


async def recent_transcripts(conn: Executor, ticket_id: uuid.UUID, window_seconds: float) -> int:
    return int(await conn.fetchval(RECENT_TRANSCRIPTS, ticket_id, window_seconds))


async def claim_due(conn: Executor, limit: int, lease_seconds: float) -> list[asyncpg.Record]:
    return await conn.fetch(CLAIM_DUE, limit, lease_seconds)


async def finish(conn: Executor, job_id: int, status: str) -> None:
    await conn.execute(FINISH, job_id, status)


async def postpone(conn: Executor, job_id: int, until: dt.datetime) -> None:
    await conn.execute(POSTPONE, job_id, until)


async def fail(conn: Executor, job_id: int, retry_in: float, max_attempts: int, error: str) -> None:
    await conn.execute(FAIL, job_id, retry_in, max_attempts, error)


async def ticket_for_mail(conn: Executor, ticket_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(TICKET_FOR_MAIL, ticket_id)


async def unseen_replies(
    conn: Executor, ticket_id: uuid.UUID, after_seq: int, left_at: dt.datetime | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(UNSEEN_REPLIES, ticket_id, after_seq, left_at, limit)


async def transcript(conn: Executor, ticket_id: uuid.UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(TRANSCRIPT, ticket_id, limit)


async def mark_mailed(conn: Executor, ticket_id: uuid.UUID, seq: int) -> None:
    await conn.execute(MARK_MAILED, ticket_id, seq)


async def note_visitor_left(conn: Executor, ticket_id: uuid.UUID, customer_id: uuid.UUID) -> None:
    await conn.execute(NOTE_VISITOR_LEFT, ticket_id, customer_id)


async def jobs_for_ticket(conn: Executor, ticket_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(JOBS_FOR_TICKET, ticket_id)
