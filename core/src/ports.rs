//! The ports: everything the core needs from the outside world. Adapters and
//! functions implement them; the core never reaches past them.

use crate::http::{ByteStream, HeaderMap};
use crate::metering::lease::LeaseId;
use crate::metering::money::Credits;
use bytes::Bytes;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

// ---------------------------------------------------------------- SQL

/// One SQLite value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}
impl From<u64> for SqlValue {
    fn from(v: u64) -> Self {
        SqlValue::Integer(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<i32> for SqlValue {
    fn from(v: i32) -> Self {
        SqlValue::Integer(v.into())
    }
}
impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Integer(v.into())
    }
}
impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<&String> for SqlValue {
    fn from(v: &String) -> Self {
        SqlValue::Text(v.clone())
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// A statement with positional (`?1`, `?2`, …) parameters.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Stmt {
    pub sql: Cow<'static, str>,
    pub params: Vec<SqlValue>,
}

impl Stmt {
    pub fn new(sql: impl Into<Cow<'static, str>>, params: Vec<SqlValue>) -> Self {
        Stmt {
            sql: sql.into(),
            params,
        }
    }
}

/// `sql!("… ?1 …", a, b)` builds a [`Stmt`].
#[macro_export]
macro_rules! sql {
    ($sql:expr $(, $p:expr)* $(,)?) => {
        $crate::ports::Stmt::new($sql, vec![$($crate::ports::SqlValue::from($p)),*])
    };
}

/// Rows returned by a query, positional.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// A UNIQUE, CHECK or FOREIGN KEY constraint refused the write.
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// The database could not be reached or answered badly.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

port! {
/// A SQLite-compatible database: embedded libSQL, remote libSQL/Turso, or D1.
pub trait SqlDb: MaybeSendSync {
    /// Runs a read-only query.
    async fn query(&self, stmt: Stmt) -> Result<Rows, DbError>;
    /// Runs one write and returns the rows it changed.
    async fn execute(&self, stmt: Stmt) -> Result<u64, DbError>;
    /// Runs one write and returns what its `RETURNING` clause yields (a
    /// write that also answers a question costs one round trip, not two).
    async fn write_returning(&self, stmt: Stmt) -> Result<Rows, DbError>;
    /// Runs writes atomically, all or none, and returns each one's changed rows.
    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, DbError>;
    /// Runs a multi-statement script (a migration) atomically.
    async fn execute_script(&self, sql: &str) -> Result<(), DbError>;
}
}

// ---------------------------------------------------------------- upstream

/// A request to a model provider.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub method: http::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub timeouts: Timeouts,
}

/// How long Hub waits on a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Until the response headers arrive.
    pub first_byte: Duration,
    /// Between two chunks of a streamed body.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(120),
        }
    }
}

pub struct UpstreamResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: ByteStream,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to the provider: {0}")]
    Connect(String),
    #[error("the provider did not answer in time")]
    Timeout,
    #[error("provider request failed: {0}")]
    Other(String),
    /// The outbound address policy refused the destination (see [`crate::net`]).
    #[error("Hub refused to connect to the provider: {0}")]
    Refused(String),
}

port! {
/// An HTTP client to model providers: reqwest natively, `worker::Fetch` on Workers.
///
/// Implementations never follow redirects (a 3xx is returned as it came:
/// following one would send the credential, and show the admin the answer,
/// of wherever the provider points), and refuse what the outbound policy
/// refuses at connect time where the platform lets them see the address.
pub trait Upstream: MaybeSendSync {
    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError>;
}
}

// ---------------------------------------------------------------- mail

/// One message Hub sends: plain text (and optionally HTML) to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// `ada@example.org` or `Ada Lovelace <ada@example.org>`.
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// The SMTP server mail goes through, from the settings (password decrypted).
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `Name <address>` or an address.
    pub from: String,
    pub security: crate::accounts::settings::SmtpSecurity,
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("from", &self.from)
            .field("security", &self.security)
            .finish()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

port! {
/// Sends mail (email sign-in links): SMTP natively; none on Workers, where
/// email sign-in is reported unavailable.
pub trait Mailer: MaybeSendSync {
    async fn send(&self, server: &SmtpServer, mail: &Mail) -> Result<(), MailError>;
}
}

// ---------------------------------------------------------------- the rest

pub trait Clock: MaybeSendSync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A monotonic instant in microseconds, for durations.
    fn monotonic_us(&self) -> u64;
}

/// The platform's random source failed: nothing random may be made from the
/// buffer it was to fill (a nonce or a key from it would be predictable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no randomness available: {0}")]
pub struct RngError(pub String);

pub trait Rng: MaybeSendSync {
    /// Fills `buf` with cryptographically secure random bytes, or fails.
    fn fill(&self, buf: &mut [u8]) -> Result<(), RngError>;
}

#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
#[cfg(target_arch = "wasm32")]
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + 'static>>;

/// Finished calls' writes that the database has not committed yet, kept
/// where a crash of this process cannot lose them (a file beside the
/// database). Hub appends a call's settlement before the caller receives the
/// call's last byte and marks it done once the database committed it; what is
/// never marked done is written again at the next start (settlements are
/// idempotent per call, so writing one twice charges once).
pub trait Journal: MaybeSendSync {
    /// Appends a record durably (it survives this process being killed) and
    /// returns its sequence number.
    fn append(&self, record: &[u8]) -> Result<u64, JournalError>;
    /// Marks a record committed; it will not be replayed.
    fn done(&self, seq: u64);
    /// Records appended and not yet done, oldest first.
    fn pending(&self) -> Result<Vec<(u64, Vec<u8>)>, JournalError>;
}

#[derive(Debug, thiserror::Error)]
#[error("settlement journal: {0}")]
pub struct JournalError(pub String);

/// Runs work that must finish after the response without delaying it
/// (settlement, call logs): `tokio::spawn` natively, `ctx.wait_until` on Workers.
pub trait Background: MaybeSendSync {
    fn spawn(&self, work: BoxFuture);
    /// A future that completes after `ms` milliseconds (for retries' backoff).
    fn sleep(&self, ms: u64) -> BoxFuture;
}

port! {
/// Credit wallets kept outside this process, one per user, each holding its
/// user's credit lease (a Worker's wallet Durable Objects, see
/// `hub::lessee::Lessee`): a call's hold is then one wallet call, not a
/// database write.
pub trait Wallets: MaybeSendSync {
    /// Holds `amount` for a call of `user` from the user's lease: the lease
    /// it came from, or None (no lease covers it: the call holds a row of
    /// its own). An error: the wallet (or its database) cannot be reached.
    /// The hold lives `ttl_ms` if the call's end is never heard of (as a
    /// hold row's).
    async fn hold(&self, user: &str, call: &str, amount: Credits, ttl_ms: i64) -> Result<Option<LeaseId>, DbError>;
    /// `call` held on `lease` ended: its hold is given back, and `charge`
    /// (already committed to the database) taken off the lease. Applied
    /// once per call: told again, or of a call it does not hold, the wallet
    /// changes nothing (so a close may be retried, or sent for a hold whose
    /// answer never arrived).
    async fn close(&self, user: &str, lease: Option<&str>, call: &str, charge: Credits) -> Result<(), DbError>;
    /// What the calls of `user` open on their wallet's leases hold.
    async fn held(&self, user: &str) -> Result<Credits, DbError>;
    /// Credit was taken from `user` (their leases were revoked in the
    /// database with it): the wallet stops serving holds from them now
    /// rather than at its next renewal.
    async fn revoke(&self, user: &str) -> Result<(), DbError>;
}
}

#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSendSync for T {}
