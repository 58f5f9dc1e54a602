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

/// A lease is taken only while half the free balance covers this many
/// holds of the call asking.
const LEAST_HOLDS: i64 = 4;
/// A lease is sized at least this many holds of the call asking.
const FLOOR_HOLDS: i64 = 8;

#[derive(Debug)]
struct Lease {
    id: LeaseId,
    /// What the row reserves, as far as this instance's charges go.
    amount: i64,
    /// Held by calls open on it.
    held: i64,
    open: u32,
    /// Charges queued to the database, not yet committed.
    unsettled: u32,
    expires_at: i64,
    last_used: i64,
}

impl Lease {
    fn idle(&self) -> bool {
        self.open == 0 && self.unsettled == 0
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
}

impl UserLeases {
    fn find(&mut self, id: &str) -> Option<&mut Lease> {
        self.active
            .iter_mut()
            .chain(self.draining.iter_mut())
            .find(|l| &*l.id == id)
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
}

impl LeaseBook {
    pub fn new(policy: LeasePolicy) -> LeaseBook {
        LeaseBook {
            policy,
            users: Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> LeasePolicy {
        self.policy
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, UserLeases>) -> T) -> T {
        let mut guard = self.users.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Holds `amount` from the user's active lease if it covers it and has
    /// life enough left; returns the lease it came from.
    pub fn try_hold(&self, user: &str, amount: i64, now: i64) -> Option<LeaseId> {
        let margin = self.policy.margin_ms();
        let window = self.policy.ttl_ms;
        self.with(|users| {
            let u = users.get_mut(user)?;
            let lease = u.active.as_mut()?;
            if lease.expires_at - now <= margin || lease.amount - lease.held < amount || amount < 0 {
                return None;
            }
            lease.held += amount;
            lease.open += 1;
            lease.last_used = now;
            let id = lease.id.clone();
            u.count_spend(amount, now, window);
            Some(id)
        })
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
    /// replaces drains (takes no new holds) until its calls settle.
    pub fn install(&self, user: &str, id: LeaseId, amount: i64, expires_at: i64, now: i64) {
        self.with(|users| {
            let u = users.entry(user.to_string()).or_default();
            let fresh = Lease {
                id,
                amount,
                held: 0,
                open: 0,
                unsettled: 0,
                expires_at,
                last_used: now,
            };
            if let Some(old) = u.active.replace(fresh) {
                u.draining.push(old);
            }
        })
    }

    /// A call on `lease` ended: its hold is given back and `charge` taken
    /// off the lease. `queued`: a charge was sent to the database
    /// ([`LeaseBook::committed`] follows once it commits).
    pub fn close(&self, user: &str, lease: &str, hold: i64, charge: i64, queued: bool) {
        self.with(|users| {
            if let Some(l) = users.get_mut(user).and_then(|u| u.find(lease)) {
                l.held = (l.held - hold).max(0);
                l.amount = (l.amount - charge.max(0)).max(0);
                l.open = l.open.saturating_sub(1);
                if queued {
                    l.unsettled += 1;
                }
            }
        })
    }

    /// A charge on `lease` committed.
    pub fn committed(&self, user: &str, lease: &str) {
        self.with(|users| {
            if let Some(l) = users.get_mut(user).and_then(|u| u.find(lease)) {
                l.unsettled = l.unsettled.saturating_sub(1);
            }
        })
    }

    /// What the upkeep must do now: renew leases in use that are past the
    /// renewal point, and release (forgetting them here first, so no hold
    /// takes from them meanwhile) leases idle or drained. Leases past their
    /// expiry are forgotten: their rows expire in the database, or already did.
    pub fn upkeep(&self, now: i64) -> Upkeep {
        let p = self.policy;
        let mut out = Upkeep::default();
        self.with(|users| {
            for u in users.values_mut() {
                u.draining.retain(|l| l.expires_at > now);
                if u.active.as_ref().is_some_and(|l| l.expires_at <= now) {
                    u.active = None;
                }
                let idle_active = u
                    .active
                    .as_ref()
                    .is_some_and(|l| l.idle() && now - l.last_used >= p.idle_ms());
                if idle_active {
                    out.release.extend(u.active.take().map(|l| l.id));
                }
                let (done, keep): (Vec<Lease>, Vec<Lease>) = u.draining.drain(..).partition(Lease::idle);
                out.release.extend(done.into_iter().map(|l| l.id));
                u.draining = keep;
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
    /// rows' amounts and new expiries) live on; the others are gone
    /// (released by a revocation, or expired) and are forgotten.
    pub fn renewed(&self, asked: &[LeaseId], alive: &[(String, i64, i64)]) {
        let alive: HashMap<&str, (i64, i64)> = alive.iter().map(|(id, a, e)| (id.as_str(), (*a, *e))).collect();
        let asked: std::collections::HashSet<&str> = asked.iter().map(|id| &**id).collect();
        self.with(|users| {
            for u in users.values_mut() {
                let keep = |l: &mut Lease| -> bool {
                    if !asked.contains(&*l.id) {
                        return true;
                    }
                    match alive.get(&*l.id) {
                        Some(&(row, expires_at)) => {
                            l.expires_at = expires_at;
                            // Never believe more than the row reserves.
                            l.amount = l.amount.min(row);
                            true
                        }
                        None => false,
                    }
                };
                if let Some(l) = u.active.as_mut() {
                    if !keep(l) {
                        u.active = None;
                    }
                }
                u.draining.retain_mut(keep);
            }
        })
    }

    /// Forgets every lease of `user` (the database revoked them): they take
    /// no more holds, and calls still open on them end without effect here.
    pub fn forget(&self, user: &str) -> usize {
        self.with(|users| {
            users.get_mut(user).map_or(0, |u| {
                let n = u.draining.len() + usize::from(u.active.is_some());
                u.active = None;
                u.draining.clear();
                n
            })
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

    /// Every lease this instance holds (at shutdown, to return them).
    pub fn all(&self) -> Vec<LeaseId> {
        self.with(|users| {
            users
                .values()
                .flat_map(|u| u.active.iter().chain(u.draining.iter()).map(|l| l.id.clone()))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 30_000;

    fn book() -> LeaseBook {
        LeaseBook::new(LeasePolicy::new(TTL, TTL / 3))
    }

    #[test]
    fn holds_come_from_the_active_lease_while_it_covers_them() {
        let b = book();
        assert_eq!(b.try_hold("u", 10, 0), None, "no lease yet");
        b.install("u", "lse_1".into(), 25, TTL, 0);
        assert_eq!(b.try_hold("u", 10, 1).as_deref(), Some("lse_1"));
        assert_eq!(b.try_hold("u", 10, 2).as_deref(), Some("lse_1"));
        assert_eq!(b.try_hold("u", 10, 3), None, "5 left");
        b.close("u", "lse_1", 10, 4, true);
        assert_eq!(b.leased("u"), (21, 10));
        assert_eq!(b.try_hold("u", 10, 4).as_deref(), Some("lse_1"), "6 came back");
        assert_eq!(b.try_hold("nobody", 1, 4), None);
    }

    #[test]
    fn a_lease_near_its_expiry_takes_no_new_hold() {
        let b = book();
        b.install("u", "lse_1".into(), 100, TTL, 0);
        assert!(b.try_hold("u", 1, TTL - TTL / 3 - 1).is_some());
        assert!(b.try_hold("u", 1, TTL - TTL / 3).is_none());
    }

    #[test]
    fn upkeep_renews_leases_in_use_and_returns_idle_and_drained_ones() {
        let b = book();
        b.install("u", "lse_1".into(), 100, TTL, 0);
        assert!(b.try_hold("u", 60, 0).is_some());
        // Replaced while a call is open on it: it drains.
        b.install("u", "lse_2".into(), 100, TTL, 0);
        let early = b.upkeep(1_000);
        assert_eq!(early, Upkeep::default(), "fresh and busy: nothing to do");
        let later = b.upkeep(TTL / 3 + 1);
        assert_eq!(
            later.renew,
            vec![LeaseId::from("lse_1")],
            "the draining lease has a call open"
        );
        assert_eq!(
            later.release,
            vec![LeaseId::from("lse_2")],
            "idle for a third of the TTL"
        );
        b.close("u", "lse_1", 60, 50, true);
        assert_eq!(
            b.upkeep(TTL / 3 + 2).release,
            Vec::<LeaseId>::new(),
            "its charge is not committed yet"
        );
        b.committed("u", "lse_1");
        assert_eq!(b.upkeep(TTL / 3 + 3).release, vec![LeaseId::from("lse_1")]);
        assert_eq!(b.leased("u"), (0, 0));
    }

    #[test]
    fn a_lease_the_database_no_longer_has_is_forgotten() {
        let b = book();
        b.install("u", "lse_1".into(), 100, TTL, 0);
        b.install("v", "lse_2".into(), 100, TTL, 0);
        assert!(b.try_hold("u", 10, 1).is_some());
        assert!(b.try_hold("v", 10, 1).is_some());
        let asked: Vec<LeaseId> = vec!["lse_1".into(), "lse_2".into()];
        b.renewed(&asked, &[("lse_2".to_string(), 80, 2 * TTL)]);
        assert_eq!(b.try_hold("u", 1, 2), None, "revoked");
        assert_eq!(b.leased("v"), (80, 10), "never more than the row reserves");
        assert!(b.try_hold("v", 1, TTL + 1).is_some(), "renewed");
        // Past its expiry without a renewal: forgotten.
        b.upkeep(3 * TTL);
        assert_eq!(b.leased("v"), (0, 0));
    }

    #[test]
    fn the_lease_asked_for_follows_recent_spend() {
        let b = book();
        assert_eq!(b.ask("u", 5), LeaseAsk { want: 40, least: 20 });
        b.install("u", "lse_1".into(), 1_000, TTL, 0);
        for t in 0..50 {
            assert!(b.try_hold("u", 5, t).is_some());
        }
        assert_eq!(b.ask("u", 5).want, 500, "twice the 250 held this window");
        // Two windows later with nothing held, back to the floor.
        b.install("u", "lse_2".into(), 1_000, 3 * TTL, 2 * TTL + 1);
        assert!(b.try_hold("u", 5, 2 * TTL + 1).is_some());
        assert_eq!(b.ask("u", 5).want, 40);
    }

    #[test]
    fn the_leftover_of_a_lease_is_given_up_once() {
        let b = book();
        b.install("u", "lse_1".into(), 25, TTL, 0);
        assert!(b.try_hold("u", 10, 1).is_some());
        assert_eq!(b.take_leftover("u"), Some(("lse_1".into(), 15)));
        assert_eq!(b.take_leftover("u"), None);
        assert_eq!(b.try_hold("u", 1, 2), None);
        // What the call does not use comes back to the lease.
        b.close("u", "lse_1", 10, 4, true);
        assert_eq!(b.leased("u"), (6, 0));
    }

    #[test]
    fn a_forgotten_lease_takes_no_hold_and_its_calls_end_quietly() {
        let b = book();
        b.install("u", "lse_1".into(), 100, TTL, 0);
        assert!(b.try_hold("u", 10, 1).is_some());
        b.install("u", "lse_2".into(), 100, TTL, 1);
        b.install("v", "lse_3".into(), 100, TTL, 1);
        assert_eq!(b.forget("u"), 2);
        assert_eq!(b.try_hold("u", 1, 2), None);
        b.close("u", "lse_1", 10, 5, false);
        assert_eq!(b.leased("u"), (0, 0));
        assert_eq!(b.all(), vec![LeaseId::from("lse_3")], "another user's lease stays");
    }

    #[test]
    fn concurrent_holds_never_exceed_the_lease() {
        let b = Arc::new(book());
        b.install("u", "lse_1".into(), 1000, TTL, 0);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..100).filter(|_| b.try_hold("u", 7, 1).is_some()).count())
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(granted, 1000 / 7);
    }
}
