"""Report queries on a large dataset: a million messages (100,000 tickets of ten messages over 90
days, by default), generated in the database with generate_series (each ticket's first replies
are then counted once, by tickets_recount_replies() of migration 0018), then each report timed
over a week, a month and the whole quarter; and again without the report indexes of migration
0017, to show what they are for.

    python -m bench.reports [--tickets 100000] [--messages-per-ticket 10] [--days 90] [--repeat 15]

The dataset: 70 % of tickets answered first by the AI (5-55 s), the others by an agent
(30 s-33 min); 12 % handed off; 65 % resolved and 10 % closed within three days; 40 agents;
one customer per two tickets; 20 labels, a third of the tickets carrying none, one or two of them
(in `tickets.labels`, as PUT /tickets/{id}/labels stores them); 30 % of the resolved tickets
rated, an hour after their resolution. It is generated here (not bench/dataset.py) so that the figures
do not depend on another scenario's data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import asyncpg

from chatserver.db.pool import create_pool
from chatserver.services import reports as reports_service

from .common import base_parser, bench_database, emit, header, latency_summary, print_rows

REPORT_INDEXES = (
    "tickets_created_idx",
    "tickets_resolved_idx",
    "messages_agent_replies_idx",
    "messages_handoffs_idx",
    "messages_customer_created_idx",
)

USERS = """
INSERT INTO users (email, password_hash, role, display_name)
SELECT 'agent' || i || '@bench.example', 'x', 'agent', 'Agent ' || i FROM generate_series(1, $1) i
UNION ALL
SELECT 'customer' || i || '@bench.example', 'x', 'customer', '' FROM generate_series(1, $2) i
"""

# Tickets spread evenly over the last `days` days; status and resolution from a per-row draw.
TICKETS = """
WITH staff AS (SELECT array_agg(id) AS ids, count(*) AS n FROM users WHERE role = 'agent'),
     people AS (SELECT array_agg(id) AS ids, count(*) AS n FROM users WHERE role = 'customer'),
     drawn AS (
         SELECT i, random() AS r, now() - random() * ($2 * interval '1 day') AS created
         FROM generate_series(1, $1) i
     )
INSERT INTO tickets (customer_id, subject, status, assignee_id, ai_enabled, last_seq, created_at, updated_at,
                     last_activity_at, resolved_at)
SELECT people.ids[1 + (i % people.n)], 'Bench ticket ' || i,
       CASE WHEN r < 0.65 THEN 'resolved' WHEN r < 0.75 THEN 'closed' ELSE 'open' END,
       CASE WHEN r < 0.8 THEN staff.ids[1 + (i % staff.n)] END,
       true, $3, created, created, created,
       CASE WHEN r < 0.75 THEN created + (r * 4 * interval '1 day') END
FROM drawn, staff, people
"""

LABELS = """
INSERT INTO labels (name, color)
SELECT 'Label ' || lpad(i::text, 2, '0'), '#' || lpad(to_hex(i * 40503 % 16777216), 6, '0')
FROM generate_series(1, $1) i
"""

# A third of the tickets carry no label, a third one, a third two: the copies
# [{"id", "name", "color"}] that PUT /tickets/{id}/labels stores on the ticket.
TICKET_LABELS = """
WITH catalogue AS (
    SELECT array_agg(jsonb_build_object('id', id, 'name', name, 'color', color) ORDER BY name) AS l,
           count(*)::int AS n
    FROM labels
),
drawn AS (SELECT id, abs(hashtext(id::text)) AS h FROM tickets)
UPDATE tickets t SET labels = CASE d.h % 3
    WHEN 0 THEN '[]'::jsonb
    WHEN 1 THEN jsonb_build_array(c.l[1 + d.h / 3 % c.n])
    ELSE jsonb_build_array(c.l[1 + d.h / 3 % c.n], c.l[1 + (d.h / 3 + 1) % c.n]) END
