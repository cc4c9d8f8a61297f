-- Closed organizations: their users disabled, their keys revoked, their calls denied; their
-- records kept.
ALTER TABLE organizations ADD COLUMN closed_at BIGINT;
