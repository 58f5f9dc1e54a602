//! The credit book: balances and holds kept in memory by the one process that
//! owns an embedded database (a lock file guarantees there is only one).
//!
//! With a shared database (remote libSQL, D1) holds are rows placed by a
//! conditional INSERT, one round trip. When this process is the database's
//! only writer, the same decision is made here under a mutex, in well under a
//! microsecond, and nothing touches the database before the provider call.
//! Every change to a balance still goes to the ledger (durably, in the
//! background); the book only mirrors it:
//!
//! * settlements are applied here first (the balance in memory is never
//!   higher than the one the ledger will reach);
//! * grants are applied here after their ledger entry commits;
//! * holds live only here: a crash loses them, which is what a restart of an
//!   exclusive database does anyway (it releases every open hold).
//!
//! Credits that expire are mirrored too: the book keeps each user's buckets
//! (what is left of each expiring grant) and spends them exactly as the
//! ledger's trigger does (soonest expiry first, then the oldest), so a hold
//! never counts on credit past its expiry, whether or not the expiry job has
//! written its entry yet.

use crate::metering::money::Credits;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Account {
    pub balance: i64,
    pub held: i64,
}

/// What is left of one expiring grant (its id is the grant's ledger id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub id: i64,
    pub expires_at: i64,
    pub remaining: i64,
}

/// A user's account and buckets (with credit left, soonest expiry first).
#[derive(Debug, Default)]
struct Entry {
    account: Account,
    buckets: Vec<Bucket>,
}

impl Entry {
    fn new(balance: i64, mut buckets: Vec<Bucket>) -> Entry {
        buckets.retain(|b| b.remaining > 0);
        buckets.sort_by_key(|b| (b.expires_at, b.id));
        Entry {
            account: Account { balance, held: 0 },
            buckets,
        }
    }

    /// A debit (usage, a negative adjustment) spends buckets in the ledger
    /// trigger's order: each takes what the debit still needs, up to what it has.
    fn spend(&mut self, debit: i64) {
        let mut left = debit.max(0);
        for b in &mut self.buckets {
            let take = b.remaining.min(left);
            b.remaining -= take;
            left -= take;
        }
        self.buckets.retain(|b| b.remaining > 0);
    }

    /// Credit past its expiry that no `expiry` entry has taken yet.
    fn expired(&self, now_ms: i64) -> i64 {
        self.buckets
            .iter()
            .filter(|b| b.expires_at <= now_ms)
            .fold(0i64, |sum, b| sum.saturating_add(b.remaining))
    }
}

#[derive(Default)]
pub struct CreditBook {
    accounts: Mutex<HashMap<String, Entry>>,
}

