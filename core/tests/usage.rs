//! Usage analytics on a real embedded database: the hourly and daily
//! roll-ups (migration 0014) agree with the call log they sum, whatever the
//! grouping, UTC offset and range, before and after old call-log rows are
//! deleted; the migration's backfill counts the rows logged before it; the
//! TTFB histogram's buckets are the same in SQL and in Rust.

use hub_core::kinds::{CallStatus, Endpoint};
use hub_core::metering::Usage;
use hub_core::ports::{SqlDb, SqlValue};
use hub_core::store::{
    call_log_stmt, ttfb_bucket, CallFilter, CallLog, GroupBy, Store, UsageBucket, DAY_MS, HOUR_MS, MIGRATIONS,
    TTFB_BOUNDS, TTFB_BUCKETS,
};
use hub_core::{sql, Credits};
use hub_libsql::LibSqlDb;
use std::collections::BTreeMap;
use std::sync::Arc;

mod common;

/// 2026-01-01T00:00:00Z.
const T: i64 = 1_767_225_600_000;
const GROUPINGS: [GroupBy; 8] = [
    GroupBy::Hour,
    GroupBy::Day,
    GroupBy::Model,
    GroupBy::Provider,
    GroupBy::User,
    GroupBy::Team,
    GroupBy::App,
    GroupBy::Key,
];

/// A small deterministic random source.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.next(items.len() as u64) as usize].clone()
    }
}

/// `n` call-log rows over four days around `T`, every dimension sometimes
/// missing, TTFBs on and beside every histogram bound.
fn generate(n: usize, seed: u64) -> Vec<CallLog> {
    let mut rng = Lcg(seed);
    let mut ttfbs: Vec<Option<i64>> = vec![None, Some(0)];
    for b in TTFB_BOUNDS {
        ttfbs.extend([Some(b - 1), Some(b)]);
    }
    ttfbs.push(Some(400_000));
    (0..n)
        .map(|i| {
            let s = |items: &[Option<&str>], rng: &mut Lcg| rng.pick(items).map(str::to_owned);
            let provider = rng.next(3);
            CallLog {
                id: format!("cl_{seed}_{i}"),
                call_id: format!("call_{seed}_{i}"),
                attempt: 1,
                request_id: None,
                endpoint: Endpoint::Chat,
                user_id: s(&[Some("usr_a"), Some("usr_b"), None], &mut rng),
                key_id: s(&[Some("key_a"), Some("key_b"), Some("key_c"), None], &mut rng),
                app: s(&[Some("app_x"), None], &mut rng),
                provider_id: ["prv_1", "prv_2", ""]
                    .get(provider as usize)
                    .filter(|p| !p.is_empty())
                    .map(|p| p.to_string()),
                provider: ["one", "two", ""]
                    .get(provider as usize)
                    .filter(|p| !p.is_empty())
                    .map(|p| p.to_string()),
                credential_id: None,
                model: rng.pick(&["model-a", "model-b"]).to_string(),
                alias: None,
                upstream_model: None,
                stream: false,
                status: rng.pick(&[
                    CallStatus::Success,
                    CallStatus::Success,
                    CallStatus::Failed,
                    CallStatus::Aborted,
                ]),
                http_status: Some(200),
                error: None,
                usage: Usage {
                    input_tokens: rng.next(5000),
                    output_tokens: rng.next(3000),
                    cache_read_tokens: rng.next(100),
                    cache_write_tokens: rng.next(100),
                    cache_write_1h_tokens: rng.next(10),
                    audio_ms: rng.next(3),
                    characters: rng.next(3),
                    video_seconds: rng.next(2),
                    ..Default::default()
                },
                credits: Credits::from_nanos(rng.next(5_000_000_000) as i64 + 1),
                cache_saved: Credits::from_nanos(rng.next(2_000_000) as i64 - 1_000_000),
                response_cache: None,
                response_cache_saved: Credits::ZERO,
                estimated: false,
                clamped: false,
                duration_ms: 10,
                ttfb_ms: rng.pick(&ttfbs),
                upstream_ttfb_ms: None,
                created_at: T - 2 * DAY_MS + rng.next(4 * DAY_MS as u64) as i64,
            }
        })
        .collect()
}

async fn open(dir: &common::TempDir) -> (Arc<LibSqlDb>, Store) {
    let db = Arc::new(
        LibSqlDb::open(dir.0.join("hub.db").to_str().unwrap(), None)
            .await
            .unwrap(),
    );
    let store = Store::new(db.clone());
    (db, store)
}

async fn log(db: &LibSqlDb, calls: &[CallLog]) {
    for chunk in calls.chunks(500) {
        db.batch(chunk.iter().map(call_log_stmt).collect()).await.unwrap();
    }
}

