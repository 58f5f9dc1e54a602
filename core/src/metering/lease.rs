//! Credit leases: what an instance on a shared database keeps in memory of
//! the credit it reserved for each user ([`crate::hub::leases`] takes,
//! renews and returns the leases in the database).
//!
//! A lease is a hold row of kind `lease` on the user's balance, placed by
//! the same conditional write as any hold, so the leases and holds of every
//! instance together never exceed the balance. This book serves the user's
//! calls from it under a mutex, without a database round trip:
//!
//! * a call's hold takes from the lease's free part (`amount - held`);
//! * its settlement takes the charge off the lease here at once, and in the
//!   database when the settlement commits (a trigger takes it off the lease
//!   row), so the row never reserves less than this book believes it does;
//! * a lease is used for new holds only while its expiry is more than a
//!   third of the TTL away (renewals keep it there while it is in use);
//! * a lease idle for a check (`HUB_CACHE_TTL`, at most a third of the
//!   TTL), with no call open on it and every charge committed, is
//!   returned: until then its row may still have to absorb a charge in
//!   flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A lease row's id (`lse_…`).
pub type LeaseId = Arc<str>;

/// How long leases live and how they are sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasePolicy {
    /// A lease row's lifetime from its last renewal: what a dead instance
    /// can keep locked, and for how long.
    pub ttl_ms: i64,
    /// The longest a lease in use goes without asking the database whether
    /// it still stands (a revocation reaches this instance within it).
    pub check_ms: i64,
}

impl LeasePolicy {
    /// A policy for leases of `ttl_ms`, checked at least every `check_ms`
    /// (and at least three times in a lease's life).
    pub fn new(ttl_ms: i64, check_ms: i64) -> LeasePolicy {
        LeasePolicy {
            ttl_ms,
            check_ms: check_ms.clamp(1, ttl_ms / 3),
        }
    }

    /// How often the upkeep runs: a lease in use is renewed every half
    /// check, so no more than a check passes between two.
    pub fn upkeep_every_ms(&self) -> i64 {
        (self.check_ms / 2).max(100)
    }

    /// A lease takes new holds only while it has this much life left.
    pub fn margin_ms(&self) -> i64 {
        self.ttl_ms / 3
    }

    /// Renewed once it has less than this much life left: half a check
    /// after its last renewal.
    fn renew_below_ms(&self) -> i64 {
        self.ttl_ms - self.check_ms / 2
    }

    /// Returned after this long without a hold: a check.
    fn idle_ms(&self) -> i64 {
        self.check_ms
    }
}

/// A lease to take: `want` if half the user's free balance allows, and
/// none unless that half covers `least`: near the end of a balance each
/// call holds a row of its own, so leases never strand the last calls'
/// credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseAsk {
    pub want: i64,
    pub least: i64,
}

/// Why taking a lease came to nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoLease {
    /// The database could not be reached.
    Unreachable,
    /// Half the free balance could not cover one.
    TooLittle,
}

/// A lease is taken only while half the free balance covers this many
/// holds of the call asking.
const LEAST_HOLDS: i64 = 4;
/// A lease is sized at least this many holds of the call asking.
const FLOOR_HOLDS: i64 = 8;

/// How long a cancelled call is remembered (a hold for it arriving after
/// its cancel is refused).
const CANCELLED_KEPT_MS: i64 = 600_000;

/// A call held on a lease whose charge is being committed: what the lease's
/// holder is told once it is in (`Hub::lease_charge_committed`).
pub(crate) struct LeaseCharge {
    pub user: String,
    pub lease: LeaseId,
    pub call: String,
    pub charge: crate::metering::money::Credits,
}

#[derive(Debug)]
struct Lease {
    id: LeaseId,
    /// What the row reserves, as far as this instance's charges go.
    amount: i64,
    /// Held by calls open on it.
    held: i64,
    /// The calls open on it: what each holds and when its hold expires
    /// (the hold TTL, as a hold row's). Keyed by call id, so a call's end
    /// is applied once however often it is told.
    calls: HashMap<String, (i64, i64)>,
    /// Charges queued to the database, not yet committed: how many, and
    /// their sum (the row still counts them).
    unsettled: u32,
    unsettled_charge: i64,
    /// Calls given up on at their hold TTL without their end heard of:
    /// if it comes after all, its charge is still taken off the lease, as
    /// the settlement takes it off the row.
    reaped: std::collections::HashSet<String>,
    expires_at: i64,
    /// No new hold from it at or after this (credit of the user's expires
    /// then; `i64::MAX`: none does).
    stop_at: i64,
    last_used: i64,
}

