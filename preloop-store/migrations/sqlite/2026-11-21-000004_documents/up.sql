-- Configuration documents, one table per aggregate, all of one shape: a name unique under its
-- parent (parent_id is '' for none, so the unique constraint also holds without a parent).

CREATE TABLE mcp_servers (
    organization_id TEXT NOT NULL,
    id              TEXT NOT NULL,
    parent_id       TEXT NOT NULL,
    name            TEXT NOT NULL,
    body            TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, parent_id, name)
);

CREATE TABLE mcp_server_tools (
    organization_id TEXT NOT NULL,
    id              TEXT NOT NULL,
    parent_id       TEXT NOT NULL,
    name            TEXT NOT NULL,
    body            TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, parent_id, name)
);

CREATE TABLE tool_configurations (
    organization_id TEXT NOT NULL,
    id              TEXT NOT NULL,
    parent_id       TEXT NOT NULL,
    name            TEXT NOT NULL,
    body            TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, parent_id, name)
);

CREATE TABLE trackers (
    organization_id TEXT NOT NULL,
    id              TEXT NOT NULL,
    parent_id       TEXT NOT NULL,
    name            TEXT NOT NULL,
    body            TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, parent_id, name)
);

CREATE TABLE projects (
    organization_id TEXT NOT NULL,
    id              TEXT NOT NULL,
    parent_id       TEXT NOT NULL,
    name            TEXT NOT NULL,
    body            TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, parent_id, name)
);

CREATE TABLE flows (
    organization_id TEXT NOT NULL,
    id              TEXT NOT NULL,
    parent_id       TEXT NOT NULL,
    name            TEXT NOT NULL,
    body            TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, parent_id, name)
);

CREATE TABLE flow_executions (
    organization_id TEXT NOT NULL,
    id              TEXT NOT NULL,
    parent_id       TEXT NOT NULL,
    name            TEXT NOT NULL,
    body            TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, parent_id, name)
);
