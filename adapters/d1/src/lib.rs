//! The SQL port over a Cloudflare D1 binding. Statements keep their `?N`
//! placeholders (D1 speaks SQLite); a batch is D1's own `batch()`, which runs
//! as one transaction, so holds and settlements stay atomic.
//!
//! D1 hands rows to JavaScript, where numbers are doubles: integers are exact
//! up to 2^53 (9,007,199 credits held as nano-credits), which bounds balances
//! and amounts on this backend.

#![cfg(target_arch = "wasm32")]

use hub_core::ports::{DbError, Rows, SqlDb, SqlValue, Stmt};
use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

pub struct D1Db {
    db: D1Database,
}

impl D1Db {
    pub fn new(db: D1Database) -> Self {
        D1Db { db }
    }

    fn prepare(&self, stmt: &Stmt) -> Result<D1PreparedStatement, DbError> {
        let params: Vec<JsValue> = stmt.params.iter().map(to_js).collect();
        self.db
            .prepare(stmt.sql.as_ref())
            .bind(&params)
            .map_err(|e| classify(&e.to_string()))
    }
}

fn to_js(v: &SqlValue) -> JsValue {
    match v {
        SqlValue::Null => JsValue::NULL,
        // JavaScript numbers: exact for every integer Hub stores below 2^53.
        SqlValue::Integer(i) => JsValue::from_f64(*i as f64),
        SqlValue::Real(f) => JsValue::from_f64(*f),
        SqlValue::Text(t) => JsValue::from_str(t),
        SqlValue::Blob(b) => js_sys_bytes(b),
    }
}

fn js_sys_bytes(b: &[u8]) -> JsValue {
    worker::js_sys::Uint8Array::from(b).into()
}

fn from_json(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(*b as i64),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => SqlValue::Integer(i),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => SqlValue::Integer(f as i64),
            (None, Some(f)) => SqlValue::Real(f),
            _ => SqlValue::Null,
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Array(items) => SqlValue::Blob(items.iter().filter_map(|i| i.as_u64().map(|b| b as u8)).collect()),
        Value::Object(_) => SqlValue::Text(v.to_string()),
    }
}

/// D1's error text, sorted into the port's kinds.
fn classify(msg: &str) -> DbError {
    if msg.contains("constraint failed") || msg.contains("SQLITE_CONSTRAINT") {
        DbError::Constraint(msg.to_string())
    } else if msg.contains("Network connection lost")
        || msg.contains("D1_ERROR: internal")
        || msg.contains("overloaded")
    {
        DbError::Unavailable(msg.to_string())
    } else {
        DbError::Other(msg.to_string())
    }
}

fn changes(r: &worker::D1Result) -> Result<u64, DbError> {
    if let Some(e) = r.error() {
        return Err(classify(&e));
    }
    let meta = r.meta().map_err(|e| classify(&e.to_string()))?;
    Ok(meta.and_then(|m| m.changes).unwrap_or(0) as u64)
}

#[async_trait::async_trait(?Send)]
impl SqlDb for D1Db {
    async fn query(&self, stmt: Stmt) -> Result<Rows, DbError> {
        let result = self.prepare(&stmt)?.all().await.map_err(|e| classify(&e.to_string()))?;
        if let Some(e) = result.error() {
            return Err(classify(&e));
        }
        let objects: Vec<serde_json::Map<String, Value>> =
            result.results().map_err(|e| DbError::Other(e.to_string()))?;
        let columns: Vec<String> = objects.first().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        let rows = objects
            .iter()
            .map(|o| {
                columns
                    .iter()
                    .map(|c| from_json(o.get(c).unwrap_or(&Value::Null)))
                    .collect()
            })
            .collect();
        Ok(Rows { columns, rows })
    }

    async fn execute(&self, stmt: Stmt) -> Result<u64, DbError> {
        let r = self.prepare(&stmt)?.run().await.map_err(|e| classify(&e.to_string()))?;
        changes(&r)
    }

    async fn write_returning(&self, stmt: Stmt) -> Result<Rows, DbError> {
        // D1 runs a write through `all()` like a read and hands back its rows.
        self.query(stmt).await
    }

    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, DbError> {
        let prepared = stmts.iter().map(|s| self.prepare(s)).collect::<Result<Vec<_>, _>>()?;
        let results = self.db.batch(prepared).await.map_err(|e| classify(&e.to_string()))?;
        results.iter().map(changes).collect()
    }

    async fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        self.db
            .exec(sql)
            .await
            .map(|_| ())
            .map_err(|e| classify(&e.to_string()))
    }
}
