//! The running totals behind key spend caps and team budgets (migrations
//! 0015 and 0019): after any mix of admissions and settlements, each key's
//! total per UTC day and month, and each team's per period, is exactly the
//! sum of its key_events rows; the migration counts the rows made before it.

mod common;

use hub_core::ports::{SqlDb, SqlValue};
use hub_core::sql;
use hub_core::store::{Store, MIGRATIONS};
use hub_libsql::LibSqlDb;
use std::collections::BTreeMap;
use std::sync::Arc;

/// 2026-11-30T12:00:00Z: the days around it cross a month's end.
const T: i64 = 1_796_040_000_000;
const DAY: i64 = 86_400_000;

async fn open(dir: &common::TempDir) -> (Arc<LibSqlDb>, Store) {
    let db = Arc::new(
        LibSqlDb::open(dir.0.join("hub.db").to_str().unwrap(), None)
            .await
            .unwrap(),
    );
    (db.clone(), Store::new(db))
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Gen(u64);

impl Gen {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn int(v: &SqlValue) -> i64 {
    match v {
        SqlValue::Integer(n) => *n,
        SqlValue::Null => 0,
        other => panic!("not an integer: {other:?}"),
    }
}

fn text(v: &SqlValue) -> String {
    match v {
        SqlValue::Text(s) => s.clone(),
        other => panic!("not text: {other:?}"),
    }
}

fn month_start(ms: i64) -> i64 {
    hub_core::time::day_and_month_start(ms).1
}

/// (key, grain, start) → spent, as the rows say and as key_spend keeps it.
async fn totals(
    db: &LibSqlDb,
) -> (
    BTreeMap<(String, String, i64), i64>,
    BTreeMap<(String, String, i64), i64>,
) {
    let rows = db
        .query(sql!("SELECT key_id, at, spent FROM key_events"))
        .await
        .unwrap();
    let mut want = BTreeMap::new();
    for r in &rows.rows {
        let (key, at, spent) = (text(&r[0]), int(&r[1]), int(&r[2]));
        *want.entry((key.clone(), "day".to_string(), at - at % DAY)).or_insert(0) += spent;
        *want.entry((key, "month".to_string(), month_start(at))).or_insert(0) += spent;
    }
    let kept = db
        .query(sql!("SELECT key_id, grain, start, spent FROM key_spend"))
        .await
        .unwrap();
    let have = kept
        .rows
        .iter()
        .map(|r| ((text(&r[0]), text(&r[1]), int(&r[2])), int(&r[3])))
        .collect();
    (want, have)
}

async fn insert(db: &LibSqlDb, call: &str, key: &str, at: i64, spent: i64, team: Option<&str>) {
    db.execute(sql!(
        "INSERT INTO key_events (call_id, key_id, at, tokens, spent, team_id, team_period) VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6)",
        call,
        key,
        at,
        spent,
        team,
        team.map(|_| month_start(at))
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn running_totals_match_the_rows_through_admissions_and_settlements() {
    let dir = common::temp_dir("key-spend");
    let (db, store) = open(&dir).await;
    // Calls recorded before the running totals existed are counted by the migration.
    store.migrate(T).await.unwrap();
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let keys = ["key_a", "key_b", "key_c"];
    let mut calls = Vec::new();
    for i in 0..400 {
        let call = format!("call_{i}");
        let key = keys[g.next(3) as usize];
        // Over four days either side of a month's end.
        let at = T - 2 * DAY + g.next(4 * DAY as u64) as i64;
        let team = (key == "key_c").then_some("team_1");
        insert(&db, &call, key, at, g.next(1_000_000) as i64, team).await;
        calls.push(call);
        // Some settle: to a smaller cost, to nothing (a failure), or to the same.
        if g.next(2) == 0 {
            let settled = calls[g.next(calls.len() as u64) as usize].clone();
            db.execute(sql!(
                "UPDATE key_events SET spent = spent * ?2 / 4 WHERE call_id = ?1",
                settled,
                g.next(5) as i64
            ))
            .await
            .unwrap();
        }
    }
    let (want, have) = totals(&db).await;
    assert_eq!(have, want);
    // The team's total for its period is the sum of its rows there.
    let team = db
        .query(sql!(
            "SELECT (SELECT COALESCE(SUM(spent), 0) FROM key_events WHERE team_id = 'team_1' AND team_period = ?1),
                    (SELECT COALESCE(SUM(spent), 0) FROM team_spend WHERE team_id = 'team_1' AND period_start = ?1)",
            month_start(T)
        ))
        .await
        .unwrap();
    assert_eq!(int(&team.rows[0][0]), int(&team.rows[0][1]));
    assert!(int(&team.rows[0][0]) > 0, "the team's key spent this month");
}

#[tokio::test]
async fn the_migration_counts_the_calls_recorded_before_it() {
    let dir = common::temp_dir("key-spend-backfill");
    let (db, store) = open(&dir).await;
    db.execute(sql!(
        "CREATE TABLE _hub_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    ))
    .await
    .unwrap();
    for (version, name, script) in MIGRATIONS.iter().filter(|m| m.0 < 19) {
        db.execute_script(script).await.unwrap();
        db.execute(sql!(
            "INSERT INTO _hub_migrations (version, name, applied_at) VALUES (?1, ?2, 0)",
            *version,
            *name
        ))
        .await
        .unwrap();
    }
    let mut g = Gen(7);
    for i in 0..200 {
        let at = T - 3 * DAY + g.next(6 * DAY as u64) as i64;
        insert(
            &db,
            &format!("old_{i}"),
            ["key_a", "key_b"][i % 2],
            at,
            g.next(1000) as i64,
            None,
        )
        .await;
    }
    let applied = store.migrate(T).await.unwrap();
    assert!(applied.contains(&19), "{applied:?}");
    let (want, have) = totals(&db).await;
    assert_eq!(have, want);
    // And it keeps counting afterwards.
    insert(&db, "new", "key_a", T, 5, None).await;
    let (want, have) = totals(&db).await;
    assert_eq!(have, want);
}

#[tokio::test]
async fn a_reservation_never_settled_is_given_back_when_its_hold_would_have_expired() {
    let dir = common::temp_dir("key-spend-release");
    let (db, store) = open(&dir).await;
    store.migrate(T).await.unwrap();
    let admit = |call: &'static str, release_at: i64| {
        sql!(
            "INSERT INTO key_events (call_id, key_id, at, tokens, spent, team_id, team_period, release_at)
             VALUES (?1, 'key_a', ?2, 100, 500, 'team_1', ?3, ?4)",
            call,
            T,
            month_start(T),
            release_at
        )
    };
    // Lost (its process died), still in flight, and one that settled to 200.
    for stmt in [
        admit("lost", T + 1_000),
        admit("flying", T + 100_000),
        admit("settled", T + 1_000),
    ] {
        db.execute(stmt).await.unwrap();
    }
    db.execute(Store::key_call_stmt("settled", 50, 200)).await.unwrap();
    store.prune_key_events(T + 2_000, 100).await.unwrap();
    let spent = |table: &'static str| {
        let db = db.clone();
        async move {
            let q = match table {
                "key" => sql!("SELECT spent FROM key_spend WHERE key_id = 'key_a' AND grain = 'day'"),
                _ => sql!("SELECT spent FROM team_spend WHERE team_id = 'team_1'"),
            };
            int(&db.query(q).await.unwrap().rows[0][0])
        }
    };
    // The lost call's 500 came back; the one in flight keeps its 500; the settled one its 200.
    assert_eq!((spent("key").await, spent("team").await), (700, 700));
    let (want, have) = totals(&db).await;
    assert_eq!(have, want);
    // A settlement arriving after the release still counts what the call used.
    db.execute(Store::key_call_stmt("lost", 10, 30)).await.unwrap();
    assert_eq!(spent("team").await, 730);
}
