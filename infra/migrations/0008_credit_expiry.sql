-- Credits that expire. A grant with `expires_at` opens a bucket of credit;
-- debits (usage, negative adjustments, refunds) spend the buckets that expire
-- first, then credit that never expires; when a bucket expires, what is left
-- of it leaves the balance through an `expiry` ledger entry (ref
-- `expiry:<bucket>`). The buckets are kept by the ledger's trigger, so every
-- writer (settlement, journal replay, grants, refunds, redemptions) on every
-- backend spends them the same way without code of its own.

-- The ledger gains the kind `expiry`. SQLite cannot change a CHECK in place:
-- the table is rebuilt with the same rows, ids and indexes.
CREATE TABLE ledger_new (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id     TEXT NOT NULL REFERENCES users (id),
  kind        TEXT NOT NULL CHECK (kind IN ('grant', 'usage', 'adjustment', 'expiry')),
  amount      INTEGER NOT NULL,
  call_id     TEXT UNIQUE,
  reason      TEXT,
  expires_at  INTEGER,
  created_by  TEXT,
  created_at  INTEGER NOT NULL,
  ref         TEXT
);
INSERT INTO ledger_new (id, user_id, kind, amount, call_id, reason, expires_at, created_by, created_at, ref)
  SELECT id, user_id, kind, amount, call_id, reason, expires_at, created_by, created_at, ref FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_new RENAME TO ledger;
CREATE INDEX ledger_user ON ledger (user_id, id);
CREATE UNIQUE INDEX ledger_ref ON ledger (ref);

-- One bucket per expiring grant (its id is the grant's ledger id).
CREATE TABLE credit_buckets (
  id          INTEGER PRIMARY KEY,
  user_id     TEXT NOT NULL,
  amount      INTEGER NOT NULL CHECK (amount > 0),
  -- What is left of it: never more than it granted, never below zero. The sum
  -- of a user's remaining is never more than their balance (zero when the
  -- balance is below zero): a grant first pays off a negative balance.
  remaining   INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
  expires_at  INTEGER NOT NULL,
  -- When the expiry job wrote its `expiry` entry (remaining is then 0).
  expired_at  INTEGER,
  -- Scratch for the trigger's two-step spending (always 0 between statements).
  taking      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX credit_buckets_live ON credit_buckets (user_id, expires_at, id) WHERE remaining > 0;
CREATE INDEX credit_buckets_due ON credit_buckets (expires_at, id) WHERE remaining > 0;

-- One trigger, so its statements run in this order: the balance first (a new
-- bucket is capped by the balance after its grant), then the buckets.
-- Spending takes two statements because SQLite evaluates an UPDATE's
-- correlated subquery row by row against the table as it is being updated:
-- the first computes each bucket's share (`taking`) from `remaining`, which
-- it does not change; the second subtracts it. A bucket's share is the debit
-- less what the buckets before it (soonest expiry first, then oldest) hold,
-- between 0 and its remaining. Expiry entries spend nothing: the expiry job
-- empties their bucket itself. Buckets past their expiry but not yet emptied
-- still pay for debits (a call admitted before the expiry settles after it);
-- new holds cannot use them (see Store::place_hold).
CREATE TRIGGER ledger_applies AFTER INSERT ON ledger
BEGIN
  UPDATE users SET balance = balance + NEW.amount, updated_at = NEW.created_at WHERE id = NEW.user_id;
  INSERT INTO credit_buckets (id, user_id, amount, remaining, expires_at)
    SELECT NEW.id, NEW.user_id, NEW.amount, MIN(NEW.amount, MAX(0, balance)), NEW.expires_at
    FROM users WHERE id = NEW.user_id AND NEW.amount > 0 AND NEW.expires_at IS NOT NULL;
  UPDATE credit_buckets SET taking = MAX(0, MIN(remaining, -NEW.amount - (
      SELECT COALESCE(SUM(e.remaining), 0) FROM credit_buckets e
      WHERE e.user_id = NEW.user_id AND e.remaining > 0
        AND (e.expires_at < credit_buckets.expires_at
             OR (e.expires_at = credit_buckets.expires_at AND e.id < credit_buckets.id)))))
    WHERE NEW.amount < 0 AND NEW.kind <> 'expiry' AND user_id = NEW.user_id AND remaining > 0;
  UPDATE credit_buckets SET remaining = remaining - taking, taking = 0
    WHERE NEW.amount < 0 AND NEW.kind <> 'expiry' AND user_id = NEW.user_id AND remaining > 0 AND taking > 0;
END;
