//! The Hub's credit leases: a call's hold from the user's lease (this
//! instance's `Lessee`, or the user's wallet), what the lease's holder is
//! told when the call ends, and the upkeep of this instance's leases.

use super::Hub;
use crate::metering::lease::{LeaseCharge, LeaseId};
use crate::metering::money::Credits;
use crate::ports::{BoxFuture, DbError};

/// Attempts at telling a wallet a call ended: a close that never arrives
/// keeps the call's hold on the lease until the wallet lets the lease go.
const CLOSE_ATTEMPTS: u32 = 4;

impl Hub {
    /// Holds `amount` for a call from the user's lease: in their wallet when
    /// this Hub has wallets, else from this instance's lease (None: leases
    /// are off, or the call must hold a row).
    pub(crate) async fn hold_from_lease(
        &self,
        user: &str,
        call: &str,
        amount: Credits,
        ttl_ms: i64,
    ) -> Result<Option<LeaseId>, DbError> {
        if let Some(wallets) = self.wallets() {
            return wallets.hold(user, call, amount, ttl_ms).await;
        }
        let Some(lessee) = self.lessee() else { return Ok(None) };
        lessee
            .hold(user, call, amount, ttl_ms, || self.now_ms(), || self.new_id("lse"))
            .await
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
        call: &str,
        charge: Credits,
    ) -> Option<LeaseCharge> {
        let queued = charge > Credits::ZERO;
        let pending = LeaseCharge {
            user: user.to_string(),
            lease,
            call: call.to_string(),
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
        // Only a call this book holds open is charged here, and told once.
        let ended = book.close(user, Some(&pending.lease), call, charge.nanos(), queued);
        (ended && queued).then_some(pending)
    }

    /// A call's charge on a lease committed.
    pub(crate) async fn lease_charge_committed(&self, c: LeaseCharge) {
        if self.wallets().is_some() {
            self.close_in_wallet(c).await;
        } else if let Some(book) = self.leases() {
            book.committed(&c.user, &c.lease, c.charge.nanos());
        }
    }

    /// Tells the user's wallet that a hold it may have placed for `call` is
    /// not wanted (its answer never arrived): a no-op if it placed none.
    pub(crate) fn cancel_in_wallet(&self, user: &str, call: &str) {
        if self.wallets().is_none() {
            return;
        }
        let hub = self.clone();
        let (user, call) = (user.to_string(), call.to_string());
        self.background().spawn(Box::pin(async move {
            if let Some(wallets) = hub.wallets() {
                if let Err(e) = wallets.close(&user, None, &call, Credits::ZERO).await {
                    tracing::warn!(
                        user,
                        call,
                        "could not cancel a wallet hold (it lapses after an hour): {e}"
                    );
                }
            }
        }));
    }

    /// Tells the user's wallet a call ended, retrying a few times.
    async fn close_in_wallet(&self, c: LeaseCharge) {
        let Some(wallets) = self.wallets() else { return };
        let mut wait_ms = 100;
        for attempt in 1..=CLOSE_ATTEMPTS {
            // A close is applied once per call, so retrying one that did land is harmless.
            match wallets.close(&c.user, Some(&c.lease), &c.call, c.charge).await {
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
    /// database): this instance's leases, or their wallet's, stop serving
    /// holds now; other instances learn of it at their next renewal.
    pub(crate) async fn credit_taken(&self, user: &str) {
        if let Some(lessee) = self.lessee() {
            lessee.revoke(user);
        }
        if let Some(wallets) = self.wallets() {
            if let Err(e) = wallets.revoke(user).await {
                tracing::warn!(
                    user,
                    "the wallet did not take the revocation (it learns of it at its next renewal): {e}"
                );
            }
        }
    }

    /// The upkeep of this instance's leases, for ever (None: no leases): a
    /// lease in use renewed, and so checked, at least every `HUB_CACHE_TTL`,
    /// idle ones returned. `hub serve` runs it beside its server, Lambda
    /// beside each invocation's response.
    pub fn lease_upkeep_loop(&self) -> Option<BoxFuture> {
        let every = self.leases()?.policy().upkeep_every_ms() as u64;
        let hub = self.clone();
        Some(Box::pin(async move {
            loop {
                if let Err(e) = hub.lease_upkeep().await {
                    tracing::warn!("credit lease upkeep: {e}");
                }
                hub.background().sleep(every).await;
            }
        }))
    }

    /// Renews this instance's leases in use and returns idle ones, when due.
    async fn lease_upkeep(&self) -> Result<(), DbError> {
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
