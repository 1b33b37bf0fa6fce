"""SQL for the messages table, including the one-round-trip insert that hands out `seq` and its
batch form (group commit, see message_writer.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias

import asyncpg

from . import Executor
from .events import MESSAGE_CREATED, json_object
from .tickets import TICKET_COLUMNS

# `attachments` is the message's own summary of its files (jsonb, '[]' for most): read with the
# row, no join (migrations/0007.attachments.sql).
MESSAGE_COLUMNS = (
    "id, ticket_id, seq, author_id, author_kind, body, client_id, visibility, metadata, attachments, created_at"
)

_MESSAGE_FIELDS = [name.strip() for name in MESSAGE_COLUMNS.split(",")]
_TICKET_FIELDS = [name.strip() for name in TICKET_COLUMNS.split(",")]


def _columns(table: str, fields: list[str], prefix: str = "") -> str:
    return ", ".join(f"{table}.{name} AS {prefix}{name}" for name in fields)


class VisibleMessage(NamedTuple):
    """One message for insert_visible_message / insert_visible_messages (same arguments)."""

    ticket_id: uuid.UUID
    owner_id: uuid.UUID | None
    author_id: uuid.UUID | None
    author_kind: str
    body: str
    client_id: str | None
    visibility: str = "public"


# (row, created, the ticket as this message left it or None for a resend); None: no such ticket.
VisibleInsert: TypeAlias = tuple[asyncpg.Record, bool, dict[str, Any] | None]


# The outbox (db/events.py): a stored message records its message.created event in the statement
# that stores it, so posting a message costs no extra round trip or transaction. Rows are
# numbered in (ticket, seq) order, so one ticket's events keep its messages' order.
def _message_event(source: str) -> str:
    return f"""INSERT INTO events (type, ticket_id, internal, data)
    SELECT '{MESSAGE_CREATED}', {source}.ticket_id, {source}.visibility = 'internal',
        jsonb_build_object('message', {json_object(source, _MESSAGE_FIELDS)})
    FROM {source} ORDER BY {source}.ticket_id, {source}.seq"""


# Reports' reply bookkeeping (migration 0018; the meanings are db/reports.py's REPLY, HUMAN_REPLY
# and HANDOFF): the SET items that keep a ticket's first reply, first human reply and its author,
# first handoff, and whether the AI or a person replied, for the messages a statement stores in it.
# They ride on the statement's own update of the ticket (the last_seq bump), so a reply costs no
# trigger call and no second update of its ticket. Each argument is an SQL boolean (or, for
# `human_by`, the uuid of the first human reply's author) over what the statement stores in this
# ticket (`handoff`: None where the statement cannot store a handoff notice); the messages'
# created_at is now(). SET expressions read the row as it was, so
# first_human_reply_by is decided against the old first_human_reply_at. Every writer of messages
# must do this: the other ones (imports, datasets) call tickets_recount_replies() after.
def _track_replies(ai_reply: str, human_reply: str, human_by: str, handoff: str | None = None) -> str:
    handoffs = (
        f""",
        first_handoff_at = CASE WHEN {handoff} THEN least(tickets.first_handoff_at, now())
                                ELSE tickets.first_handoff_at END"""
        if handoff
        else ""
    )
    return f"""first_reply_at = CASE WHEN {ai_reply} OR {human_reply} THEN least(tickets.first_reply_at, now())
                          ELSE tickets.first_reply_at END,
        ai_replied = tickets.ai_replied OR {ai_reply},
        human_replied = tickets.human_replied OR {human_reply},
        first_human_reply_by = CASE WHEN {human_reply} AND (tickets.first_human_reply_at IS NULL
                                                            OR tickets.first_human_reply_at > now())
                                    THEN {human_by} ELSE tickets.first_human_reply_by END,
        first_human_reply_at = CASE WHEN {human_reply} THEN least(tickets.first_human_reply_at, now())
                                    ELSE tickets.first_human_reply_at END{handoffs}"""


# One statement, one round trip: bump the ticket's last_seq (which row-locks the ticket, so seqs
# are handed out in commit order) and insert the message with it. A resend with a client_id that
# is already stored returns the original row with created = false and bumps nothing.
# $8, when not NULL, is a customer who must own the ticket (else no row: "not found"), so a
# customer's post needs no separate visibility read. The bumped ticket comes back in t_* columns
# for the checks and hooks that follow: plain columns, not the `tickets` composite, which asyncpg
# would fail to decode (once per connection, after the row was stored) when tickets changes.
# The bump also keeps the reports' reply bookkeeping for this message (_track_replies).
# Besides message.created, $9 (when not NULL) names a second event recorded with it (an AI
# reply's ai.reply.completed, a handoff's ticket.handoff): {message, ticket} plus the fields of $10.
def _insert_message_sql(extra_column: str = "", extra_value: str = "") -> str:
    return f"""
