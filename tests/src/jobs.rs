//! The scheduled jobs as every runtime must run them (`hub serve`'s timer,
//! the Worker's Cron Trigger, Lambda's EventBridge schedule): a hold left
//! open by a call that never settled is released once it expires, a hold
//! still within its time is kept, and key-limit rows older than the longest
//! limit window are deleted while recent ones stay.
//!
//! The rows a crashed instance would leave are written straight into the
//! runtime's database (SQL from [`Seed::sql`]), since no API makes them;
//! what the jobs did is read back through the admin API and the database.

use crate::{nanos, Api};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CREDIT: i128 = 1_000_000_000;
const DAY_MS: i64 = 86_400_000;

/// Reads the rows left by the jobs, as `[[id, state], …]` for holds and `[[call_id], …]` for key events.
pub const HOLDS_QUERY: &str = "SELECT id, state FROM holds WHERE id LIKE 'call_jobs_%' ORDER BY id";
pub const KEY_EVENTS_QUERY: &str = "SELECT call_id FROM key_events WHERE key_id = 'key_jobs' ORDER BY call_id";

/// A user with 5 credits, and the SQL that leaves them what a crashed
/// instance would: 2 credits held by a call that will never settle (its hold
/// expiring at `expires_at`), 1 held by a call still running (its hold good
/// for another hour), and key-limit rows 40 days and an hour old.
///
/// The stale hold expires only after the runtime has started: every runtime
/// releases holds already expired when it starts, and the test is that the
/// scheduled jobs release one that expires while it runs.
pub struct Seed {
    pub user: String,
    pub sql: String,
    /// When the stale hold expires (ms since the epoch).
    pub expires_at: i64,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

pub async fn seed(api: &Api, expires_in: Duration) -> Seed {
    let (user, _key) = api.user_with_key("sleeper", "5").await;
    let now = now_ms();
    let expires_at = now + expires_in.as_millis() as i64;
    let hour = 3_600_000;
    let sql = format!(
        "INSERT INTO holds (id, user_id, amount, state, created_at, expires_at) VALUES \
           ('call_jobs_stale', '{user}', {stale}, 'open', {stale_from}, {stale_until}), \
           ('call_jobs_live', '{user}', {live}, 'open', {now}, {live_until}); \
         INSERT INTO key_events (call_id, key_id, at, tokens, spent) VALUES \
           ('call_jobs_old', 'key_jobs', {old}, 10, 10), \
           ('call_jobs_recent', 'key_jobs', {recent}, 10, 10);",
        stale = 2 * CREDIT,
        stale_from = now - hour,
        stale_until = expires_at,
        live = CREDIT,
        live_until = now + hour,
        old = now - 40 * DAY_MS,
        recent = now - hour,
    );
    Seed { user, sql, expires_at }
}

/// Sleeps until the stale hold has expired.
pub async fn until_expired(seed: &Seed) {
    let wait = seed.expires_at + 100 - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

/// Before the jobs run: both holds count against the user's balance (after
/// the stale one expired too, until a job releases it).
pub async fn both_holds_count(api: &Api, seed: &Seed) {
    let u = api.user(&seed.user).await;
    assert_eq!(
        (nanos(&u["balance"]), nanos(&u["held"])),
        (5 * CREDIT, 3 * CREDIT),
        "the seeded holds should count against the user: {u}"
    );
}

/// Waits (up to `within`) until only the live hold counts; the balance is untouched.
pub async fn expired_hold_released(api: &Api, seed: &Seed, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let u = api.user(&seed.user).await;
        if nanos(&u["held"]) == CREDIT {
            assert_eq!(
                nanos(&u["balance"]),
                5 * CREDIT,
                "releasing a hold never moves money: {u}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the expired hold was not released within {within:?}: {u}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The rows the jobs leave: the stale hold expired, the live one open, only
/// the recent key-limit row kept. `holds` and `key_events` are the rows of
/// [`HOLDS_QUERY`] and [`KEY_EVENTS_QUERY`] as JSON arrays of arrays.
pub fn rows_after_jobs(holds: &Value, key_events: &Value) {
    assert_eq!(
        holds,
        &serde_json::json!([["call_jobs_live", "open"], ["call_jobs_stale", "expired"]]),
        "holds after the jobs"
    );
    assert_eq!(
        key_events,
        &serde_json::json!([["call_jobs_recent"]]),
        "key-limit rows after the jobs"
    );
}
