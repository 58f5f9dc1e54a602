-- Notifications: events written in the same transaction as the change that
-- causes them (by triggers, so every writer is covered: settlements, journal
-- replays, grants, redemptions, payments, refunds, expiry, credential health),
-- fanned out to deliveries (signed webhooks to operator endpoints, mail to the
-- customer), which a delivery job sends, retries and logs. Nothing is sent
-- for a change that did not commit, and nothing pending is lost by a restart.

-- A customer's own notification choices. NULL threshold: the
-- `low_balance_threshold` setting applies; 0: no low-balance notice.
ALTER TABLE users ADD COLUMN low_balance_threshold INTEGER;
ALTER TABLE users ADD COLUMN email_low_balance INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN email_receipts INTEGER NOT NULL DEFAULT 1;

-- The `low_balance_threshold` setting in nano-credits (the setting is stored
-- as its canonical decimal text, "5" or "0.25": converted exactly, digit by
-- digit, never through a float). No row, or NULL: no default threshold.
CREATE VIEW low_balance_default AS
SELECT CAST(substr(v, 1, instr(v || '.', '.') - 1) AS INTEGER) * 1000000000
     + CAST(substr(substr(v, instr(v || '.', '.') + 1) || '000000000', 1, 9) AS INTEGER) AS nanos
FROM (SELECT json_extract(value, '$') AS v FROM settings WHERE key = 'low_balance_threshold')
WHERE v IS NOT NULL;

-- Operator endpoints (Standard Webhooks). `events` is `*` or the subscribed
-- types between commas (`,balance.low,credits.purchased,`). Secrets are
-- sealed under the master key; after a rotation the previous one keeps
-- signing too until `previous_until`.
CREATE TABLE webhooks (
  id                   TEXT PRIMARY KEY,
  url                  TEXT NOT NULL,
  description          TEXT,
  events               TEXT NOT NULL,
  secret_enc           TEXT NOT NULL,
  secret_hint          TEXT NOT NULL,
  previous_secret_enc  TEXT,
  previous_until       INTEGER,
  enabled              INTEGER NOT NULL DEFAULT 1,
  -- Why Hub disabled it (the endpoint answered 410 Gone).
  disabled_reason      TEXT,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL
);

-- One row per event. `id` is the webhook-id every delivery of it carries.
-- Money is nano-credits; `detail` is a JSON object with the rest, captured
-- when the event happened so that every retry sends the same body.
CREATE TABLE events (
  id          TEXT PRIMARY KEY,
  type        TEXT NOT NULL,
  user_id     TEXT,
  amount      INTEGER,
  balance     INTEGER,
  threshold   INTEGER,
  subject     TEXT,
  detail      TEXT,
  -- Events that must happen once per something (a key's limit, per window).
  dedupe      TEXT UNIQUE,
  created_at  INTEGER NOT NULL
);
CREATE INDEX events_time ON events (created_at);

-- One row per event and destination; every attempt is in delivery_attempts.
CREATE TABLE deliveries (
  id           TEXT PRIMARY KEY,
  event_id     TEXT NOT NULL REFERENCES events (id),
  channel      TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
  webhook_id   TEXT,
  -- The customer's address when the event happened (channel email).
  recipient    TEXT,
  state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_at      INTEGER NOT NULL,
  -- Retries stop here (24 hours after the event, or after a resend).
  deadline     INTEGER NOT NULL,
  -- Who is sending it now, until when: two instances never send the same attempt.
  lease        TEXT,
  lease_until  INTEGER,
  last_error   TEXT,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'pending';
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, created_at);
CREATE INDEX deliveries_lease ON deliveries (lease) WHERE lease IS NOT NULL;

CREATE TABLE delivery_attempts (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  delivery_id  TEXT NOT NULL,
  attempt      INTEGER NOT NULL,
  at           INTEGER NOT NULL,
  -- The endpoint's HTTP status, if it answered.
  status       INTEGER,
  error        TEXT,
  duration_ms  INTEGER NOT NULL,
  UNIQUE (delivery_id, attempt)
);

-- Every event reaches the enabled webhooks subscribed to its type, and the
-- customer by mail when it is one they get mail for, they have not opted
-- out and an SMTP server is configured. A test event goes only where its
-- handler sends it.
CREATE TRIGGER events_fan_out AFTER INSERT ON events WHEN NEW.type <> 'webhook.test'
BEGIN
  INSERT INTO deliveries (id, event_id, channel, webhook_id, state, next_at, deadline, created_at, updated_at)
  SELECT 'dlv_' || lower(hex(randomblob(12))), NEW.id, 'webhook', w.id, 'pending',
         NEW.created_at, NEW.created_at + 86400000, NEW.created_at, NEW.created_at
  FROM webhooks w
  WHERE w.enabled = 1 AND (w.events = '*' OR instr(w.events, ',' || NEW.type || ',') > 0);
  INSERT INTO deliveries (id, event_id, channel, recipient, state, next_at, deadline, created_at, updated_at)
  SELECT 'dlv_' || lower(hex(randomblob(12))), NEW.id, 'email', u.email, 'pending',
         NEW.created_at, NEW.created_at + 86400000, NEW.created_at, NEW.created_at
  FROM users u
  WHERE u.id = NEW.user_id AND u.email IS NOT NULL AND u.disabled = 0
    AND ((NEW.type IN ('balance.low', 'balance.exhausted') AND u.email_low_balance = 1)
      OR (NEW.type = 'credits.purchased' AND u.email_receipts = 1))
    AND EXISTS (SELECT 1 FROM settings WHERE key = 'smtp_host' AND json_extract(value, '$') IS NOT NULL);
END;

-- The balance crossing below the user's threshold (once per crossing: it
-- fires again only after the balance went back to or above it), and
-- crossing to zero or below. A change that does both is `balance.exhausted`.
CREATE TRIGGER notify_balance_low AFTER UPDATE OF balance ON users
WHEN NEW.balance < OLD.balance AND NEW.balance > 0
BEGIN
  INSERT INTO events (id, type, user_id, amount, balance, threshold, detail, created_at)
  SELECT 'msg_' || lower(hex(randomblob(16))), 'balance.low', NEW.id, NEW.balance - OLD.balance, NEW.balance, t.v,
         json_object('email', NEW.email, 'name', NEW.name), NEW.updated_at
  FROM (SELECT COALESCE(NEW.low_balance_threshold, (SELECT nanos FROM low_balance_default)) AS v) t
  WHERE t.v > 0 AND OLD.balance >= t.v AND NEW.balance < t.v;