WITH visible AS (
    SELECT 1 FROM tickets WHERE id = $1 AND ($8::uuid IS NULL OR customer_id = $8)
),
existing AS (
    SELECT {MESSAGE_COLUMNS} FROM messages
    WHERE $5::text IS NOT NULL AND ticket_id = $1 AND author_id IS NOT DISTINCT FROM $2
      AND client_id = $5 AND EXISTS (SELECT 1 FROM visible)
),
bumped AS (
    UPDATE tickets SET last_seq = last_seq + 1, last_activity_at = now(), updated_at = now(),
        {
        _track_replies(
            ai_reply="($6::text = 'public' AND $3::text = 'ai')",
            human_reply="($6::text = 'public' AND $3::text = 'agent')",
            human_by="$2::uuid",
            handoff="($3::text = 'system' AND $7::jsonb ? 'handoff')",
        )
    }
    WHERE id = $1 AND ($8::uuid IS NULL OR customer_id = $8) AND NOT EXISTS (SELECT 1 FROM existing)
    RETURNING {_columns("tickets", _TICKET_FIELDS, "t_")}
),
inserted AS (
    INSERT INTO messages (ticket_id, seq, author_id, author_kind, body, client_id, visibility, metadata{extra_column})
    SELECT $1, bumped.t_last_seq, $2, $3, $4, $5, $6, $7{extra_value} FROM bumped
    RETURNING {MESSAGE_COLUMNS}
),
message_event AS (
    {_message_event("inserted")}
),
extra_event AS (
    INSERT INTO events (type, ticket_id, internal, data)
    SELECT $9::text, inserted.ticket_id, inserted.visibility = 'internal',
        jsonb_build_object('message', {json_object("inserted", _MESSAGE_FIELDS)},
                           'ticket', {json_object("bumped", _TICKET_FIELDS, "t_")}) || coalesce($10::jsonb, '{{}}')
    FROM inserted, bumped WHERE $9::text IS NOT NULL
)
SELECT {_columns("inserted", _MESSAGE_FIELDS)}, true AS created, {", ".join(f"bumped.t_{f}" for f in _TICKET_FIELDS)}
FROM inserted, bumped
UNION ALL
SELECT {_columns("existing", _MESSAGE_FIELDS)}, false AS created, {", ".join(f"NULL AS t_{f}" for f in _TICKET_FIELDS)}
FROM existing
"""


INSERT_MESSAGE = _insert_message_sql()
# INSERT_MESSAGE with $11, the message's attachment summaries (jsonb): only messages that carry
# attachments use it (insert_visible_message_with_attachments), outside the group commit.
INSERT_MESSAGE_WITH_ATTACHMENTS = _insert_message_sql(", attachments", ", $11::jsonb")

_TICKET_FIELDS_BUT_SEQ = [name for name in _TICKET_FIELDS if name != "last_seq"]


# INSERT_MESSAGE for many messages (any tickets) in one statement: one round trip, one commit.
# Parallel arrays, one element per message: ticket, owner (NULL: staff, any ticket), author,
# author_kind, body, client_id, visibility. Per message, exactly INSERT_MESSAGE's semantics: no row
# when the ticket is not the owner's; the stored row with created = false for a client_id already
# stored; otherwise the next seq, consecutive in the arrays' order for one ticket's messages, and
# the ticket as this message left it in t_* (t_last_seq = this message's seq). `ord` (1-based)
# says which input a row answers. The caller never puts one (ticket, author, client_id) twice in
# a batch: both would miss `existing`, and the unique index would refuse the whole statement.
# Tickets are locked in id order (`locked`) before the UPDATE touches them, so two batches
# sharing tickets wait for each other instead of deadlocking; an UPDATE takes its row locks in
# whatever order its plan meets the rows.
# The UPDATE also keeps the reports' reply bookkeeping for the replies of the batch (`counts`
# says, per ticket, which kinds it stores; _track_replies). No handoff notice comes this way: the
# batch stores no metadata.
def insert_messages_sql(track_replies: bool = True) -> str:
    # track_replies=False: the statement as it was before migration 0018, when a trigger kept the
    # reply bookkeeping (bench/message_write_cost.py runs it on databases from before 0018).
    # Per ticket: whether the batch stores a reply by the AI, one by a person, and the author of
    # its first (in the arrays' order, which is seq order) human reply.
    replies = """,
        bool_or(visibility = 'public' AND author_kind = 'ai') AS ai_reply,
        bool_or(visibility = 'public' AND author_kind = 'agent') AS human_reply,
        (array_agg(author_id ORDER BY ord) FILTER (WHERE visibility = 'public' AND author_kind = 'agent'))[1]
            AS human_by
   """
    locked_replies = ", counts.ai_reply, counts.human_reply, counts.human_by"
    tracked = ",\n        " + _track_replies("locked.ai_reply", "locked.human_reply", "locked.human_by")
    if not track_replies:
        replies = locked_replies = tracked = ""
    return f"""
