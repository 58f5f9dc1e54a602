//! The scheduled jobs ([`Hub::tick`]) in process, on a real embedded
//! database shared the way remote databases are (holds are rows): each job
//! is bounded and leaves the rest for the next tick, and two instances
//! ticking at once release each hold once.

use hub_core::crypto::MasterKey;
use hub_core::jobs::{TickReport, BATCH_ROWS, ROUNDS};
use hub_core::ports::SqlDb;
use hub_core::store::{CallFilter, GroupBy};
use hub_core::testing::{Collector, ManualClock, ScriptedUpstream, SeqRng};
use hub_core::{sql, Hub, HubOptions};
use hub_libsql::LibSqlDb;
use std::sync::Arc;

mod common;

const DAY_MS: i64 = 86_400_000;
const NOW: i64 = 1_767_225_600_000;
/// Rows one tick handles per job at most.
const PER_TICK: u64 = BATCH_ROWS * ROUNDS as u64;

struct World {
    db: Arc<LibSqlDb>,
    _dir: common::TempDir,
}

impl World {
    async fn new() -> World {
        let dir = common::temp_dir("jobs");
        let db = LibSqlDb::open(dir.0.join("hub.db").to_str().unwrap(), None)
            .await
            .unwrap();
        let world = World {
            db: Arc::new(db),
            _dir: dir,
        };
        world.hub().start().await.unwrap();
        world
    }

    /// A Hub on the shared database (as one of several instances).
    fn hub(&self) -> Hub {
        self.hub_at(NOW, Arc::new(Collector::default()))
    }

    /// An instance whose clock reads `now` and whose background work waits in `tasks`.
    fn hub_at(&self, now: i64, tasks: Arc<Collector>) -> Hub {
        Hub::new(
            self.db.clone(),
            Arc::new(ScriptedUpstream::default()),
            Arc::new(ManualClock::at(now)),
            Arc::new(SeqRng::default()),
            tasks,
            MasterKey::from_bytes(&[7; 32]).unwrap(),
            HubOptions::default(),
        )
    }

    async fn exec(&self, stmt: hub_core::ports::Stmt) -> u64 {
        self.db.execute(stmt).await.unwrap()
    }

    async fn count(&self, sql: &'static str) -> i64 {
        let rows = self.db.query(sql!(sql)).await.unwrap();
        match rows.rows[0][0] {
            hub_core::ports::SqlValue::Integer(n) => n,
            ref v => panic!("not a count: {v:?}"),
        }
    }

    /// A user with `n` open holds of one nano-credit each that expired an
    /// hour ago (left by calls that never settled).
    async fn user_with_expired_holds(&self, n: i64) -> String {
        let id = "usr_jobs".to_string();
        self.exec(sql!(
            "INSERT INTO users (id, name, role, created_at, updated_at) VALUES (?1, 'jobs', 'member', ?2, ?2)",
            id.as_str(),
            NOW - DAY_MS
        ))
        .await;
        self.exec(sql!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
             INSERT INTO holds (id, user_id, amount, state, created_at, expires_at)
             SELECT 'call_' || i, ?1, 1, 'open', ?3, ?4 FROM n",
            id.as_str(),
            n,
            NOW - 2 * 3_600_000,
            NOW - 3_600_000
        ))
        .await;
        id
    }

    async fn held(&self, user: &str) -> i64 {
        let rows = self
            .db
            .query(sql!("SELECT held FROM users WHERE id = ?1", user))
            .await
            .unwrap();
        match rows.rows[0][0] {
            hub_core::ports::SqlValue::Integer(n) => n,
            ref v => panic!("not a number: {v:?}"),
        }
    }

    /// `n` key-limit rows `age_days` old.
    async fn key_events(&self, prefix: &str, n: i64, age_days: i64) {
        self.exec(sql!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
             INSERT INTO key_events (call_id, key_id, at, tokens, spent) SELECT ?1 || i, 'key_1', ?3, 10, 10 FROM n",
            prefix,
            n,
            NOW - age_days * DAY_MS
        ))
        .await;
    }

    /// `n` call-log rows `age_days` old, of 7 nano-credits each.
    async fn calls(&self, prefix: &str, n: i64, age_days: i64) {
        self.exec(sql!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
             INSERT INTO calls (id, call_id, attempt, endpoint, user_id, model, status, credits, created_at)
             SELECT ?1 || i, ?1 || i, 1, 'chat', 'usr_jobs', 'm', 'success', 7, ?3 FROM n",
            prefix,
            n,
            NOW - age_days * DAY_MS
        ))
        .await;
    }

    /// Calls and credits the usage API counts over all time.
    async fn usage_totals(&self) -> (i64, i64) {
        let buckets = self
            .hub()
            .store()
            .usage(&CallFilter::default(), GroupBy::Model, 0)
            .await
            .unwrap();
        buckets
            .iter()
            .fold((0, 0), |(n, c), b| (n + b.calls, c + b.credits.nanos()))
    }
}

