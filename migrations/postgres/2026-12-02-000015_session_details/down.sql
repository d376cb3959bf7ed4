ALTER TABLE users DROP COLUMN password_version;
ALTER TABLE sessions DROP COLUMN last_refreshed_at;
ALTER TABLE sessions DROP COLUMN user_agent;
