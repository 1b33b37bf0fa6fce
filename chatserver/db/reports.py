"""SQL for the reports (docs/web.md, "Reports"): volume, response and resolution times, AI-only
resolutions, handoffs, satisfaction, busiest hours, per agent and per label, over a period.

Every statement takes the period as `$1` (start, inclusive) and `$2` (end, exclusive), both
timestamptz, and the time zone the days and hours are counted in as `$3` (an IANA name).

The definitions (what counts as a first response, a handoff, an AI resolution) are written out
once here, as SQL fragments, and in docs/web.md; both must say the same thing.

Ratings are `tickets.rating` and `rated_at` (migration 0010); a ticket's labels are the copies it
carries in `tickets.labels`, `[{"id", "name", "color"}]` (migration 0014), counted against the
catalogue in `labels`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from . import Executor

# A reply: a public message by the AI or an agent (admins write as agents). Integrations' and
# system messages are not replies; internal notes are not either (the customer never sees them).
REPLY = "m.visibility = 'public' AND m.author_kind IN ('agent', 'ai')"
HUMAN_REPLY = "m.visibility = 'public' AND m.author_kind = 'agent'"
# A handoff: the system notice the AI service writes when it gives a ticket to a person
# (metadata {"handoff": reason}; ai/service.py hand_off).
HANDOFF = "m.author_kind = 'system' AND m.metadata ? 'handoff'"

# The seconds between two timestamps.
SECONDS = "extract(epoch FROM ({later} - {earlier}))::float8"


def _percentiles(column: str, prefix: str) -> str:
    """Median and 90th percentile (linear interpolation, percentile_cont) of `column`."""
    return (
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {column}) AS {prefix}_median, "
        f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {column}) AS {prefix}_p90"
    )


_FIRST_RESPONSE = SECONDS.format(later="o.replied_at", earlier="o.created_at")
_FIRST_HUMAN_RESPONSE = SECONDS.format(
    later="o.human_at", earlier="CASE WHEN o.handoff_at < o.human_at THEN o.handoff_at ELSE o.created_at END"
)
_RESOLUTION = SECONDS.format(later="t.resolved_at", earlier="t.created_at")

# Tickets opened in the period, each with the moments the report times are measured from: its
# first reply (AI or agent), its first human reply and who wrote it, its first handoff. The
# statements that store messages keep these on the ticket (db/messages.py `_track_replies`,
# migration 0018; bulk writers call tickets_recount_replies()), with the REPLY, HUMAN_REPLY and
# HANDOFF meanings above: a change of meaning here must be made there and in the recount too.
# The human response is timed from the first handoff when one came before it (the moment the
# conversation asked for a person), else from the opening.
OPENED = f"""
opened AS (
    SELECT t.id, t.created_at, t.assignee_id, t.labels, t.first_reply_at AS replied_at,
           t.first_human_reply_by AS human_by, t.first_human_reply_at AS human_at, t.first_handoff_at AS handoff_at
    FROM tickets t
    WHERE t.created_at >= $1 AND t.created_at < $2
),
timed AS (
    SELECT o.*, {_FIRST_RESPONSE} AS first_response, {_FIRST_HUMAN_RESPONSE} AS first_human_response
    FROM opened o
)"""

# Tickets resolved (or closed) in the period, and whether anyone but the AI answered in them.
RESOLVED = f"""
resolved AS (
    SELECT t.id, t.assignee_id, t.labels, t.resolved_at, {_RESOLUTION} AS resolution,
           t.ai_replied, t.human_replied, t.first_handoff_at IS NOT NULL AS handed_off
    FROM tickets t
    WHERE t.resolved_at >= $1 AND t.resolved_at < $2
)"""

OVERVIEW = f"""
WITH {OPENED}, {RESOLVED}
SELECT * FROM (
    SELECT count(*) AS opened, count(replied_at) AS responded, count(human_at) AS human_responded,
           count(handoff_at) AS handed_off,
           {_percentiles("first_response", "first_response")},
           {_percentiles("first_human_response", "first_human_response")}
    FROM timed
) o, (
    SELECT count(*) AS resolved,
           count(*) FILTER (WHERE ai_replied AND NOT human_replied AND NOT handed_off) AS resolved_by_ai,
           {_percentiles("resolution", "resolution")}
    FROM resolved
) r
"""

# The reasons handoffs in the period gave (counted per notice, by when it was written).
HANDOFF_REASONS = f"""
SELECT m.metadata->>'handoff' AS reason, count(*) AS count
FROM messages m
WHERE {HANDOFF} AND m.created_at >= $1 AND m.created_at < $2
GROUP BY 1 ORDER BY 2 DESC, 1
"""

# Opened and resolved per day of the period, in the report's time zone (days without any: 0).
DAILY = """
WITH days AS (
    SELECT d::date AS day
    FROM generate_series(($1 AT TIME ZONE $3)::date, (($2 AT TIME ZONE $3) - interval '1 microsecond')::date,
                         interval '1 day') AS d
),
opened AS (
    SELECT (created_at AT TIME ZONE $3)::date AS day, count(*) AS n
    FROM tickets WHERE created_at >= $1 AND created_at < $2 GROUP BY 1
),
resolved AS (
    SELECT (resolved_at AT TIME ZONE $3)::date AS day, count(*) AS n
    FROM tickets WHERE resolved_at >= $1 AND resolved_at < $2 GROUP BY 1
)
SELECT days.day, coalesce(opened.n, 0) AS opened, coalesce(resolved.n, 0) AS resolved
FROM days LEFT JOIN opened USING (day) LEFT JOIN resolved USING (day)
ORDER BY days.day
"""

# Conversations opened and customer messages received, per weekday (ISO: 1 Monday .. 7 Sunday)
# and hour of the day, in the report's time zone. Only the cells with any are returned.
BUSIEST_HOURS = """
WITH opened AS (
    SELECT extract(isodow FROM created_at AT TIME ZONE $3)::int AS weekday,
           extract(hour FROM created_at AT TIME ZONE $3)::int AS hour, count(*) AS n
    FROM tickets WHERE created_at >= $1 AND created_at < $2 GROUP BY 1, 2
),
received AS (
    SELECT extract(isodow FROM created_at AT TIME ZONE $3)::int AS weekday,
           extract(hour FROM created_at AT TIME ZONE $3)::int AS hour, count(*) AS n
    FROM messages WHERE author_kind = 'customer' AND created_at >= $1 AND created_at < $2 GROUP BY 1, 2
)
SELECT weekday, hour, coalesce(opened.n, 0) AS conversations, coalesce(received.n, 0) AS customer_messages
FROM opened FULL JOIN received USING (weekday, hour)
ORDER BY weekday, hour
"""

SATISFACTION = """
SELECT count(*) AS ratings, avg(rating)::float8 AS average,
       count(*) FILTER (WHERE rating >= 4) AS satisfied,
       count(*) FILTER (WHERE rating = 1) AS r1, count(*) FILTER (WHERE rating = 2) AS r2,
       count(*) FILTER (WHERE rating = 3) AS r3, count(*) FILTER (WHERE rating = 4) AS r4,
       count(*) FILTER (WHERE rating = 5) AS r5
