//! Credit leases at the Hub's level: taking a lease when a call's hold
//! finds none that covers it, and the upkeep that renews leases in use and
//! returns idle ones (the in-memory side is `metering::lease`).

use super::Hub;
use crate::metering::lease::LeaseId;
use crate::metering::money::Credits;
use crate::ports::DbError;
use crate::store::Store;

impl Hub {
    /// Holds `amount` for a call from this instance's lease on the user's
    /// balance, taking a new lease when the current one cannot cover it:
    /// one conditional write, which callers for the same user wait on
    /// rather than each taking one. None: leases are off, or half the
    /// user's free balance cannot cover the call (the caller then places a
    /// hold row of its own, which may still fit).
    pub(crate) async fn hold_from_lease(&self, user: &str, amount: Credits) -> Result<Option<LeaseId>, DbError> {
        let Some(book) = self.leases() else { return Ok(None) };
        let need = amount.nanos();
        if let Some(id) = book.try_hold(user, need, self.now_ms()) {
            return Ok(Some(id));
        }
        let lock = book.acquire_lock(user);
        let _turn = lock.lock().await;
        let now = self.now_ms();
        if let Some(id) = book.try_hold(user, need, now) {
            return Ok(Some(id));
        }
        let ask = book.ask(user, need);
        let id: LeaseId = self.new_id("lse").into();
        let expires_at = now.saturating_add(book.policy().ttl_ms);
        let taken = self
            .store()
            .take_lease(&id, user, ask.want, ask.least, now, expires_at)
            .await?;
        let Some(leased) = taken else {
            // Near the end of the balance: the call holds a row of its own,
            // with what this instance's lease still has free given back to it.
            if let Some((lease, left)) = book.take_leftover(user) {
                self.store().shrink_lease(&lease, left).await?;
            }
            return Ok(None);
        };
        tracing::debug!(user, lease = %id, leased, "credit lease taken");
        book.install(user, id, leased, expires_at, now);
        Ok(book.try_hold(user, need, now))
    }

    /// How often the upkeep should run (None: no leases): a lease in use is
    /// renewed, and so checked, at least every `HUB_CACHE_TTL`.
    pub fn lease_upkeep_every_ms(&self) -> Option<u64> {
        self.leases().map(|b| b.policy().upkeep_every_ms() as u64)
    }

    /// Renews the leases in use that are due, and returns those idle or
    /// drained (one write each at most; nothing when nothing is due). A
    /// lease the renewal no longer finds open (a negative adjustment or a
    /// refund revoked it, or it expired) stops taking holds here.
    pub async fn lease_upkeep(&self) -> Result<(), DbError> {
        let Some(book) = self.leases() else { return Ok(()) };
        let now = self.now_ms();
        let due = book.upkeep(now);
        if !due.release.is_empty() {
            let ids: Vec<&str> = due.release.iter().map(|id| &**id).collect();
            self.store().commit(vec![Store::release_leases_stmt(&ids, now)]).await?;
            tracing::debug!(leases = ids.len(), "idle credit leases returned");
        }
        if !due.renew.is_empty() {
            let ids: Vec<&str> = due.renew.iter().map(|id| &**id).collect();
            let expires_at = now.saturating_add(book.policy().ttl_ms);
            let alive = self.store().renew_leases(&ids, expires_at).await?;
            if alive.len() < ids.len() {
                tracing::warn!(
                    lost = ids.len() - alive.len(),
                    "credit leases no longer open in the database (revoked or expired); they take no more holds"
                );
            }
            book.renewed(&due.renew, &alive, expires_at);
        }
        Ok(())
    }

    /// Returns every lease this instance holds (at shutdown, once its
    /// settlements are committed).
    pub async fn return_leases(&self) -> Result<usize, DbError> {
        let Some(book) = self.leases() else { return Ok(0) };
        let all = book.all();
        if all.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = all.iter().map(|id| &**id).collect();
        self.store()
            .commit(vec![Store::release_leases_stmt(&ids, self.now_ms())])
            .await?;
        Ok(ids.len())
    }
}
