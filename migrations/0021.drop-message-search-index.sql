-- Search reads each ticket's documents in ticket_search (0019) and, for the few messages newer
-- than them, reads those messages by (ticket_id, seq); a ticket's snippet too. Nothing searches
-- messages across tickets any more, so their GIN index (0015) is only a cost: every stored message
-- added its words to it. The stored search_vector stays: the indexer, the tail check and the
-- snippet read it (computing to_tsvector again costs 10-50 µs a message).
-- depends: 0020.agent-invitations

DROP INDEX messages_search_idx;
