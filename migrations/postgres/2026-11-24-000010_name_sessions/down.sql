ALTER INDEX refresh_tokens_session_id RENAME TO refresh_tokens_family_id;
ALTER TABLE refresh_tokens RENAME CONSTRAINT refresh_tokens_session_id_fkey TO refresh_tokens_family_id_fkey;
ALTER TABLE refresh_tokens RENAME COLUMN session_id TO family_id;
ALTER INDEX sessions_revoked_at RENAME TO token_families_revoked_at;
ALTER INDEX sessions_expires_at RENAME TO token_families_expires_at;
ALTER INDEX sessions_user_id RENAME TO token_families_user_id;
ALTER TABLE sessions RENAME CONSTRAINT sessions_user_id_fkey TO token_families_user_id_fkey;
ALTER TABLE sessions RENAME CONSTRAINT sessions_pkey TO token_families_pkey;
ALTER TABLE sessions RENAME TO token_families;
