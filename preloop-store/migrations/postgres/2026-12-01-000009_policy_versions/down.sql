ALTER TABLE policy_documents DROP COLUMN version;
