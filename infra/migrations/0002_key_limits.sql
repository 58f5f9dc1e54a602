-- Per-key limits: one row per call made with a key that has a limit, so the
-- requests and tokens of the last minute and the credits spent today and this
-- month can be checked and reserved by one conditional INSERT (atomic under
-- concurrency, on every backend). Rows older than 32 days are pruned.
CREATE TABLE key_events (
  call_id  TEXT PRIMARY KEY,
  key_id   TEXT NOT NULL,
  at       INTEGER NOT NULL,
  -- Reserved at admission (an upper bound), set to what was used at settlement.
  tokens   INTEGER NOT NULL DEFAULT 0,
  spent    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX key_events_key_time ON key_events (key_id, at);
