"""Search across tickets (GET /tickets?q=): turning what someone typed into a safe `tsquery`, and
explaining each hit with a snippet of the text that matched and the ranges to highlight.

Words are split and lower-cased by PostgreSQL's `simple` configuration (the one the indexes use),
then each becomes a prefix term ("refund" finds "refunded"), all of them required: in the subject
and description, in the ticket's messages (between them: each ticket's search document holds the
words of all its messages, migration 0019), or in the customer's name and email. What a caller
types is never parsed as tsquery syntax: `&`, `|`, `!`, quotes and parentheses are just
separators, so no query can be malformed or widen itself (docs/web.md "Search").
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from ..db import search as search_db
from ..errors import validation_error
from ..security import Identity

# What the search box and the API accept. Longer queries are refused, not cut: a cut query would
# silently search for something else.
MAX_QUERY_CHARS = 200
MAX_TERMS = 8
# A one-letter prefix ("a:*") matches most of the index; one-letter words are matched whole.
MIN_PREFIX_CHARS = 2
# Above this many expected matching tickets (the planner's estimate), a staff search stops
# collecting every match and walks the list newest first instead, checking one window of tickets
# at a time (one search document each): the first page of a common word is then found in the
# first few hundred tickets. Measured on the bench dataset (docs/performance.md "Search").
UNION_MAX_CANDIDATES = 5000
# Tickets checked by the first window (sized from the expected share of matching tickets), and the
# most any window checks (a few milliseconds: one ticket_search row by primary key per ticket);
# each further window is four times the last.
WINDOW_MIN = 50
WINDOW_MAX = 4000
# Characters of context kept before the first highlighted word, and the snippet's whole length.
SNIPPET_LEAD = 50
SNIPPET_CHARS = 180


def _query_problem(message: str) -> Exception:
    return validation_error(message, details={"fields": {"q": message}})


def tsquery_text(lexemes: Sequence[str]) -> str:
    """All lexemes required, each a prefix term, quoted as tsquery text ('' for a quote, \\\\ for a
    backslash), so the cast `::tsquery` reads each one back as exactly that lexeme."""
    terms = []
    for lexeme in lexemes:
        quoted = "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"
        terms.append(quoted + (":*" if len(lexeme) >= MIN_PREFIX_CHARS else ""))
    return " & ".join(terms)


def any_term_text(lexemes: Sequence[str]) -> str:
    """tsquery_text with any of the lexemes instead of all of them."""
    return " | ".join(tsquery_text([lexeme]) for lexeme in lexemes)


async def parse_query(conn: asyncpg.Pool | asyncpg.Connection, q: str) -> tuple[str, list[str]]:
    """(tsquery text, lexemes) for what someone typed; a 422 naming `q` when it cannot be searched."""
    if len(q) > MAX_QUERY_CHARS:
        raise _query_problem(f"must be at most {MAX_QUERY_CHARS} characters")
    if "\x00" in q:
        raise _query_problem("must not contain NUL characters")
    lexemes = await search_db.query_lexemes(conn, q)
    if not lexemes:
        raise _query_problem("must contain a word to search for")
    if len(lexemes) > MAX_TERMS:
        raise _query_problem(f"must have at most {MAX_TERMS} words")
    return tsquery_text(lexemes), lexemes


async def find_tickets(pool: asyncpg.Pool, query: str, filters: dict[str, Any]) -> list[asyncpg.Record]:
    """Up to filters["limit"] matching tickets, newest activity first, after filters["before"]:
    by the union of every match when the planner expects few, else window by window."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        tail_since = await search_db.use_custom_plans(conn)
        if filters["customer_id"] is not None:
            return await search_db.search_tickets(conn, query, tail_since, **filters)
        return await _find_for_staff(conn, query, tail_since, filters)


async def _find_for_staff(
    conn: asyncpg.Connection, query: str, tail_since: dt.datetime, filters: dict[str, Any]
) -> list[asyncpg.Record]:
    expected = await search_db.estimate_candidates(conn, query)
    if expected.matches <= UNION_MAX_CANDIDATES:
        return await search_db.search_tickets(conn, query, tail_since, **filters)
    want = filters["limit"]
    # The share of tickets that match by their messages (the other branches' estimates are mostly
    # the planner's defaults for words it has no statistics on); a window of twice what that
    # share needs, so that a second window is rarely needed.
    share = min(1.0, max(expected.by_messages, 1) / max(expected.tickets, 1))
    window = max(WINDOW_MIN, min(WINDOW_MAX, int(want / share * 2)))
    found: list[asyncpg.Record] = []
    before = filters["before"]
    while len(found) < want:
        rows = await search_db.search_window(conn, query, **{**filters, "before": before, "limit": window})
        found += [row for row in rows if row["matched"]]
        if not rows or rows[0]["window_rows"] < window:
            break  # the end of the list
        before = (rows[-1]["last_activity_at"], rows[-1]["id"])
        window = min(WINDOW_MAX, window * 4)
    return found[:want]


