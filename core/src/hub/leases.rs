//! The Hub's credit leases: a call's hold from the user's lease (this
//! instance's `Lessee`, or the user's wallet), what the lease's holder is
//! told when the call ends, and the upkeep of this instance's leases.

use super::Hub;
use crate::metering::lease::LeaseId;
use crate::metering::money::Credits;
use crate::ports::DbError;

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
