//! Credit leases in the database: a lease is a hold of kind `lease`
//! (migration 0021), taken and renewed by conditional writes, charged by
//! its calls' settlements, released like any hold.

use super::{rows, Store};
use crate::metering::money::Credits;

/// What a lease is asked for (see [`Store::take_lease`]).
#[derive(Debug, Clone, Copy)]
pub struct LeaseTerms {
    pub want: i64,
    pub least: i64,
    pub now_ms: i64,
    pub expires_at: i64,
    pub usable_until: i64,
}
use crate::ports::{DbError, Stmt};
use crate::sql;

impl Store {
    /// Takes a lease of `want` credit (in nanos) for `user`, cut to half the
    /// user's free balance (the balance less open holds, leases included,
    /// and less credit past its expiry), and only if that half covers
    /// `least`: one conditional INSERT, so concurrent leases and holds from
    /// every instance serialize and never exceed the balance. Not taken when
    /// credit of the user's expires before `usable_until` (the lease could
    /// hold it). Returns the amount leased and when the user's soonest
    /// credit expires (`i64::MAX`: none does), after which the lease takes
    /// no new hold; or None.
    pub async fn take_lease(
        &self,
        lease_id: &str,
        user_id: &str,
        ask: LeaseTerms,
    ) -> Result<Option<(i64, i64)>, DbError> {
        let r = self
            .db
            .write_returning(sql!(
                "INSERT INTO holds (id, user_id, amount, state, created_at, expires_at, kind)
                 SELECT ?1, ?2, MIN(?3, f.free / 2), 'open', ?5, ?6, 'lease'
                 FROM (SELECT balance - held
                         - (SELECT COALESCE(SUM(remaining), 0) FROM credit_buckets
                            WHERE user_id = ?2 AND remaining > 0 AND expires_at <= ?5) AS free,
                         (SELECT MIN(expires_at) FROM credit_buckets
                            WHERE user_id = ?2 AND remaining > 0 AND expires_at > ?5) AS stop
                       FROM users WHERE id = ?2) AS f
                 WHERE f.free / 2 >= ?4 AND (f.stop IS NULL OR f.stop > ?7)
                 RETURNING amount,
                   (SELECT MIN(expires_at) FROM credit_buckets
                    WHERE user_id = ?2 AND remaining > 0 AND expires_at > ?5) AS stop_at",
                lease_id,
                user_id,
                ask.want,
                ask.least,
                ask.now_ms,
                ask.expires_at,
                ask.usable_until
            ))
            .await?;
        let leased = rows(&r)
            .next()
            .map(|row| (row.i64("amount"), row.opt_i64("stop_at").unwrap_or(i64::MAX)));
        Ok(leased)
    }

    /// Pushes the expiry of these open leases back to `expires_at`; returns
    /// the ones still open, with what their rows reserve and whether credit
    /// taken away revoked them (a lease missing has expired).
    pub async fn renew_leases(&self, ids: &[&str], expires_at: i64) -> Result<Vec<(String, i64, bool)>, DbError> {
        let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        let r = self
            .db
            .write_returning(sql!(
                "UPDATE holds SET expires_at = ?1
                 WHERE state = 'open' AND kind = 'lease' AND id IN (SELECT value FROM json_each(?2))
                 RETURNING id, amount, revoked_at IS NOT NULL AS revoked",
                expires_at,
                list
            ))
            .await?;
        Ok(rows(&r)
            .map(|row| (row.str("id"), row.i64("amount"), row.bool("revoked")))
            .collect())
    }

    /// Takes `left` off a lease's row (its free part, given up).
    pub async fn shrink_lease(&self, lease_id: &str, left: i64) -> Result<(), DbError> {
        self.db
            .execute(sql!(
                "UPDATE holds SET amount = amount - ?2 WHERE id = ?1 AND state = 'open' AND amount >= ?2",
                lease_id,
                left
            ))
            .await
            .map(drop)
    }

    /// Cuts a (revoked) lease's row down to `need`: what its open calls
    /// hold and its uncommitted charges will take.
    pub async fn shrink_lease_to(&self, lease_id: &str, need: i64) -> Result<(), DbError> {
        self.db
            .execute(sql!(
                "UPDATE holds SET amount = ?2 WHERE id = ?1 AND state = 'open' AND amount > ?2",
                lease_id,
                need.max(0)
            ))
            .await
            .map(drop)
    }

    /// Returns leases: what is left of them is free again.
    pub fn release_leases_stmt(ids: &[&str], now_ms: i64) -> Stmt {
        let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        sql!(
            "UPDATE holds SET state = 'released', closed_at = ?1
             WHERE state = 'open' AND kind = 'lease' AND id IN (SELECT value FROM json_each(?2))",
            now_ms,
            list
        )
    }

    /// A call served from `lease_id`, settled: its hold row, closed as it is
    /// written, carries the charge, and the `holds_lease_charge` trigger
    /// takes it off the lease. Idempotent per call id (a retried
    /// settlement charges the lease once).
    pub fn lease_charge_stmt(call_id: &str, user_id: &str, lease_id: &str, charge: Credits, now_ms: i64) -> Stmt {
        sql!(
            "INSERT OR IGNORE INTO holds (id, user_id, amount, state, created_at, expires_at, closed_at, kind, lease_id)
             VALUES (?1, ?2, ?3, 'settled', ?5, ?5, ?5, 'call', ?4)",
            call_id,
            user_id,
            charge.nanos().max(0),
            lease_id,
            now_ms
        )
    }

    /// Releases one user's holds and leases past their expiry (before
    /// refusing them a hold: a dead instance's lease is not left to the sweep).
    pub async fn expire_user_holds(&self, user_id: &str, now_ms: i64) -> Result<u64, DbError> {
        self.db
            .execute(sql!(
                "UPDATE holds SET state = 'expired', closed_at = ?2
                 WHERE user_id = ?1 AND state = 'open' AND expires_at <= ?2",
                user_id,
                now_ms
            ))
            .await
    }
}
