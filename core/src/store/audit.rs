//! The audit log (`audit_log`, migration 0012). An admin request's entry is
//! written by the database wrapper [`Store::audited`] gives its handler: each
//! write statement is followed, in the same batch, by an insert of the entry
//! that fires only if the statement changed a row. So the entry commits with
//! the request's first change: there is no change without its entry. When
//! the request has been answered, [`Store::finish_audit`] adds its status and
//! the resource after (and writes the entry of a request that was refused
//! before changing anything, so refused attempts are on record too).

use super::{first, rows, Page, Row, Store};
use crate::kinds::{AuditAction, AuditResource};
use crate::ports::{DbError, Rows, SqlDb, SqlValue, Stmt};
use crate::sql;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Who made an admin request: a user, through a key or a browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: String,
    pub key_id: Option<String>,
    pub session_id: Option<String>,
}

/// What an admin request's entry says when it is written with its first change.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: String,
    pub at: i64,
    pub actor: Actor,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub resource: AuditResource,
    /// Known from the path; a create's id comes from its answer, at the finish.
    pub resource_id: Option<String>,
    pub action: AuditAction,
    /// The request body, secrets masked.
    pub request: Option<Value>,
    pub before: Option<Value>,
}

/// An admin request's entry and whether it has been written yet.
#[derive(Debug)]
pub struct AuditTrail {
    entry: AuditEntry,
    written: AtomicBool,
    /// Finished: later writes (background work the request started) are not the request's.
    closed: AtomicBool,
}

impl AuditTrail {
    pub fn new(entry: AuditEntry) -> Arc<AuditTrail> {
        Arc::new(AuditTrail {
            entry,
            written: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        })
    }

    pub fn id(&self) -> &str {
        &self.entry.id
    }

    pub fn before(&self) -> Option<&Value> {
        self.entry.before.as_ref()
    }

    /// Whether the request changed something (and so its entry exists).
    pub fn written(&self) -> bool {
        self.written.load(Ordering::Acquire)
    }

    fn open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// The entry's insert, run right after a write: it fires only if that
    /// write changed a row (`changes()` is the previous statement's count),
    /// and only once per entry.
    fn insert_after_write(&self) -> Stmt {
        let e = &self.entry;
        let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
        sql!(
            "INSERT INTO audit_log (id, at, actor_user_id, actor_key_id, actor_session_id, request_id, method, path,
                                    resource, resource_id, action, request, before)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13
             WHERE changes() > 0 OR ?14
             ON CONFLICT (id) DO NOTHING",
            &e.id,
            e.at,
            &e.actor.user_id,
            e.actor.key_id.as_deref(),
            e.actor.session_id.as_deref(),
            &e.request_id,
            &e.method,
            &e.path,
            e.resource.as_str(),
            e.resource_id.as_deref(),
            e.action.as_str(),
            json(&e.request),
            json(&e.before),
            false
        )
    }

    /// The entry's insert whatever the previous statement did.
    fn insert_now(&self) -> Stmt {
        let mut stmt = self.insert_after_write();
        if let Some(last) = stmt.params.last_mut() {
            *last = SqlValue::from(true);
        }
        stmt
    }

    fn note(&self, inserted: u64) {
        if inserted > 0 {
            self.written.store(true, Ordering::Release);
        }
    }
}

/// The database as an audited admin request's handler sees it.
struct AuditedDb {
    db: Arc<dyn SqlDb>,
    trail: Arc<AuditTrail>,
}

impl AuditedDb {
    /// Runs writes, each followed by the entry's conditional insert, in one
    /// batch; answers each write's own count.
    async fn audited_batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, DbError> {
        let mut with_entry = Vec::with_capacity(stmts.len() * 2);
        for stmt in stmts {
            with_entry.push(stmt);
            with_entry.push(self.trail.insert_after_write());
        }
        let counts = self.db.batch(with_entry).await?;
        let mut own = Vec::with_capacity(counts.len() / 2);
        for pair in counts.chunks(2) {
            own.push(pair[0]);
            self.trail.note(pair.get(1).copied().unwrap_or(0));
        }
        Ok(own)
    }
}

