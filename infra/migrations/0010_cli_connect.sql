-- `aigne hub connect`: the AIGNE CLI opens a session, a signed-in person
-- approves it in the browser, and the CLI picks up a new API key for that
-- person. A session lives 10 minutes; the scheduled job deletes it after.
--
-- `token_hash` is the keyed hash of the session id only the CLI (and the
-- browser it opened) holds; the key itself is kept only as the CLI will
-- receive it (AES under a one-time challenge, as the CLI's crypto.js
-- expects), sealed under the master key, until the CLI ends the session.
CREATE TABLE access_key_sessions (
  token_hash     TEXT PRIMARY KEY,
  -- Who opened it (the per-address limit on open sessions).
  ip             TEXT NOT NULL,
  created_at     INTEGER NOT NULL,
  expires_at     INTEGER NOT NULL,
  -- 'pending', then 'approved' or 'denied', once.
  status         TEXT NOT NULL DEFAULT 'pending',
  user_id        TEXT,
  key_id         TEXT,
  sealed_secret  TEXT,
  challenge      TEXT,
  decided_at     INTEGER
);
CREATE INDEX access_key_sessions_ip ON access_key_sessions (ip, created_at);
CREATE INDEX access_key_sessions_expiry ON access_key_sessions (expires_at);
