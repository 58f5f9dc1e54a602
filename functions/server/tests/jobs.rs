//! `hub serve`'s timer runs the scheduled jobs with no request to prompt it:
//! on remote libSQL (where holds are database rows) an expired hold left by
//! a call that never settled is released and month-old key-limit rows are
//! pruned; on the embedded database old key-limit rows are pruned too.

use hub_e2e::{jobs, Api, HranaServer, HubServer, Launch};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// Seconds between two runs of the jobs in these tests (the default is a minute).
const TICK: &str = "1";

async fn start(launch: Launch) -> (HubServer, Api) {
    let hub = tokio::task::spawn_blocking(move || HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), launch))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    (hub, api)
}

/// Waits (bounded) until `query` on `db` returns `expected`.
async fn rows_become(db: &Path, query: &str, expected: Value, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let rows = hub_e2e::sqlite(db, query);
        if rows == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{query} still gives {rows}, not {expected}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_timer_releases_expired_holds_and_prunes_old_rows_on_remote_libsql() {
    let dir = hub_e2e::temp_dir("hrana-jobs");
    let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
    let (hub, api) = start(Launch {
        db: Some(hrana.url.clone()),
        env: vec![
            ("HUB_MASTER_KEY".into(), hub_e2e::TEST_MASTER_KEY.into()),
            ("HUB_TICK_INTERVAL".into(), TICK.into()),
        ],
        ..Default::default()
    })
    .await;
    // Expiring in 3 s: after start-up (which releases holds already expired), before the timer's check.
    let seed = jobs::seed(&api, Duration::from_secs(3)).await;
    hub_e2e::sqlite(&hrana.db, &seed.sql);
    jobs::both_holds_count(&api, &seed).await;

    jobs::expired_hold_released(&api, &seed, Duration::from_secs(10)).await;
    rows_become(
        &hrana.db,
        jobs::KEY_EVENTS_QUERY,
        serde_json::json!([["call_jobs_recent"]]),
        Duration::from_secs(10),
    )
    .await;
    jobs::rows_after_jobs(
        &hub_e2e::sqlite(&hrana.db, jobs::HOLDS_QUERY),
        &hub_e2e::sqlite(&hrana.db, jobs::KEY_EVENTS_QUERY),
    );
    assert!(
        hub.logs().contains("scheduled job"),
        "each job logs what it did:\n{}",
        hub.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_timer_prunes_old_key_limit_rows_on_the_embedded_database() {
    let (hub, api) = start(Launch {
        env: vec![("HUB_TICK_INTERVAL".into(), TICK.into())],
        ..Default::default()
    })
    .await;
    let seed = jobs::seed(&api, Duration::ZERO).await;
    let db = hub.dir.join("hub.db");
    // Only the key-limit rows: on its own database `hub serve` keeps holds in memory.
    let key_events = &seed.sql[seed.sql.find("INSERT INTO key_events").unwrap()..];
    hub_e2e::sqlite(&db, key_events);
    rows_become(
        &db,
        jobs::KEY_EVENTS_QUERY,
        serde_json::json!([["call_jobs_recent"]]),
        Duration::from_secs(10),
    )
    .await;
}
