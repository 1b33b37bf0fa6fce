-- depends: 0018.reply-bookkeeping
DROP TABLE ticket_search_state;
DROP AGGREGATE tsvector_agg(tsvector);
DROP TABLE ticket_search;
