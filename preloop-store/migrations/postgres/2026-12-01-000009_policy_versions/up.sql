-- Each governance document carries a version: a change names the version it read and is
-- refused if another change landed first (two replicas editing at once lose neither edit).
ALTER TABLE policy_documents ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