/// A call-log row as Hub wrote it before migrations 17 and 18 added the
/// response cache's and the routing's columns, the last four of today's statement.
fn call_log_stmt_before_17(c: &CallLog) -> hub_core::ports::Stmt {
    let mut stmt = call_log_stmt(c);
    let sql = stmt
        .sql
        .replace(", response_cache, response_cache_saved, alias, upstream_model)", ")")
        .replace(", ?33, ?34, ?35, ?36)", ")");
    stmt.sql = sql.into();
    stmt.params.truncate(32);
    stmt
}

/// The percentile rule of the usage API, from the values themselves: the
/// upper bound of the bucket holding the value of rank ⌈p·n⌉.
fn percentile(values: &[i64], p: f64) -> Option<i64> {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted
        .get(rank - 1)
        .map(|v| TTFB_BOUNDS[ttfb_bucket(*v).min(TTFB_BOUNDS.len() - 1)])
}

/// What the usage API must answer, computed here from the rows themselves.
fn expected(calls: &[CallLog], from: i64, to: i64, group_by: GroupBy, tz: i64) -> BTreeMap<String, UsageBucket> {
    let off = tz * 60_000;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut groups: BTreeMap<String, (UsageBucket, Vec<i64>)> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.created_at >= from && c.created_at < to) {
        let group = match group_by {
            GroupBy::Hour => (((c.created_at + off) / HOUR_MS) * HOUR_MS - off).to_string(),
            GroupBy::Day => (((c.created_at + off) / DAY_MS) * DAY_MS - off).to_string(),
            GroupBy::Model => c.model.clone(),
            GroupBy::Provider => text(&c.provider),
            GroupBy::User => text(&c.user_id),
            GroupBy::App => text(&c.app),
            GroupBy::Key => text(&c.key_id),
            // No key in these rows belongs to a team.
            GroupBy::Team => String::new(),
        };
        let (b, ttfbs) = groups.entry(group.clone()).or_default();
        b.group = group;
        b.calls += 1;
        b.errors += (c.status == CallStatus::Failed) as i64;
        b.input_tokens += c.usage.input_tokens as i64;
        b.output_tokens += c.usage.output_tokens as i64;
        b.cache_read_tokens += c.usage.cache_read_tokens as i64;
        b.cache_write_tokens += c.usage.cache_write_tokens as i64;
        b.cache_write_1h_tokens += c.usage.cache_write_1h_tokens as i64;
        b.audio_ms += c.usage.audio_ms as i64;
        b.characters += c.usage.characters as i64;
        b.video_seconds += c.usage.video_seconds as i64;
        b.credits = Credits::from_nanos(b.credits.nanos() + c.credits.nanos());
        b.cache_saved = Credits::from_nanos(b.cache_saved.nanos() + c.cache_saved.nanos());
        ttfbs.extend(c.ttfb_ms);
    }
    groups
        .into_iter()
        .map(|(g, (mut b, ttfbs))| {
            b.ttfb_p50_ms = percentile(&ttfbs, 0.5);
            b.ttfb_p95_ms = percentile(&ttfbs, 0.95);
            (g, b)
        })
        .collect()
}

async fn usage(store: &Store, from: i64, to: i64, group_by: GroupBy, tz: i64) -> BTreeMap<String, UsageBucket> {
    let filter = CallFilter {
        from: Some(from),
        to: Some(to),
        ..Default::default()
    };
    let buckets = store.usage(&filter, group_by, tz).await.unwrap();
    buckets.into_iter().map(|b| (b.group.clone(), b)).collect()
}

/// Calls and credits over every group.
fn totals(groups: &BTreeMap<String, UsageBucket>) -> (i64, i64, i64, i64) {
    groups.values().fold((0, 0, 0, 0), |t, b| {
        (
            t.0 + b.calls,
            t.1 + b.errors,
            t.2 + b.input_tokens,
            t.3 + b.credits.nanos(),
        )
    })
}

/// Ranges whose ends fall inside hours and days, and whole ones.
fn ranges() -> Vec<(i64, i64)> {
    vec![
        (T - DAY_MS - 17 * 60_000 - 3, T + DAY_MS + 3 * HOUR_MS + 5),
        (T - 2 * DAY_MS, T + 2 * DAY_MS),
        (T + 7 * 60_000, T + 50 * 60_000),
        (T - 5 * HOUR_MS + 1, T + 5 * HOUR_MS - 1),
        (0, 253_402_300_800_000),
    ]
}

