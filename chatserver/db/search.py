"""SQL for searching tickets: subjects, descriptions, messages, customers' names and emails.

Tickets and messages carry a stored `search_vector` (migration 0015); the customer expressions
below repeat, character for character, the expression indexes of that migration: PostgreSQL uses
an expression index only for the same expression. The query is a `tsquery` built by
chatserver/services/search.py from lexemes PostgreSQL itself produced, passed as a parameter and
cast, never spliced into the SQL.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import orjson

from . import Executor
from .tickets import TICKET_COLUMNS

# The stored vectors (generated columns) and the expressions of the customer indexes.
TICKET_TEXT = "search_vector"
MESSAGE_TEXT = "search_vector"
CUSTOMER_TEXT = (
    "to_tsvector('simple', display_name || ' ' || email || ' ' || replace(email, '@', ' ')"
    " || ' ' || translate(email, '@.+_-', '     '))"
)
IDENTITY_TEXT = (
    "to_tsvector('simple', coalesce(email, '') || ' ' || replace(coalesce(email, ''), '@', ' ')"
    " || ' ' || translate(coalesce(email, ''), '@.+_-', '     ') || ' ' || external_id)"
)

# The words of a query as the `simple` configuration splits and lower-cases them (the same way the
# indexed text was split), in the order they first appear.
QUERY_LEXEMES = """
SELECT lexeme FROM unnest(to_tsvector('simple', $1)) ORDER BY positions[1]
"""

# How many rows the planner expects the three kinds of match to produce (from the statistics
# ANALYZE keeps on the tsvector columns: it knows how common each word is), and how many tickets
# there are (the last branch): planned, never run.
ESTIMATE_CANDIDATES = f"""
EXPLAIN (FORMAT JSON)
SELECT 1 FROM messages WHERE {MESSAGE_TEXT} @@ $1::tsquery
UNION ALL
SELECT 1 FROM tickets WHERE {TICKET_TEXT} @@ $1::tsquery
UNION ALL
SELECT 1 FROM users WHERE role = 'customer' AND {CUSTOMER_TEXT} @@ $1::tsquery
UNION ALL
SELECT 1 FROM tickets
"""

# The filters and keyset of GET /tickets (db/tickets.py LIST_TICKETS), same parameter numbers but
# the label's ($11 here: $10 is the query).
_FILTERS = """
  AND ($2::text IS NULL OR t.status = $2)
  AND ($3::text IS NULL OR t.priority = $3)
  AND (NOT $4::boolean OR t.assignee_id IS NULL)
  AND ($5::uuid IS NULL OR t.assignee_id = $5)
  AND ($6::timestamptz IS NULL OR (t.last_activity_at, t.id) < ($6, $7::uuid))
  AND ($9::boolean IS NULL OR t.waiting_for_agent = $9)
  AND ($11::jsonb IS NULL OR t.labels @> $11)
"""
_COLUMNS = ", ".join(f"t.{name.strip()}" for name in TICKET_COLUMNS.split(","))
_PLAIN_COLUMNS = ", ".join(f"r.{name.strip()}" for name in TICKET_COLUMNS.split(","))

# Staff, a rare query: every ticket whose subject or description, any message (internal notes
# included), or customer's name or email matches; each branch one GIN index scan, the union a set
# of ticket ids, then read by primary key (ANY(ARRAY(...)): a hash join would read every ticket),
# filtered, ordered and cut like the plain list. ($1, the customer, is always NULL here.)
SEARCH_TICKETS_STAFF = f"""
WITH matched AS (
    SELECT id FROM tickets WHERE {TICKET_TEXT} @@ $10::tsquery
    UNION
    SELECT ticket_id FROM messages WHERE {MESSAGE_TEXT} @@ $10::tsquery
    UNION
    SELECT id FROM tickets WHERE customer_id IN (
        SELECT id FROM users WHERE role = 'customer' AND {CUSTOMER_TEXT} @@ $10::tsquery
        UNION
        SELECT user_id FROM widget_identities WHERE {IDENTITY_TEXT} @@ $10::tsquery
    )
)
SELECT {_COLUMNS}, t.{TICKET_TEXT} @@ $10::tsquery AS text_matched
FROM tickets t
WHERE t.id = ANY(ARRAY(SELECT id FROM matched))
  AND ($1::uuid IS NULL OR t.customer_id = $1) {_FILTERS}
