-- What approval channels sent about each request (same shape as the other documents).
CREATE TABLE channel_messages (
    organization_id TEXT NOT NULL,
    id              TEXT NOT NULL,
    parent_id       TEXT NOT NULL,
    name            TEXT NOT NULL,
    body            TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, parent_id, name)
);