WITH items AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[])
        WITH ORDINALITY AS i (ticket_id, owner_id, author_id, author_kind, body, client_id, visibility, ord)
),
visible AS (
    SELECT items.* FROM items JOIN tickets ON tickets.id = items.ticket_id
    WHERE items.owner_id IS NULL OR tickets.customer_id = items.owner_id
),
existing AS (
    SELECT visible.ord, {_columns("messages", _MESSAGE_FIELDS)}
    FROM visible JOIN messages ON messages.ticket_id = visible.ticket_id
        AND messages.author_id IS NOT DISTINCT FROM visible.author_id AND messages.client_id = visible.client_id
),
fresh AS (
    SELECT visible.*, row_number() OVER (PARTITION BY visible.ticket_id ORDER BY visible.ord) AS nth
    FROM visible WHERE NOT EXISTS (SELECT 1 FROM existing WHERE existing.ord = visible.ord)
),
counts AS (
    SELECT ticket_id, count(*) AS n{replies} FROM fresh GROUP BY ticket_id
),
locked AS (
    SELECT tickets.id, counts.n{locked_replies} FROM tickets JOIN counts ON counts.ticket_id = tickets.id
    ORDER BY tickets.id FOR NO KEY UPDATE OF tickets
),
bumped AS (
    UPDATE tickets SET last_seq = tickets.last_seq + locked.n, last_activity_at = now(), updated_at = now(){tracked}
    FROM locked WHERE tickets.id = locked.id
    RETURNING {_columns("tickets", _TICKET_FIELDS, "t_")}, locked.n AS added
),
numbered AS (
    SELECT fresh.*, bumped.t_last_seq - bumped.added + fresh.nth AS seq
    FROM fresh JOIN bumped ON bumped.t_id = fresh.ticket_id
),
inserted AS (
    INSERT INTO messages (ticket_id, seq, author_id, author_kind, body, client_id, visibility)
    SELECT ticket_id, seq, author_id, author_kind, body, client_id, visibility FROM numbered
    RETURNING {MESSAGE_COLUMNS}
),
message_event AS (
    {_message_event("inserted")}
)
SELECT numbered.ord, {_columns("inserted", _MESSAGE_FIELDS)}, true AS created,
    {", ".join(f"bumped.t_{f}" for f in _TICKET_FIELDS_BUT_SEQ)}, inserted.seq AS t_last_seq
