-- Credit leases: on a shared database (several `hub serve`, Lambda) an
-- instance reserves part of a user's free balance once, as a hold of kind
-- 'lease', and serves that user's calls from it in memory. The sum of open
-- holds (leases included) still never exceeds the balance: a lease is taken
-- and grown by the same conditional writes as any hold.
--
-- A call served from a lease has no open hold row. Its settlement inserts
-- one already 'settled' (amount: what the call was charged, lease_id: the
-- lease), idempotent per call id, and the trigger below takes the charge
-- off the lease, so the credit moves from "leased" to "spent" in the same
-- transaction as the ledger entry. A lease that is returned, or expires
-- (its instance died), frees what is left of it like any hold.
ALTER TABLE holds ADD COLUMN kind TEXT NOT NULL DEFAULT 'call';
ALTER TABLE holds ADD COLUMN lease_id TEXT;
-- A user's open holds and leases (revoking leases, expiring one user's holds).
CREATE INDEX holds_user_open ON holds (user_id) WHERE state = 'open';

-- An open hold whose amount changes (a lease charged) moves users.held by
-- the difference; opening and closing are the 0001 triggers'.
CREATE TRIGGER holds_resize AFTER UPDATE OF amount ON holds
  WHEN OLD.state = 'open' AND NEW.state = 'open' AND NEW.amount <> OLD.amount
BEGIN
  UPDATE users SET held = held + NEW.amount - OLD.amount WHERE id = NEW.user_id;
END;

CREATE TRIGGER holds_lease_charge AFTER INSERT ON holds WHEN NEW.lease_id IS NOT NULL
BEGIN
  UPDATE holds SET amount = MAX(amount - NEW.amount, 0) WHERE id = NEW.lease_id AND state = 'open';
END;

-- Credit taken away (a negative adjustment, a refund, expiry) revokes the
-- user's leases in the same transaction: a revoked lease stays open and
-- counted in users.held (calls may still be open on it), but takes no new
-- hold; its holder learns of it at its next renewal (within HUB_CACHE_TTL)
-- and returns it once its calls have ended.
ALTER TABLE holds ADD COLUMN revoked_at INTEGER;
CREATE TRIGGER ledger_revokes_leases AFTER INSERT ON ledger WHEN NEW.amount < 0 AND NEW.kind <> 'usage'
BEGIN
  UPDATE holds SET revoked_at = NEW.created_at
  WHERE user_id = NEW.user_id AND kind = 'lease' AND state = 'open' AND revoked_at IS NULL;
END;
