//! The SQL port over libSQL.
//!
//! * **Embedded file** (the default): SQLite calls are synchronous, so none
//!   runs on the async runtime. One writer thread owns the write connection
//!   and commits whatever is queued as one transaction (should one operation
//!   fail, the group is rolled back and each runs alone, so one failure does
//!   not fail its neighbours); one reader thread serves queries from a
//!   second connection (WAL lets it read while the writer writes).
//!   `synchronous=NORMAL`: durable across process crashes.
//! * **Remote** (`libsql://`, `https://`, `http://`: Turso, sqld, or any
//!   Hrana-over-HTTP server): each query or single write on its own
//!   connection (stream); batches go through a group committer that sends
//!   the batches waiting in this process as one transaction in one request
//!   ([`remote`]).

mod remote;

use async_trait::async_trait;
use hub_core::ports::{DbError, Rows, SqlDb, SqlValue, Stmt};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

use remote::{bounded, GroupCommitter, Hrana};

/// Most operations committed together by the writer.
const GROUP_COMMIT_MAX: usize = 512;
/// How long the writer waits for company before committing.
const GROUP_COMMIT_LINGER: Duration = Duration::from_millis(4);

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open database {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("another Hub process is already using {0}; an embedded database serves one process (use remote libSQL to run several)")]
    Locked(String),
}

pub struct LibSqlDb {
    backend: Backend,
}

enum Backend {
    Local {
        writer: mpsc::Sender<Op>,
        reader: mpsc::Sender<Op>,
        _lock: std::fs::File,
    },
    Remote {
        db: libsql::Database,
        batches: GroupCommitter,
    },
}

enum Op {
    Query(Stmt, oneshot::Sender<Result<Rows, DbError>>),
    Execute(Stmt, oneshot::Sender<Result<u64, DbError>>),
    Batch(Vec<Stmt>, oneshot::Sender<Result<Vec<u64>, DbError>>),
    Script(String, oneshot::Sender<Result<(), DbError>>),
}

/// The HTTP URL of a remote database (`libsql://` is Turso's alias for
/// `https://`; Hrana over HTTP serves the WebSocket URLs' hosts too).
fn http_url(url: &str) -> String {
    for (alias, scheme) in [("libsql://", "https://"), ("wss://", "https://"), ("ws://", "http://")] {
        if let Some(rest) = url.strip_prefix(alias) {
            return format!("{scheme}{rest}");
        }
    }
    url.to_string()
}

/// Whether `target` names a remote database rather than a file.
pub fn is_remote(target: &str) -> bool {
    ["libsql://", "https://", "http://", "wss://", "ws://"]
        .iter()
        .any(|p| target.starts_with(p))
}

impl LibSqlDb {
    /// Opens `target`: a file path (created if missing) or a remote URL.
    pub async fn open(target: &str, token: Option<String>) -> Result<LibSqlDb, OpenError> {
        if is_remote(target) {
            Self::open_remote(target, token.unwrap_or_default()).await
        } else {
            let path = target.strip_prefix("file:").unwrap_or(target);
            Self::open_local(Path::new(path)).await
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self.backend, Backend::Local { .. })
    }

    /// Writes waiting for the writer thread of an embedded database, or
    /// batches waiting for a remote database's group committer.
    pub fn queued_writes(&self) -> usize {
        match &self.backend {
            Backend::Local { writer, .. } => writer.max_capacity() - writer.capacity(),
            Backend::Remote { batches, .. } => batches.queued(),
        }
    }

    async fn open_remote(url: &str, token: String) -> Result<LibSqlDb, OpenError> {
        let url = http_url(url);
        let fail = |reason: String| OpenError::Open {
            path: url.clone(),
            reason,
        };
        let hrana = Hrana::new(&url, &token).map_err(fail)?;
        let db = libsql::Builder::new_remote(url.clone(), token)
            .build()
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(LibSqlDb {
            backend: Backend::Remote {
                db,
                batches: GroupCommitter::start(hrana),
            },
        })
    }

