"""SQL for searching tickets: subjects, descriptions, messages, customers' names and emails; and
the search indexer's statement that keeps each ticket's search documents (migration 0019).

A ticket's subject and description are in `ticket_texts` (migration 0022: written when the ticket
is, off the row every message updates) and messages carry a stored `search_vector` (0015); a
ticket's messages are
searched through its documents in `ticket_search` (the words of every message up to
`indexed_seq`) plus its messages past `indexed_seq` (the tail the indexer has not reached yet: a
handful, read directly), so a search reads matching tickets, not messages. The customer
expressions below repeat, character for character, the expression indexes of migration 0015:
PostgreSQL uses an expression index only for the same expression. The query is a `tsquery` built by
chatserver/services/search.py from lexemes PostgreSQL itself produced, passed as a parameter and
cast, never spliced into the SQL.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any, NamedTuple

import asyncpg
import orjson

from . import Executor
from .tickets import TICKET_COLUMNS

log = logging.getLogger(__name__)

# The stored vectors and the expressions of the customer indexes. A ticket's subject and
# description: its ticket_texts row, read by primary key (TICKET_TEXT_MATCHES, `t` a ticket).
MESSAGE_TEXT = "search_vector"
TICKET_TEXT_MATCHES = (
    "EXISTS (SELECT 1 FROM ticket_texts x WHERE x.ticket_id = {t}.id AND x.search_vector @@ $10::tsquery)"
)
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

# How many tickets the planner expects the three kinds of match to produce (from the statistics
# ANALYZE keeps on the tsvector columns: it knows how common each word is), and how many tickets
# there are (the last branch): planned, never run.
ESTIMATE_CANDIDATES = f"""
EXPLAIN (FORMAT JSON)
SELECT 1 FROM ticket_search WHERE staff_document @@ $1::tsquery
UNION ALL
SELECT 1 FROM ticket_texts WHERE search_vector @@ $1::tsquery
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


# Messages newer than a ticket's documents (seq > indexed_seq): found at once, before the indexer
# appends them. A ticket without a ticket_search row (not indexed yet) has every message in its
# tail. The tail's words are checked together with the document's, so a query whose words are
# split between an indexed message and a newer one matches too. Only tickets with a tail run the
# subquery: the indexer keeps that to the few tickets written to in the last second or so.
def _messages_match(ticket: str, indexed_seq: str, document: str, *, public_only: bool) -> str:
    """SQL: the ticket's messages (`ticket`: its alias, with id and last_seq) match $10."""
    visibility = " AND m.visibility = 'public'" if public_only else ""
    return f"""(coalesce({document} @@ $10::tsquery, false)
        OR ({ticket}.last_seq > coalesce({indexed_seq}, 0)
            AND (coalesce({document}, '') || coalesce((
                    SELECT tsvector_agg(m.{MESSAGE_TEXT}) FROM messages m
                    WHERE m.ticket_id = {ticket}.id AND m.seq > coalesce({indexed_seq}, 0){visibility}), ''))
                @@ $10::tsquery))"""


# A ticket's ticket_search row as `s`, read by primary key per ticket. A LATERAL with LIMIT 1 and
# not a plain join: with a generic plan (asyncpg prepares each statement; PostgreSQL switches to a
# generic plan after five runs) the planner hashed all of ticket_search for a join of a few
# hundred tickets (5 ms became 550 ms on the bench dataset).
def _search_row(ticket: str) -> str:
    return f"""LEFT JOIN LATERAL (
        SELECT indexed_seq, staff_document, public_document FROM ticket_search WHERE ticket_id = {ticket}.id LIMIT 1
    ) s ON true"""


# Slack for message transactions still open when the indexer last caught up: their tickets'
# last_activity_at (the transaction's start) may be a little older than caught_up_at.
INDEX_SLACK = "interval '60 seconds'"

_COLUMNS = ", ".join(f"t.{name.strip()}" for name in TICKET_COLUMNS.split(","))
_PLAIN_COLUMNS = ", ".join(f"r.{name.strip()}" for name in TICKET_COLUMNS.split(","))