fn job(report: &TickReport, name: &str) -> (u64, bool) {
    let j = report
        .job(name)
        .unwrap_or_else(|| panic!("no job {name} in {report:?}"));
    assert_eq!(j.error, None, "{name} failed: {report:?}");
    (j.count, j.more)
}

#[tokio::test]
async fn a_tick_releases_expired_holds_in_bounded_batches_and_the_next_finishes() {
    let w = World::new().await;
    let extra = 7;
    let n = PER_TICK as i64 + extra;
    let user = w.user_with_expired_holds(n).await;
    // One hold still within its time is left alone.
    w.exec(sql!(
        "INSERT INTO holds (id, user_id, amount, state, created_at, expires_at) VALUES ('live', ?1, 5, 'open', ?2, ?3)",
        user.as_str(),
        NOW,
        NOW + 3_600_000
    ))
    .await;
    assert_eq!(w.held(&user).await, n + 5);
    let hub = w.hub();

    let first = hub.tick(NOW).await;
    assert_eq!(job(&first, "expire_holds"), (PER_TICK, true), "{first:?}");
    assert_eq!(w.held(&user).await, extra + 5);

    let second = hub.tick(NOW).await;
    assert_eq!(job(&second, "expire_holds"), (extra as u64, false));
    assert_eq!(w.held(&user).await, 5, "only the live hold is still held");

    let third = hub.tick(NOW).await;
    assert_eq!(job(&third, "expire_holds"), (0, false), "nothing twice");
    assert_eq!(
        w.count("SELECT COUNT(*) FROM holds WHERE state = 'expired' AND closed_at IS NOT NULL")
            .await,
        n
    );
    assert_eq!(w.count("SELECT COUNT(*) FROM holds WHERE state = 'open'").await, 1);
    let serialised = serde_json::to_value(&first).unwrap();
    assert_eq!(serialised["jobs"][0]["job"], "expire_holds");
    assert_eq!(serialised["jobs"][0]["count"], PER_TICK);
}

#[tokio::test]
async fn old_key_limit_rows_are_pruned_in_bounded_batches_and_recent_ones_kept() {
    let w = World::new().await;
    let extra = 3;
    w.key_events("old_", PER_TICK as i64 + extra, 40).await;
    w.key_events("month_", 20, 31).await;
    w.key_events("new_", 10, 0).await;
    let hub = w.hub();

    let first = hub.tick(NOW).await;
    assert_eq!(job(&first, "prune_key_events"), (PER_TICK, true));
    let second = hub.tick(NOW).await;
    assert_eq!(job(&second, "prune_key_events"), (extra as u64, false));
    assert_eq!(w.count("SELECT COUNT(*) FROM key_events").await, 30);
    assert_eq!(
        w.count("SELECT COUNT(*) FROM key_events WHERE call_id LIKE 'old_%'")
            .await,
        0
    );
}