    async fn open_local(path: &Path) -> Result<LibSqlDb, OpenError> {
        let shown = path.display().to_string();
        let fail = |reason: String| OpenError::Open {
            path: shown.clone(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        }
        make_private(path).map_err(|e| fail(format!("cannot make its files private: {e}")))?;
        let lock = private_options()
            .open(sibling(path, ".lock"))
            .map_err(|e| fail(e.to_string()))?;
        if lock.try_lock().is_err() {
            return Err(OpenError::Locked(shown));
        }
        let db = libsql::Builder::new_local(path)
            .build()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let writer_conn = db.connect().map_err(|e| fail(e.to_string()))?;
        configure(&writer_conn, true).await.map_err(|e| fail(e.to_string()))?;
        let reader_conn = db.connect().map_err(|e| fail(e.to_string()))?;
        configure(&reader_conn, false).await.map_err(|e| fail(e.to_string()))?;
        let (writer, wrx) = mpsc::channel(16_384);
        let (reader, rrx) = mpsc::channel(16_384);
        spawn_thread("hub-db-writer", writer_conn, wrx, true).map_err(|e| fail(e.to_string()))?;
        spawn_thread("hub-db-reader", reader_conn, rrx, false).map_err(|e| fail(e.to_string()))?;
        let checkpoint_conn = db.connect().map_err(|e| fail(e.to_string()))?;
        spawn_checkpointer(checkpoint_conn).map_err(|e| fail(e.to_string()))?;
        // The database object must outlive its connections.
        std::mem::forget(db);
        Ok(LibSqlDb {
            backend: Backend::Local {
                writer,
                reader,
                _lock: lock,
            },
        })
    }
}

/// The files of an embedded database: the database, its WAL, its shared
/// memory index, a rollback journal (during a migration from another journal
/// mode) and Hub's lock.
#[cfg(unix)]
const DB_FILE_SUFFIXES: [&str; 5] = ["", "-wal", "-shm", "-journal", ".lock"];

/// `path` with `suffix` appended to its file name (`hub.db` → `hub.db-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Options that create a file readable and writable by its owner only.
fn private_options() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts
}

/// Keeps the database's files to their owner (0600): they hold every balance,
/// key hash and encrypted provider secret. A missing database file is created
/// 0600 before SQLite opens it, since SQLite gives the WAL and shared-memory
/// files it creates the database file's mode; files left with wider modes
/// (by an older Hub, or a copy) are tightened.
fn make_private(path: &Path) -> std::io::Result<()> {
    private_options().open(path)?;
    #[cfg(unix)]
    for suffix in DB_FILE_SUFFIXES {
        use std::os::unix::fs::PermissionsExt;
        let file = sibling(path, suffix);
        let mode = match std::fs::metadata(&file) {
            Ok(m) => m.permissions().mode(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o700))?;
            tracing::warn!(file = %file.display(), "the file was readable by others: now 0600");
        }
    }
    Ok(())
}

async fn configure(conn: &libsql::Connection, writer: bool) -> Result<(), libsql::Error> {
    if writer {
        conn.query("PRAGMA journal_mode=WAL", ()).await?;
        // Checkpoints (the only fsyncs under synchronous=NORMAL) run on their
        // own thread, so no commit ever waits behind one.
        conn.query("PRAGMA wal_autocheckpoint=0", ()).await?;
    }
    conn.query("PRAGMA busy_timeout=10000", ()).await?;
    conn.execute("PRAGMA synchronous=NORMAL", ()).await?;
    conn.execute("PRAGMA foreign_keys=ON", ()).await?;
    Ok(())
}

fn spawn_thread(name: &str, conn: libsql::Connection, mut rx: mpsc::Receiver<Op>, writer: bool) -> std::io::Result<()> {
    std::thread::Builder::new().name(name.to_string()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("database thread could not start: {e}");
                return;
            }
        };
        let mut urgent = false;
        if writer {
            set_cpu_class(urgent);
        }
        rt.block_on(async move {
            let mut local = Local {
                conn,
                cache: HashMap::new(),
            };
            let mut ops = Vec::with_capacity(GROUP_COMMIT_MAX);
            while rx.recv_many(&mut ops, GROUP_COMMIT_MAX).await > 0 {
                if writer {
                    // Idle class while keeping up; an ordinary thread while
                    // behind, so a saturated core cannot starve settlements.
                    let queued = rx.len();
                    let behind = if urgent {
                        queued >= BACKLOG_CAUGHT_UP
                    } else {
                        queued >= BACKLOG_URGENT
                    };
                    if behind != urgent {
                        urgent = behind;
                        set_cpu_class(urgent);
                    }
                    // Nothing waits on a write in the request path, so let a few more
                    // arrive and share one commit: most pages a settlement dirties
                    // (indexes, the users row) are the same for its neighbours.
                    linger_for_company(&mut rx, &mut ops).await;
                    local.run_group(&mut ops).await;
                } else {
                    for op in ops.drain(..) {
                        local.run_alone(op).await;
                    }
                }
            }
        });
    })?;
    Ok(())
}

