DROP TRIGGER issues_fts_update;
DROP TRIGGER issues_fts_delete;
DROP TRIGGER issues_fts_insert;
DROP TABLE issues_fts;
DROP INDEX issues_recent;
CREATE TABLE issues_plain (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    tracker_id      TEXT NOT NULL,
    key             TEXT NOT NULL,
    project         TEXT NOT NULL,
    state           TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    body            TEXT NOT NULL,
    embedding       BLOB,
    UNIQUE (organization_id, tracker_id, key)
);
INSERT INTO issues_plain SELECT id, organization_id, tracker_id, key, project, state, updated_at, body, embedding FROM issues;
DROP TABLE issues;
ALTER TABLE issues_plain RENAME TO issues;
