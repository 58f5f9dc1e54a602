//! The Store: every persistent read and write Hub makes, as domain methods over
//! the [`SqlDb`] port. The SQL lives here once and runs unchanged on embedded
//! libSQL, remote libSQL/Turso and D1. Money invariants are kept by the schema
//! itself (triggers in `infra/migrations`), so each write below is one atomic
//! statement or one atomic batch.

/// The `leased` column of a user row: what credit leases (holds of kind
/// `lease`, migration 0021) set aside of the user's `held`.
macro_rules! leased_column {
    () => {
        "(SELECT COALESCE(SUM(amount), 0) FROM holds WHERE holds.user_id = users.id AND holds.state = 'open' AND holds.kind = 'lease') AS leased"
    };
}

mod accounts;
mod aliases;
mod audit;
mod buckets;
mod catalog;
mod codes;
mod connect;
mod leases;
mod ledger;
mod log;
mod notify;
mod patch;
mod payments;
mod response_cache;
mod teams;
mod usage;
mod users;
mod videos;

pub use accounts::*;
pub use aliases::*;
pub use audit::*;
pub use buckets::*;
pub use catalog::*;
pub use codes::*;
pub use connect::*;
pub use leases::LeaseTerms;
pub use ledger::*;
pub use log::*;
pub use notify::*;
pub use patch::*;
pub use payments::*;
pub use response_cache::*;
pub use teams::*;
pub use usage::*;
pub use users::*;
pub use videos::*;

use crate::ports::{DbError, Rows, SqlDb, SqlValue};
use crate::sql;
use std::sync::Arc;

/// The schema migrations this build knows, in order.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../../infra/migrations/0001_init.sql")),
    (
        2,
        "key_limits",
        include_str!("../../../infra/migrations/0002_key_limits.sql"),
    ),
    (
        3,
        "hardening",
        include_str!("../../../infra/migrations/0003_hardening.sql"),
    ),
    (
        4,
        "cache_rates",
        include_str!("../../../infra/migrations/0004_cache_rates.sql"),
    ),
    (5, "sign_in", include_str!("../../../infra/migrations/0005_sign_in.sql")),
    (
        6,
        "payments",
        include_str!("../../../infra/migrations/0006_payments.sql"),
    ),
    (
        7,
        "redemption_codes",
        include_str!("../../../infra/migrations/0007_redemption_codes.sql"),
    ),
    (
        8,
        "credit_expiry",
        include_str!("../../../infra/migrations/0008_credit_expiry.sql"),
    ),
    (
        9,
        "notifications",
        include_str!("../../../infra/migrations/0009_notifications.sql"),
    ),
    (
        10,
        "cli_connect",
        include_str!("../../../infra/migrations/0010_cli_connect.sql"),
    ),
    (11, "media", include_str!("../../../infra/migrations/0011_media.sql")),
    (
        12,
        "audit_log",
        include_str!("../../../infra/migrations/0012_audit_log.sql"),
    ),
    (
        13,
        "video_jobs",
        include_str!("../../../infra/migrations/0013_video_jobs.sql"),
    ),
    (
        14,
        "usage_rollups",
        include_str!("../../../infra/migrations/0014_usage_rollups.sql"),
    ),
    (15, "teams", include_str!("../../../infra/migrations/0015_teams.sql")),
    (
        16,
        "price_sync",
        include_str!("../../../infra/migrations/0016_price_sync.sql"),
    ),
    (
        17,
        "response_cache",
        include_str!("../../../infra/migrations/0017_response_cache.sql"),
    ),
    (
        18,
        "routing",
        include_str!("../../../infra/migrations/0018_routing.sql"),
    ),
    (
        19,
        "key_spend",
        include_str!("../../../infra/migrations/0019_key_spend.sql"),
    ),
    (
        20,
        "reservation_release",
        include_str!("../../../infra/migrations/0020_reservation_release.sql"),
    ),
    (
        21,
        "credit_leases",
        include_str!("../../../infra/migrations/0021_credit_leases.sql"),
    ),
];