/// Adds to `ops` what arrives within `GROUP_COMMIT_LINGER`, up to
/// `GROUP_COMMIT_MAX` in all, so it is committed together.
async fn linger_for_company<T>(rx: &mut mpsc::Receiver<T>, ops: &mut Vec<T>) {
    let linger = tokio::time::sleep(GROUP_COMMIT_LINGER);
    tokio::pin!(linger);
    while ops.len() < GROUP_COMMIT_MAX {
        let room = GROUP_COMMIT_MAX - ops.len();
        tokio::select! {
            _ = &mut linger => break,
            n = rx.recv_many(ops, room) => if n == 0 { break },
        }
    }
}

/// Copies the WAL back into the database twice a second without blocking
/// writers (PASSIVE), so the WAL stays small and commits stay fast.
fn spawn_checkpointer(conn: libsql::Connection) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("hub-db-checkpoint".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            set_cpu_class(false);
            rt.block_on(async move {
                let _ = conn.query("PRAGMA busy_timeout=10000", ()).await;
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if let Err(e) = conn.query("PRAGMA wal_checkpoint(PASSIVE)", ()).await {
                        tracing::warn!("WAL checkpoint failed: {e}");
                    }
                }
            });
        })?;
    Ok(())
}

/// Queued writes beyond which the writer stops yielding the CPU, and below
/// which it yields it again.
const BACKLOG_URGENT: usize = 1024;
const BACKLOG_CAUGHT_UP: usize = 64;

