-- At most one key waits to sign: two writers racing to make a next key cannot both succeed.
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';
