-- Registered OAuth 2.0 clients (RFC 6749 §2). A confidential client's secret is 256 random bits,
-- stored only as its SHA-256; after a rotation the previous secret stays valid for a grace
-- period. grant_types and scope are space-separated lists.
CREATE TABLE clients (
    client_id                  TEXT      NOT NULL PRIMARY KEY,
    name                       TEXT      NOT NULL,
    confidential               BOOLEAN   NOT NULL,
    secret_hash                TEXT,
    previous_secret_hash       TEXT,
    previous_secret_expires_at TIMESTAMP,
    grant_types                TEXT      NOT NULL,
    scope                      TEXT      NOT NULL,
    created_at                 TIMESTAMP NOT NULL,
    disabled                   BOOLEAN   NOT NULL DEFAULT 0
);

-- A session belongs to the client that started it and keeps the scope it was granted. Sessions
-- from before clients existed belong to the built-in public client.
ALTER TABLE sessions ADD COLUMN client_id TEXT NOT NULL DEFAULT 'library-app';
ALTER TABLE sessions ADD COLUMN scope TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_client_id ON sessions (client_id);