/// How the database threads share the CPU with requests.
///
/// Where the process may move a thread out of the idle scheduling class
/// again (root, or `CAP_SYS_NICE`), they run in it: whenever a core has
/// nothing else to do, and a request waking up takes the core from them at
/// once. The writer becomes an ordinary thread while it is behind, so a
/// saturated core cannot starve settlements. Elsewhere (an idle-class thread
/// could never leave the class) they run at nice 10: a smaller share, never
/// starved.
fn set_cpu_class(urgent: bool) {
    #[cfg(target_os = "linux")]
    {
        static MAY_LEAVE_IDLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let may_leave_idle = *MAY_LEAVE_IDLE.get_or_init(|| {
            std::thread::spawn(|| sched(libc::SCHED_IDLE) && sched(libc::SCHED_OTHER))
                .join()
                .unwrap_or(false)
        });
        if !may_leave_idle {
            // SAFETY: a plain syscall on the calling thread.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 10);
            }
        } else if urgent {
            sched(libc::SCHED_OTHER);
        } else {
            sched(libc::SCHED_IDLE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = urgent;
}

/// Sets the calling thread's scheduling policy; whether it was allowed.
#[cfg(target_os = "linux")]
fn sched(policy: libc::c_int) -> bool {
    // SAFETY: plain syscalls on the calling thread; `param` outlives the call.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(tid, policy, &param) == 0
    }
}

/// Most prepared statements kept per connection (the hot path uses a dozen).
const STATEMENT_CACHE: usize = 256;

/// A local connection owned by one thread, with its prepared statements.
struct Local {
    conn: libsql::Connection,
    cache: HashMap<String, libsql::Statement>,
}

impl Local {
    async fn prepared(&mut self, sql: &str) -> Result<&libsql::Statement, DbError> {
        if !self.cache.contains_key(sql) {
            if self.cache.len() >= STATEMENT_CACHE {
                self.cache.clear();
            }
            let stmt = self.conn.prepare(sql).await.map_err(map_err)?;
            self.cache.insert(sql.to_string(), stmt);
        }
        Ok(&self.cache[sql])
    }

    async fn execute(&mut self, sql: &str, params: libsql::params::Params) -> Result<u64, DbError> {
        let stmt = self.prepared(sql).await?;
        let result = stmt.execute(params).await;
        stmt.reset();
        result.map(|n| n as u64).map_err(map_err)
    }

    async fn query(&mut self, s: &Stmt) -> Result<Rows, DbError> {
        let stmt = self.prepared(&s.sql).await?;
        let result = read_rows(stmt.query(params(s)).await).await;
        stmt.reset();
        result
    }

    async fn batch(&mut self, stmts: &[Stmt]) -> Result<Vec<u64>, DbError> {
        let mut counts = Vec::with_capacity(stmts.len());
        for s in stmts {
            counts.push(self.execute(&s.sql, params(s)).await?);
        }
        Ok(counts)
    }

    async fn plain(&mut self, sql: &str) -> Result<u64, DbError> {
        self.execute(sql, libsql::params::Params::None).await
    }

    /// Runs queued writes in one transaction and replies after its commit.
    /// Should any of them fail, the whole group is rolled back and each runs
    /// again in its own transaction, so one failure never fails its
    /// neighbours (cheaper than a savepoint around every operation, since
    /// failures are rare: a settlement writes rows keyed by a fresh call id).
    async fn run_group(&mut self, ops: &mut Vec<Op>) {
        // Scripts (migrations) carry their own transaction: run them alone.
        if ops.iter().any(|o| matches!(o, Op::Script(..))) || ops.len() == 1 {
            for op in ops.drain(..) {
                self.run_alone(op).await;
            }
            return;
        }
        if let Err(e) = self.plain("BEGIN IMMEDIATE").await {
            for op in ops.drain(..) {
                reply_err(op, e.clone());
            }
            return;
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(ops.len());
        let mut failed = false;
        for op in ops.iter() {
            let reply = match op {
                Op::Execute(stmt, _) => self.execute(&stmt.sql, params(stmt)).await.map(Reply::Count),
                Op::Batch(stmts, _) => self.batch(stmts).await.map(Reply::Counts),
                Op::Query(stmt, _) => self.query(stmt).await.map(Reply::Rows),
                Op::Script(..) => unreachable!("scripts run alone"),
            };
            match reply {
                Ok(r) => replies.push(r),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if !failed && self.plain("COMMIT").await.is_ok() {
            for (op, reply) in ops.drain(..).zip(replies) {
                reply.send(op);
            }
            return;
        }
        let _ = self.conn.execute("ROLLBACK", ()).await;
        for op in ops.drain(..) {
            self.run_alone(op).await;
        }
    }

    async fn run_alone(&mut self, op: Op) {
        match op {
            Op::Query(stmt, tx) => drop(tx.send(self.query(&stmt).await)),
            Op::Execute(stmt, tx) => drop(tx.send(self.execute(&stmt.sql, params(&stmt)).await)),
            Op::Batch(stmts, tx) => {
                let r = match self.plain("BEGIN IMMEDIATE").await {
                    Err(e) => Err(e),
                    Ok(_) => match self.batch(&stmts).await {
                        Ok(counts) => self.plain("COMMIT").await.map(|_| counts),
                        Err(e) => Err(e),
                    },
                };
                if r.is_err() {
                    let _ = self.conn.execute("ROLLBACK", ()).await;
                }
                drop(tx.send(r));
            }
            Op::Script(sql, tx) => {
                // A migration changes the schema: forget every prepared statement.
                self.cache.clear();
                drop(tx.send(script(&self.conn, &sql).await));
            }
        }
    }
}

/// The result of an operation run inside a group, sent once the group commits.
enum Reply {
    Count(u64),
    Counts(Vec<u64>),
    Rows(Rows),
}

impl Reply {
    fn send(self, op: Op) {
        match (op, self) {
            (Op::Execute(_, tx), Reply::Count(n)) => drop(tx.send(Ok(n))),
            (Op::Batch(_, tx), Reply::Counts(n)) => drop(tx.send(Ok(n))),
            (Op::Query(_, tx), Reply::Rows(r)) => drop(tx.send(Ok(r))),
            (op, _) => reply_err(op, DbError::Other("internal: reply of another kind".into())),
        }
    }
}

fn reply_err(op: Op, e: DbError) {
    match op {
        Op::Query(_, tx) => drop(tx.send(Err(e))),
        Op::Execute(_, tx) => drop(tx.send(Err(e))),
        Op::Batch(_, tx) => drop(tx.send(Err(e))),
        Op::Script(_, tx) => drop(tx.send(Err(e))),
    }
}

// ------------------------------------------------------------------ statements

fn params(stmt: &Stmt) -> libsql::params::Params {
    libsql::params::Params::Positional(stmt.params.iter().map(to_libsql).collect())
}

fn to_libsql(v: &SqlValue) -> libsql::Value {
    match v {
        SqlValue::Null => libsql::Value::Null,
        SqlValue::Integer(i) => libsql::Value::Integer(*i),
        SqlValue::Real(f) => libsql::Value::Real(*f),
        SqlValue::Text(t) => libsql::Value::Text(t.clone()),
        SqlValue::Blob(b) => libsql::Value::Blob(b.clone()),
    }
}

fn from_libsql(v: libsql::Value) -> SqlValue {
    match v {
        libsql::Value::Null => SqlValue::Null,
        libsql::Value::Integer(i) => SqlValue::Integer(i),
        libsql::Value::Real(f) => SqlValue::Real(f),
        libsql::Value::Text(t) => SqlValue::Text(t),
        libsql::Value::Blob(b) => SqlValue::Blob(b),
    }
}

fn map_err(e: libsql::Error) -> DbError {
    let text = e.to_string();
    let constraint = matches!(&e, libsql::Error::SqliteFailure(code, _) if code & 0xff == 19)
        || text.contains("constraint failed")
        || text.contains("SQLITE_CONSTRAINT");
    if constraint {
        return DbError::Constraint(text);
    }
    match e {
        libsql::Error::Hrana(_) | libsql::Error::ConnectionFailed(_) => DbError::Unavailable(text),
        _ if text.contains("database is locked") => DbError::Unavailable(text),
        _ => DbError::Other(text),
    }
}

async fn query(conn: &libsql::Connection, stmt: &Stmt) -> Result<Rows, DbError> {
    read_rows(conn.query(&stmt.sql, params(stmt)).await).await
}

async fn read_rows(rows: Result<libsql::Rows, libsql::Error>) -> Result<Rows, DbError> {
    let mut rows = rows.map_err(map_err)?;
    let n = rows.column_count();
    let columns = (0..n)
        .map(|i| rows.column_name(i).unwrap_or_default().to_string())
        .collect();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.map_err(map_err)? {
        let mut values = Vec::with_capacity(n as usize);
        for i in 0..n {
            values.push(from_libsql(row.get_value(i).map_err(map_err)?));
        }
        out.push(values);
    }
    Ok(Rows { columns, rows: out })
}

async fn execute(conn: &libsql::Connection, stmt: &Stmt) -> Result<u64, DbError> {
    conn.execute(&stmt.sql, params(stmt)).await.map_err(map_err)
}

async fn script(conn: &libsql::Connection, sql: &str) -> Result<(), DbError> {
    let wrapped = format!("BEGIN IMMEDIATE;\n{sql}\nCOMMIT;");
    match conn.execute_batch(&wrapped).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let _ = conn.execute("ROLLBACK", ()).await;
            Err(map_err(e))
        }
    }
}

// ------------------------------------------------------------------ the port

impl LibSqlDb {
    async fn send<T>(
        &self,
        to_writer: bool,
        make: impl FnOnce(oneshot::Sender<Result<T, DbError>>) -> Op,
    ) -> Result<T, DbError> {
        let Backend::Local { writer, reader, .. } = &self.backend else {
            unreachable!("only local databases queue operations")
        };
        let (tx, rx) = oneshot::channel();
        let queue = if to_writer { writer } else { reader };
        queue
            .send(make(tx))
            .await
            .map_err(|_| DbError::Unavailable("the database thread has stopped".into()))?;
        rx.await
            .map_err(|_| DbError::Unavailable("the database thread has stopped".into()))?
    }

    fn remote_conn(db: &libsql::Database) -> Result<libsql::Connection, DbError> {
        db.connect().map_err(map_err)
    }
}

#[async_trait]
impl SqlDb for LibSqlDb {
    async fn query(&self, stmt: Stmt) -> Result<Rows, DbError> {
        match &self.backend {
            Backend::Local { .. } => self.send(false, |tx| Op::Query(stmt, tx)).await,
            Backend::Remote { db, .. } => bounded(async { query(&Self::remote_conn(db)?, &stmt).await }).await,
        }
    }

    async fn execute(&self, stmt: Stmt) -> Result<u64, DbError> {
        match &self.backend {
            Backend::Local { .. } => self.send(true, |tx| Op::Execute(stmt, tx)).await,
            Backend::Remote { db, .. } => bounded(async { execute(&Self::remote_conn(db)?, &stmt).await }).await,
        }
    }

    async fn write_returning(&self, stmt: Stmt) -> Result<Rows, DbError> {
        match &self.backend {
            Backend::Local { .. } => self.send(true, |tx| Op::Query(stmt, tx)).await,
            Backend::Remote { db, .. } => bounded(async { query(&Self::remote_conn(db)?, &stmt).await }).await,
        }
    }

    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, DbError> {
        match &self.backend {
            Backend::Local { .. } => self.send(true, |tx| Op::Batch(stmts, tx)).await,
            Backend::Remote { batches, .. } => batches.batch(stmts).await,
        }
    }

    async fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        let sql = sql.to_string();
        match &self.backend {
            Backend::Local { .. } => self.send(true, |tx| Op::Script(sql, tx)).await,
            Backend::Remote { db, .. } => bounded(async { script(&Self::remote_conn(db)?, &sql).await }).await,
        }
    }
}