FROM inserted
JOIN numbered ON numbered.ticket_id = inserted.ticket_id AND numbered.seq = inserted.seq
JOIN bumped ON bumped.t_id = inserted.ticket_id
UNION ALL
SELECT existing.ord, {_columns("existing", _MESSAGE_FIELDS)}, false AS created,
    {", ".join(f"NULL AS t_{f}" for f in _TICKET_FIELDS_BUT_SEQ)}, NULL AS t_last_seq
FROM existing
"""


INSERT_MESSAGES = insert_messages_sql()

# History pages: visibility filter "NULL means all" so agents see internal notes, customers not.
LIST_MESSAGES_AFTER = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE ticket_id = $1 AND seq > $2 AND ($3::text IS NULL OR visibility = $3)
ORDER BY seq ASC
LIMIT $4
"""

LIST_MESSAGES_BEFORE = f"""
SELECT * FROM (
    SELECT {MESSAGE_COLUMNS} FROM messages
    WHERE ticket_id = $1 AND seq < $2 AND ($3::text IS NULL OR visibility = $3)
    ORDER BY seq DESC
    LIMIT $4
) page ORDER BY seq ASC
"""

# The newest messages of a ticket, oldest first (the copilot's transcript: everything up to now).
LIST_LATEST_MESSAGES = f"""
SELECT * FROM (
    SELECT {MESSAGE_COLUMNS} FROM messages
    WHERE ticket_id = $1 AND ($2::text IS NULL OR visibility = $2)
    ORDER BY seq DESC
    LIMIT $3
) page ORDER BY seq ASC
"""


async def insert_message(
    conn: Executor,
    *,
    ticket_id: uuid.UUID,
    author_id: uuid.UUID | None,
    author_kind: str,
    body: str,
    client_id: str | None,
    visibility: str = "public",
    metadata: dict[str, Any] | None = None,
    event: str | None = None,
    event_fields: dict[str, Any] | None = None,
) -> tuple[asyncpg.Record, bool] | None:
    """Store a message; returns (row, created) or None when the ticket does not exist.

    Records message.created with it, and `event` (with `event_fields`) when given.

    Two racing sends with one client_id: the loser's insert violates the unique index, which
    rolls back its seq bump too; it then finds the winner's row on the retry.
    """
    row = await _insert(
        conn, ticket_id, author_id, author_kind, body, client_id, visibility, metadata, None, event, event_fields
    )
    return None if row is None else (row, row["created"])


async def insert_visible_message(
    conn: Executor,
    *,
    ticket_id: uuid.UUID,
    owner_id: uuid.UUID | None,
    author_id: uuid.UUID | None,
    author_kind: str,
    body: str,
    client_id: str | None,
    visibility: str = "public",
) -> VisibleInsert | None:
    """insert_message for a ticket that must belong to `owner_id` (None: any ticket, for staff).

    Returns (row, created, ticket) or None when there is no such ticket for that owner. `ticket`
    is the ticket's row as this message left it (last_seq and the activity times bumped), or None
    for a resend, which changes nothing."""
    row = await _insert(conn, ticket_id, author_id, author_kind, body, client_id, visibility, None, owner_id)
    return None if row is None else _visible_insert(row)


async def insert_visible_messages(conn: Executor, items: list[VisibleMessage]) -> list[VisibleInsert | None]:
    """insert_visible_message for many messages in one statement (one round trip, one commit).

    Returns one result per item, in the items' order. The items must not repeat a (ticket_id,
    author_id, client_id) with a client_id. Any error fails the whole statement (nothing is
    stored): a racing resend's UniqueViolationError, a deleted author's ForeignKeyViolationError."""
    if not items:
        return []
    # Seven arrays, one per VisibleMessage field, in INSERT_MESSAGES' parameter order.
    columns = [list(column) for column in zip(*items, strict=True)]
    rows = await conn.fetch(INSERT_MESSAGES, *columns)
    results: list[VisibleInsert | None] = [None] * len(items)
    for row in rows:
        results[row["ord"] - 1] = _visible_insert(row)
    return results


