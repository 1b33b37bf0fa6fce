CREATE INDEX messages_search_idx ON messages USING gin (search_vector);
