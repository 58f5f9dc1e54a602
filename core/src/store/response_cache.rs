//! The response cache's table: answers kept for identical requests until
//! they expire, within the operator's size cap (`prune_response_cache`).

use super::{first, Store};
use crate::metering::Usage;
use crate::ports::DbError;
use crate::sql;
use bytes::Bytes;

/// An answer as the caller received it, and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAnswer {
    /// Server-sent events, replayed as a stream; else a whole body.
    pub stream: bool,
    pub content_type: String,
    pub body: Bytes,
    /// The provider and its model name that produced the answer.
    pub provider_id: String,
    pub model: String,
    /// The provider's usage: a hit is billed a share of its cost.
    pub usage: Usage,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Store {
    /// The unexpired answer stored under `key`.
    pub async fn cached_answer(&self, key: &str, now_ms: i64) -> Result<Option<CachedAnswer>, DbError> {
        let rows = self
            .db
            .query(sql!(
                "SELECT stream, content_type, body, provider_id, model, usage, created_at, expires_at
                 FROM response_cache WHERE key = ?1 AND expires_at > ?2",
                key,
                now_ms
            ))
            .await?;
        Ok(first(&rows).and_then(|r| {
            Some(CachedAnswer {
                stream: r.bool("stream"),
                content_type: r.str("content_type"),
                body: Bytes::from(r.str("body")),
                provider_id: r.str("provider_id"),
                model: r.str("model"),
                usage: serde_json::from_str(&r.str("usage")).ok()?,
                created_at: r.i64("created_at"),
                expires_at: r.i64("expires_at"),
            })
        }))
    }

    /// Stores (or replaces) the answer under `key`. Bodies are text (JSON,
    /// or server-sent events); one that is not UTF-8 is not stored.
    pub async fn put_cached_answer(&self, key: &str, a: &CachedAnswer) -> Result<(), DbError> {
        let Ok(body) = std::str::from_utf8(&a.body) else {
            return Ok(());
        };
        let usage = serde_json::to_string(&a.usage).unwrap_or_default();
        self.db
            .execute(sql!(
                "INSERT OR REPLACE INTO response_cache (key, stream, content_type, body, provider_id, model, usage, bytes, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                key, a.stream, a.content_type.as_str(), body, a.provider_id.as_str(), a.model.as_str(), usage,
                a.body.len() as i64, a.created_at, a.expires_at
            ))
            .await
            .map(|_| ())
    }

    /// Deletes up to `limit` expired answers; returns how many.
    pub async fn prune_expired_answers(&self, now_ms: i64, limit: u64) -> Result<u64, DbError> {
        self.db
            .execute(sql!(
                "DELETE FROM response_cache WHERE key IN (
                   SELECT key FROM response_cache WHERE expires_at <= ?1 LIMIT ?2)",
                now_ms,
                limit as i64
            ))
            .await
    }

    /// Deletes up to `limit` of the oldest answers while the cache holds
    /// more than `max_bytes`; returns how many.
    pub async fn prune_oldest_answers(&self, max_bytes: i64, limit: u64) -> Result<u64, DbError> {
        let rows = self
            .db
            .query(sql!("SELECT COALESCE(SUM(bytes), 0) AS total FROM response_cache"))
            .await?;
        let total = first(&rows).map_or(0, |r| r.i64("total"));
        if total <= max_bytes {
            return Ok(0);
        }
        // The oldest rows whose sizes, summed from the oldest, cover the excess.
        self.db
            .execute(sql!(
                "DELETE FROM response_cache WHERE key IN (
                   SELECT key FROM (
                     SELECT key, SUM(bytes) OVER (ORDER BY created_at, key) - bytes AS before
                     FROM response_cache)
                   WHERE before < ?1 LIMIT ?2)",
                total - max_bytes,
                limit as i64
            ))
            .await
    }
}
