-- Login counters were keyed by the typed name (`user:NAME@ADDRESS`); they are now keyed by an
-- HMAC of it. Forget the old rows: nothing typed stays in the database.
DELETE FROM login_throttle WHERE key LIKE 'user:%';
