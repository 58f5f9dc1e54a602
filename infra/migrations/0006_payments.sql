-- Selling credits through Stripe Checkout: the packs on sale, each checkout
-- Hub started (with the credits and price fixed when it started), every
-- webhook delivery Stripe made, and a unique reference on ledger entries so
-- that an entry written for an outside event (a payment, a refund) is
-- written once however often, and however concurrently, the event arrives.

-- A unique reference (`ref`) for ledger entries that answer an outside event:
-- `stripe:{session}` for a payment's grant, `stripe-refund:{payment}:{refunded}`
-- for a refund's adjustment. NULL for grants by admins and for usage (which
-- has `call_id`).
ALTER TABLE ledger ADD COLUMN ref TEXT;
CREATE UNIQUE INDEX ledger_ref ON ledger (ref);

CREATE TABLE credit_packs (
  id           TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  -- ISO 4217, lower-case (`usd`), as Stripe takes it.
  currency     TEXT NOT NULL,
  -- The price in the currency's minor unit (cents), as Stripe takes it.
  unit_amount  INTEGER NOT NULL CHECK (unit_amount > 0),
  -- Nano-credits granted when a checkout for this pack is paid.
  credits      INTEGER NOT NULL CHECK (credits > 0),
  active       INTEGER NOT NULL DEFAULT 1,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
);

-- One row per checkout Hub started. What it grants (credits) and costs
-- (amount, currency) is copied from the pack when the checkout starts, so a
-- pack changed or deleted later changes nothing already sold, and nothing a
-- webhook says can change it.
CREATE TABLE payments (
  id                TEXT PRIMARY KEY,
  user_id           TEXT NOT NULL REFERENCES users (id),
  pack_id           TEXT,
  pack_name         TEXT NOT NULL,
  credits           INTEGER NOT NULL CHECK (credits > 0),
  amount            INTEGER NOT NULL CHECK (amount > 0),
  currency          TEXT NOT NULL,
  -- pending (asking Stripe), open (session created), paid, failed, expired.
  status            TEXT NOT NULL CHECK (status IN ('pending', 'open', 'paid', 'failed', 'expired')),
  -- The Checkout Session (`cs_…`), once Stripe created it.
  session_id        TEXT UNIQUE,
  payment_intent    TEXT,
  -- Why the checkout failed (Stripe's refusal, a failed async payment).
  error             TEXT,
  -- The event that paid it.
  paid_event        TEXT,
  -- Minor units refunded so far, and the credits taken back for them.
  refunded_amount   INTEGER NOT NULL DEFAULT 0,
  refunded_credits  INTEGER NOT NULL DEFAULT 0,
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL,
  paid_at           INTEGER
);
CREATE INDEX payments_user ON payments (user_id, id);
CREATE INDEX payments_intent ON payments (payment_intent) WHERE payment_intent IS NOT NULL;

-- Every webhook delivery whose signature verified, with what Hub did about it.
CREATE TABLE payment_events (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id    TEXT NOT NULL,
  type        TEXT NOT NULL,
  payment_id  TEXT,
  outcome     TEXT NOT NULL,
  detail      TEXT,
  created_at  INTEGER NOT NULL
);
CREATE INDEX payment_events_event ON payment_events (event_id);
