//! Credit leases against the database: taking a lease when a call's hold
//! finds none that covers it, and the upkeep that renews leases in use and
//! returns idle ones (the in-memory side is `metering::lease`).

use super::Hub;
use crate::metering::lease::{LeaseBook, LeaseId, LeasePolicy};
use crate::metering::money::Credits;
use crate::ports::DbError;
use crate::store::Store;

/// A holder of credit leases: the lease book and the database its leases
/// are rows in. `hub serve` and Lambda keep one per process; a Worker's
/// wallet (one Durable Object per user) keeps one for its user.
pub struct Lessee {
    store: Store,
    book: LeaseBook,
}

impl Lessee {
    pub fn new(store: Store, policy: LeasePolicy) -> Lessee {
        Lessee {
            store,
            book: LeaseBook::new(policy),
        }
    }

    pub fn book(&self) -> &LeaseBook {
        &self.book
    }

    /// Holds `amount` for a call from the user's lease, taking a new lease
    /// (id from `new_id`) when the current one cannot cover it: one
    /// conditional write, which callers for the same user wait on rather
    /// than each taking one. None: half the user's free balance cannot
    /// cover a lease (near the end of the balance), and what the current
    /// lease had free is given back: the call holds a row of its own.
    pub async fn hold(
        &self,
        user: &str,
        amount: Credits,
        now: impl Fn() -> i64,
        new_id: impl FnOnce() -> String,
    ) -> Result<Option<LeaseId>, DbError> {
        let book = &self.book;
        let need = amount.nanos();
        if let Some(id) = book.try_hold(user, need, now()) {
            return Ok(Some(id));
        }
        let lock = book.acquire_lock(user);
        let _turn = lock.lock().await;
        let at = now();
        if let Some(id) = book.try_hold(user, need, at) {
            return Ok(Some(id));
        }
        let ask = book.ask(user, need);
        let id: LeaseId = new_id().into();
        let expires_at = at.saturating_add(book.policy().ttl_ms);
        let taken = self
            .store
            .take_lease(&id, user, ask.want, ask.least, at, expires_at)
            .await?;
        let Some(leased) = taken else {
            if let Some((lease, left)) = book.take_leftover(user) {
                self.store.shrink_lease(&lease, left).await?;
            }
            return Ok(None);
        };
        tracing::debug!(user, lease = %id, leased, "credit lease taken");
        book.install(user, id, leased, expires_at, at);
        Ok(book.try_hold(user, need, at))
    }

    /// Renews the leases in use that are due, and returns those idle or
    /// drained (one write each at most; nothing when nothing is due). A
    /// lease the renewal no longer finds open (a negative adjustment or a
    /// refund revoked it, or it expired) stops taking holds.
    pub async fn upkeep(&self, now: i64) -> Result<(), DbError> {
        let due = self.book.upkeep(now);
        if !due.release.is_empty() {
            let ids: Vec<&str> = due.release.iter().map(|id| &**id).collect();
            self.store.commit(vec![Store::release_leases_stmt(&ids, now)]).await?;
            tracing::debug!(leases = ids.len(), "idle credit leases returned");
        }
        if !due.renew.is_empty() {
            let ids: Vec<&str> = due.renew.iter().map(|id| &**id).collect();
            let expires_at = now.saturating_add(self.book.policy().ttl_ms);
            let alive = self.store.renew_leases(&ids, expires_at).await?;
            if alive.len() < ids.len() {
                tracing::warn!(
                    lost = ids.len() - alive.len(),
                    "credit leases no longer open in the database (revoked or expired); they take no more holds"
                );
            }
            self.book.renewed(&due.renew, &alive, expires_at);
        }
        Ok(())
    }

    /// The user's credit was taken away, revoking their leases in the
    /// database: they take no more holds here (without waiting for the
    /// renewal that would find them gone).
    pub fn revoke(&self, user: &str) {
        let n = self.book.forget(user);
        tracing::debug!(user, leases = n, "credit leases revoked");
    }

    /// Returns every lease held (at shutdown, once the settlements are in).
    pub async fn return_all(&self, now: i64) -> Result<usize, DbError> {
        let all = self.book.all();
        if all.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = all.iter().map(|id| &**id).collect();
        self.store.commit(vec![Store::release_leases_stmt(&ids, now)]).await?;
        Ok(ids.len())
    }
}

