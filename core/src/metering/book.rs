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

use crate::metering::money::Credits;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Account {
    pub balance: i64,
    pub held: i64,
}

#[derive(Default)]
pub struct CreditBook {
    accounts: Mutex<HashMap<String, Account>>,
}

impl CreditBook {
    /// A book holding these balances (all users, read at start-up).
    pub fn with_balances(balances: impl IntoIterator<Item = (String, Credits)>) -> CreditBook {
        let accounts = balances
            .into_iter()
            .map(|(id, b)| {
                (
                    id,
                    Account {
                        balance: b.nanos(),
                        held: 0,
                    },
                )
            })
            .collect();
        CreditBook {
            accounts: Mutex::new(accounts),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Account>) -> T) -> T {
        let mut guard = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    pub fn contains(&self, user: &str) -> bool {
        self.with(|a| a.contains_key(user))
    }

    /// Registers a user (at creation, or read from the ledger on first use).
    pub fn open(&self, user: &str, balance: Credits) {
        self.with(|a| {
            a.entry(user.to_string()).or_insert(Account {
                balance: balance.nanos(),
                held: 0,
            });
        });
    }

    /// Reserves `amount` if the free balance covers it.
    pub fn try_hold(&self, user: &str, amount: Credits) -> bool {
        self.with(|a| match a.get_mut(user) {
            Some(acc) if acc.balance.saturating_sub(acc.held) >= amount.nanos() && amount.nanos() >= 0 => {
                acc.held = acc.held.saturating_add(amount.nanos());
                true
            }
            _ => false,
        })
    }

    /// Closes a hold, charging `charge` (zero when nothing is billed).
    pub fn settle(&self, user: &str, hold: Credits, charge: Credits) {
        self.with(|a| {
            if let Some(acc) = a.get_mut(user) {
                // Saturating, though never reached: every amount is within
                // ±Credits::MAX, so these differences fit i64.
                acc.held = acc.held.saturating_sub(hold.nanos());
                acc.balance = acc.balance.saturating_sub(charge.nanos());
            }
        });
    }

    /// Applies a committed ledger entry (a grant or an adjustment).
    pub fn credit(&self, user: &str, amount: Credits) {
        self.with(|a| {
            if let Some(acc) = a.get_mut(user) {
                acc.balance = acc.balance.saturating_add(amount.nanos());
            }
        });
    }

    pub fn account(&self, user: &str) -> Option<Account> {
        self.with(|a| a.get(user).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_never_exceed_the_balance() {
        let book = CreditBook::with_balances([("u".to_string(), Credits::from_nanos(100))]);
        assert!(book.try_hold("u", Credits::from_nanos(60)));
        assert!(!book.try_hold("u", Credits::from_nanos(60)));
        assert!(book.try_hold("u", Credits::from_nanos(40)));
        book.settle("u", Credits::from_nanos(60), Credits::from_nanos(10));
        assert_eq!(book.account("u"), Some(Account { balance: 90, held: 40 }));
        book.settle("u", Credits::from_nanos(40), Credits::ZERO);
        book.credit("u", Credits::from_nanos(5));
        assert_eq!(book.account("u"), Some(Account { balance: 95, held: 0 }));
        assert!(!book.try_hold("nobody", Credits::ZERO));
    }

    #[test]
    fn concurrent_holds_are_exact() {
        let book = std::sync::Arc::new(CreditBook::with_balances([(
            "u".to_string(),
            Credits::from_nanos(1000),
        )]));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = book.clone();
                std::thread::spawn(move || (0..100).filter(|_| b.try_hold("u", Credits::from_nanos(7))).count())
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(granted, 1000 / 7);
    }
}
