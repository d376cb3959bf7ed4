-- What a user sees of their sessions (GET /users/me/sessions): the User-Agent sent at login
-- (truncated to 256 characters) and when the session was last refreshed. No address is stored.
-- Both go with the session's row when it is pruned.
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN last_refreshed_at TIMESTAMP;
-- Moves on only when the password changes (PUT /users/me/password), not when a login stores a
-- stronger hash of the same password: a login checked against an older password starts no
-- session (the hash itself cannot tell the two apart).
ALTER TABLE users ADD COLUMN password_version BIGINT NOT NULL DEFAULT 0;