ORDER BY t.last_activity_at DESC, t.id DESC
LIMIT $8
"""

# Staff, a common query (thousands of matches, which the union above would all read): the next
# $8 tickets of the plain list (newest activity first, the same filters and keyset), of which those
# that match, plus the window's last ticket (matched false) so the caller knows where to go on.
SEARCH_WINDOW_STAFF = f"""
WITH recent AS MATERIALIZED (
    SELECT {_COLUMNS}, t.{TICKET_TEXT} AS search_vector FROM tickets t
    WHERE ($1::uuid IS NULL OR t.customer_id = $1) {_FILTERS}
    ORDER BY t.last_activity_at DESC, t.id DESC
    LIMIT $8
),
-- Customers matching anywhere: few (a name, an email) or, for a domain, thousands: one hash.
customer_hits AS MATERIALIZED (
    SELECT id FROM users WHERE role = 'customer' AND {CUSTOMER_TEXT} @@ $10::tsquery
    UNION
    SELECT user_id FROM widget_identities WHERE {IDENTITY_TEXT} @@ $10::tsquery
),
-- Per ticket of the window, its messages by ticket_id, stopping at the first match. A LATERAL
-- with LIMIT 1 and not an EXISTS: the planner may turn an EXISTS into a hash of every matching
-- message, which for a common word is the very cost this statement avoids.
judged AS MATERIALIZED (
    SELECT {_PLAIN_COLUMNS}, r.search_vector @@ $10::tsquery AS text_matched,
           (r.search_vector @@ $10::tsquery
            OR r.customer_id IN (SELECT id FROM customer_hits)
            OR hit.found IS NOT NULL) AS matched
    FROM recent r
    LEFT JOIN LATERAL (
        SELECT true AS found FROM messages m
        WHERE m.ticket_id = r.id AND m.{MESSAGE_TEXT} @@ $10::tsquery
        LIMIT 1
    ) hit ON true
)
SELECT *, (SELECT count(*) FROM recent) AS window_rows FROM judged
WHERE matched OR id = (SELECT id FROM recent ORDER BY last_activity_at, id LIMIT 1)
ORDER BY last_activity_at DESC, id DESC
"""

# A customer: their own tickets only (a handful), by subject, description or a public message.
SEARCH_TICKETS_CUSTOMER = f"""
SELECT {_COLUMNS}, t.{TICKET_TEXT} @@ $10::tsquery AS text_matched
FROM tickets t
WHERE t.customer_id = $1 {_FILTERS}
  AND (t.{TICKET_TEXT} @@ $10::tsquery
       OR EXISTS (SELECT 1 FROM messages m
                  WHERE m.ticket_id = t.id AND m.visibility = 'public' AND m.{MESSAGE_TEXT} @@ $10::tsquery))
