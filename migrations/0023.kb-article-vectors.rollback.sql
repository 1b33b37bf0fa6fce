ALTER TABLE kb_articles DROP COLUMN embedding;
