-- depends: 0001.initial-schema
DROP TABLE ai_user_rate;
DROP TABLE ticket_ai_usage;
DROP TABLE ai_generations;
DROP TABLE kb_articles;
