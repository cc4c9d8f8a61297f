-- MCP session state (the client's initialize parameters), so any replica, or a restarted
-- server, can resume a session another one started.
CREATE TABLE mcp_sessions (
    id         TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX mcp_sessions_updated ON mcp_sessions (updated_at);