#[tokio::test]
async fn two_instances_ticking_at_once_release_each_hold_once() {
    let w = World::new().await;
    let n = 1_200;
    let user = w.user_with_expired_holds(n).await;
    let (a, b) = (w.hub(), w.hub());
    let (ra, rb) = tokio::join!(a.tick(NOW), b.tick(NOW));
    let released = job(&ra, "expire_holds").0 + job(&rb, "expire_holds").0;
    assert_eq!(released, n as u64, "{ra:?} {rb:?}");
    assert_eq!(w.held(&user).await, 0);
    assert_eq!(w.count("SELECT COUNT(*) FROM holds WHERE state = 'expired'").await, n);
}

#[tokio::test]
async fn a_failing_job_is_reported_and_the_others_still_run() {
    let w = World::new().await;
    let user = w.user_with_expired_holds(3).await;
    // key_events gone: its job fails, the holds are still released.
    w.exec(sql!("DROP TABLE key_events")).await;
    let report = w.hub().tick(NOW).await;
    assert!(report.failed());
    let prune = report.job("prune_key_events").unwrap();
    assert!(
        prune.error.as_deref().is_some_and(|e| e.contains("key_events")),
        "{report:?}"
    );
    assert_eq!(job(&report, "expire_holds"), (3, false));
    assert_eq!(w.held(&user).await, 0);
    assert_eq!(job(&report, "recheck_credentials"), (0, false));
}

/// A video job (`/v1/videos`) still running at its deadline is failed and
/// its hold released; one decided long ago whose settlement was lost (its
/// process ended in between) is settled; two instances ticking at once do
/// each once; and when the instance that failed the late job dies before
/// committing that, a later tick commits it.
#[tokio::test]
async fn video_jobs_past_their_deadline_and_lost_settlements_are_closed_once() {
    let w = World::new().await;
    let user = "usr_videos";
    w.exec(sql!(
        "INSERT INTO users (id, name, role, created_at, updated_at) VALUES (?1, 'videos', 'member', ?2, ?2)",
        user,
        NOW - DAY_MS
    ))
    .await;
    w.exec(sql!(
        "INSERT INTO ledger (user_id, kind, amount, created_at) VALUES (?1, 'grant', 1000000000, ?2)",
        user,
        NOW - DAY_MS
    ))
    .await;
    // 8 s and 4 s at 0.1 per second, held.
    for (call, held) in [("call_late", 800_000_000i64), ("call_lost", 400_000_000)] {
        w.exec(sql!(
            "INSERT INTO holds (id, user_id, amount, state, created_at, expires_at) VALUES (?1, ?2, ?3, 'open', ?4, ?5)",
            call,
            user,
            held,
            NOW - 3 * 3_600_000,
            NOW + 3_600_000
        ))
        .await;
    }
    let insert = "INSERT INTO video_jobs (id, call_id, attempt, user_id, provider_id, provider, upstream_id, upstream_model, model, prompt, seconds,
         held_seconds, video_rate, billed, held, key_limited, status, billed_seconds, credits, created_at, updated_at, checked_at, deadline_at, completed_at)
         VALUES (?1, ?2, 1, ?3, 'prv_1', 'openai', ?4, 'sora-2', 'sora-2', 'waves', ?5, ?5, 100000000, 1, ?6, 0, ?7, ?8, ?9, ?10, ?10, ?10, ?11, ?12)";
    let started = NOW - 3 * 3_600_000;
    let deadline = NOW - 3_600_000;
    w.exec(sql!(
        insert,
        "video_late",
        "call_late",
        user,
        "video_a",
        8,
        800_000_000,
        "in_progress",
        None::<i64>,
        0,
        started,
        deadline,
        None::<i64>
    ))
    .await;
    w.exec(sql!(
        insert,
        "video_lost",
        "call_lost",
        user,
        "video_b",
        4,
        400_000_000,
        "completed",
        4,
        400_000_000,
        started,
        deadline,
        NOW - 600_000
    ))
    .await;
    assert_eq!(w.held(user).await, 1_200_000_000);

    let tasks = [Arc::new(Collector::default()), Arc::new(Collector::default())];
    let (a, b) = (w.hub_at(NOW, tasks[0].clone()), w.hub_at(NOW, tasks[1].clone()));
    let (ra, rb) = tokio::join!(a.tick(NOW), b.tick(NOW));
    let recovered = job(&ra, "advance_video_jobs").0 + job(&rb, "advance_video_jobs").0;
    assert!(recovered >= 2, "the lost settlement and the late job: {ra:?} {rb:?}");
    // The lost settlement is committed; the late job is failed, but the
    // instances die before committing its release (background work).
    assert_eq!(w.held(user).await, 800_000_000);
    assert_eq!(tasks.iter().map(|t| t.pending()).sum::<usize>(), 1);
    tasks.iter().for_each(|t| t.abandon());
    assert_eq!(
        w.count("SELECT COUNT(*) FROM video_jobs WHERE status = 'failed' AND settled_at IS NULL")
            .await,
        1
    );
    // Five minutes on, another instance's tick commits it.
    let later = Arc::new(Collector::default());
    let c = w.hub_at(NOW + 360_000, later.clone());
    job(&c.tick(NOW + 360_000).await, "advance_video_jobs");
    later.run().await;
    assert_eq!(w.held(user).await, 0);
    assert_eq!(
        w.count("SELECT balance FROM users WHERE id = 'usr_videos'").await,
        600_000_000,
        "the completed job's 4 s, once"
    );
    assert_eq!(w.count("SELECT COUNT(*) FROM ledger WHERE kind = 'usage'").await, 1);
    assert_eq!(
        w.count("SELECT COUNT(*) FROM usage WHERE call_id = 'call_lost' AND video_seconds = 4")
            .await,
        1
    );
    assert_eq!(
        w.count("SELECT COUNT(*) FROM holds WHERE (id, state) IN (VALUES ('call_late', 'released'), ('call_lost', 'settled'))")
            .await,
        2
    );
    assert_eq!(
        w.count("SELECT COUNT(*) FROM video_jobs WHERE id = 'video_late' AND status = 'failed' AND error LIKE '%not ready within 120 minutes%'")
            .await,
        1
    );
    assert_eq!(
        w.count("SELECT COUNT(*) FROM video_jobs WHERE settled_at IS NULL")
            .await,
        0
    );
    assert_eq!(
        w.count("SELECT COUNT(*) FROM calls WHERE call_id = 'call_late' AND status = 'failed'")
            .await,
        1
    );
}