def _visible_insert(row: asyncpg.Record) -> VisibleInsert:
    ticket = {name: row[f"t_{name}"] for name in _TICKET_FIELDS} if row["created"] else None
    return row, row["created"], ticket


async def _insert(
    conn: Executor,
    ticket_id: uuid.UUID,
    author_id: uuid.UUID | None,
    author_kind: str,
    body: str,
    client_id: str | None,
    visibility: str,
    metadata: dict[str, Any] | None,
    owner_id: uuid.UUID | None,
    event: str | None = None,
    event_fields: dict[str, Any] | None = None,
) -> asyncpg.Record | None:
    for _attempt in range(2):
        try:
            row = await conn.fetchrow(
                INSERT_MESSAGE,
                ticket_id,
                author_id,
                author_kind,
                body,
                client_id,
                visibility,
                metadata or {},
                owner_id,
                event,
                event_fields,
            )
        except asyncpg.UniqueViolationError:
            if client_id is None:
                raise
            continue
        return row
    raise RuntimeError("message insert kept conflicting on client_id")


async def list_after(
    conn: Executor, ticket_id: uuid.UUID, after_seq: int, visibility: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_MESSAGES_AFTER, ticket_id, after_seq, visibility, limit)


async def list_before(
    conn: Executor, ticket_id: uuid.UUID, before_seq: int, visibility: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_MESSAGES_BEFORE, ticket_id, before_seq, visibility, limit)


async def list_latest(conn: Executor, ticket_id: uuid.UUID, visibility: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_LATEST_MESSAGES, ticket_id, visibility, limit)


class AttachmentsUnavailable(Exception):
    """Some referenced attachments are not the author's stored uploads into this ticket, or are
    already part of another message."""


async def insert_visible_message_with_attachments(
    pool: asyncpg.Pool,
    item: VisibleMessage,
    attachment_ids: list[uuid.UUID],
    summarize: Callable[[asyncpg.Record], dict[str, Any]],
) -> VisibleInsert | None:
    """insert_visible_message for a message that references uploads, in one transaction: lock the
    uploads (the author's own, into this ticket, stored), store the message with their summaries
    (`summarize` shapes one), link them to it. Raises AttachmentsUnavailable (and stores nothing)
    when an upload is missing or already belongs to another message. A resend of a stored
    client_id returns the stored message, as insert_visible_message does.

    Outside the group commit on purpose: three statements in a transaction would hold a batch's
    ticket locks for longer, and messages without attachments never come here."""
    from . import attachments as attachments_db

    for _attempt in range(2):
        try:
            async with pool.acquire() as conn, conn.transaction():
                rows = await attachments_db.lock_for_message(conn, attachment_ids, item.ticket_id, item.author_id)
                by_id = {row["id"]: row for row in rows}
                if len(by_id) != len(attachment_ids):
                    raise AttachmentsUnavailable()
                summaries = [summarize(by_id[i]) for i in attachment_ids]
                row = await conn.fetchrow(
                    INSERT_MESSAGE_WITH_ATTACHMENTS,
                    item.ticket_id,
                    item.author_id,
                    item.author_kind,
                    item.body,
                    item.client_id,
                    item.visibility,
                    {},
                    item.owner_id,
                    None,
                    None,
                    summaries,
                )
                if row is None:
                    return None
                linked = await attachments_db.link_to_message(conn, row["id"], attachment_ids) if row["created"] else 0
                if row["created"] and linked != len(attachment_ids):
                    raise AttachmentsUnavailable()
                return _visible_insert(row)
        except asyncpg.UniqueViolationError:
            # A resend racing its original: the retry finds the stored message.
            if item.client_id is None:
                raise
            continue
    raise RuntimeError("message insert kept conflicting on client_id")
