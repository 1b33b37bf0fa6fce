-- Knowledge-base articles get an optional public URL (front matter `url:` in the Markdown file
-- load-kb reads): AI replies cite it under the bubble as a link (docs/web.md).
-- depends: 0005.ai-orphaned-replies

ALTER TABLE kb_articles
    ADD COLUMN url text CHECK (url IS NULL OR (url ~ '^https?://' AND length(url) <= 2000));