impl Lease {
    fn idle(&self) -> bool {
        self.calls.is_empty() && self.unsettled == 0
    }

    /// Ends a call on the lease; false when it is not open here (nor was
    /// it given up on at its hold TTL).
    fn end(&mut self, call: &str, charge: i64, queued: bool) -> bool {
        match self.calls.remove(call) {
            Some((hold, _)) => self.held = (self.held - hold).max(0),
            None if self.reaped.remove(call) => {}
            None => return false,
        }
        self.amount = (self.amount - charge.max(0)).max(0);
        if queued {
            self.unsettled += 1;
            self.unsettled_charge += charge.max(0);
        }
        true
    }
}

/// One user's leases: the one taking holds, and older ones kept until their
/// calls settle.
#[derive(Default)]
struct UserLeases {
    active: Option<Lease>,
    draining: Vec<Lease>,
    /// Credit held in this and the previous TTL window, to size the next lease.
    window_start: i64,
    this_window: i64,
    last_window: i64,
    /// One lease taken at a time per user: callers queue behind it.
    acquire: Arc<futures_util::lock::Mutex<()>>,
    /// How and when taking a lease last came to nothing: callers meanwhile
    /// are answered without asking the database again.
    refused: Option<(NoLease, i64)>,
    /// Calls cancelled before their hold arrived (a lost answer), and when.
    cancelled: HashMap<String, i64>,
    /// How many times credit was taken from the user: a lease whose take
    /// saw this change was possibly revoked before it was installed.
    revocations: u64,
}

impl UserLeases {
    fn find(&mut self, id: &str) -> Option<&mut Lease> {
        self.active
            .iter_mut()
            .chain(self.draining.iter_mut())
            .find(|l| &*l.id == id)
    }

    /// Takes out the leases nothing depends on: drained ones, and the
    /// active one once unused for `idle_ms` at `now`.
    fn take_idle(&mut self, now: i64, idle_ms: i64) -> Vec<LeaseId> {
        let mut out = Vec::new();
        if self
            .active
            .as_ref()
            .is_some_and(|l| l.idle() && now.saturating_sub(l.last_used) >= idle_ms)
        {
            out.extend(self.active.take().map(|l| l.id));
        }
        let (done, keep): (Vec<Lease>, Vec<Lease>) = self.draining.drain(..).partition(Lease::idle);
        out.extend(done.into_iter().map(|l| l.id));
        self.draining = keep;
        out
    }

    fn count_spend(&mut self, amount: i64, now: i64, window: i64) {
        if now - self.window_start >= window {
            self.last_window = if now - self.window_start >= 2 * window {
                0
            } else {
                self.this_window
            };
            self.this_window = 0;
            self.window_start = now;
        }
        self.this_window = self.this_window.saturating_add(amount);
    }
}

/// What the periodic upkeep must do in the database.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Upkeep {
    /// Leases in use whose expiry must be pushed back.
    pub renew: Vec<LeaseId>,
    /// Leases no longer needed, already forgotten here: release their rows.
    pub release: Vec<LeaseId>,
}

pub struct LeaseBook {
    policy: LeasePolicy,
    users: Mutex<HashMap<String, UserLeases>>,
    /// Leases whose take was abandoned midway (its caller left, or its
    /// answer was lost): the row may exist; the next upkeep releases it.
    orphans: Mutex<Vec<LeaseId>>,
}

impl LeaseBook {
    pub fn new(policy: LeasePolicy) -> LeaseBook {
        LeaseBook {
            policy,
            users: Mutex::new(HashMap::new()),
            orphans: Mutex::new(Vec::new()),
        }
    }

    /// A lease that may have been taken in the database but will never be
    /// installed here: released at the next upkeep (a no-op if it was not).
    pub fn orphan(&self, id: LeaseId) {
        self.orphans.lock().unwrap_or_else(|p| p.into_inner()).push(id);
    }

