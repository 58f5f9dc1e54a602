//! The call log: one row per attempt at a provider, kept
//! `call_retention_days` (see `prune_calls`); the usage roll-ups outlive it.

use super::{rows, CallLog, Page, Row, Store};
use crate::kinds::{CallStatus, Endpoint};
use crate::metering::money::Credits;
use crate::metering::Usage;
use crate::ports::{DbError, SqlValue, Stmt};
use crate::sql;

/// Filters on the call log; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub user: Option<String>,
    pub key: Option<String>,
    pub app: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// Calls made with the team's keys.
    pub team: Option<String>,
    pub status: Option<CallStatus>,
}

impl CallFilter {
    /// The filter as SQL over the call log's columns (the roll-ups share
    /// their names), its values appended to `params`.
    pub(super) fn where_clause(&self, params: &mut Vec<SqlValue>) -> String {
        let mut conds: Vec<String> = Vec::new();
        let mut add = |template: &str, v: SqlValue| {
            params.push(v);
            conds.push(template.replace('?', &format!("?{}", params.len())));
        };
        if let Some(v) = self.from {
            add("created_at >= ?", v.into());
        }
        if let Some(v) = self.to {
            add("created_at < ?", v.into());
        }
        if let Some(v) = &self.user {
            add("user_id = ?", v.into());
        }
        if let Some(v) = &self.key {
            add("key_id = ?", v.into());
        }
        if let Some(v) = &self.app {
            add("app = ?", v.into());
        }
        if let Some(v) = &self.provider {
            // The provider's name or its id.
            add("(provider = ? OR provider_id = ?)", v.into());
        }
        if let Some(v) = &self.model {
            add("model = ?", v.into());
        }
        if let Some(v) = &self.team {
            // A key's team is fixed when it is made, so this reads the same whenever it runs.
            add("key_id IN (SELECT id FROM api_keys WHERE team_id = ?)", v.into());
        }
        if let Some(v) = self.status {
            add("status = ?", v.as_str().into());
        }
        if conds.is_empty() {
            "1 = 1".into()
        } else {
            conds.join(" AND ")
        }
    }
}

fn call(r: &Row) -> CallLog {
    CallLog {
        id: r.str("id"),
        call_id: r.str("call_id"),
        attempt: r.i64("attempt"),
        request_id: r.opt_str("request_id"),
        // Only Hub writes this column; a name it does not know reads as chat.
        endpoint: Endpoint::parse(&r.str("endpoint")).unwrap_or(Endpoint::Chat),
        user_id: r.opt_str("user_id"),
        key_id: r.opt_str("key_id"),
        app: r.opt_str("app"),
        provider_id: r.opt_str("provider_id"),
        provider: r.opt_str("provider"),
        credential_id: r.opt_str("credential_id"),
        model: r.str("model"),
        alias: r.opt_str("alias"),
        upstream_model: r.opt_str("upstream_model"),
        stream: r.bool("stream"),
        status: CallStatus::parse(&r.str("status")).unwrap_or(CallStatus::Failed),
        http_status: r.opt_i64("http_status"),
        error: r.opt_str("error"),
        usage: Usage {
            input_tokens: r.i64("input_tokens") as u64,
            output_tokens: r.i64("output_tokens") as u64,
            cache_read_tokens: r.i64("cache_read_tokens") as u64,
            cache_write_tokens: r.i64("cache_write_tokens") as u64,
            cache_write_1h_tokens: r.i64("cache_write_1h_tokens") as u64,
            audio_ms: r.i64("audio_ms") as u64,
            characters: r.i64("characters") as u64,
            video_seconds: r.i64("video_seconds") as u64,
            ..Default::default()
        },
        credits: Credits::from_nanos(r.i64("credits")),
        cache_saved: Credits::from_nanos(r.i64("cache_saved")),
        response_cache: r
            .opt_str("response_cache")
            .and_then(|c| crate::kinds::CacheUse::parse(&c)),
        response_cache_saved: Credits::from_nanos(r.i64("response_cache_saved")),
        estimated: r.bool("estimated"),
        clamped: r.bool("clamped"),
        duration_ms: r.i64("duration_ms"),
        ttfb_ms: r.opt_i64("ttfb_ms"),
        upstream_ttfb_ms: r.opt_i64("upstream_ttfb_ms"),
        created_at: r.i64("created_at"),
    }
}

impl Store {
    pub async fn list_calls(
        &self,
        filter: &CallFilter,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Page<CallLog>, DbError> {
        let mut params = Vec::new();
        let mut clause = filter.where_clause(&mut params);
        if let Some(c) = cursor {
            params.push(c.into());
            clause.push_str(&format!(" AND id < ?{}", params.len()));
        }
        params.push((limit + 1).into());
        let sql = format!(
            "SELECT * FROM calls WHERE {clause} ORDER BY id DESC LIMIT ?{}",
            params.len()
        );
        let r = self.db.query(Stmt::new(sql, params)).await?;
        let items: Vec<CallLog> = rows(&r).map(|r| call(&r)).collect();
        Ok(Page::from_rows(items, limit, |c| c.id.clone()))
    }

    /// Deletes up to `limit` call-log rows made before `before`, and
    /// records, in the same transaction, that rows before it may be gone
    /// (the usage query reads the roll-ups there; see [`Store::usage`]).
    /// The roll-ups and the ledger are untouched: nothing references a
    /// call-log row.
    pub async fn prune_calls(&self, before: i64, limit: u64) -> Result<u64, DbError> {
        let counts = self
            .db
            .batch(vec![
                sql!(
                    "INSERT INTO calls_pruned (id, whole_since) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET whole_since = MAX(whole_since, excluded.whole_since)",
                    before
                ),
                sql!(
                    "DELETE FROM calls WHERE rowid IN (
                       SELECT rowid FROM calls WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
                    before,
                    limit as i64
                ),
            ])
            .await?;
        Ok(counts.get(1).copied().unwrap_or(0))
    }

    /// From when on the call log is whole: every row made since is still
    /// there (0 when nothing was ever deleted).
    pub(super) async fn calls_whole_since(&self) -> Result<i64, DbError> {
        let r = self
            .db
            .query(sql!("SELECT whole_since FROM calls_pruned WHERE id = 1"))
            .await?;
        Ok(super::first(&r).map_or(0, |r| r.i64("whole_since")))
    }
}