# Staff, a rarer query: every ticket whose subject or description, messages (internal notes
# included: the staff document, then the tail of the tickets active since the indexer last caught
# up, $12), or customer's name or email matches; each branch one GIN index scan (the tail: a range
# of the activity index) giving (id, last_activity_at) — a customer's tickets from the index on
# (customer_id, last_activity_at), without reading them — then, newest first, each ticket read by
# primary key and filtered until the page is full: a name prefix matching 3,000 tickets reads 21
# of them, not 3,000. ($1, the customer, is always NULL here.)
SEARCH_TICKETS_STAFF = f"""
WITH matched AS MATERIALIZED (
    -- Per matching text its ticket by primary key. LIMIT 1 keeps the subquery from being pulled up
    -- into a join, which the planner hashed over every ticket (12 ms for one order number).
    SELECT t.id, t.last_activity_at FROM ticket_texts x
    CROSS JOIN LATERAL (SELECT id, last_activity_at FROM tickets WHERE id = x.ticket_id LIMIT 1) t
    WHERE x.search_vector @@ $10::tsquery
    UNION
    SELECT t.id, t.last_activity_at FROM ticket_search s JOIN tickets t ON t.id = s.ticket_id
    WHERE s.staff_document @@ $10::tsquery
    UNION
    SELECT t.id, t.last_activity_at FROM tickets t {_search_row("t")}
    WHERE t.last_activity_at >= $12::timestamptz
      AND t.last_seq > coalesce(s.indexed_seq, 0)
      AND {_messages_match("t", "s.indexed_seq", "s.staff_document", public_only=False)}
    UNION
    SELECT id, last_activity_at FROM tickets WHERE customer_id IN (
        SELECT id FROM users WHERE role = 'customer' AND {CUSTOMER_TEXT} @@ $10::tsquery
        UNION
        SELECT user_id FROM widget_identities WHERE {IDENTITY_TEXT} @@ $10::tsquery
    )
)
SELECT t.* FROM (
    SELECT id, last_activity_at FROM matched
    WHERE ($6::timestamptz IS NULL OR (last_activity_at, id) < ($6, $7::uuid))
    ORDER BY last_activity_at DESC, id DESC
) m
CROSS JOIN LATERAL (
    SELECT {_COLUMNS}, {TICKET_TEXT_MATCHES.format(t="t")} AS text_matched FROM tickets t
    WHERE t.id = m.id AND ($1::uuid IS NULL OR t.customer_id = $1) {_FILTERS}
) t
ORDER BY m.last_activity_at DESC, m.id DESC
LIMIT $8
"""

# Staff, a common query (thousands of matching tickets, which the union above would all read):
# the next $8 tickets of the plain list (newest activity first, the same filters and keyset), of
# which those that match (one ticket_search row each, by primary key), plus the window's last
# ticket (matched false) so the caller knows where to go on.
SEARCH_WINDOW_STAFF = f"""
WITH recent AS MATERIALIZED (
    SELECT {_COLUMNS} FROM tickets t
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
-- The text check is written twice on purpose: as one LEFT JOIN LATERAL per row it was slower
-- (a product word 12 -> 17-20 ms p50 on the bench dataset); PostgreSQL plans the EXISTS better.
judged AS MATERIALIZED (
    SELECT {_PLAIN_COLUMNS}, {TICKET_TEXT_MATCHES.format(t="r")} AS text_matched,
           ({TICKET_TEXT_MATCHES.format(t="r")}
            OR r.customer_id IN (SELECT id FROM customer_hits)
            OR {_messages_match("r", "s.indexed_seq", "s.staff_document", public_only=False)}) AS matched
    FROM recent r {_search_row("r")}
)
SELECT *, (SELECT count(*) FROM recent) AS window_rows FROM judged
WHERE matched OR id = (SELECT id FROM recent ORDER BY last_activity_at, id LIMIT 1)
ORDER BY last_activity_at DESC, id DESC
"""

# A customer: their own tickets only (a handful), by subject, description or public messages (the
# public document, never the staff one, then the public messages of the tail).
SEARCH_TICKETS_CUSTOMER = f"""
SELECT {_COLUMNS}, {TICKET_TEXT_MATCHES.format(t="t")} AS text_matched
FROM tickets t {_search_row("t")}
WHERE t.customer_id = $1 {_FILTERS}
  AND ({TICKET_TEXT_MATCHES.format(t="t")}
       OR {_messages_match("t", "s.indexed_seq", "coalesce(s.public_document, s.staff_document)", public_only=True)})
ORDER BY t.last_activity_at DESC, t.id DESC
LIMIT $8
"""

# The newest message matching $2 of each ticket on a page, for its snippet ($3: internal notes
# too). services/search.py asks with every word, then, for the tickets that matched with their
# words spread over several messages and by nothing else, with any of them. Per ticket, its
# messages newest first by (ticket_id, seq), stopping at the first match: a plain
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


