-- name_key is the Unicode-lowercased name, computed by the application, so uniqueness is
-- case-insensitive for every script and identical on both backends.
CREATE TABLE users (
    id            SERIAL    PRIMARY KEY,
    public_id     TEXT      NOT NULL UNIQUE,
    name          TEXT      NOT NULL,
    name_key      TEXT      NOT NULL UNIQUE,
    password_hash TEXT      NOT NULL,
    admin         BOOLEAN   NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMP NOT NULL
);