#[tokio::test]
async fn call_log_rows_past_their_retention_go_in_bounded_batches_and_usage_keeps_them() {
    let w = World::new().await;
    let extra = 11;
    let old = PER_TICK as i64 + extra;
    w.calls("old_", old, 45).await;
    w.calls("month_", 20, 29).await;
    w.calls("new_", 10, 0).await;
    let before = w.usage_totals().await;
    assert_eq!(before, (old + 30, 7 * (old + 30)));
    let hub = w.hub();

    let first = hub.tick(NOW).await;
    assert_eq!(job(&first, "prune_calls"), (PER_TICK, true), "{first:?}");
    let second = hub.tick(NOW).await;
    assert_eq!(job(&second, "prune_calls"), (extra as u64, false));
    let third = hub.tick(NOW).await;
    assert_eq!(job(&third, "prune_calls"), (0, false), "nothing twice");
    assert_eq!(
        w.count("SELECT COUNT(*) FROM calls").await,
        30,
        "the last 30 days are kept"
    );
    assert_eq!(w.count("SELECT COUNT(*) FROM calls WHERE id LIKE 'old_%'").await, 0);
    assert_eq!(w.usage_totals().await, before, "the roll-ups still count every call");
}

#[tokio::test]
async fn a_retention_of_zero_days_keeps_the_call_log_forever() {
    let w = World::new().await;
    w.calls("ancient_", 25, 4000).await;
    w.exec(sql!(
        "INSERT INTO settings (key, value, updated_at) VALUES ('call_retention_days', '0', ?1)",
        NOW
    ))
    .await;
    let report = w.hub().tick(NOW).await;
    assert_eq!(job(&report, "prune_calls"), (0, false));
    assert_eq!(w.count("SELECT COUNT(*) FROM calls").await, 25);
}