impl CreditBook {
    /// A book holding these balances (all users, read at start-up) and
    /// buckets with credit left.
    pub fn with_balances(
        balances: impl IntoIterator<Item = (String, Credits)>,
        buckets: impl IntoIterator<Item = (String, Bucket)>,
    ) -> CreditBook {
        let mut of_user: HashMap<String, Vec<Bucket>> = HashMap::new();
        for (user, b) in buckets {
            of_user.entry(user).or_default().push(b);
        }
        let accounts = balances
            .into_iter()
            .map(|(id, b)| {
                let buckets = of_user.remove(&id).unwrap_or_default();
                (id, Entry::new(b.nanos(), buckets))
            })
            .collect();
        CreditBook {
            accounts: Mutex::new(accounts),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> T) -> T {
        let mut guard = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    fn with_user(&self, user: &str, f: impl FnOnce(&mut Entry)) {
        self.with(|a| {
            if let Some(e) = a.get_mut(user) {
                f(e)
            }
        })
    }

    pub fn contains(&self, user: &str) -> bool {
        self.with(|a| a.contains_key(user))
    }

    /// Registers a user (at creation, or read from the database on first
    /// use) with their buckets.
    pub fn open(&self, user: &str, balance: Credits, buckets: Vec<Bucket>) {
        self.with(|a| {
            a.entry(user.to_string())
                .or_insert_with(|| Entry::new(balance.nanos(), buckets));
        });
    }

    /// Reserves `amount` if the free balance covers it: the balance less
    /// open holds and less credit past its expiry at `now_ms`.
    pub fn try_hold(&self, user: &str, amount: Credits, now_ms: i64) -> bool {
        self.with(|a| match a.get_mut(user) {
            Some(e) if amount.nanos() >= 0 => {
                let free = e
                    .account
                    .balance
                    .saturating_sub(e.account.held)
                    .saturating_sub(e.expired(now_ms));
                let ok = free >= amount.nanos();
                if ok {
                    e.account.held = e.account.held.saturating_add(amount.nanos());
                }
                ok
            }
            _ => false,
        })
    }

    /// Holds `amount` again after a restart, whatever the free balance: it
    /// was reserved before (a video job's hold, which outlives its request).
    pub fn restore_hold(&self, user: &str, amount: Credits) {
        self.with_user(user, |e| {
            e.account.held = e.account.held.saturating_add(amount.nanos().max(0));
        });
    }

    /// Closes a hold, charging `charge` (zero when nothing is billed).
    pub fn settle(&self, user: &str, hold: Credits, charge: Credits) {
        self.with_user(user, |e| {
            // Saturating, though never reached: every amount is within
            // ±Credits::MAX, so these differences fit i64.
            e.account.held = e.account.held.saturating_sub(hold.nanos());
            e.account.balance = e.account.balance.saturating_sub(charge.nanos());
            e.spend(charge.nanos());
        });
    }

    /// Applies a committed ledger entry without an expiry: a grant, or
    /// (negative) an adjustment, which spends buckets like usage.
    pub fn credit(&self, user: &str, amount: Credits) {
        self.with_user(user, |e| {
            e.account.balance = e.account.balance.saturating_add(amount.nanos());
            e.spend(amount.nanos().saturating_neg());
        });
    }

    /// Applies a committed grant that expires: its bucket holds the grant,
    /// less what paid off a negative balance (as the ledger's trigger opens it).
    pub fn credit_expiring(&self, user: &str, bucket: i64, amount: Credits, expires_at: i64) {
        self.with_user(user, |e| {
            e.account.balance = e.account.balance.saturating_add(amount.nanos());
            let remaining = amount.nanos().min(e.account.balance.max(0));
            let b = Bucket {
                id: bucket,
                expires_at,
                remaining,
            };
            let at = e
                .buckets
                .partition_point(|x| (x.expires_at, x.id) < (b.expires_at, b.id));
            if remaining > 0 {
                e.buckets.insert(at, b);
            }
        });
    }

    /// Applies a committed `expiry` entry: `amount` left the balance and the
    /// bucket is gone.
    pub fn expire(&self, user: &str, bucket: i64, amount: Credits) {
        self.with_user(user, |e| {
            e.account.balance = e.account.balance.saturating_sub(amount.nanos());
            e.buckets.retain(|b| b.id != bucket);
        });
    }

    pub fn account(&self, user: &str) -> Option<Account> {
        self.with(|a| a.get(user).map(|e| e.account))
    }

    /// A user's buckets with credit left, soonest expiry first.
    pub fn buckets(&self, user: &str) -> Vec<Bucket> {
        self.with(|a| a.get(user).map(|e| e.buckets.clone()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_never_exceed_the_balance() {
        let book = CreditBook::with_balances([("u".to_string(), Credits::from_nanos(100))], []);
        assert!(book.try_hold("u", Credits::from_nanos(60), 0));
        assert!(!book.try_hold("u", Credits::from_nanos(60), 0));
        assert!(book.try_hold("u", Credits::from_nanos(40), 0));
        book.settle("u", Credits::from_nanos(60), Credits::from_nanos(10));
        assert_eq!(book.account("u"), Some(Account { balance: 90, held: 40 }));
        book.settle("u", Credits::from_nanos(40), Credits::ZERO);
        book.credit("u", Credits::from_nanos(5));
        assert_eq!(book.account("u"), Some(Account { balance: 95, held: 0 }));
        assert!(!book.try_hold("nobody", Credits::ZERO, 0));
    }

    #[test]
    fn concurrent_holds_are_exact() {
        let book = std::sync::Arc::new(CreditBook::with_balances(
            [("u".to_string(), Credits::from_nanos(1000))],
            [],
        ));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = book.clone();
                std::thread::spawn(move || (0..100).filter(|_| b.try_hold("u", Credits::from_nanos(7), 0)).count())
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(granted, 1000 / 7);
    }

    #[test]
    fn expired_credit_cannot_be_held_and_debits_spend_the_soonest_bucket() {
        let b = |id, expires_at, remaining| Bucket {
            id,
            expires_at,
            remaining,
        };
        let book = CreditBook::with_balances([("u".to_string(), Credits::from_nanos(10))], []);
        book.credit_expiring("u", 7, Credits::from_nanos(10), 2_000);
        book.credit_expiring("u", 8, Credits::from_nanos(10), 1_000);
        assert_eq!(book.buckets("u"), [b(8, 1_000, 10), b(7, 2_000, 10)]);
        book.settle("u", Credits::ZERO, Credits::from_nanos(14));
        assert_eq!(book.buckets("u"), [b(7, 2_000, 6)]);
        // At 2000 the 6 left are past their expiry: 10 of the 16 may be held.
        assert!(!book.try_hold("u", Credits::from_nanos(11), 2_000));
        assert!(book.try_hold("u", Credits::from_nanos(10), 2_000));
        book.settle("u", Credits::from_nanos(10), Credits::ZERO);
        book.expire("u", 7, Credits::from_nanos(6));
        assert_eq!(book.account("u"), Some(Account { balance: 10, held: 0 }));
        assert!(book.buckets("u").is_empty());
        // A grant into a negative balance pays the debt first: its bucket holds the rest.
        book.credit("u", Credits::from_nanos(-15));
        book.credit_expiring("u", 9, Credits::from_nanos(8), 3_000);
        assert_eq!(book.buckets("u"), [b(9, 3_000, 3)]);
    }
}
