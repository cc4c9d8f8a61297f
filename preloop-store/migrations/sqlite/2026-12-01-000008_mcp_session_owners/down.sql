DROP TABLE mcp_session_owners;
