-- Orphaned replies (docs/ai.md): a generation claim remembers which attempt at answering its
-- customer message it is, so a reply whose instance died is generated again once, and handed to
-- a person if that attempt is orphaned too (a reply that keeps killing instances stops there).
-- depends: 0004.account-access

ALTER TABLE ai_generations ADD COLUMN attempt integer NOT NULL DEFAULT 1;
