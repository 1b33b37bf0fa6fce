ALTER TABLE ai_generations DROP COLUMN attempt;
