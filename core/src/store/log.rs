//! The call log and usage analytics.

use super::{rows, CallLog, Page, Row, Store};
use crate::kinds::{CallStatus, Endpoint};
use crate::metering::money::Credits;
use crate::metering::Usage;
use crate::ports::{DbError, SqlValue, Stmt};
use std::collections::BTreeMap;

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
    pub status: Option<CallStatus>,
}

impl CallFilter {
    fn where_clause(&self, params: &mut Vec<SqlValue>) -> String {
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
        estimated: r.bool("estimated"),
        clamped: r.bool("clamped"),
        duration_ms: r.i64("duration_ms"),
        ttfb_ms: r.opt_i64("ttfb_ms"),
        upstream_ttfb_ms: r.opt_i64("upstream_ttfb_ms"),
        created_at: r.i64("created_at"),
    }
}

/// How usage is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Hour,
    Day,
    Model,
    Provider,
    User,
    App,
    Key,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<GroupBy> {
        Some(match s {
            "hour" => GroupBy::Hour,
            "day" => GroupBy::Day,
            "model" => GroupBy::Model,
            "provider" => GroupBy::Provider,
            "user" => GroupBy::User,
            "app" => GroupBy::App,
            "key" => GroupBy::Key,
            _ => return None,
        })
    }

    fn expr(self, tz_minutes: i64) -> String {
        let off = tz_minutes * 60_000;
        match self {
            GroupBy::Hour => format!("((created_at + {off}) / 3600000) * 3600000 - {off}"),
            GroupBy::Day => format!("((created_at + {off}) / 86400000) * 86400000 - {off}"),
            GroupBy::Model => "model".into(),
            GroupBy::Provider => "COALESCE(provider, '')".into(),
            GroupBy::User => "COALESCE(user_id, '')".into(),
            GroupBy::App => "COALESCE(app, '')".into(),
            GroupBy::Key => "COALESCE(key_id, '')".into(),
        }
    }
}

/// One group of usage.
#[derive(Debug, Clone, Default)]
pub struct UsageBucket {
    pub group: String,
    pub calls: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub credits: Credits,
    /// What prompt caching saved (negative: cost more), summed.
    pub cache_saved: Credits,
    pub ttfb_p50_ms: Option<i64>,
    pub ttfb_p95_ms: Option<i64>,
}

fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
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

    /// Calls, tokens, credits, errors and TTFB percentiles per group.
    pub async fn usage(
        &self,
        filter: &CallFilter,
        group_by: GroupBy,
        tz_minutes: i64,
    ) -> Result<Vec<UsageBucket>, DbError> {
        let mut params = Vec::new();
        let clause = filter.where_clause(&mut params);
        let g = group_by.expr(tz_minutes);
        let sql = format!(
            "SELECT {g} AS g, COUNT(*) AS calls, SUM(status = 'failed') AS errors, SUM(input_tokens) AS i, SUM(output_tokens) AS o,
                    SUM(cache_read_tokens) AS cr, SUM(cache_write_tokens) AS cw, SUM(credits) AS credits,
                    SUM(cache_saved) AS saved
             FROM calls WHERE {clause} GROUP BY g ORDER BY g"
        );
        let r = self.db.query(Stmt::new(sql, params.clone())).await?;
        let mut buckets: BTreeMap<String, UsageBucket> = rows(&r)
            .map(|r| {
                let group = r.str("g");
                let b = UsageBucket {
                    group: group.clone(),
                    calls: r.i64("calls"),
                    errors: r.i64("errors"),
                    input_tokens: r.i64("i"),
                    output_tokens: r.i64("o"),
                    cache_read_tokens: r.i64("cr"),
                    cache_write_tokens: r.i64("cw"),
                    credits: Credits::from_nanos(r.i64("credits")),
                    cache_saved: Credits::from_nanos(r.i64("saved")),
                    ..Default::default()
                };
                (group, b)
            })
            .collect();
        let sql = format!(
            "SELECT {g} AS g, ttfb_ms FROM calls WHERE {clause} AND ttfb_ms IS NOT NULL ORDER BY g, ttfb_ms LIMIT 200000"
        );
        let r = self.db.query(Stmt::new(sql, params)).await?;
        let mut ttfbs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for row in rows(&r) {
            ttfbs.entry(row.str("g")).or_default().push(row.i64("ttfb_ms"));
        }
        for (g, values) in ttfbs {
            if let Some(b) = buckets.get_mut(&g) {
                b.ttfb_p50_ms = percentile(&values, 0.5);
                b.ttfb_p95_ms = percentile(&values, 0.95);
            }
        }
        Ok(buckets.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(super::percentile(&v, 0.5), Some(50));
        assert_eq!(super::percentile(&v, 0.95), Some(95));
        assert_eq!(super::percentile(&[7], 0.95), Some(7));
        assert_eq!(super::percentile(&[], 0.5), None);
    }
}