END;
CREATE TRIGGER notify_balance_exhausted AFTER UPDATE OF balance ON users
WHEN OLD.balance > 0 AND NEW.balance <= 0
BEGIN
  INSERT INTO events (id, type, user_id, amount, balance, detail, created_at)
  VALUES ('msg_' || lower(hex(randomblob(16))), 'balance.exhausted', NEW.id, NEW.balance - OLD.balance, NEW.balance,
          json_object('email', NEW.email, 'name', NEW.name), NEW.updated_at);
END;

-- Credits granted by an admin, a redemption code or any other grant but a
-- purchase (which is `credits.purchased`, below).
CREATE TRIGGER notify_credits_granted AFTER INSERT ON ledger
WHEN NEW.kind = 'grant' AND NEW.amount > 0 AND (NEW.ref IS NULL OR NEW.ref NOT LIKE 'stripe:%')
BEGIN
  INSERT INTO events (id, type, user_id, amount, subject, detail, created_at)
  VALUES ('msg_' || lower(hex(randomblob(16))), 'credits.granted', NEW.user_id, NEW.amount, NEW.ref,
          json_object('reason', NEW.reason, 'created_by', NEW.created_by,
                      'source', CASE WHEN NEW.ref LIKE 'redemption:%' THEN 'redemption'
                                     WHEN NEW.created_by IS NOT NULL THEN 'admin' ELSE 'hub' END),
          NEW.created_at);
END;

-- Payments: paid (its grant is in the same batch), failed after Stripe
-- created the session (an asynchronous payment that did not go through),
-- refunded (the running total went up; its adjustment is in the same batch).
CREATE TRIGGER notify_payment_paid AFTER UPDATE OF status ON payments
WHEN OLD.status = 'open' AND NEW.status = 'paid'
BEGIN
  INSERT INTO events (id, type, user_id, amount, subject, detail, created_at)
  VALUES ('msg_' || lower(hex(randomblob(16))), 'credits.purchased', NEW.user_id, NEW.credits, NEW.id,
          json_object('pack', NEW.pack_name, 'price', NEW.amount, 'currency', NEW.currency,
                      'session_id', NEW.session_id),
          NEW.updated_at);
END;
CREATE TRIGGER notify_payment_failed AFTER UPDATE OF status ON payments
WHEN OLD.status = 'open' AND NEW.status = 'failed'
BEGIN
  INSERT INTO events (id, type, user_id, amount, subject, detail, created_at)
  VALUES ('msg_' || lower(hex(randomblob(16))), 'payment.failed', NEW.user_id, NEW.credits, NEW.id,
          json_object('pack', NEW.pack_name, 'price', NEW.amount, 'currency', NEW.currency,
                      'session_id', NEW.session_id, 'reason', NEW.error),
          NEW.updated_at);
END;
CREATE TRIGGER notify_payment_refunded AFTER UPDATE OF refunded_amount ON payments
WHEN NEW.refunded_amount > OLD.refunded_amount
BEGIN
  INSERT INTO events (id, type, user_id, amount, subject, detail, created_at)
  VALUES ('msg_' || lower(hex(randomblob(16))), 'payment.refunded', NEW.user_id,
          OLD.refunded_credits - NEW.refunded_credits, NEW.id,
          json_object('pack', NEW.pack_name, 'price', NEW.amount, 'currency', NEW.currency,
                      'refunded', NEW.refunded_amount - OLD.refunded_amount, 'refunded_total', NEW.refunded_amount),
          NEW.updated_at);
END;

-- Credential health: a provider rejected it, or it works again (a re-check,
-- an admin's re-enable or a successful test).
CREATE TRIGGER notify_credential_disabled AFTER UPDATE OF status ON credentials
WHEN NEW.status = 'disabled' AND OLD.status <> 'disabled'
BEGIN
  INSERT INTO events (id, type, subject, detail, created_at)
  VALUES ('msg_' || lower(hex(randomblob(16))), 'credential.disabled', NEW.id,
          json_object('name', NEW.name, 'provider_id', NEW.provider_id, 'reason', NEW.last_error), NEW.updated_at);
END;
CREATE TRIGGER notify_credential_enabled AFTER UPDATE OF status ON credentials
WHEN OLD.status = 'disabled' AND NEW.status <> 'disabled'
BEGIN
  INSERT INTO events (id, type, subject, detail, created_at)
  VALUES ('msg_' || lower(hex(randomblob(16))), 'credential.enabled', NEW.id,
          json_object('name', NEW.name, 'provider_id', NEW.provider_id), NEW.updated_at);
END;