# For the rest of the transaction: plan each search statement with its parameters. asyncpg
# prepares every statement once per connection, and after five runs PostgreSQL may keep a generic
# plan; for the window's list of tickets (filters "$2 IS NULL OR ...", LIMIT $8) that plan
# expects one row, reads every ticket and sorts them (5 ms became 50-550 ms on the bench dataset).
# Also, in the same round trip, since when tickets may have messages past their documents (the
# indexer's last catch-up less the slack; the union's tail reads the tickets active since): a
# parameter and not a subquery, so that the planner knows it is recent and reads the activity
# index instead of every ticket.
CUSTOM_PLANS = f"""
SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
       coalesce((SELECT caught_up_at FROM ticket_search_state), '-infinity') - {INDEX_SLACK} AS tail_since
"""


async def use_custom_plans(conn: asyncpg.Connection) -> dt.datetime:
    """CUSTOM_PLANS, inside a transaction: the tail's `since` for search_tickets."""
    since: dt.datetime = await conn.fetchval(CUSTOM_PLANS, column=1)
    return since


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


class Estimate(NamedTuple):
    matches: int  # tickets by their messages, tickets by subject, customers: all three
    by_messages: int  # tickets whose messages match
    tickets: int  # tickets in all


async def estimate_candidates(conn: Executor, query: str) -> Estimate:
    """What the planner expects: planned, not run (well under a millisecond)."""
    plan = await conn.fetchval(ESTIMATE_CANDIDATES, query)
    branches = (orjson.loads(plan) if isinstance(plan, str | bytes) else plan)[0]["Plan"]["Plans"]
    rows = [int(branch["Plan Rows"]) for branch in branches]
    return Estimate(sum(rows[:-1]), rows[0], rows[-1])


def _label_arg(label_id: uuid.UUID | None) -> list[dict[str, str]] | None:
    """$11: the label filter as db/tickets.py LIST_TICKETS takes it (labels @> [{"id": ...}])."""
    return None if label_id is None else [{"id": str(label_id)}]


async def search_tickets(
    conn: Executor, query: str, tail_since: dt.datetime, *, label_id: uuid.UUID | None = None, **filters: Any
) -> list[asyncpg.Record]:
    """Tickets matching `query` (tsquery text), through the list's filters (`customer_id` set:
    that customer's own tickets and public messages only); `tail_since` from use_custom_plans."""
    if filters["customer_id"] is None:
        return await conn.fetch(SEARCH_TICKETS_STAFF, *_filter_args(**filters), query, _label_arg(label_id), tail_since)
    return await conn.fetch(SEARCH_TICKETS_CUSTOMER, *_filter_args(**filters), query, _label_arg(label_id))


async def search_window(
    conn: Executor, query: str, *, label_id: uuid.UUID | None = None, **filters: Any
) -> list[asyncpg.Record]:
    """SEARCH_WINDOW_STAFF over the next `limit` tickets of the list: rows with `matched`."""
    return await conn.fetch(SEARCH_WINDOW_STAFF, *_filter_args(**filters), query, _label_arg(label_id))


async def matched_messages(
    conn: Executor, ticket_ids: list[uuid.UUID], query: str, *, internal: bool
) -> list[asyncpg.Record]:
    """Per ticket, its newest message matching `query`."""
    return await conn.fetch(MATCHED_MESSAGES, ticket_ids, query, internal)


async def matched_customers(conn: Executor, customer_ids: list[uuid.UUID], query: str) -> list[asyncpg.Record]:
    """The profiles of those of `customer_ids` whose name or email matches."""
    return await conn.fetch(MATCHED_CUSTOMERS, customer_ids, query)


# ---- the search indexer (chatserver/services/search_indexer.py) ----------------------------------

# One indexer at a time across every instance: the passes of a second instance skip while one
# runs (a transaction-level lock, released at commit or on a dropped connection).
INDEXER_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('chatserver.ticket_search'))"

