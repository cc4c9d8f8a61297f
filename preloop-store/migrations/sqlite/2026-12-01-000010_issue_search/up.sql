-- Full-text search over issues (FTS5, Porter stemming over Unicode words): the title and the
-- rest of the issue's text in their own columns, an external-content FTS5 index over them kept
-- current by triggers. The table is rebuilt with an INTEGER PRIMARY KEY (`seq`) because FTS5
-- refers to rows by rowid, and only an aliased rowid survives VACUUM.
CREATE TABLE issues_indexed (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    organization_id TEXT NOT NULL,
    tracker_id      TEXT NOT NULL,
    key             TEXT NOT NULL,
    project         TEXT NOT NULL,
    state           TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    body            TEXT NOT NULL,
    embedding       BLOB,
    title           TEXT NOT NULL DEFAULT '',
    search_text     TEXT NOT NULL DEFAULT '',
    UNIQUE (organization_id, tracker_id, key)
);
INSERT INTO issues_indexed (id, organization_id, tracker_id, key, project, state, updated_at, body, embedding, title, search_text)
    SELECT id, organization_id, tracker_id, key, project, state, updated_at, body, embedding,
           COALESCE(json_extract(body, '$.title'), ''), COALESCE(json_extract(body, '$.body'), '')
    FROM issues;
DROP TABLE issues;
ALTER TABLE issues_indexed RENAME TO issues;
CREATE INDEX issues_recent ON issues (organization_id, updated_at);

CREATE VIRTUAL TABLE issues_fts USING fts5(
    title, search_text, content = 'issues', content_rowid = 'seq', tokenize = 'porter unicode61'
);
INSERT INTO issues_fts (rowid, title, search_text) SELECT seq, title, search_text FROM issues;
CREATE TRIGGER issues_fts_insert AFTER INSERT ON issues BEGIN
    INSERT INTO issues_fts (rowid, title, search_text) VALUES (new.seq, new.title, new.search_text);
END;
CREATE TRIGGER issues_fts_delete AFTER DELETE ON issues BEGIN
    INSERT INTO issues_fts (issues_fts, rowid, title, search_text) VALUES ('delete', old.seq, old.title, old.search_text);
END;
CREATE TRIGGER issues_fts_update AFTER UPDATE OF title, search_text ON issues BEGIN
    INSERT INTO issues_fts (issues_fts, rowid, title, search_text) VALUES ('delete', old.seq, old.title, old.search_text);
    INSERT INTO issues_fts (rowid, title, search_text) VALUES (new.seq, new.title, new.search_text);
END;
