-- Access tokens revoked before they expire. Rows past expires_at are pruned: an expired token
-- is rejected anyway.
CREATE TABLE revoked_tokens (
    jti        TEXT NOT NULL PRIMARY KEY,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
