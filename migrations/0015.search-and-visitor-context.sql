-- Search across tickets (docs/web.md "Search") and the visitor context the widget sends with a
-- new ticket (docs/web.md "Customer panel").
-- depends: 0014.labels-canned-activity

-- Full-text search uses the `simple` configuration everywhere: the widget speaks en/fr/de/es and a
-- ticket's language is not known, so words are lower-cased but never stemmed or dropped as stop
-- words (a stemmer for one language mangles the others). Queries match word prefixes instead
-- ("refund" finds "refunded").
--
-- Stored (generated) tsvector columns, not expression indexes: a search for a common word walks
-- tickets newest first and checks each one's messages (chatserver/services/search.py), and reading
-- a stored vector costs ~1 µs where computing to_tsvector(body) again costs 10-50 µs per message.
-- Adding them rewrites both tables once (about a minute per million messages).
ALTER TABLE tickets ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', subject || ' ' || description)) STORED;
ALTER TABLE messages ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED;
CREATE INDEX tickets_search_idx ON tickets USING gin (search_vector);
CREATE INDEX messages_search_idx ON messages USING gin (search_vector);
-- Customers by name and email. pg_trgm is not in the embedded PostgreSQL (pgserver), so emails are
-- indexed whole ("alice.m@example.com"), split at the @ ("example.com") and split into words
-- ("alice", "m", "example", "com"), all matched by prefix. Expression indexes: chatserver/db/search.py
-- repeats these exact expressions, which is how PostgreSQL knows to use them.
CREATE INDEX users_customer_search_idx ON users
    USING gin (to_tsvector('simple', display_name || ' ' || email || ' ' || replace(email, '@', ' ')
                                     || ' ' || translate(email, '@.+_-', '     ')))
    WHERE role = 'customer';
CREATE INDEX widget_identities_search_idx ON widget_identities
    USING gin (to_tsvector('simple', coalesce(email, '') || ' ' || replace(coalesce(email, ''), '@', ' ')
                                     || ' ' || translate(coalesce(email, ''), '@.+_-', '     ')
                                     || ' ' || external_id));

-- What the widget knew when the ticket was opened (page URL, referrer, user agent, language, time
-- zone), validated and bounded by chatserver/services/customer_panel.py; shown to agents only.
ALTER TABLE tickets ADD COLUMN visitor_context jsonb
    CONSTRAINT tickets_visitor_context_check
    CHECK (visitor_context IS NULL
           OR (jsonb_typeof(visitor_context) = 'object' AND octet_length(visitor_context::text) <= 8192));
