-- Issues synchronized from trackers, with 384-dimension embeddings for similarity search.
-- SQLite keeps embeddings as little-endian f32 blobs and scans them exactly.

CREATE TABLE issues (
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
