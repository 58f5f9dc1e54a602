//! Credits that expire: the buckets of expiring grants and the expiry job.
//! The ledger's trigger (migration 0008) opens a bucket for every grant with
//! `expires_at` and spends buckets on every debit, soonest expiry first; this
//! module reads them and writes the `expiry` entries that take what is left
//! of an expired bucket off the balance.

use super::{rows, Store};
use crate::metering::money::Credits;
use crate::ports::{DbError, Stmt};
use crate::sql;

/// What is left of one expiring grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRow {
    /// The grant's ledger id.
    pub id: i64,
    pub user_id: String,
    pub amount: Credits,
    pub remaining: Credits,
    pub expires_at: i64,
    /// The grant's reason, reference (the outside event it answers) and time.
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub created_at: i64,
}

impl BucketRow {
    /// The bucket as the credit book keeps it.
    pub fn book_bucket(&self) -> crate::metering::book::Bucket {
        crate::metering::book::Bucket {
            id: self.id,
            expires_at: self.expires_at,
            remaining: self.remaining.nanos(),
        }
    }
}

/// A bucket the expiry job emptied: `amount` left `user_id`'s balance
/// through the `expiry` entry `expiry:<bucket>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired<'a> {
    pub user_id: &'a str,
    pub bucket: i64,
    pub amount: Credits,
}

/// A due bucket as the job read it.
#[derive(Debug, Clone)]
pub struct DueBucket {
    pub id: i64,
    pub user_id: String,
    pub remaining: Credits,
}

const BUCKET_COLUMNS: &str = "b.id, b.user_id, b.amount, b.remaining, b.expires_at, g.reason, g.ref, g.created_at
     FROM credit_buckets b LEFT JOIN ledger g ON g.id = b.id";

fn bucket_rows(r: &crate::ports::Rows) -> Vec<BucketRow> {
    rows(r)
        .map(|r| BucketRow {
            id: r.i64("id"),
            user_id: r.str("user_id"),
            amount: Credits::from_nanos(r.i64("amount")),
            remaining: Credits::from_nanos(r.i64("remaining")),
            expires_at: r.i64("expires_at"),
            reason: r.opt_str("reason"),
            reference: r.opt_str("ref"),
            created_at: r.i64("created_at"),
        })
        .collect()
}

/// The expiry of one bucket, as read: the `expiry` entry (only while the
/// bucket still has exactly `remaining` left, so a debit that landed since
/// makes both statements write nothing, for the next run), then the bucket
/// emptied once its entry exists. Idempotent: the entry's reference is unique.
fn expiry_stmts(b: &DueBucket, now_ms: i64) -> [Stmt; 2] {
    let reference = format!("expiry:{}", b.id);
    [
        sql!(
            "INSERT INTO ledger (user_id, kind, amount, reason, ref, created_at)
             SELECT b.user_id, 'expiry', -b.remaining,
                    'expired' || COALESCE(': ' || (SELECT g.reason FROM ledger g WHERE g.id = b.id), ''), ?3, b.expires_at
             FROM credit_buckets b
             WHERE b.id = ?1 AND b.remaining = ?2 AND b.remaining > 0 AND b.expires_at <= ?4
             ON CONFLICT (ref) DO NOTHING",
            b.id,
            b.remaining.nanos(),
            &reference,
            now_ms
        ),
        sql!(
            "UPDATE credit_buckets SET remaining = 0, expired_at = ?3
             WHERE id = ?1 AND remaining = ?2 AND EXISTS (SELECT 1 FROM ledger WHERE ref = ?4)",
            b.id,
            b.remaining.nanos(),
            now_ms,
            &reference
        ),
    ]
}

impl Store {
    /// A user's buckets with credit left, soonest expiry first.
    pub async fn live_buckets(&self, user_id: &str) -> Result<Vec<BucketRow>, DbError> {
        let text =
            format!("SELECT {BUCKET_COLUMNS} WHERE b.user_id = ?1 AND b.remaining > 0 ORDER BY b.expires_at, b.id");
        let r = self.db.query(sql!(text, user_id)).await?;
        Ok(bucket_rows(&r))
    }

    /// Every bucket with credit left, for the credit book of an exclusive database.
    pub async fn all_live_buckets(&self) -> Result<Vec<BucketRow>, DbError> {
        let text = format!("SELECT {BUCKET_COLUMNS} WHERE b.remaining > 0 ORDER BY b.expires_at, b.id");
        let r = self.db.query(sql!(text)).await?;
        Ok(bucket_rows(&r))
    }

    /// Up to `limit` buckets past their expiry with credit left, soonest
    /// first: all users', or one user's.
    pub async fn due_buckets(&self, user_id: Option<&str>, now_ms: i64, limit: i64) -> Result<Vec<DueBucket>, DbError> {
        let stmt = match user_id {
            Some(user) => sql!(
                "SELECT id, user_id, remaining FROM credit_buckets
                 WHERE user_id = ?1 AND remaining > 0 AND expires_at <= ?2 ORDER BY expires_at, id LIMIT ?3",
                user,
                now_ms,
                limit
            ),
            None => sql!(
                "SELECT id, user_id, remaining FROM credit_buckets
                 WHERE remaining > 0 AND expires_at <= ?1 ORDER BY expires_at, id LIMIT ?2",
                now_ms,
                limit
            ),
        };
        let r = self.db.query(stmt).await?;
        Ok(rows(&r)
            .map(|r| DueBucket {
                id: r.i64("id"),
                user_id: r.str("user_id"),
                remaining: Credits::from_nanos(r.i64("remaining")),
            })
            .collect())
    }

    /// Expires `due` (as [`Store::due_buckets`] read them) in one atomic
    /// batch; returns the expiries this call wrote (a bucket spent or
    /// expired since it was read is left for the next run).
    pub async fn expire_buckets<'a>(&self, due: &'a [DueBucket], now_ms: i64) -> Result<Vec<Expired<'a>>, DbError> {
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let stmts = due.iter().flat_map(|b| expiry_stmts(b, now_ms)).collect();
        let changed = self.db.batch(stmts).await?;
        Ok(due
            .iter()
            .zip(changed.chunks(2))
            .filter(|(_, n)| n.first().is_some_and(|n| *n > 0))
            .map(|(b, _)| Expired {
                user_id: &b.user_id,
                bucket: b.id,
                amount: b.remaining,
            })
            .collect())
    }
}
