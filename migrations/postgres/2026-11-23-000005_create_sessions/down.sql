DROP TABLE subject_revocations;
DROP TABLE refresh_tokens;
DROP TABLE token_families;
