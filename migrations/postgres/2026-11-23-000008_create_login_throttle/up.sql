-- Failed-login counters, per account ("user:<name key>") and per client IP ("ip:<address>").
-- Shared by every instance, updated in one transaction per attempt, so parallel attempts cannot
-- get past the limit.
CREATE TABLE login_throttle (
    key           TEXT      NOT NULL PRIMARY KEY,
    failures      INTEGER   NOT NULL,
    blocked_until TIMESTAMP,
    updated_at    TIMESTAMP NOT NULL
);
CREATE INDEX login_throttle_updated_at ON login_throttle (updated_at);
