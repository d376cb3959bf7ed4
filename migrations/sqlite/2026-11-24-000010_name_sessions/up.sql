-- One name for one concept: a login and its chain of refresh tokens is a *session* (the `sid`
-- claim of its access tokens is the session id), in the code, the schema and the README.
ALTER TABLE token_families RENAME TO sessions;
ALTER TABLE refresh_tokens RENAME COLUMN family_id TO session_id;
DROP INDEX token_families_user_id;
DROP INDEX token_families_expires_at;
DROP INDEX token_families_revoked_at;
DROP INDEX refresh_tokens_family_id;
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
