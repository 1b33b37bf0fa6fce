-- depends: 0017.report-indexes
DROP TABLE ticket_search_state;
DROP AGGREGATE tsvector_agg(tsvector);
DROP TABLE ticket_search;
