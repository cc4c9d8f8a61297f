-- Issues synchronized from trackers, with 384-dimension embeddings for similarity search.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE issues (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    tracker_id      TEXT NOT NULL,
    key             TEXT NOT NULL,
    project         TEXT NOT NULL,
    state           TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    body            TEXT NOT NULL,
    embedding       vector(384),
    UNIQUE (organization_id, tracker_id, key)
);
CREATE INDEX issues_embedding ON issues USING hnsw (embedding vector_cosine_ops);