port! {
impl SqlDb for AuditedDb {
    async fn query(&self, stmt: Stmt) -> Result<Rows, DbError> {
        self.db.query(stmt).await
    }

    async fn execute(&self, stmt: Stmt) -> Result<u64, DbError> {
        if !self.trail.open() {
            return self.db.execute(stmt).await;
        }
        let counts = self.audited_batch(vec![stmt]).await?;
        Ok(counts.first().copied().unwrap_or(0))
    }

    /// A write whose answer is its `RETURNING` rows cannot share a batch:
    /// the entry goes first, so a change still never lacks its entry.
    async fn write_returning(&self, stmt: Stmt) -> Result<Rows, DbError> {
        if self.trail.open() {
            let inserted = self.db.execute(self.trail.insert_now()).await?;
            self.trail.note(inserted);
        }
        self.db.write_returning(stmt).await
    }

    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, DbError> {
        if !self.trail.open() {
            return self.db.batch(stmts).await;
        }
        self.audited_batch(stmts).await
    }

    async fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        self.db.execute_script(sql).await
    }
}
}

/// How an admin request ended.
pub struct AuditFinish<'a> {
    pub status: u16,
    /// A create's id, from its answer (an id from the path is kept).
    pub resource_id: Option<&'a str>,
    pub after: Option<Value>,
    pub now_ms: i64,
}

/// One entry, as stored.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: String,
    pub at: i64,
    pub actor: Actor,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub action: String,
    pub request: Option<Value>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub status: Option<i64>,
    pub finished_at: Option<i64>,
}

/// Which entries a listing shows (all given conditions hold).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// A user id, key id or session id.
    pub actor: Option<String>,
    pub resource: Option<AuditResource>,
    pub resource_id: Option<String>,
    pub action: Option<AuditAction>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

fn audit_row(r: &Row) -> AuditRow {
    AuditRow {
        id: r.str("id"),
        at: r.i64("at"),
        actor: Actor {
            user_id: r.str("actor_user_id"),
            key_id: r.opt_str("actor_key_id"),
            session_id: r.opt_str("actor_session_id"),
        },
        request_id: r.str("request_id"),
        method: r.str("method"),
        path: r.str("path"),
        resource: r.str("resource"),
        resource_id: r.opt_str("resource_id"),
        action: r.str("action"),
        request: r.json("request"),
        before: r.json("before"),
        after: r.json("after"),
        status: r.opt_i64("status"),
        finished_at: r.opt_i64("finished_at"),
    }
}

impl Store {
    /// This store with every write carrying the trail's entry (see the module).
    pub fn audited(&self, trail: Arc<AuditTrail>) -> Store {
        Store::new(Arc::new(AuditedDb {
            db: self.db.clone(),
            trail,
        }))
    }

    /// Closes the trail and finishes its entry: the one written with the
    /// request's first change, or, for a request that changed nothing (it
    /// was refused), one written now. Called on the plain store.
    pub async fn finish_audit(&self, trail: &AuditTrail, end: &AuditFinish<'_>) -> Result<(), DbError> {
        trail.closed.store(true, Ordering::Release);
        if !trail.written() {
            self.db.execute(trail.insert_now()).await?;
        }
        self.db
            .execute(sql!(
                "UPDATE audit_log SET status = ?2, resource_id = COALESCE(resource_id, ?3), after = ?4, finished_at = ?5
                 WHERE id = ?1 AND status IS NULL",
                trail.id(),
                i64::from(end.status),
                end.resource_id,
                end.after.as_ref().map(Value::to_string),
                end.now_ms
            ))
            .await
            .map(drop)
    }

    /// Entries, newest first, from before `cursor` (an entry id).
    pub async fn list_audit(
        &self,
        f: &AuditFilter,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Page<AuditRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM audit_log
                 WHERE (?1 IS NULL OR actor_user_id = ?1 OR actor_key_id = ?1 OR actor_session_id = ?1)
                   AND (?2 IS NULL OR resource = ?2) AND (?3 IS NULL OR resource_id = ?3)
                   AND (?4 IS NULL OR action = ?4) AND (?5 IS NULL OR at >= ?5) AND (?6 IS NULL OR at < ?6)
                   AND (?7 IS NULL OR id < ?7)
                 ORDER BY id DESC LIMIT ?8",
                f.actor.as_deref(),
                f.resource.map(AuditResource::as_str),
                f.resource_id.as_deref(),
                f.action.map(AuditAction::as_str),
                f.from,
                f.to,
                cursor,
                limit + 1
            ))
            .await?;
        let items: Vec<AuditRow> = rows(&r).map(|r| audit_row(&r)).collect();
        Ok(Page::from_rows(items, limit, |e| e.id.clone()))
    }

    /// One entry.
    pub async fn get_audit(&self, id: &str) -> Result<Option<AuditRow>, DbError> {
        let r = self.db.query(sql!("SELECT * FROM audit_log WHERE id = ?1", id)).await?;
        Ok(first(&r).map(|r| audit_row(&r)))
    }
}
