-- name_key is the Unicode-lowercased name, computed by the application (SQLite's lower() and
-- NOCASE fold ASCII only), so uniqueness is case-insensitive for every script.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    public_id     TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    name_key      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    admin         BOOLEAN NOT NULL DEFAULT 0,
    created_at    TIMESTAMP NOT NULL
);
