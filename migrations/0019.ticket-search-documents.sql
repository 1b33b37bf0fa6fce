-- Search documents per ticket (docs/web.md "Search", docs/performance.md "Search across tickets"):
-- the words of all of a ticket's messages in one stripped tsvector, GIN-indexed, so that a search
-- reads the matching tickets instead of one heap page per matching message.
-- depends: 0018.reply-bookkeeping

-- Kept off the message write path: no trigger, and the message statements do not touch this table.
-- The search indexer (chatserver/services/search_indexer.py, a background task of every instance,
-- one at a time through an advisory lock) appends the messages of each ticket past `indexed_seq`
-- (tickets.last_seq, which the message statements keep, says how far a ticket has got); a search
-- also reads those few newer messages directly, so a message is found the moment it is stored.
-- A side table and not columns of `tickets`: every message updates its ticket's row, and a GIN
-- indexed document there would be copied and re-indexed on each one.
CREATE TABLE ticket_search (
    ticket_id uuid PRIMARY KEY REFERENCES tickets(id) ON DELETE CASCADE,
    -- Messages with seq <= indexed_seq are in the documents.
    indexed_seq integer NOT NULL DEFAULT 0,
    -- Every message, internal notes included: what staff search.
    staff_document tsvector NOT NULL DEFAULT '',
    -- Public messages only, what the ticket's customer searches; NULL while the ticket has no
    -- internal note (the same words as staff_document: stored once).
    public_document tsvector
);
CREATE INDEX ticket_search_staff_idx ON ticket_search USING gin (staff_document);

-- tsvector || tsvector as an aggregate: the stored messages.search_vector of many messages in one
-- document, without parsing their bodies again.
CREATE AGGREGATE tsvector_agg(tsvector) (SFUNC = tsvector_concat, STYPE = tsvector, INITCOND = '');

-- How far the indexer has got: every ticket whose last_activity_at is older than
-- caught_up_at - (a minute of slack for transactions still open then) was indexed up to its
-- last_seq when it last looked. A search reads the tail of the tickets active since then.
CREATE TABLE ticket_search_state (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    caught_up_at timestamptz NOT NULL
);

-- The documents of the tickets there are now (about a minute per million messages).
INSERT INTO ticket_search (ticket_id, indexed_seq, staff_document, public_document)
SELECT ticket_id, max(seq), strip(tsvector_agg(strip(search_vector))),
       CASE WHEN bool_or(visibility = 'internal')
            THEN strip(coalesce(tsvector_agg(strip(search_vector)) FILTER (WHERE visibility = 'public'), ''))
       END
FROM messages GROUP BY ticket_id;
INSERT INTO ticket_search_state (caught_up_at) VALUES (now());
