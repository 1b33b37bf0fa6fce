-- Attachments (docs/web.md, "Attachments"): files uploaded into a ticket, stored outside the
-- database (chatserver/storage/), linked to at most one message.
-- depends: 0006.kb-article-url

CREATE TABLE attachments (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ticket_id    uuid NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    uploader_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    -- NULL until a message references it; an upload never linked is an orphan (cleanup).
    message_id   uuid REFERENCES messages (id) ON DELETE CASCADE,
    -- 'uploading' while its bytes stream to storage, 'stored' once checked and complete: only a
    -- stored attachment can be linked; a crash mid-upload leaves an 'uploading' orphan.
    state        text NOT NULL DEFAULT 'uploading' CHECK (state IN ('uploading', 'stored')),
    filename     text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    -- Decided by the server from the file's bytes, never the client's declared type.
    content_type text NOT NULL DEFAULT 'application/octet-stream',
    size_bytes   bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    storage_key  text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_message_idx ON attachments (message_id) WHERE message_id IS NOT NULL;
-- The orphan sweep reads the oldest unlinked uploads.
CREATE INDEX attachments_orphan_idx ON attachments (created_at) WHERE message_id IS NULL;

-- A message's attachments as the message shows them (id, filename, content_type, size, url):
-- written once when the message is stored, so history pages, snapshots and frames carry them
-- without a join; the attachments table stays the authority on who may fetch the bytes.
ALTER TABLE messages ADD COLUMN attachments jsonb NOT NULL DEFAULT '[]'::jsonb;
