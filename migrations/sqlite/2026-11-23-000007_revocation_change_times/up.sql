-- Every instance polls for revocations made by the others since its high-water mark.
ALTER TABLE subject_revocations ADD COLUMN revoked_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
CREATE INDEX subject_revocations_revoked_at ON subject_revocations (revoked_at);
CREATE INDEX revoked_tokens_revoked_at ON revoked_tokens (revoked_at);
CREATE INDEX token_families_revoked_at ON token_families (revoked_at);