/// A call held on a lease whose charge is being committed: what the lease's
/// holder is told once it is in ([`Hub::lease_charge_committed`]).
pub(crate) struct LeaseCharge {
    pub user: String,
    pub lease: LeaseId,
    pub hold: Credits,
    pub charge: Credits,
}

/// Attempts at telling a wallet a call ended: a close that never arrives
/// keeps the call's hold on the lease until the wallet lets the lease go.
const CLOSE_ATTEMPTS: u32 = 4;

impl Hub {
    /// Holds `amount` for a call from the user's lease: in their wallet when
    /// this Hub has wallets, else from this instance's lease (None: leases
    /// are off, or the call must hold a row).
    pub(crate) async fn hold_from_lease(&self, user: &str, amount: Credits) -> Result<Option<LeaseId>, DbError> {
        if let Some(wallets) = self.wallets() {
            return wallets.hold(user, amount).await;
        }
        let Some(lessee) = self.lessee() else { return Ok(None) };
        lessee.hold(user, amount, || self.now_ms(), || self.new_id("lse")).await
    }

    /// A call held on `lease` ended, charged `charge`. This instance's lease
    /// book takes it at once (and learns when the charge commits); a wallet
    /// is told only once the charge is committed, so it never returns a
    /// lease whose charge is not in the database yet. Returns what to tell
    /// after the settlement commits (None: nothing, or told already).
    pub(crate) fn lease_call_ended(
        &self,
        user: &str,
        lease: LeaseId,
        hold: Credits,
        charge: Credits,
    ) -> Option<LeaseCharge> {
        let queued = charge > Credits::ZERO;
        let pending = LeaseCharge {
            user: user.to_string(),
            lease,
            hold,
            charge,
        };
        if self.wallets().is_some() {
            if queued {
                return Some(pending);
            }
            let hub = self.clone();
            self.background()
                .spawn(Box::pin(async move { hub.close_in_wallet(pending).await }));
            return None;
        }
        let book = self.leases()?;
        book.close(user, &pending.lease, hold.nanos(), charge.nanos(), queued);
        queued.then_some(pending)
    }

    /// A call's charge on a lease committed.
    pub(crate) async fn lease_charge_committed(&self, c: LeaseCharge) {
        if self.wallets().is_some() {
            self.close_in_wallet(c).await;
        } else if let Some(book) = self.leases() {
            book.committed(&c.user, &c.lease);
        }
    }

    /// Tells the user's wallet a call ended, retrying a few times.
    async fn close_in_wallet(&self, c: LeaseCharge) {
        let Some(wallets) = self.wallets() else { return };
        let mut wait_ms = 100;
        for attempt in 1..=CLOSE_ATTEMPTS {
            match wallets.close(&c.user, &c.lease, c.hold, c.charge).await {
                Ok(()) => return,
                Err(e) if attempt == CLOSE_ATTEMPTS => {
                    tracing::error!(user = %c.user, lease = %c.lease, "could not tell the wallet a call ended: {e}")
                }
                Err(_) => {
                    self.background().sleep(wait_ms).await;
                    wait_ms *= 4;
                }
            }
        }
    }

    /// Credit was taken from `user` (committed, revoking their leases in the
    /// database): their wallet stops serving holds from those leases now.
    /// Without wallets, an instance learns of it at its next renewal.
    pub(crate) async fn credit_taken(&self, user: &str) {
        if let Some(wallets) = self.wallets() {
            if let Err(e) = wallets.revoke(user).await {
                tracing::warn!(
                    user,
                    "the wallet did not take the revocation (it learns of it at its next renewal): {e}"
                );
            }
        }
    }

    /// How often the upkeep should run (None: no leases): a lease in use is
    /// renewed, and so checked, at least every `HUB_CACHE_TTL`.
    pub fn lease_upkeep_every_ms(&self) -> Option<u64> {
        self.leases().map(|b| b.policy().upkeep_every_ms() as u64)
    }

    /// Renews this instance's leases in use and returns idle ones, when due.
    pub async fn lease_upkeep(&self) -> Result<(), DbError> {
        match self.lessee() {
            Some(lessee) => lessee.upkeep(self.now_ms()).await,
            None => Ok(()),
        }
    }

    /// Returns every lease this instance holds (at shutdown, once its
    /// settlements are committed).
    pub async fn return_leases(&self) -> Result<usize, DbError> {
        match self.lessee() {
            Some(lessee) => lessee.return_all(self.now_ms()).await,
            None => Ok(0),
        }
    }
}
