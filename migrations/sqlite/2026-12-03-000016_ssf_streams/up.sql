-- Shared Signals (OpenID SSF 1.0) streams: one per receiver, a registered confidential client
-- holding the `ssf` scope. Event lists are space-separated URIs. A push stream's
-- Authorization header is sealed under the master key (AES-256-GCM, the stream id as associated
-- data); it is never returned. The push_* columns are the push worker's state: consecutive
-- failures and the last error; push_not_before is the end of the lease that lets one instance
-- push a stream at a time (push_lease_token names the holder), or after a failure when to retry.
CREATE TABLE ssf_streams (
    stream_id            TEXT      NOT NULL PRIMARY KEY,
    client_id            TEXT      NOT NULL UNIQUE REFERENCES clients (client_id) ON DELETE CASCADE,
    delivery_method      TEXT      NOT NULL,
    push_endpoint        TEXT,
    push_authorization   BLOB,
    events_requested     TEXT      NOT NULL,
    events_delivered     TEXT      NOT NULL,
    description          TEXT,
    status               TEXT      NOT NULL,
    status_reason        TEXT,
    created_at           TIMESTAMP NOT NULL,
    verified_at          TIMESTAMP,
    push_failures        INTEGER   NOT NULL DEFAULT 0,
    push_last_error      TEXT,
    push_not_before      TIMESTAMP,
    push_lease_token     TEXT
);

-- The outbox: one row per event per stream, written in the transaction of the change that
-- caused it, deleted when the receiver acknowledges it (or when retention drops it). The id
-- orders events by commit (writers of events serialize; see src/db/ssf.rs). The SET itself is
-- signed when delivered: subject and payload are stored as JSON. txn is shared by the SETs of one
-- event (one per stream).
CREATE TABLE ssf_events (
    id         INTEGER   PRIMARY KEY AUTOINCREMENT,
    stream_id  TEXT      NOT NULL REFERENCES ssf_streams (stream_id) ON DELETE CASCADE,
    jti        TEXT      NOT NULL UNIQUE,
    txn        TEXT      NOT NULL,
    event_type TEXT      NOT NULL,
    subject    TEXT      NOT NULL,
    payload    TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ssf_events_stream ON ssf_events (stream_id, id);
CREATE INDEX ssf_events_created_at ON ssf_events (created_at);
