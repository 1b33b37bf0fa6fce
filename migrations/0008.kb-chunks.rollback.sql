-- depends: 0007.attachments
DROP TABLE app_flags;
DROP TRIGGER kb_chunks_changed ON kb_chunks;
DROP TRIGGER kb_articles_changed ON kb_articles;
DROP FUNCTION kb_bump_version();
DROP TABLE kb_state;
DROP TABLE kb_chunks;