#[tokio::test]
async fn every_grouping_offset_and_range_matches_the_call_log_exactly() {
    let dir = common::temp_dir("usage");
    let (db, store) = open(&dir).await;
    store.migrate(T).await.unwrap();
    let calls = generate(3000, 1);
    log(&db, &calls).await;
    // A retried write of the same rows counts nothing twice.
    log(&db, &calls[..100]).await;
    for (from, to) in ranges() {
        for group_by in GROUPINGS {
            for tz in [0, 120, -300, 330, 345] {
                assert_eq!(
                    usage(&store, from, to, group_by, tz).await,
                    expected(&calls, from, to, group_by, tz),
                    "{group_by:?} at {tz} over [{from}, {to})"
                );
            }
        }
    }
}

#[tokio::test]
async fn deleting_old_call_log_rows_keeps_every_total() {
    let dir = common::temp_dir("usage-pruned");
    let (db, store) = open(&dir).await;
    store.migrate(T).await.unwrap();
    let calls = generate(3000, 2);
    log(&db, &calls).await;
    // Everything before 17:59:59.123 the day before `T` goes, 97 rows at a time.
    let cutoff = T - 6 * HOUR_MS - 877;
    let mut deleted = 0;
    loop {
        let n = store.prune_calls(cutoff, 97).await.unwrap();
        assert!(n <= 97);
        deleted += n;
        if n < 97 {
            break;
        }
    }
    assert_eq!(deleted as usize, calls.iter().filter(|c| c.created_at < cutoff).count());
    for (from, to) in ranges() {
        // An end before the whole hours of the call log left (from 18:00)
        // is read by the hour it is in.
        let at_hour = |t: i64| {
            if t < T - 6 * HOUR_MS {
                t - t.rem_euclid(HOUR_MS)
            } else {
                t
            }
        };
        let (from_h, to_h) = (at_hour(from), at_hour(to));
        for group_by in GROUPINGS {
            for tz in [0, 120, -300] {
                assert_eq!(
                    usage(&store, from, to, group_by, tz).await,
                    expected(&calls, from_h, to_h, group_by, tz),
                    "{group_by:?} at {tz} over [{from}, {to})"
                );
            }
            // Offsets that are not whole hours place a deleted hour by its
            // start: the groups may differ, never the totals.
            for tz in [330, 345] {
                assert_eq!(
                    totals(&usage(&store, from, to, group_by, tz).await),
                    totals(&expected(&calls, from_h, to_h, group_by, tz)),
                    "{group_by:?} at {tz} over [{from}, {to})"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_migration_counts_the_calls_logged_before_it() {
    let dir = common::temp_dir("usage-backfill");
    let (db, store) = open(&dir).await;
    // The schema as it was before the roll-ups, with calls in it.
    db.execute(sql!(
        "CREATE TABLE _hub_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    ))
    .await
    .unwrap();
    for (version, name, script) in MIGRATIONS.iter().filter(|m| m.0 < 14) {
        db.execute_script(script).await.unwrap();
        db.execute(sql!(
            "INSERT INTO _hub_migrations (version, name, applied_at) VALUES (?1, ?2, 0)",
            *version,
            *name
        ))
        .await
        .unwrap();
    }
    let before = generate(1000, 3);
    // Logged as Hub logged calls then: without the response cache's columns (migration 17).
    for chunk in before.chunks(500) {
        db.batch(chunk.iter().map(call_log_stmt_before_17).collect())
            .await
            .unwrap();
    }
    let from_14: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).filter(|v| *v >= 14).collect();
    assert_eq!(store.migrate(T).await.unwrap(), from_14);
    let after = generate(500, 4);
    log(&db, &after).await;
    let all: Vec<CallLog> = before.into_iter().chain(after).collect();
    for group_by in [GroupBy::Day, GroupBy::Model, GroupBy::User] {
        let (from, to) = (T - 2 * DAY_MS, T + 2 * DAY_MS);
        assert_eq!(
            usage(&store, from, to, group_by, 0).await,
            expected(&all, from, to, group_by, 0)
        );
    }
    // Every roll-up's histogram buckets each TTFB as Rust does.
    for table in ["usage_hourly", "usage_daily"] {
        let columns: Vec<String> = (0..TTFB_BUCKETS).map(|k| format!("SUM(h{k})")).collect();
        let sql = format!("SELECT {} FROM {table}", columns.join(", "));
        let rows = db.query(hub_core::ports::Stmt::new(sql, vec![])).await.unwrap();
        let got: Vec<i64> = rows.rows[0]
            .iter()
            .map(|v| match v {
                SqlValue::Integer(n) => *n,
                v => panic!("{v:?}"),
            })
            .collect();
        let mut want = vec![0i64; TTFB_BUCKETS];
        for c in &all {
            if let Some(ms) = c.ttfb_ms {
                want[ttfb_bucket(ms)] += 1;
            }
        }
        assert_eq!(got, want, "{table}");
    }
}
