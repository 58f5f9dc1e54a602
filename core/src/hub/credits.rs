//! Credits that expire, at the Hub's level: the expiry job (run by the
//! sweep, and for one user whenever their balance is read or adjusted) and
//! keeping the credit book in step with it.

use super::Hub;
use crate::metering::money::Credits;
use crate::ports::DbError;
use crate::store::{BucketRow, UserRow};

/// Buckets expired per batch: one bounded, atomic write.
const EXPIRY_BATCH: i64 = 250;
/// Batches per run of the job; what is left waits for the next one.
const EXPIRY_BATCHES_PER_RUN: usize = 4;

/// What an expiry run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Buckets emptied.
    pub buckets: usize,
    /// Credit that left balances with them.
    pub credits: Credits,
    /// Whether it stopped at its bound with more buckets due.
    pub more: bool,
}

impl Hub {
    /// Writes the `expiry` entries of buckets past their expiry, soonest
    /// first: one user's (before their balance is shown or adjusted), or
    /// anyone's (the sweep). Each batch is atomic and idempotent, so
    /// concurrent runs (two instances, a read during the sweep) expire a
    /// bucket once. The credit book learns of each entry once it commits.
    pub(crate) async fn expire_credits(&self, user: Option<&str>) -> Result<ExpiryReport, DbError> {
        let mut report = ExpiryReport::default();
        let rounds = if user.is_some() { 1 } else { EXPIRY_BATCHES_PER_RUN };
        for _ in 0..rounds {
            let now = self.now_ms();
            let due = self.store().due_buckets(user, now, EXPIRY_BATCH).await?;
            for e in self.store().expire_buckets(&due, now).await? {
                if let Some(book) = self.book() {
                    book.expire(e.user_id, e.bucket, e.amount);
                }
                report.buckets += 1;
                report.credits = report.credits.saturating_add(e.amount);
            }
            report.more = due.len() as i64 >= EXPIRY_BATCH;
            if !report.more {
                break;
            }
        }
        if report.buckets > 0 {
            tracing::info!(buckets = report.buckets, credits = %report.credits, user, "credits expired");
        }
        Ok(report)
    }

    /// A user as the APIs show them: their due buckets expired first, holds
    /// in flight counted (None when there is no such user).
    pub(crate) async fn current_user(&self, id: &str) -> Result<Option<UserRow>, DbError> {
        self.expire_credits(Some(id)).await?;
        let Some(mut u) = self.store().get_user(id).await? else {
            return Ok(None);
        };
        if let (Some(wallets), true) = (self.wallets(), u.leased > Credits::ZERO) {
            // Of the user's leases, what their wallet's calls hold; unknown
            // (the wallet cannot be reached), all of it, so `available` is
            // never more than the user can spend.
            let in_calls = wallets.held(id).await.unwrap_or(u.leased);
            u.held = u.held.saturating_sub(u.leased).saturating_add(in_calls.min(u.leased));
            return Ok(Some(u));
        }
        Ok(Some(self.live_user(u)))
    }

    /// Registers a user in the credit book (when this process owns the
    /// database) with their balance and buckets as the database has them.
    pub(crate) async fn open_in_book(&self, user: &str) -> Result<(), DbError> {
        let Some(book) = self.book() else { return Ok(()) };
        if book.contains(user) {
            return Ok(());
        }
        let Some(u) = self.store().get_user(user).await? else {
            return Ok(());
        };
        let buckets = self.store().live_buckets(user).await?;
        book.open(user, u.balance, buckets.iter().map(BucketRow::book_bucket).collect());
        Ok(())
    }
}
