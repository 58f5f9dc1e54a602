-- Redemption codes: an operator mints a batch of codes worth credits; a
-- customer redeems one for their own balance. Codes are stored only as keyed
-- hashes (with a hint); the plaintext is shown once, when minted.

-- A redemption's grant carries `redemption:<id>` in ledger.ref (added by 0006),
-- so it is written once however often its write is retried.

-- What every code of a batch is worth, and its rules.
CREATE TABLE redemption_batches (
  id             TEXT PRIMARY KEY,
  label          TEXT,
  credits        INTEGER NOT NULL CHECK (credits > 0),
  -- Redemptions each code of the batch allows.
  uses           INTEGER NOT NULL CHECK (uses > 0),
  -- Whether one user may redeem a code of the batch only once.
  once_per_user  INTEGER NOT NULL,
  expires_at     INTEGER,
  created_by     TEXT,
  created_at     INTEGER NOT NULL,
  disabled_at    INTEGER
);

CREATE TABLE redemption_codes (
  id           TEXT PRIMARY KEY,
  batch_id     TEXT NOT NULL REFERENCES redemption_batches (id),
  code_hash    TEXT NOT NULL UNIQUE,
  hint         TEXT NOT NULL,
  -- Always the number of its redemptions, kept by the redemptions_use trigger.
  used         INTEGER NOT NULL DEFAULT 0,
  disabled_at  INTEGER
);
CREATE INDEX redemption_codes_batch ON redemption_codes (batch_id);

-- One row per redemption, written by one conditional INSERT that checks the
-- code's uses left, expiry and state: concurrent redemptions serialize in the
-- database and can never together exceed a code's uses.
CREATE TABLE redemptions (
  id             TEXT PRIMARY KEY,
  code_id        TEXT NOT NULL REFERENCES redemption_codes (id),
  user_id        TEXT NOT NULL REFERENCES users (id),
  credits        INTEGER NOT NULL,
  once_per_user  INTEGER NOT NULL,
  created_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX redemptions_once ON redemptions (code_id, user_id) WHERE once_per_user = 1;
CREATE INDEX redemptions_user ON redemptions (user_id);
CREATE TRIGGER redemptions_use AFTER INSERT ON redemptions
BEGIN
  UPDATE redemption_codes SET used = used + 1 WHERE id = NEW.code_id;
END;

-- Redemption attempts that have not (yet) succeeded, for the per-user limit
-- on failed attempts; a successful redemption deletes its own.
CREATE TABLE redemption_attempts (
  id          TEXT PRIMARY KEY,
  user_id     TEXT NOT NULL,
  created_at  INTEGER NOT NULL
);
CREATE INDEX redemption_attempts_user ON redemption_attempts (user_id, created_at);
