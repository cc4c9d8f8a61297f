DROP INDEX issues_recent;
DROP INDEX issues_search;
ALTER TABLE issues DROP COLUMN search;
ALTER TABLE issues DROP COLUMN search_text;
ALTER TABLE issues DROP COLUMN title;