FROM tickets
WHERE rated_at >= $1 AND rated_at < $2 AND rating IS NOT NULL
"""

# One row per agent or admin who was active in the period (or is enabled): replies written,
# conversations replied in, first human responses made (and their times), tickets resolved while
# assigned to them (and resolution times), and the ratings given in the period to the tickets
# assigned to them.
AGENTS = f"""
WITH {OPENED}, {RESOLVED},
replies AS (
    SELECT m.author_id AS agent_id, count(*) AS replies, count(DISTINCT m.ticket_id) AS conversations
    FROM messages m
    WHERE {HUMAN_REPLY} AND m.created_at >= $1 AND m.created_at < $2
    GROUP BY 1
),
firsts AS (
    SELECT human_by AS agent_id, count(*) AS first_responses,
           {_percentiles("first_human_response", "first_response")}
    FROM timed WHERE human_by IS NOT NULL GROUP BY 1
),
closed AS (
    SELECT assignee_id AS agent_id, count(*) AS resolved, {_percentiles("resolution", "resolution")}
    FROM resolved WHERE assignee_id IS NOT NULL GROUP BY 1
),
rated AS (
    SELECT assignee_id AS agent_id, count(*) AS ratings, avg(rating)::float8 AS rating_average
    FROM tickets
    WHERE rated_at >= $1 AND rated_at < $2 AND rating IS NOT NULL AND assignee_id IS NOT NULL
    GROUP BY 1
)
SELECT u.id, u.email, u.display_name, u.role, u.disabled_at IS NOT NULL AS disabled,
       coalesce(replies.replies, 0) AS replies, coalesce(replies.conversations, 0) AS conversations,
       coalesce(firsts.first_responses, 0) AS first_responses,
       firsts.first_response_median, firsts.first_response_p90,
       coalesce(closed.resolved, 0) AS resolved, closed.resolution_median, closed.resolution_p90,
       coalesce(rated.ratings, 0) AS ratings, rated.rating_average
FROM users u
LEFT JOIN replies ON replies.agent_id = u.id
LEFT JOIN firsts ON firsts.agent_id = u.id
LEFT JOIN closed ON closed.agent_id = u.id
LEFT JOIN rated ON rated.agent_id = u.id
WHERE u.role IN ('agent', 'admin')
  AND u.invited_at IS NULL  -- not joined yet: nothing to report, and not a member of the team yet
  AND (u.disabled_at IS NULL OR replies.agent_id IS NOT NULL OR closed.agent_id IS NOT NULL)
