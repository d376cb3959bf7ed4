DROP INDEX token_families_revoked_at;
DROP INDEX revoked_tokens_revoked_at;
DROP INDEX subject_revocations_revoked_at;
ALTER TABLE subject_revocations DROP COLUMN revoked_at;
