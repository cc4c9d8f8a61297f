DROP TABLE flow_executions;
DROP TABLE flows;
DROP TABLE projects;
DROP TABLE trackers;
DROP TABLE tool_configurations;
DROP TABLE mcp_server_tools;
DROP TABLE mcp_servers;
