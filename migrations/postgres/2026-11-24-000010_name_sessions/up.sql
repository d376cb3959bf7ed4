-- One name for one concept: a login and its chain of refresh tokens is a *session* (the `sid`
-- claim of its access tokens is the session id), in the code, the schema and the README.
ALTER TABLE token_families RENAME TO sessions;
ALTER TABLE sessions RENAME CONSTRAINT token_families_pkey TO sessions_pkey;
ALTER TABLE sessions RENAME CONSTRAINT token_families_user_id_fkey TO sessions_user_id_fkey;
ALTER INDEX token_families_user_id RENAME TO sessions_user_id;
ALTER INDEX token_families_expires_at RENAME TO sessions_expires_at;
ALTER INDEX token_families_revoked_at RENAME TO sessions_revoked_at;
ALTER TABLE refresh_tokens RENAME COLUMN family_id TO session_id;
ALTER TABLE refresh_tokens RENAME CONSTRAINT refresh_tokens_family_id_fkey TO refresh_tokens_session_id_fkey;
ALTER INDEX refresh_tokens_family_id RENAME TO refresh_tokens_session_id;