# Up to $1 tickets whose messages went past their documents (last_seq > indexed_seq; no row yet
# counts as 0): those active since the indexer last caught up (less the slack), or all of them
# when $2 (the sweep at start-up and every few minutes, which also finds what the window missed).
# Their new messages' stored vectors, stripped, are appended to the documents (a public message's
# to both), and indexed_seq becomes the ticket's last_seq as this statement sees it (one snapshot:
# the message statements bump last_seq and insert the messages together). Reads tickets and
# messages and writes only ticket_search: never a lock the message path waits for.
INDEX_PENDING = f"""
WITH dirty AS (
    SELECT t.id, t.last_seq, coalesce(s.indexed_seq, 0) AS from_seq
    FROM tickets t LEFT JOIN ticket_search s ON s.ticket_id = t.id
    WHERE ($2::boolean
           OR t.last_activity_at >= coalesce((SELECT caught_up_at FROM ticket_search_state), '-infinity')
                                    - {INDEX_SLACK})
      AND t.last_seq > coalesce(s.indexed_seq, 0)
    ORDER BY t.last_activity_at
    LIMIT $1
),
fresh AS (
    SELECT d.id, d.last_seq,
           strip(coalesce(tsvector_agg(strip(m.{MESSAGE_TEXT})), '')) AS words,
           strip(coalesce(tsvector_agg(strip(m.{MESSAGE_TEXT})) FILTER (WHERE m.visibility = 'public'), ''))
               AS public_words,
           coalesce(bool_or(m.visibility = 'internal'), false) AS has_internal
    FROM dirty d
    LEFT JOIN messages m ON m.ticket_id = d.id AND m.seq > d.from_seq AND m.seq <= d.last_seq
    GROUP BY d.id, d.last_seq
),
stored AS (
    INSERT INTO ticket_search AS s (ticket_id, indexed_seq, staff_document, public_document)
    SELECT id, last_seq, words, CASE WHEN has_internal THEN public_words END FROM fresh
    ON CONFLICT (ticket_id) DO UPDATE SET
        indexed_seq = excluded.indexed_seq,
        staff_document = s.staff_document || excluded.staff_document,
        -- NULL: the same words as the staff document (no internal note so far).
        public_document = CASE
            WHEN s.public_document IS NULL AND excluded.public_document IS NULL THEN NULL
            ELSE coalesce(s.public_document, s.staff_document)
                 || coalesce(excluded.public_document, excluded.staff_document)
        END
    RETURNING 1
)
SELECT count(*) FROM stored
"""

# When a pass fails on a document past PostgreSQL's limit for a tsvector (1 MB of distinct words in
# one ticket): the tickets that pass would have taken, then INDEX_PENDING for one of them ($3) at a
# time; one still too big is marked indexed with its documents as they were (SKIP_TICKET), so one
# ticket never stops the indexer (its words past the limit are not searchable).
PENDING_TICKETS = INDEX_PENDING[: INDEX_PENDING.index("fresh AS")].rstrip().rstrip(",") + "\nSELECT id FROM dirty"
INDEX_ONE = INDEX_PENDING.replace(
    "AND t.last_seq > coalesce(s.indexed_seq, 0)\n", "AND t.last_seq > coalesce(s.indexed_seq, 0) AND t.id = $3\n", 1
)
SKIP_TICKET = """
INSERT INTO ticket_search AS s (ticket_id, indexed_seq) SELECT id, last_seq FROM tickets WHERE id = $1
ON CONFLICT (ticket_id) DO UPDATE SET indexed_seq = excluded.indexed_seq
"""

# INDEX_PENDING for every ticket at once (no limit, the sweep): bench/dataset.py builds its
# documents with it.
INDEX_EVERYTHING = INDEX_PENDING.replace("LIMIT $1", "LIMIT NULL").replace("$2::boolean", "true")

# After a pass that left nothing behind: every ticket less active than this transaction's start
# (less the slack) is indexed up to its last_seq.
MARK_CAUGHT_UP = """
INSERT INTO ticket_search_state (caught_up_at) VALUES (now())
ON CONFLICT (only_row) DO UPDATE SET caught_up_at = excluded.caught_up_at
"""


async def index_pending(pool: asyncpg.Pool, batch: int, *, sweep: bool = False) -> int | None:
    """One pass of the indexer: up to `batch` tickets' documents brought up to date, in one
    transaction; how many (when fewer than `batch`: caught up), or None when another instance's
    pass holds the lock."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(INDEXER_LOCK):
            return None
        try:
            async with conn.transaction():
                done = int(await conn.fetchval(INDEX_PENDING, batch, sweep))
        except asyncpg.ProgramLimitExceededError:
            done = await _index_one_by_one(conn, batch, sweep)
        if done < batch:
            await conn.execute(MARK_CAUGHT_UP)
        return done


async def _index_one_by_one(conn: asyncpg.Connection, batch: int, sweep: bool) -> int:
    """The pass INDEX_PENDING could not make, ticket by ticket (PENDING_TICKETS)."""
    ids = [row["id"] for row in await conn.fetch(PENDING_TICKETS, batch, sweep)]
    for ticket_id in ids:
        try:
            async with conn.transaction():
                await conn.fetchval(INDEX_ONE, 1, True, ticket_id)
        except asyncpg.ProgramLimitExceededError:
            log.warning("search indexer: ticket %s has too many words for its search document", ticket_id)
            await conn.execute(SKIP_TICKET, ticket_id)
    return len(ids)