ORDER BY coalesce(replies.replies, 0) DESC, lower(coalesce(nullif(u.display_name, ''), u.email)), u.id
"""

# A ticket's labels, one row each: its label ids out of the copies `tickets.labels` carries.
# The per-label figures unnest the labels of the period's tickets (already narrowed by the
# created_at, resolved_at and rated_at indexes) and group by label id: one pass over those tickets
# whatever the number of labels. The other way round, each label probing its tickets with
# `t.labels @> jsonb_build_array(jsonb_build_object('id', l.id))`, PostgreSQL ANDs a bitmap of the
# GIN index tickets_labels_idx (every ticket that ever carried the label, in any period) with one
# of the period's index range, once per label and per figure: labels × period. Measured with
# bench/reports.py's dataset (20,000 tickets, 20 labels), even a cut-down containment statement
# (three figures) took 18 ms over 7 days and 165 ms over 90, this one 13 and 72 ms.
_LABEL_IDS = "jsonb_array_elements(labels) AS e"
_LABEL_ID = "(e->>'id')::uuid"

# One row per label of the catalogue: the conversations opened and resolved in the period that
# carry it (as the ticket is labelled now), their first response and resolution times, handoffs,
# and the ratings given in the period to the tickets that carry it. Labels no ticket of the period
# carries have zeros.
LABELS = f"""
WITH {OPENED}, {RESOLVED},
opened_by_label AS (
    SELECT {_LABEL_ID} AS label_id, count(*) AS opened, count(timed.replied_at) AS responded,
           count(*) FILTER (WHERE timed.handoff_at IS NOT NULL) AS handed_off,
           {_percentiles("first_response", "first_response")}
    FROM timed CROSS JOIN LATERAL {_LABEL_IDS} GROUP BY 1
),
resolved_by_label AS (
    SELECT {_LABEL_ID} AS label_id, count(*) AS resolved,
           count(*) FILTER (WHERE ai_replied AND NOT human_replied AND NOT handed_off) AS resolved_by_ai,
           {_percentiles("resolution", "resolution")}
    FROM resolved CROSS JOIN LATERAL {_LABEL_IDS} GROUP BY 1
),
rated_by_label AS (
    SELECT {_LABEL_ID} AS label_id, count(*) AS ratings, avg(rated.rating)::float8 AS rating_average
    FROM (SELECT labels, rating FROM tickets
          WHERE rated_at >= $1 AND rated_at < $2 AND rating IS NOT NULL) rated
    CROSS JOIN LATERAL {_LABEL_IDS} GROUP BY 1
)
SELECT l.id, l.name,
       coalesce(o.opened, 0) AS opened, coalesce(o.responded, 0) AS responded,
       coalesce(o.handed_off, 0) AS handed_off,
       o.first_response_median, o.first_response_p90,
       coalesce(r.resolved, 0) AS resolved, coalesce(r.resolved_by_ai, 0) AS resolved_by_ai,
       r.resolution_median, r.resolution_p90,
       coalesce(s.ratings, 0) AS ratings, s.rating_average
FROM labels l
LEFT JOIN opened_by_label o ON o.label_id = l.id
LEFT JOIN resolved_by_label r ON r.label_id = l.id
LEFT JOIN rated_by_label s ON s.label_id = l.id
ORDER BY coalesce(o.opened, 0) DESC, lower(l.name), l.id
"""


@asynccontextmanager
async def reading(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """One connection in a read-only REPEATABLE READ transaction: the statements of one report
    see one snapshot (the day counts add up to the totals). JIT is off: these statements are
    estimated expensive enough to be compiled, which cost ~100 ms a statement and saved nothing
    (docs/performance.md, "Reports")."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute("SET LOCAL jit = off")
        yield conn


async def check_time_zone(conn: Executor, tz: str) -> None:
    """Raises asyncpg.InvalidParameterValueError when PostgreSQL does not know the zone."""
    await conn.fetchval("SELECT now() AT TIME ZONE $1", tz)


async def overview(conn: Executor, start: dt.datetime, end: dt.datetime) -> asyncpg.Record:
    return await conn.fetchrow(OVERVIEW, start, end)


async def handoff_reasons(conn: Executor, start: dt.datetime, end: dt.datetime) -> list[asyncpg.Record]:
    return await conn.fetch(HANDOFF_REASONS, start, end)


async def daily(conn: Executor, start: dt.datetime, end: dt.datetime, tz: str) -> list[asyncpg.Record]:
    return await conn.fetch(DAILY, start, end, tz)


async def busiest_hours(conn: Executor, start: dt.datetime, end: dt.datetime, tz: str) -> list[asyncpg.Record]:
    return await conn.fetch(BUSIEST_HOURS, start, end, tz)


async def satisfaction(conn: Executor, start: dt.datetime, end: dt.datetime) -> asyncpg.Record:
    return await conn.fetchrow(SATISFACTION, start, end)


async def agents(conn: Executor, start: dt.datetime, end: dt.datetime) -> list[asyncpg.Record]:
    return await conn.fetch(AGENTS, start, end)


async def labels(conn: Executor, start: dt.datetime, end: dt.datetime) -> list[asyncpg.Record]:
    return await conn.fetch(LABELS, start, end)
