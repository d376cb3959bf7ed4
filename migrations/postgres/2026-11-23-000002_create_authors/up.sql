-- Deleting a user keeps the authors they created; created_by becomes NULL.
CREATE TABLE authors (
    id           SERIAL    PRIMARY KEY,
    name         TEXT      NOT NULL UNIQUE,
    book         TEXT      NOT NULL UNIQUE,
    country      TEXT      NOT NULL,
    booker_prize BOOLEAN   NOT NULL DEFAULT FALSE,
    created_by   INTEGER   REFERENCES users (id) ON DELETE SET NULL,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);
CREATE INDEX authors_created_by ON authors (created_by);
