DROP TRIGGER tickets_store_text ON tickets;
DROP FUNCTION tickets_store_text();
DROP TABLE ticket_texts;
ALTER TABLE tickets ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', subject || ' ' || description)) STORED;
CREATE INDEX tickets_search_idx ON tickets USING gin (search_vector);