def _term_pattern(lexemes: Sequence[str]) -> re.Pattern[str]:
    """Where a lexeme starts a word of the original text, in any case. Longer lexemes first, so the
    longest one wins where two start at the same place."""
    parts = []
    for lexeme in sorted(lexemes, key=len, reverse=True):
        # A lexeme that begins with a letter or digit must begin a word; "-77" may start anywhere.
        lead = r"(?<![^\W_])" if lexeme[:1].isalnum() else ""
        parts.append(lead + re.escape(lexeme))
    return re.compile("|".join(parts), re.IGNORECASE)


def highlight_ranges(text: str, lexemes: Sequence[str]) -> list[tuple[int, int]]:
    """[start, end) ranges of `text` (Python string indices: Unicode code points) to highlight."""
    if not lexemes or not text:
        return []
    return [(m.start(), m.end()) for m in _term_pattern(lexemes).finditer(text)]


def snippet(text: str, lexemes: Sequence[str]) -> dict[str, Any]:
    """Up to SNIPPET_CHARS of `text` around its first highlighted word, white space flattened, with
    the highlight ranges as offsets into the snippet (code points; "…" counts as one)."""
    ranges = highlight_ranges(text, lexemes)
    start = 0
    if ranges and ranges[0][0] > SNIPPET_LEAD:
        start = ranges[0][0] - SNIPPET_LEAD
        # Start at a word: the first space after the cut, if one is near.
        space = text.find(" ", start, ranges[0][0])
        if space != -1:
            start = space + 1
    end = min(len(text), start + SNIPPET_CHARS)
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    # One character for one: the offsets stay valid.
    body = re.sub(r"\s", " ", text[start:end])
    shift = len(prefix) - start
    kept = [[a + shift, min(b, end) + shift] for a, b in ranges if a >= start and a < end]
    return {"snippet": prefix + body + suffix, "highlights": kept}


def _customer_label(profile: Mapping[str, Any]) -> str:
    # Lazy import: services/console.py imports this module (through services/tickets.py).
    from .console import customer_view

    customer = customer_view(profile)
    name = customer["name"] or "Visitor"
    return f"{name} <{customer['email']}>" if customer["email"] else name


async def attach_matches(
    conn: asyncpg.Pool | asyncpg.Connection,
    who: Identity,
    tickets: list[dict[str, Any]],
    text_matched: Mapping[uuid.UUID, bool],
    query: str,
    lexemes: Sequence[str],
) -> None:
    """Give each ticket a `match`: why it was found, the newest message with every word first (what
    an agent opens the ticket to read), else the subject, the description, the customer, else (the
    words spread over several messages) the newest message with any of them. Customers' matches
    never come from internal notes or from customer profiles."""
    if not tickets:
        return
    ids = [t["id"] for t in tickets]
    whole = {row["ticket_id"]: row for row in await search_db.matched_messages(conn, ids, query, internal=who.is_staff)}
    profiles: dict[uuid.UUID, Any] = {}
    if who.is_staff:
        customer_ids = list({t["customer_id"] for t in tickets})
        profiles = {row["id"]: row for row in await search_db.matched_customers(conn, customer_ids, query)}
    # Found by words spread over several messages and by nothing else: the newest message with any
    # of them (asked only then: it reads those tickets' messages again).
    spread = [
        t["id"]
        for t in tickets
        if t["id"] not in whole and not text_matched.get(t["id"]) and t["customer_id"] not in profiles
    ]
    partial: dict[uuid.UUID, Any] = {}
    if spread and len(lexemes) > 1:
        rows = await search_db.matched_messages(conn, spread, any_term_text(lexemes), internal=who.is_staff)
        partial = {row["ticket_id"]: row for row in rows}
    for ticket in tickets:
        match: dict[str, Any] | None = None
        message = whole.get(ticket["id"]) or partial.get(ticket["id"])
        if message is not None:
            match = {
                "field": "message",
                "message_id": message["id"],
                "seq": message["seq"],
                "visibility": message["visibility"],
                **snippet(message["body"], lexemes),
            }
        elif text_matched.get(ticket["id"]):
            field = "subject" if highlight_ranges(ticket["subject"], lexemes) else "description"
            match = {"field": field, **snippet(ticket[field], lexemes)}
        elif ticket["customer_id"] in profiles:
            match = {"field": "customer", **snippet(_customer_label(profiles[ticket["customer_id"]]), lexemes)}
        ticket["match"] = match
