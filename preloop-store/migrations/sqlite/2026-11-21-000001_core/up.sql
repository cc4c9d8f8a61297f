-- Core governance tables. Times are microseconds since the Unix epoch (BIGINT) so both backends
-- store them exactly; JSON documents are TEXT so audit hashes survive storage byte for byte.

CREATE TABLE approval_requests (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL,
    call_id          TEXT NOT NULL,
    state            TEXT NOT NULL,
    requester_id     TEXT NOT NULL,
    tool             TEXT NOT NULL,
    token_hash       TEXT,
    escalation_stage BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    next_deadline    BIGINT,
    claimed_until    BIGINT,
    version          BIGINT NOT NULL,
    body             TEXT NOT NULL
);
CREATE INDEX approval_requests_org_state ON approval_requests (organization_id, state, created_at DESC);
CREATE INDEX approval_requests_due ON approval_requests (next_deadline) WHERE next_deadline IS NOT NULL;

CREATE TABLE grants (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    principal_id    TEXT NOT NULL,
    tool            TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    granted_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked         BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX grants_lookup ON grants (organization_id, principal_id, tool, expires_at);

CREATE TABLE audit_heads (
    organization_id TEXT PRIMARY KEY,
    sequence        BIGINT NOT NULL,
    hash            TEXT NOT NULL
);

CREATE TABLE audit_events (
    organization_id TEXT NOT NULL,
    sequence        BIGINT NOT NULL,
    timestamp       BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL,
    PRIMARY KEY (organization_id, sequence)
);

CREATE TABLE policy_documents (
    organization_id TEXT PRIMARY KEY,
    document        TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);
