//! The holder of credit leases: a lease book and the database its leases
//! are rows in (the in-memory side is `metering::lease`; the Hub's use of
//! it is `hub::leases`).

use crate::metering::lease::{LeaseBook, LeaseId, LeasePolicy, NoLease};
use crate::metering::money::Credits;
use crate::ports::DbError;
use crate::store::{LeaseTerms, Store};

/// A lease being taken. Dropped before the database answered (its caller
/// left mid-write) or after an error (the answer may be what was lost), it
/// orphans the lease: the next upkeep releases the row if it was written,
/// rather than leave it reserved for a TTL.
struct Taking<'a> {
    book: &'a LeaseBook,
    id: Option<LeaseId>,
}

impl Drop for Taking<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.book.orphan(id);
        }
    }
}

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

    /// Holds `amount` for `call` from the user's lease, taking a new lease
    /// (id from `new_id`) when the current one cannot cover it: one
    /// conditional write, which callers for the same user wait on rather
    /// than each taking one (if it fails to reach the database, those
    /// waiting fail at once). None: half the user's free balance cannot
    /// cover a lease (near the end of the balance, or credit of theirs
    /// expires soon), and what the current lease had free is given back:
    /// the call holds a row of its own.
    pub async fn hold(
        &self,
        user: &str,
        call: &str,
        amount: Credits,
        ttl_ms: i64,
        now: impl Fn() -> i64,
        new_id: impl FnOnce() -> String,
    ) -> Result<Option<LeaseId>, DbError> {
        let book = &self.book;
        let need = amount.nanos();
        if let Some(id) = book.try_hold(user, call, need, ttl_ms, now()) {
            return Ok(Some(id));
        }
        // Its caller gave up on it already (a lost answer was cancelled).
        if book.is_cancelled(user, call) {
            return Ok(None);
        }
        let lock = book.acquire_lock(user);
        let _turn = lock.lock().await;
        let at = now();
        if let Some(id) = book.try_hold(user, call, need, ttl_ms, at) {
            return Ok(Some(id));
        }
        match book.recent_refusal(user, at) {
            Some(NoLease::Unreachable) => {
                return Err(DbError::Unavailable("the database did not answer a moment ago".into()))
            }
            Some(NoLease::TooLittle) => return Ok(None),
            None => {}
        }
        let ask = book.ask(user, need);
        // Credit taken away while the lease is taken may have revoked it.
        let revocations = book.revocations(user);
        let id: LeaseId = new_id().into();
        let policy = book.policy();
        let expires_at = at.saturating_add(policy.ttl_ms);
        let terms = LeaseTerms {
            want: ask.want,
            least: ask.least,
            now_ms: at,
            expires_at,
            usable_until: at.saturating_add(policy.margin_ms()),
        };
        let mut taking = Taking {
            book,
            id: Some(id.clone()),
        };
        let taken = match self.store.take_lease(&id, user, terms).await {
            Ok(t) => t,
            Err(e) => {
                // Its answer may be what was lost: `taking` orphans it.
                book.note_attempt(user, Some(NoLease::Unreachable), now());
                return Err(e);
            }
        };
        // The database answered: the lease is installed below, or none was taken.
        taking.id = None;
        let Some((leased, stop_at)) = taken else {
            book.note_attempt(user, Some(NoLease::TooLittle), at);
            if let Some((lease, left)) = book.take_leftover(user) {
                self.store.shrink_lease(&lease, left).await?;
            }
            return Ok(None);
        };
        book.note_attempt(user, None, at);
        tracing::debug!(user, lease = %id, leased, "credit lease taken");
        // The clock read again: a slow write leaves the lease less life.
        let after = now();
        book.install(user, id, leased, expires_at, stop_at, after, revocations);
        Ok(book.try_hold(user, call, need, ttl_ms, after))
    }

    /// Renews the leases in use that are due, and returns those idle or
    /// drained (one write each at most; nothing when nothing is due). A
    /// lease the renewal finds revoked (credit taken away) drains; one it
    /// no longer finds open (expired) is forgotten.
    pub async fn upkeep(&self, now: i64) -> Result<(), DbError> {
        let due = self.book.upkeep(now);
        // Forgotten here already: a row not released expires on its own.
        match self.release(&due.release, now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(leases = n, "idle credit leases returned"),
            Err(e) => tracing::warn!("idle credit leases not returned (they expire): {e}"),
        }
        if !due.renew.is_empty() {
            let ids: Vec<&str> = due.renew.iter().map(|id| &**id).collect();
            let expires_at = now.saturating_add(self.book.policy().ttl_ms);
            let alive = self.store.renew_leases(&ids, expires_at).await?;
            if alive.len() < ids.len() {
                tracing::warn!(
                    lost = ids.len() - alive.len(),
                    "credit leases no longer open in the database (expired); they take no more holds"
                );
            }
            // Revoked leases give back at once what their calls do not need.
            for (lease, need) in self.book.renewed(&due.renew, &alive, expires_at) {
                self.store.shrink_lease_to(&lease, need).await?;
            }
        }
        Ok(())
    }

    /// The user's credit was taken away, revoking their leases in the
    /// database: they take no more holds here (without waiting for the
    /// renewal that would find them revoked), and are returned once the
    /// calls open on them have ended.
    pub fn revoke(&self, user: &str) {
        let n = self.book.drain(user);
        tracing::debug!(user, leases = n, "credit leases revoked");
    }

    /// Returns the leases no call depends on any more (at shutdown, once
    /// the settlements are in); the others expire after their TTL.
    pub async fn return_all(&self, now: i64) -> Result<usize, DbError> {
        self.release(&self.book.take_idle(), now).await
    }

    /// Releases the rows of leases already taken out of the book (one
    /// write, none for no lease); returns how many.
    async fn release(&self, leases: &[LeaseId], now: i64) -> Result<usize, DbError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = leases.iter().map(|id| &**id).collect();
        self.store.commit(vec![Store::release_leases_stmt(&ids, now)]).await?;
        Ok(ids.len())
    }
}
