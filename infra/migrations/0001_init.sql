-- Hub schema, version 1. Plain SQLite that libSQL, Turso and D1 all accept.
-- Money columns are INTEGER nano-credits (1 credit = 1e9); rates are INTEGER
-- nano-credits per million tokens (per image / per second for media).
-- Times are INTEGER milliseconds since the Unix epoch.

CREATE TABLE users (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  email       TEXT,
  role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'guest')),
  -- Always SUM(ledger.amount) for the user, kept by the ledger_applies trigger.
  balance     INTEGER NOT NULL DEFAULT 0,
  -- Always SUM(holds.amount) of the user's open holds, kept by the holds_* triggers.
  held        INTEGER NOT NULL DEFAULT 0,
  disabled    INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email) WHERE email IS NOT NULL;

CREATE TABLE api_keys (
  id                 TEXT PRIMARY KEY,
  user_id            TEXT NOT NULL REFERENCES users (id),
  label              TEXT NOT NULL,
  key_hash           TEXT NOT NULL UNIQUE,
  key_hint           TEXT NOT NULL,
  expires_at         INTEGER,
  revoked_at         INTEGER,
  allowed_models     TEXT,          -- JSON array of model names, NULL = all
  rpm_limit          INTEGER,
  tpm_limit          INTEGER,
  daily_spend_cap    INTEGER,
  monthly_spend_cap  INTEGER,
  created_at         INTEGER NOT NULL
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE providers (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  kind        TEXT NOT NULL,
  base_url    TEXT,
  region      TEXT,
  enabled     INTEGER NOT NULL DEFAULT 1,
  priority    INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

CREATE TABLE credentials (
  id           TEXT PRIMARY KEY,
  provider_id  TEXT NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
  name         TEXT NOT NULL,
  secret_enc   TEXT NOT NULL,       -- AES-256-GCM under the master key
  secret_hint  TEXT NOT NULL,
  weight       INTEGER NOT NULL DEFAULT 100,
  enabled      INTEGER NOT NULL DEFAULT 1,
  status       TEXT NOT NULL DEFAULT 'active',
  last_error   TEXT,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
);
CREATE INDEX credentials_provider ON credentials (provider_id);

CREATE TABLE models (
  id                 TEXT PRIMARY KEY,
  provider_id        TEXT NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
  model              TEXT NOT NULL,
  type               TEXT NOT NULL DEFAULT 'chat' CHECK (type IN ('chat', 'embedding', 'image', 'video')),
  input_rate         INTEGER NOT NULL DEFAULT 0,
  output_rate        INTEGER NOT NULL DEFAULT 0,
  cache_read_rate    INTEGER,
  cache_write_rate   INTEGER,
  image_rate         INTEGER NOT NULL DEFAULT 0,
  video_rate         INTEGER NOT NULL DEFAULT 0,
  max_output_tokens  INTEGER,
  unit_costs         TEXT,          -- JSON, the provider's own USD prices
  metadata           TEXT,          -- JSON
  enabled            INTEGER NOT NULL DEFAULT 1,
  created_at         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL,
  UNIQUE (provider_id, model, type)
);

-- The credit ledger: grants (+), usage (-), adjustments (±). Append-only.
CREATE TABLE ledger (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id     TEXT NOT NULL REFERENCES users (id),
  kind        TEXT NOT NULL CHECK (kind IN ('grant', 'usage', 'adjustment')),
  amount      INTEGER NOT NULL,
  call_id     TEXT UNIQUE,          -- one usage entry per call, whatever retries settle it
  reason      TEXT,
  expires_at  INTEGER,
  created_by  TEXT,
  created_at  INTEGER NOT NULL
);
CREATE INDEX ledger_user ON ledger (user_id, id);
CREATE TRIGGER ledger_applies AFTER INSERT ON ledger
BEGIN
  UPDATE users SET balance = balance + NEW.amount, updated_at = NEW.created_at WHERE id = NEW.user_id;
END;

-- Credit reserved for calls in flight. A hold is placed by one conditional
-- INSERT (only if balance - held covers it) and closed exactly once.
CREATE TABLE holds (
  id          TEXT PRIMARY KEY,     -- the call id
  user_id     TEXT NOT NULL REFERENCES users (id),
  amount      INTEGER NOT NULL CHECK (amount >= 0),
  state       TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'settled', 'released', 'expired')),
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  closed_at   INTEGER
);
CREATE INDEX holds_open ON holds (expires_at) WHERE state = 'open';
CREATE TRIGGER holds_open AFTER INSERT ON holds WHEN NEW.state = 'open'
BEGIN
  UPDATE users SET held = held + NEW.amount WHERE id = NEW.user_id;