    fn take_orphans(&self) -> Vec<LeaseId> {
        std::mem::take(&mut *self.orphans.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn policy(&self) -> LeasePolicy {
        self.policy
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, UserLeases>) -> T) -> T {
        let mut guard = self.users.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Holds `amount` for `call` from the user's active lease if it covers
    /// it, has life enough left and its credit has not begun to expire;
    /// returns the lease it came from.
    pub fn try_hold(&self, user: &str, call: &str, amount: i64, ttl_ms: i64, now: i64) -> Option<LeaseId> {
        let margin = self.policy.margin_ms();
        let window = self.policy.ttl_ms;
        self.with(|users| {
            let u = users.get_mut(user)?;
            // Its caller gave up on it (a lost answer) while it waited.
            if u.cancelled.contains_key(call) {
                return None;
            }
            let lease = u.active.as_mut()?;
            let usable = lease.expires_at - now > margin && now < lease.stop_at;
            if !usable || lease.amount - lease.held < amount || amount < 0 || lease.calls.contains_key(call) {
                return None;
            }
            lease.held += amount;
            lease
                .calls
                .insert(call.to_string(), (amount, now.saturating_add(ttl_ms)));
            lease.last_used = now;
            let id = lease.id.clone();
            u.count_spend(amount, now, window);
            Some(id)
        })
    }

    /// Why no lease should be asked for `user` now, if taking one came to
    /// nothing lately: the database did not answer (in the last second:
    /// callers queued behind it fail at once rather than each waiting its
    /// turn), or the free balance was too small for one (in the last
    /// check: near the end of a balance every call holds a row, without a
    /// failed lease write before each).
    pub fn recent_refusal(&self, user: &str, now: i64) -> Option<NoLease> {
        let check_ms = self.policy.check_ms;
        self.with(|users| {
            let (why, at) = users.get(user)?.refused?;
            let lasts = match why {
                NoLease::Unreachable => 1_000,
                NoLease::TooLittle => check_ms,
            };
            (now - at < lasts).then_some(why)
        })
    }

    /// Notes how taking a lease for `user` ended at `at` (None: one was taken).
    pub fn note_attempt(&self, user: &str, refused: Option<NoLease>, at: i64) {
        self.with(|users| users.entry(user.to_string()).or_default().refused = refused.map(|why| (why, at)))
    }

    /// The lock a caller takes before taking a lease for `user`.
    pub fn acquire_lock(&self, user: &str) -> Arc<futures_util::lock::Mutex<()>> {
        self.with(|users| users.entry(user.to_string()).or_default().acquire.clone())
    }

    /// The lease to ask for when the active one cannot cover `need`: twice
    /// what the user held in the last TTL, at least eight times `need`.
    pub fn ask(&self, user: &str, need: i64) -> LeaseAsk {
        let recent = self.with(|users| users.get(user).map_or(0, |u| u.this_window.max(u.last_window)));
        LeaseAsk {
            want: recent.saturating_mul(2).max(need.saturating_mul(FLOOR_HOLDS)),
            least: need.saturating_mul(LEAST_HOLDS),
        }
    }

    /// Gives up the free part of the user's active lease (here at once; the
    /// caller takes it off the row): when no new lease can be had, so a
    /// call holding a row of its own can use that credit.
    pub fn take_leftover(&self, user: &str) -> Option<(LeaseId, i64)> {
        self.with(|users| {
            let lease = users.get_mut(user)?.active.as_mut()?;
            let left = lease.amount - lease.held;
            (left > 0).then(|| {
                lease.amount -= left;
                (lease.id.clone(), left)
            })
        })
    }

    /// A lease just taken becomes the user's active one; the one it
    /// replaces drains (takes no new holds) until its calls settle. Taken
    /// before `revocations` (as [`LeaseBook::revocations`] read before the
    /// take) changed, it may be revoked already: it drains from the start
    /// (and, unused, is returned at the next upkeep).
    #[allow(clippy::too_many_arguments)]
    pub fn install(
        &self,
        user: &str,
        id: LeaseId,
        amount: i64,
        expires_at: i64,
        stop_at: i64,
        now: i64,
        revocations: u64,
    ) {
        self.with(|users| {
            let u = users.entry(user.to_string()).or_default();
            let fresh = Lease {
                id,
                amount,
                held: 0,
                calls: HashMap::new(),
                unsettled: 0,
                unsettled_charge: 0,
                reaped: Default::default(),
                expires_at,
                stop_at,
                last_used: now,
            };
            if u.revocations != revocations {
                u.draining.push(fresh);
            } else if let Some(old) = u.active.replace(fresh) {
                u.draining.push(old);
            }
        })
    }

    /// How many times credit was taken from `user` so far (see [`LeaseBook::install`]).
    pub fn revocations(&self, user: &str) -> u64 {
        self.with(|users| users.get(user).map_or(0, |u| u.revocations))
    }

    /// `call` ended (on `lease`, or on whichever of the user's leases holds
    /// it): its hold is given back and `charge` taken off the lease.
    /// `queued`: a charge was sent to the database ([`LeaseBook::committed`]
    /// follows once it commits). Told twice, or of a call it does not know,
    /// it changes nothing and returns false.
    pub fn close(&self, user: &str, lease: Option<&str>, call: &str, charge: i64, queued: bool) -> bool {
        self.with(|users| {
            users.get_mut(user).is_some_and(|u| {
                u.active
                    .iter_mut()
                    .chain(u.draining.iter_mut())
                    .filter(|l| lease.is_none_or(|id| &*l.id == id))
                    .any(|l| l.end(call, charge, queued))
            })
        })
    }

    /// A charge on `lease` committed.
    pub fn committed(&self, user: &str, lease: &str, charge: i64) {
        self.with(|users| {
            if let Some(l) = users.get_mut(user).and_then(|u| u.find(lease)) {
                l.unsettled = l.unsettled.saturating_sub(1);
                l.unsettled_charge = (l.unsettled_charge - charge.max(0)).max(0);
            }
        })
    }

    /// A call whose hold's answer was lost: ended if it is open (nothing
    /// charged), else remembered so a hold for it arriving later is refused.
    pub fn cancel(&self, user: &str, call: &str, now: i64) {
        self.with(|users| {
            let u = users.entry(user.to_string()).or_default();
            let ended = u
                .active
                .iter_mut()
                .chain(u.draining.iter_mut())
                .any(|l| l.end(call, 0, false));
            if !ended {
                u.cancelled.insert(call.to_string(), now);
            }
        })
    }

    /// Whether `call` was cancelled before its hold arrived.
    pub fn is_cancelled(&self, user: &str, call: &str) -> bool {
        self.with(|users| users.get(user).is_some_and(|u| u.cancelled.contains_key(call)))
    }

    /// What the upkeep must do now: renew leases in use that are past the
    /// renewal point, and release (forgetting them here first, so no hold
    /// takes from them meanwhile) leases idle or drained. Leases past their
    /// expiry are forgotten: their rows expire in the database, or already did.
    pub fn upkeep(&self, now: i64) -> Upkeep {
        let p = self.policy;
        let mut out = Upkeep {
            release: self.take_orphans(),
            ..Upkeep::default()
        };
        self.with(|users| {
            for u in users.values_mut() {
                for l in u.active.iter_mut().chain(u.draining.iter_mut()) {
                    let stale: Vec<String> = l
                        .calls
                        .iter()
                        .filter(|(_, (_, until))| now > *until)
                        .map(|(c, _)| c.clone())
                        .collect();
                    for call in stale {
                        tracing::warn!(call, lease = %l.id, "a call's end was never heard of: its hold goes back to the lease");
                        if let Some((hold, _)) = l.calls.remove(&call) {
                            l.held = (l.held - hold).max(0);
                            l.reaped.insert(call);
                        }
                    }
                }
                u.cancelled.retain(|_, at| now - *at < CANCELLED_KEPT_MS);
                u.draining.retain(|l| l.expires_at > now);
                if u.active.as_ref().is_some_and(|l| l.expires_at <= now) {
                    u.active = None;
                }
                out.release.extend(u.take_idle(now, p.idle_ms()));
                for l in u.active.iter().chain(u.draining.iter()) {
                    if l.expires_at - now < p.renew_below_ms() {
                        out.renew.push(l.id.clone());
                    }
                }
            }
        });
        out
    }

    /// The renewal of `asked` came back: the leases in `alive` (with their
    /// rows' amounts and whether credit taken away revoked them) now expire
    /// at `expires_at`; the others are gone (expired) and are forgotten. A
    /// revoked lease takes no new hold: it drains, and is returned once its
    /// calls have ended. Returns the revoked leases whose rows reserve more
    /// than their calls and uncommitted charges need, with that need: the
    /// rest is to be given back now (the credit was taken away).
    pub fn renewed(&self, asked: &[LeaseId], alive: &[(String, i64, bool)], expires_at: i64) -> Vec<(LeaseId, i64)> {
        let alive: HashMap<&str, (i64, bool)> = alive.iter().map(|(id, a, r)| (id.as_str(), (*a, *r))).collect();
        let asked: std::collections::HashSet<&str> = asked.iter().map(|id| &**id).collect();
        let mut shrink = Vec::new();
        self.with(|users| {
            for u in users.values_mut() {
                // What this renewal says of a lease: forgotten, or kept (and whether revoked).
                let mut seen = |l: &mut Lease| -> Option<bool> {
                    if !asked.contains(&*l.id) {
                        return Some(false);
                    }
                    let &(row, revoked) = alive.get(&*l.id)?;
                    l.expires_at = expires_at;
                    // Never believe more than the row reserves.
                    l.amount = l.amount.min(row);
                    if revoked {
                        let need = l.held.saturating_add(l.unsettled_charge);
                        if row > need {
                            shrink.push((l.id.clone(), need));
                        }
                        l.amount = l.amount.min(l.held);
                    }
                    Some(revoked)
                };
                u.draining.retain_mut(|l| seen(l).is_some());
                match u.active.as_mut().map(&mut seen) {
                    Some(None) => u.active = None,
                    Some(Some(true)) => u.draining.extend(u.active.take()),
                    _ => {}
                }
            }
        });
        shrink
    }

    /// Credit was taken from `user` (the database revoked their leases):
    /// no lease of theirs takes a new hold; calls open on them end as
    /// usual, and the leases are returned once drained. Returns how many
    /// leases stop taking holds.
    pub fn drain(&self, user: &str) -> usize {
        self.with(|users| {
            // Counted even with no lease here: one may be on its way in.
            let u = users.entry(user.to_string()).or_default();
            u.revocations += 1;
            let n = usize::from(u.active.is_some());
            u.draining.extend(u.active.take());
            n
        })
    }

    /// Credit this instance holds leased for `user`, not held by a call:
    /// (leased, held by calls) across the user's leases.
    pub fn leased(&self, user: &str) -> (i64, i64) {
        self.with(|users| {
            users.get(user).map_or((0, 0), |u| {
                u.active
                    .iter()
                    .chain(u.draining.iter())
                    .fold((0, 0), |(a, h), l| (a + l.amount, h + l.held))
            })
        })
    }

    /// Whether any lease is held.
    pub fn has_leases(&self) -> bool {
        let orphans = !self.orphans.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
        orphans || self.with(|users| users.values().any(|u| u.active.is_some() || !u.draining.is_empty()))
    }

    /// Takes out the leases with no call open and every charge committed
    /// (at shutdown, to return them; the others expire on their own, after
    /// the charges that may still reach them). Out of the book first, so no
    /// hold takes from them meanwhile.
    pub fn take_idle(&self) -> Vec<LeaseId> {
        let mut idle = self.take_orphans();
        idle.extend(self.with(|users| {
            users
                .values_mut()
                .flat_map(|u| u.take_idle(i64::MAX, 0))
                .collect::<Vec<_>>()
        }));
        idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 30_000;
    const NEVER: i64 = i64::MAX;
    const HOUR: i64 = 3_600_000;

    fn book() -> LeaseBook {
        LeaseBook::new(LeasePolicy::new(TTL, TTL / 3))
    }

    #[test]
    fn holds_come_from_the_active_lease_while_it_covers_them() {
        let b = book();
        assert_eq!(b.try_hold("u", "c1", 10, HOUR, 0), None, "no lease yet");
        b.install("u", "lse_1".into(), 25, TTL, NEVER, 0, 0);
        assert_eq!(b.try_hold("u", "c1", 10, HOUR, 1).as_deref(), Some("lse_1"));
        assert_eq!(b.try_hold("u", "c2", 10, HOUR, 2).as_deref(), Some("lse_1"));
        assert_eq!(b.try_hold("u", "c3", 10, HOUR, 3), None, "5 left");
        assert!(b.close("u", Some("lse_1"), "c1", 4, true));
        assert_eq!(b.leased("u"), (21, 10));
        assert_eq!(
            b.try_hold("u", "c3", 10, HOUR, 4).as_deref(),
            Some("lse_1"),
            "6 came back"
        );
        assert_eq!(b.try_hold("nobody", "c4", 1, HOUR, 4), None);
    }

    #[test]
    fn a_call_ends_once_however_often_it_is_told() {
        let b = book();
        b.install("u", "lse_1".into(), 100, TTL, NEVER, 0, 0);
        assert!(b.try_hold("u", "a", 40, HOUR, 1).is_some());
        assert!(b.try_hold("u", "b", 40, HOUR, 1).is_some());
        assert!(b.close("u", Some("lse_1"), "a", 10, true));
        assert!(!b.close("u", Some("lse_1"), "a", 10, true), "told again: nothing");
        assert!(!b.close("u", Some("lse_1"), "nobody", 10, true));
        assert_eq!(b.leased("u"), (90, 40), "b still holds its 40");
        assert_eq!(b.try_hold("u", "b", 1, HOUR, 2), None, "one hold per call");
    }

    #[test]
    fn a_lease_takes_no_new_hold_near_its_expiry_or_once_credit_expires() {
        let b = book();
        b.install("u", "lse_1".into(), 100, TTL, NEVER, 0, 0);
        assert!(b.try_hold("u", "c1", 1, HOUR, TTL - TTL / 3 - 1).is_some());
        assert!(b.try_hold("u", "c2", 1, HOUR, TTL - TTL / 3).is_none());
        b.install("v", "lse_2".into(), 100, TTL, 5_000, 0, 0);
        assert!(b.try_hold("v", "c3", 1, HOUR, 4_999).is_some());
        assert!(
            b.try_hold("v", "c4", 1, HOUR, 5_000).is_none(),
            "its credit expires at 5000"
        );
    }

    #[test]
    fn upkeep_renews_leases_in_use_and_returns_idle_and_drained_ones() {
        let b = book();
        b.install("u", "lse_1".into(), 100, TTL, NEVER, 0, 0);
        assert!(b.try_hold("u", "c1", 60, HOUR, 0).is_some());
        // Replaced while a call is open on it: it drains.
        b.install("u", "lse_2".into(), 100, TTL, NEVER, 0, 0);
        let early = b.upkeep(1_000);
        assert_eq!(early, Upkeep::default(), "fresh and busy: nothing to do");
        let later = b.upkeep(TTL / 3 + 1);
        assert_eq!(
            later.renew,
            vec![LeaseId::from("lse_1")],
            "the draining lease has a call open"
        );
        assert_eq!(later.release, vec![LeaseId::from("lse_2")], "idle for a check");
        b.close("u", Some("lse_1"), "c1", 50, true);
        assert!(b.take_idle().is_empty());
        assert_eq!(
            b.upkeep(TTL / 3 + 2).release,
            Vec::<LeaseId>::new(),
            "its charge is not committed yet"
        );
        b.committed("u", "lse_1", 50);
        assert_eq!(b.take_idle(), vec![LeaseId::from("lse_1")]);
        assert_eq!(b.leased("u"), (0, 0));
    }

    #[test]
    fn a_call_never_heard_of_again_gives_its_hold_back_after_an_hour() {
        let b = book();
        b.install("u", "lse_1".into(), 100, i64::MAX / 2, NEVER, 0, 0);
        assert!(b.try_hold("u", "lost", 60, HOUR, 0).is_some());
        b.upkeep(HOUR);
        assert_eq!(b.leased("u"), (100, 60));
        // Its hold given back, the lease is idle: returned.
        assert_eq!(b.upkeep(HOUR + 1).release, vec![LeaseId::from("lse_1")]);
        assert_eq!(b.leased("u"), (0, 0));
    }

    #[test]
    fn a_charge_arriving_after_its_hold_ttl_still_comes_off_the_lease() {
        let b = book();
        b.install("u", "lse_1".into(), 100, i64::MAX / 2, NEVER, 0, 0);
        assert!(b.try_hold("u", "slow", 60, HOUR, 0).is_some());
        assert!(b.try_hold("u", "other", 10, 2 * HOUR, 0).is_some());
        b.upkeep(HOUR + 1);
        assert_eq!(b.leased("u"), (100, 10), "its hold given back");
        // The settlement takes 30 off the row: the lease believes no more than that leaves.
        assert!(b.close("u", Some("lse_1"), "slow", 30, true));
        assert_eq!(b.leased("u"), (70, 10));
        assert!(!b.close("u", Some("lse_1"), "slow", 30, true), "once");
        assert_eq!(b.leased("u"), (70, 10));
    }

    #[test]
    fn a_lease_whose_take_was_abandoned_is_released_at_the_next_upkeep() {
        let b = book();
        assert!(!b.has_leases());
        b.orphan("lse_lost".into());
        assert!(b.has_leases(), "an upkeep is due for it");
        assert_eq!(b.upkeep(1).release, vec![LeaseId::from("lse_lost")]);
        assert_eq!(b.upkeep(2), Upkeep::default(), "once");
        b.orphan("lse_late".into());
        assert_eq!(b.take_idle(), vec![LeaseId::from("lse_late")], "or at shutdown");
    }

    #[test]
    fn a_call_cancelled_while_it_waited_gets_no_hold() {
        let b = book();
        b.cancel("u", "late", 1);
        b.install("u", "lse_1".into(), 100, TTL, NEVER, 1, 0);
        assert_eq!(b.try_hold("u", "late", 10, HOUR, 2), None);
        assert_eq!(b.leased("u"), (100, 0), "nothing held for it");
    }

    #[test]
    fn a_lease_taken_while_credit_was_taken_away_is_not_used() {
        let b = book();
        let before = b.revocations("u");
        // The revocation lands while the lease is being taken.
        assert_eq!(b.drain("u"), 0);
        b.install("u", "lse_1".into(), 100, TTL, NEVER, 1, before);
        assert_eq!(b.try_hold("u", "c1", 10, HOUR, 2), None, "it drains from the start");
        assert_eq!(b.upkeep(3).release, vec![LeaseId::from("lse_1")], "unused: returned");
        // The next lease, taken after the revocation, is used.
        b.install("u", "lse_2".into(), 100, TTL, NEVER, 4, b.revocations("u"));
        assert_eq!(b.try_hold("u", "c1", 10, HOUR, 5).as_deref(), Some("lse_2"));
    }

    #[test]
    fn a_revoked_lease_drains_and_a_lost_one_is_forgotten() {
        let b = book();
        b.install("u", "lse_1".into(), 100, TTL, NEVER, 0, 0);
        b.install("v", "lse_2".into(), 100, TTL, NEVER, 0, 0);
        b.install("w", "lse_3".into(), 100, TTL, NEVER, 0, 0);
        assert!(b.try_hold("u", "c1", 10, HOUR, 1).is_some());
        assert!(b.try_hold("v", "c2", 10, HOUR, 1).is_some());
        let asked: Vec<LeaseId> = vec!["lse_1".into(), "lse_2".into(), "lse_3".into()];
        let shrink = b.renewed(
            &asked,
            &[("lse_2".to_string(), 80, false), ("lse_3".to_string(), 100, true)],
            2 * TTL,
        );
        assert_eq!(
            shrink,
            vec![(LeaseId::from("lse_3"), 0)],
            "a revoked lease gives back what no call needs"
        );
        assert_eq!(b.try_hold("u", "c3", 1, HOUR, 2), None, "gone from the database");
        assert_eq!(b.leased("u"), (0, 0));
        assert_eq!(b.leased("v"), (80, 10), "never more than the row reserves");
        assert!(b.try_hold("v", "c4", 1, HOUR, TTL + 1).is_some(), "renewed");
        assert_eq!(b.try_hold("w", "c5", 1, HOUR, 2), None, "revoked: no new hold");
        assert_eq!(
            b.upkeep(3).release,
            vec![LeaseId::from("lse_3")],
            "drained at once: returned"
        );
        // Revoked here while a call is open: the call still ends on it.
        assert_eq!(b.drain("v"), 1);
        assert_eq!(b.try_hold("v", "c6", 1, HOUR, TTL + 2), None);
        assert!(b.close("v", Some("lse_2"), "c2", 5, false));
        assert!(b.close("v", Some("lse_2"), "c4", 0, false));
        assert_eq!(b.upkeep(TTL + 3).release, vec![LeaseId::from("lse_2")]);
    }

    #[test]
    fn only_a_lease_found_revoked_stops_taking_holds() {
        let b = book();
        b.install("u", "lse_1".into(), 100, TTL, NEVER, 0, 0);
        assert!(b.try_hold("u", "long", 30, HOUR, 1).is_some());
        b.install("u", "lse_2".into(), 100, TTL, NEVER, 2, 0);
        let asked: Vec<LeaseId> = vec!["lse_1".into(), "lse_2".into()];
        let shrink = b.renewed(
            &asked,
            &[("lse_1".into(), 100, true), ("lse_2".into(), 100, false)],
            TTL,
        );
        assert_eq!(
            shrink,
            vec![(LeaseId::from("lse_1"), 30)],
            "what its open call holds stays"
        );
        assert!(
            b.try_hold("u", "next", 10, HOUR, 3).is_some(),
            "the active lease was not revoked"
        );
    }

    #[test]
    fn a_refused_lease_is_not_asked_for_again_for_a_while() {
        let b = book();
        assert_eq!(b.recent_refusal("u", 0), None);
        b.note_attempt("u", Some(NoLease::Unreachable), 0);
        assert_eq!(b.recent_refusal("u", 999), Some(NoLease::Unreachable));
        assert_eq!(b.recent_refusal("u", 1_000), None, "a second later it is tried again");
        b.note_attempt("u", Some(NoLease::TooLittle), 1_000);
        assert_eq!(b.recent_refusal("u", 1_000 + TTL / 3 - 1), Some(NoLease::TooLittle));
        assert_eq!(b.recent_refusal("u", 1_000 + TTL / 3), None, "a check later");
        b.note_attempt("u", None, 20_000);
        assert_eq!(b.recent_refusal("u", 20_001), None);
    }

    #[test]
    fn a_cancelled_call_is_ended_or_refused_later() {
        let b = book();
        b.install("u", "lse_1".into(), 100, TTL, NEVER, 0, 0);
        assert!(b.try_hold("u", "a", 40, HOUR, 1).is_some());
        b.cancel("u", "a", 2);
        assert_eq!(b.leased("u"), (100, 0), "open: ended");
        b.cancel("u", "b", 2);
        assert!(b.is_cancelled("u", "b"), "not open yet: remembered");
        b.upkeep(2 + CANCELLED_KEPT_MS);
        assert!(!b.is_cancelled("u", "b"), "forgotten after a while");
    }

    #[test]
    fn the_lease_asked_for_follows_recent_spend() {
        let b = book();
        assert_eq!(b.ask("u", 5), LeaseAsk { want: 40, least: 20 });
        b.install("u", "lse_1".into(), 1_000, TTL, NEVER, 0, 0);
        for t in 0..50 {
            assert!(b.try_hold("u", &format!("c{t}"), 5, HOUR, t).is_some());
        }
        assert_eq!(b.ask("u", 5).want, 500, "twice the 250 held this window");
        // Two windows later with nothing held, back to the floor.
        b.install("u", "lse_2".into(), 1_000, 3 * TTL, NEVER, 2 * TTL + 1, 0);
        assert!(b.try_hold("u", "later", 5, HOUR, 2 * TTL + 1).is_some());
        assert_eq!(b.ask("u", 5).want, 40);
    }

    #[test]
    fn the_leftover_of_a_lease_is_given_up_once() {
        let b = book();
        b.install("u", "lse_1".into(), 25, TTL, NEVER, 0, 0);
        assert!(b.try_hold("u", "c1", 10, HOUR, 1).is_some());
        assert_eq!(b.take_leftover("u"), Some(("lse_1".into(), 15)));
        assert_eq!(b.take_leftover("u"), None);
        assert_eq!(b.try_hold("u", "c2", 1, HOUR, 2), None);
        // What the call does not use comes back to the lease.
        b.close("u", Some("lse_1"), "c1", 4, true);
        assert_eq!(b.leased("u"), (6, 0));
    }

    #[test]
    fn concurrent_holds_never_exceed_the_lease() {
        let b = Arc::new(book());
        b.install("u", "lse_1".into(), 1000, TTL, NEVER, 0, 0);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let b = b.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|i| b.try_hold("u", &format!("{t}-{i}"), 7, HOUR, 1).is_some())
                        .count()
                })
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(granted, 1000 / 7);
    }
}
