-- depends: 0002.ai-replies-and-knowledge-base
DROP TABLE widget_identities;