FROM catalogue c, drawn d
WHERE d.id = t.id
"""

# 30 % of the resolved tickets are rated (1-5), an hour after their resolution.
RATINGS = """
UPDATE tickets SET rating = 1 + abs(hashtext(id::text || 'score')) % 5, rated_at = resolved_at + interval '1 hour'
WHERE resolved_at IS NOT NULL AND abs(hashtext(id::text || 'rated')) % 10 < 3
"""

# Ten messages per ticket (by default): the customer, a first reply (AI for h < 70, else the
# assignee), a handoff notice for h < 12, then customer and AI-or-agent turns five minutes apart.
MESSAGES = """
WITH t AS (
    SELECT id, customer_id, coalesce(assignee_id, (SELECT id FROM users WHERE role = 'agent' LIMIT 1)) AS agent,
           created_at, abs(hashtext(id::text)) % 100 AS h
    FROM tickets
)
INSERT INTO messages (ticket_id, seq, author_id, author_kind, body, visibility, metadata, created_at)
SELECT t.id, s.seq,
       CASE kind WHEN 'customer' THEN t.customer_id WHEN 'agent' THEN t.agent END,
       kind, 'Bench message ' || s.seq, 'public',
       CASE WHEN kind = 'system' THEN '{"handoff": "customer_asked"}'::jsonb ELSE '{}'::jsonb END,
       t.created_at + CASE s.seq
           WHEN 1 THEN interval '0'
           WHEN 2 THEN CASE WHEN t.h < 70 THEN (5 + t.h % 50) * interval '1 second'
                            ELSE (30 + t.h * 20) * interval '1 second' END
           WHEN 3 THEN interval '40 minutes'
           ELSE s.seq * interval '5 minutes' + interval '30 minutes' END
FROM t
CROSS JOIN LATERAL generate_series(1, $1) AS s(seq)
CROSS JOIN LATERAL (SELECT CASE
    WHEN s.seq = 1 THEN 'customer'
    WHEN s.seq = 2 THEN CASE WHEN t.h < 70 THEN 'ai' ELSE 'agent' END
    WHEN s.seq = 3 THEN CASE WHEN t.h < 12 THEN 'system' ELSE 'customer' END
    WHEN s.seq % 2 = 0 THEN CASE WHEN t.h BETWEEN 12 AND 69 THEN 'ai' ELSE 'agent' END
    ELSE 'customer' END AS kind) k
"""


async def build(pool: asyncpg.Pool, tickets: int, per_ticket: int, days: int) -> dict[str, Any]:
    began = time.perf_counter()
    # Generous timeouts: on a busy machine the million-row insert takes minutes.
    await pool.execute(USERS, 40, max(1, tickets // 2), timeout=3600)
    await pool.execute(TICKETS, tickets, days, per_ticket, timeout=3600)
    await pool.execute(MESSAGES, per_ticket, timeout=3600)
    await pool.execute("SELECT tickets_recount_replies(NULL)", timeout=3600)
    await pool.execute(LABELS, 20, timeout=3600)
    await pool.execute(TICKET_LABELS, timeout=3600)
    await pool.execute(RATINGS, timeout=3600)
    for table in ("users", "labels", "tickets", "messages"):
        await pool.execute(f"VACUUM ANALYZE {table}", timeout=3600)
    counts = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM tickets) AS tickets, (SELECT count(*) FROM messages) AS messages"
    )
    return {"tickets": counts["tickets"], "messages": counts["messages"], "build_s": round(time.perf_counter() - began)}


async def time_reports(pool: asyncpg.Pool, repeat: int, label: str) -> list[dict[str, Any]]:
    today = dt.datetime.now(dt.UTC).date()
    rows: list[dict[str, Any]] = []
    for days in (7, 30, 90):
        period = reports_service.parse_period(
            (today - dt.timedelta(days=days - 1)).isoformat(), today.isoformat(), "Europe/Paris"
        )
        for name in reports_service.REPORTS:
            await reports_service.report(pool, name, period)  # warm the cache and the plans
            took = []
            for _ in range(repeat):
                began = time.perf_counter()
                await reports_service.report(pool, name, period)
                took.append((time.perf_counter() - began) * 1000)
            rows.append({"indexes": label, "period_days": days, "report": name, **latency_summary(took)})
            print(f"  {label:>5} {days:>3} days  {name:<14} p50 {rows[-1]['p50_ms']} ms", flush=True)
    return rows


async def measure(url: str, tickets: int, per_ticket: int, days: int, repeat: int) -> dict[str, Any]:
    pool = await create_pool(url, 1, 2)
    try:
        dataset = await build(pool, tickets, per_ticket, days)
        print(f"dataset: {dataset}", flush=True)
        rows = await time_reports(pool, repeat, "0017")
        for index in REPORT_INDEXES:
            await pool.execute(f"DROP INDEX {index}")  # names from the constant above
        await pool.execute("ANALYZE tickets")
        await pool.execute("ANALYZE messages")
        rows += await time_reports(pool, max(3, repeat // 5), "none")
    finally:
        await pool.close()
    return {"dataset": dataset, "rows": rows}


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages-per-ticket", type=int, default=10)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    header("reports")
    with bench_database(args.database_url) as url:
        result = asyncio.run(measure(url, args.tickets, args.messages_per_ticket, args.days, args.repeat))
    print_rows(result["rows"], ["indexes", "period_days", "report", "p50_ms", "p90_ms", "max_ms"])
    emit("reports", result, args.json)


if __name__ == "__main__":
    main()