#[derive(Clone)]
pub struct Store {
    db: Arc<dyn SqlDb>,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the database schema is at version {found}, newer than this Hub knows ({known}); upgrade Hub before using this database")]
    TooNew { found: i64, known: i64 },
    #[error("the database has no Hub schema: apply infra/migrations first (on D1: `wrangler d1 migrations apply DB`)")]
    Missing,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Store {
    pub fn new(db: Arc<dyn SqlDb>) -> Self {
        Store { db }
    }

    /// Applies pending migrations; idempotent. Refuses a schema newer than this build.
    pub async fn migrate(&self, now_ms: i64) -> Result<Vec<i64>, MigrateError> {
        self.db
            .execute(sql!(
                "CREATE TABLE IF NOT EXISTS _hub_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
            ))
            .await?;
        let rows = self
            .db
            .query(sql!("SELECT COALESCE(MAX(version), 0) FROM _hub_migrations"))
            .await?;
        let current = rows.rows.first().and_then(|r| r.first()).map(as_i64).unwrap_or(0);
        let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if current > known {
            return Err(MigrateError::TooNew { found: current, known });
        }
        let mut applied = Vec::new();
        for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            let script = format!(
                "{sql}\nINSERT INTO _hub_migrations (version, name, applied_at) VALUES ({version}, '{name}', {now_ms});"
            );
            self.db.execute_script(&script).await?;
            applied.push(*version);
        }
        Ok(applied)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.db.query(sql!("SELECT 1")).await.map(|_| ())
    }
}

// ---------------------------------------------------------------- row access

pub(crate) fn as_i64(v: &SqlValue) -> i64 {
    match v {
        SqlValue::Integer(i) => *i,
        SqlValue::Real(f) => *f as i64,
        SqlValue::Text(t) => t.parse().unwrap_or(0),
        _ => 0,
    }
}

/// One row, read by column name.
pub(crate) struct Row<'a> {
    columns: &'a [String],
    values: &'a [SqlValue],
}

impl<'a> Row<'a> {
    /// A column by name, ignoring case: some SQLite versions report a column
    /// named like a keyword (`key`) in upper case.
    fn value(&self, name: &str) -> &'a SqlValue {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .and_then(|i| self.values.get(i))
            .unwrap_or(&SqlValue::Null)
    }

    pub fn str(&self, name: &str) -> String {
        self.opt_str(name).unwrap_or_default()
    }

    pub fn opt_str(&self, name: &str) -> Option<String> {
        match self.value(name) {
            SqlValue::Text(t) => Some(t.clone()),
            SqlValue::Integer(i) => Some(i.to_string()),
            SqlValue::Real(f) => Some(f.to_string()),
            SqlValue::Blob(b) => Some(String::from_utf8_lossy(b).into_owned()),
            SqlValue::Null => None,
        }
    }

    pub fn i64(&self, name: &str) -> i64 {
        as_i64(self.value(name))
    }

    pub fn opt_i64(&self, name: &str) -> Option<i64> {
        match self.value(name) {
            SqlValue::Null => None,
            v => Some(as_i64(v)),
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        self.i64(name) != 0
    }

    pub fn json(&self, name: &str) -> Option<serde_json::Value> {
        self.opt_str(name).and_then(|s| serde_json::from_str(&s).ok())
    }
}

pub(crate) fn rows(rows: &Rows) -> impl Iterator<Item = Row<'_>> {
    rows.rows.iter().map(|values| Row {
        columns: &rows.columns,
        values,
    })
}

pub(crate) fn first(rows: &Rows) -> Option<Row<'_>> {
    self::rows(rows).next()
}

/// A page of a listing: items newest first, and where to continue.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` rows: the extra row only says there is more.
    pub(crate) fn from_rows(mut items: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Page<T> {
        let next_cursor = (items.len() as i64 > limit).then(|| {
            items.truncate(limit as usize);
            items.last().map(&cursor_of).unwrap_or_default()
        });
        Page { items, next_cursor }
    }
}

/// `limit` clamped to 1..=500, default 50.
pub fn page_limit(limit: Option<i64>) -> i64 {
    limit.unwrap_or(50).clamp(1, 500)
}
