-- private_key_enc: PKCS#8 DER sealed with AES-256-GCM under the master key, the kid as
-- associated data. The private key is never stored in the clear.
CREATE TABLE signing_keys (
    kid             TEXT NOT NULL PRIMARY KEY,
    state           TEXT NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    algorithm       TEXT NOT NULL DEFAULT 'RS256',
    private_key_enc BYTEA NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    activates_at    TIMESTAMP NOT NULL,
    retires_at      TIMESTAMP
);
-- At most one key signs at a time.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (state) WHERE state = 'current';