ORDER BY t.last_activity_at DESC, t.id DESC
LIMIT $8
"""

# The newest matching message of each ticket on a page, for its snippet ($3: internal notes too).
# Per ticket, its messages newest first by (ticket_id, seq), stopping at the first match: a plain
# `ticket_id = ANY(...) AND search_vector @@ ...` let the planner (with a cached, generic plan)
# read every message of a common word through the GIN index instead.
MATCHED_MESSAGES = f"""
SELECT m.* FROM unnest($1::uuid[]) AS page(ticket_id)
CROSS JOIN LATERAL (
    SELECT id, ticket_id, seq, body, visibility, author_kind, created_at FROM messages
    WHERE ticket_id = page.ticket_id AND ($3::boolean OR visibility = 'public') AND {MESSAGE_TEXT} @@ $2::tsquery
    ORDER BY seq DESC
    LIMIT 1
) m
"""

# The profiles (as db/widget.py CUSTOMER_PROFILES) of a page's customers whose name or email matches.
MATCHED_CUSTOMERS = """
SELECT u.id, u.display_name, u.email, u.role, w.external_id, w.email AS external_email
FROM users u LEFT JOIN widget_identities w ON w.user_id = u.id
WHERE u.id = ANY($1::uuid[]) AND u.role = 'customer'
  AND (to_tsvector('simple', u.display_name || ' ' || u.email || ' ' || replace(u.email, '@', ' ')
                   || ' ' || translate(u.email, '@.+_-', '     ')) @@ $2::tsquery
       OR to_tsvector('simple', coalesce(w.email, '') || ' ' || replace(coalesce(w.email, ''), '@', ' ')
                      || ' ' || translate(coalesce(w.email, ''), '@.+_-', '     ') || ' ' || w.external_id)
          @@ $2::tsquery)
"""


async def query_lexemes(conn: Executor, text: str) -> list[str]:
    return [row["lexeme"] for row in await conn.fetch(QUERY_LEXEMES, text)]


def _filter_args(
    customer_id: uuid.UUID | None,
    status: str | None,
    priority: str | None,
    unassigned: bool,
    assignee_id: uuid.UUID | None,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
    waiting_for_agent: bool | None,
) -> tuple[Any, ...]:
    """$1..$9 of the statements above, in order."""
    before_at, before_id = before if before else (None, None)
    return (customer_id, status, priority, unassigned, assignee_id, before_at, before_id, limit, waiting_for_agent)


async def estimate_candidates(conn: Executor, query: str) -> tuple[int, int]:
    """(matches the planner expects, tickets in all): planned, not run (well under a millisecond)."""
    plan = await conn.fetchval(ESTIMATE_CANDIDATES, query)
    branches = (orjson.loads(plan) if isinstance(plan, str | bytes) else plan)[0]["Plan"]["Plans"]
    rows = [int(branch["Plan Rows"]) for branch in branches]
    return sum(rows[:-1]), rows[-1]


def _label_arg(label_id: uuid.UUID | None) -> list[dict[str, str]] | None:
    """$11: the label filter as db/tickets.py LIST_TICKETS takes it (labels @> [{"id": ...}])."""
    return None if label_id is None else [{"id": str(label_id)}]


async def search_tickets(
    conn: Executor, query: str, *, label_id: uuid.UUID | None = None, **filters: Any
) -> list[asyncpg.Record]:
    """Tickets matching `query` (tsquery text), through the list's filters (`customer_id` set:
    that customer's own tickets and public messages only)."""
    sql = SEARCH_TICKETS_STAFF if filters["customer_id"] is None else SEARCH_TICKETS_CUSTOMER
    return await conn.fetch(sql, *_filter_args(**filters), query, _label_arg(label_id))


async def search_window(
    conn: Executor, query: str, *, label_id: uuid.UUID | None = None, **filters: Any
) -> list[asyncpg.Record]:
    """SEARCH_WINDOW_STAFF over the next `limit` tickets of the list: rows with `matched`."""
    return await conn.fetch(SEARCH_WINDOW_STAFF, *_filter_args(**filters), query, _label_arg(label_id))


async def matched_messages(
    conn: Executor, ticket_ids: list[uuid.UUID], query: str, *, internal: bool
) -> list[asyncpg.Record]:
    return await conn.fetch(MATCHED_MESSAGES, ticket_ids, query, internal)


async def matched_customers(conn: Executor, customer_ids: list[uuid.UUID], query: str) -> list[asyncpg.Record]:
    """The profiles of those of `customer_ids` whose name or email matches."""
    return await conn.fetch(MATCHED_CUSTOMERS, customer_ids, query)
