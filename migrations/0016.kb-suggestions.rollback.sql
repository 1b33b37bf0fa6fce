-- depends: 0009.integrations
DROP TABLE kb_suggestions;
