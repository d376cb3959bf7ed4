-- What a user sees of their sessions (GET /users/me/sessions): the User-Agent sent at login
-- (truncated to 256 characters) and when the session was last refreshed. No address is stored.
-- Both go with the session's row when it is pruned.
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN last_refreshed_at TIMESTAMP;
