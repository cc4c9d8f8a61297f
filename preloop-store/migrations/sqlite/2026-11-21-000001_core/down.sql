DROP TABLE policy_documents;
DROP TABLE audit_events;
DROP TABLE audit_heads;
DROP TABLE grants;
DROP TABLE approval_requests;
