"""SQL for searching tickets: subjects, descriptions, messages, customers' names and emails.

Every text expression below repeats, character for character, an expression index of
migrations/0015.search-and-visitor-context.sql: PostgreSQL uses an expression index only for the
same expression. The query is a `tsquery` built by chatserver/services/search.py from lexemes
PostgreSQL itself produced, passed as a parameter and cast, never spliced into the SQL.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from . import Executor
from .tickets import TICKET_COLUMNS

TICKET_TEXT = "to_tsvector('simple', subject || ' ' || description)"
MESSAGE_TEXT = "to_tsvector('simple', body)"
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

# The filters and keyset of GET /tickets (db/tickets.py LIST_TICKETS), same parameter numbers.
_FILTERS = """
  AND ($2::text IS NULL OR t.status = $2)
  AND ($3::text IS NULL OR t.priority = $3)
  AND (NOT $4::boolean OR t.assignee_id IS NULL)
  AND ($5::uuid IS NULL OR t.assignee_id = $5)
  AND ($6::timestamptz IS NULL OR (t.last_activity_at, t.id) < ($6, $7::uuid))
  AND ($9::boolean IS NULL OR t.waiting_for_agent = $9)
"""
_COLUMNS = ", ".join(f"t.{name.strip()}" for name in TICKET_COLUMNS.split(","))

# Staff: every ticket whose subject or description, any message (internal notes included), or
# customer's name or email matches. Each branch is one GIN index scan; the union is a set of ticket
# ids, then filtered, ordered and cut like the plain list. ($1, the customer, is always NULL here.)
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
SELECT {_COLUMNS}, {TICKET_TEXT} @@ $10::tsquery AS text_matched
FROM tickets t JOIN matched m ON m.id = t.id
WHERE ($1::uuid IS NULL OR t.customer_id = $1) {_FILTERS}
ORDER BY t.last_activity_at DESC, t.id DESC
LIMIT $8
"""

# A customer: their own tickets only (a handful), by subject, description or a public message.
SEARCH_TICKETS_CUSTOMER = f"""
SELECT {_COLUMNS}, {TICKET_TEXT} @@ $10::tsquery AS text_matched
FROM tickets t
WHERE t.customer_id = $1 {_FILTERS}
  AND ({TICKET_TEXT} @@ $10::tsquery
       OR EXISTS (SELECT 1 FROM messages m
                  WHERE m.ticket_id = t.id AND m.visibility = 'public' AND {MESSAGE_TEXT} @@ $10::tsquery))
ORDER BY t.last_activity_at DESC, t.id DESC
LIMIT $8
"""

# The newest matching message of each ticket on a page, for its snippet ($3: internal notes too).
MATCHED_MESSAGES = f"""
SELECT DISTINCT ON (ticket_id) id, ticket_id, seq, body, visibility, author_kind, created_at
FROM messages
WHERE ticket_id = ANY($1::uuid[]) AND ($3::boolean OR visibility = 'public') AND {MESSAGE_TEXT} @@ $2::tsquery
ORDER BY ticket_id, seq DESC
"""

# The customers of a page's tickets whose name or email matches.
MATCHED_CUSTOMERS = f"""
SELECT id FROM users WHERE id = ANY($1::uuid[]) AND role = 'customer' AND {CUSTOMER_TEXT} @@ $2::tsquery
UNION
SELECT user_id FROM widget_identities WHERE user_id = ANY($1::uuid[]) AND {IDENTITY_TEXT} @@ $2::tsquery
"""


async def query_lexemes(conn: Executor, text: str) -> list[str]:
    return [row["lexeme"] for row in await conn.fetch(QUERY_LEXEMES, text)]


async def search_tickets(
    conn: Executor,
    query: str,
    *,
    customer_id: uuid.UUID | None,
    status: str | None,
    priority: str | None,
    unassigned: bool,
    assignee_id: uuid.UUID | None,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
    waiting_for_agent: bool | None,
) -> list[asyncpg.Record]:
    """`query` is tsquery text; `customer_id` set: that customer's search (public messages only)."""
    before_at, before_id = before if before else (None, None)
    sql = SEARCH_TICKETS_STAFF if customer_id is None else SEARCH_TICKETS_CUSTOMER
    return await conn.fetch(
        sql,
        customer_id,
        status,
        priority,
        unassigned,
        assignee_id,
        before_at,
        before_id,
        limit,
        waiting_for_agent,
        query,
    )


async def matched_messages(
    conn: Executor, ticket_ids: list[uuid.UUID], query: str, *, internal: bool
) -> list[asyncpg.Record]:
    return await conn.fetch(MATCHED_MESSAGES, ticket_ids, query, internal)


async def matched_customers(conn: Executor, customer_ids: list[uuid.UUID], query: str) -> set[uuid.UUID]:
    return {row["id"] for row in await conn.fetch(MATCHED_CUSTOMERS, customer_ids, query)}
