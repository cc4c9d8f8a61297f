DROP TABLE hitl_sessions;
