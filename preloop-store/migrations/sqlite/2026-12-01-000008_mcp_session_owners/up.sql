-- Who opened each MCP session ("{organization}/{user}/{API key id or session}"): a request on
-- a session with any other credential is answered as if the session did not exist. Kept apart
-- from the session's state, which the MCP library writes on its own schedule. Sessions opened
-- before this have no owner and are not resumed.
CREATE TABLE mcp_session_owners (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
