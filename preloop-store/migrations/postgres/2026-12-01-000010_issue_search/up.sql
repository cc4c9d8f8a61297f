-- Full-text search over issues: the title (weight A) and the rest of the issue's text
-- (weight B) in a generated tsvector with a GIN index.
ALTER TABLE issues ADD COLUMN title TEXT NOT NULL DEFAULT '';
ALTER TABLE issues ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE issues SET title = COALESCE(body::jsonb ->> 'title', ''), search_text = COALESCE(body::jsonb ->> 'body', '');
ALTER TABLE issues ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', search_text), 'B')
) STORED;
CREATE INDEX issues_search ON issues USING gin (search);
CREATE INDEX issues_recent ON issues (organization_id, updated_at);