END;
CREATE TRIGGER holds_close AFTER UPDATE OF state ON holds WHEN OLD.state = 'open' AND NEW.state <> 'open'
BEGIN
  UPDATE users SET held = held - OLD.amount WHERE id = OLD.user_id;
END;

-- What each call consumed and what it cost, with the rates it was billed at.
CREATE TABLE usage (
  call_id             TEXT PRIMARY KEY,
  user_id             TEXT NOT NULL,
  key_id              TEXT,
  app                 TEXT,
  provider_id         TEXT,
  model               TEXT NOT NULL,
  type                TEXT NOT NULL,
  input_tokens        INTEGER NOT NULL DEFAULT 0,
  output_tokens       INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens   INTEGER NOT NULL DEFAULT 0,
  cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
  reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
  images              INTEGER NOT NULL DEFAULT 0,
  input_rate          INTEGER NOT NULL DEFAULT 0,
  output_rate         INTEGER NOT NULL DEFAULT 0,
  cache_read_rate     INTEGER,
  cache_write_rate    INTEGER,
  image_rate          INTEGER NOT NULL DEFAULT 0,
  credits             INTEGER NOT NULL,
  billed              INTEGER NOT NULL,   -- 0 when billing was off: credits are analytics only
  estimated           INTEGER NOT NULL DEFAULT 0,
  created_at          INTEGER NOT NULL
);
CREATE INDEX usage_user_time ON usage (user_id, created_at);
CREATE INDEX usage_time ON usage (created_at);

-- One row per attempt at a provider.
CREATE TABLE calls (
  id                  TEXT PRIMARY KEY,
  call_id             TEXT NOT NULL,
  attempt             INTEGER NOT NULL,
  request_id          TEXT,
  endpoint            TEXT NOT NULL,
  user_id             TEXT,
  key_id              TEXT,
  app                 TEXT,
  provider_id         TEXT,
  provider            TEXT,
  credential_id       TEXT,
  model               TEXT NOT NULL,
  stream              INTEGER NOT NULL DEFAULT 0,
  status              TEXT NOT NULL CHECK (status IN ('success', 'failed', 'aborted')),
  http_status         INTEGER,
  error               TEXT,
  input_tokens        INTEGER NOT NULL DEFAULT 0,
  output_tokens       INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens   INTEGER NOT NULL DEFAULT 0,
  cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
  credits             INTEGER NOT NULL DEFAULT 0,
  estimated           INTEGER NOT NULL DEFAULT 0,
  duration_ms         INTEGER NOT NULL DEFAULT 0,
  ttfb_ms             INTEGER,
  upstream_ttfb_ms    INTEGER,
  created_at          INTEGER NOT NULL
);
CREATE INDEX calls_time ON calls (created_at);
CREATE INDEX calls_user_time ON calls (user_id, created_at);
CREATE INDEX calls_call ON calls (call_id);

CREATE TABLE settings (
  key         TEXT PRIMARY KEY,
  value       TEXT NOT NULL,        -- JSON
  updated_at  INTEGER NOT NULL
);
-- Bumped by every configuration change, so instances know to reload.
INSERT INTO settings (key, value, updated_at) VALUES ('config_version', '1', 0);
