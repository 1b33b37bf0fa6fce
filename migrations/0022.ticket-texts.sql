-- A ticket's subject and description as a search vector, in a table of its own. 0015 stored it on
-- the ticket row as a generated column with a GIN index; but every stored message updates its
-- ticket (last_seq, last_activity_at, the reply bookkeeping), and each such update computed the
-- vector again and, the update not being HOT (last_activity_at is indexed), added the new row
-- version to the GIN index: about 5 % of the message statement (docs/performance.md). The words of
-- a subject and a description never change after the ticket is created (no API changes them), so
-- they are written once, when the ticket is, by a trigger that every way of creating one passes.
-- depends: 0021.drop-message-search-index

CREATE TABLE ticket_texts (
    ticket_id     uuid PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,
    search_vector tsvector NOT NULL
);
INSERT INTO ticket_texts (ticket_id, search_vector) SELECT id, search_vector FROM tickets;
CREATE INDEX ticket_texts_search_idx ON ticket_texts USING gin (search_vector);

CREATE FUNCTION tickets_store_text() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_texts (ticket_id, search_vector)
    VALUES (NEW.id, to_tsvector('simple', NEW.subject || ' ' || NEW.description))
    ON CONFLICT (ticket_id) DO UPDATE SET search_vector = excluded.search_vector;
    RETURN NULL;
END
$$;

-- On insert, and on a change of the subject or description should one ever be made: an UPDATE
-- that does not name those columns (every message's ticket bump) never fires it.
CREATE TRIGGER tickets_store_text AFTER INSERT OR UPDATE OF subject, description ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_store_text();

ALTER TABLE tickets DROP COLUMN search_vector;  -- and with it tickets_search_idx
