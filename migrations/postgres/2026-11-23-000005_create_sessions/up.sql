-- A family is one login: every refresh token rotated from it, and every access token issued
-- from it (their `sid` claim is the family id). Revoking the family ends all of them.
CREATE TABLE token_families (
    id         TEXT      NOT NULL PRIMARY KEY,
    user_id    INTEGER   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    -- Expiry of the family's newest refresh token; the family is pruned after it.
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX token_families_user_id ON token_families (user_id);
CREATE INDEX token_families_expires_at ON token_families (expires_at);

-- Refresh tokens are opaque 256-bit random strings; only their SHA-256 is stored. A spent
-- token is kept (spent_at set) until it expires, so presenting it again is detected as reuse.
CREATE TABLE refresh_tokens (
    token_hash TEXT      NOT NULL PRIMARY KEY,
    family_id  TEXT      NOT NULL REFERENCES token_families (id) ON DELETE CASCADE,
    issued_at  TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    spent_at   TIMESTAMP
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- "Log out everywhere", deletion and admin changes: every access token of `subject` (a user's
-- public_id) issued at or before `valid_after` is refused. Kept until those tokens have expired.
-- No foreign key: the row must outlive a deleted user.
CREATE TABLE subject_revocations (
    subject     TEXT      NOT NULL PRIMARY KEY,
    valid_after TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL
);
CREATE INDEX subject_revocations_expires_at ON subject_revocations (expires_at);
