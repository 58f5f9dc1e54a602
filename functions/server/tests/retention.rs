//! Retention on `hub serve`: 60 days of calls made through the API (Hub's
//! clock set a day at a time by libfaketime, which reads its offset from a
//! file the test rewrites), some failing over from a provider that answers
//! 500; then Hub restarted on the real clock with the default 30-day
//! retention, whose scheduled job deletes the older call-log rows. The usage
//! API's 90-day figures are what they were before, to the nano-credit, for
//! every grouping; they equal what the ledger charged; the ledger is
//! untouched and the call log keeps exactly its last 30 days.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{nanos, Api, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DAY_MS: i64 = 86_400_000;
const DAYS: i64 = 60;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn start_in(launch: Launch, dir: PathBuf) -> (HubServer, Api) {
    let bin = Path::new(env!("CARGO_BIN_EXE_hub"));
    let hub = tokio::task::spawn_blocking(move || HubServer::start_in(bin, launch, dir))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    (hub, api)
}

/// Hub's clock, `minutes` before the real one from now on.
fn set_clock(file: &Path, minutes: i64) {
    std::fs::write(file, format!("-{minutes}m\n")).unwrap();
}

/// Everything the usage API answers over the range, by every grouping and
/// for one user of their own, in UTC and at +02:00.
async fn usage(api: &Api, key: &str, from: i64, to: i64) -> Vec<(String, Value)> {
    let mut answers = Vec::new();
    for group in ["hour", "day", "model", "provider", "user", "app", "key"] {
        for tz in ["%2B00:00", "%2B02:00"] {
            let path = format!("/api/admin/usage?from={from}&to={to}&group_by={group}&tz={tz}");
            let answer = api.admin(Method::GET, &path, None).await;
            answers.push((path, answer));
        }
    }
    let path = format!("/api/me/usage?from={from}&to={to}&group_by=day");
    let (status, mine) = api.call(Method::GET, &path, key, None).await;
    assert_eq!(status, 200, "{mine}");
    answers.push((path, mine));
    answers
}

/// Calls, errors and credits (nano-credits) over the groups of one answer.
fn totals(answer: &Value) -> (i64, i64, i128) {
    answer["data"].as_array().unwrap().iter().fold((0, 0, 0), |t, g| {
        (
            t.0 + g["calls"].as_i64().unwrap(),
            t.1 + g["errors"].as_i64().unwrap(),
            t.2 + nanos(&g["credits"]),
        )
    })
}

/// Every ledger entry of the user, newest first.
async fn ledger(api: &Api, user: &str) -> Vec<Value> {
    let l = api
        .admin(Method::GET, &format!("/api/admin/users/{user}/ledger?limit=500"), None)
        .await;
    l["data"].as_array().unwrap().clone()
}

/// Every call-log row (attempts), newest first.
async fn call_log(api: &Api) -> Vec<Value> {
    let rows = api.calls("limit=500").await;
    assert!(rows.len() < 500, "one page holds them all");
    rows
}

/// Log text without its terminal colours.
fn plain(logs: &str) -> String {
    let mut out = String::with_capacity(logs.len());
    let mut rest = logs;
    while let Some(at) = rest.find('\u{1b}') {
        out.push_str(&rest[..at]);
        rest = rest[at..].split_once('m').map_or("", |(_, after)| after);
    }
    out.push_str(rest);
    out
}

fn created_ms(row: &Value) -> i64 {
    let text = row["created_at"].as_str().unwrap();
    hub_core::time::parse_time(text).unwrap_or_else(|| panic!("not a time: {text}"))
}

#[tokio::test]
async fn pruning_the_call_log_to_30_days_keeps_the_usage_of_90_days_exact() {
    let mock = MockProvider::start().await;
    let dir = hub_e2e::temp_dir("retention");
    let clock = dir.join("faketime");
    set_clock(&clock, DAYS * 24 * 60);
    let (mut hub, api) = start_in(
        Launch {
            env: vec![
                ("LD_PRELOAD".into(), hub_e2e::libfaketime()),
                ("FAKETIME_TIMESTAMP_FILE".into(), clock.display().to_string()),
                ("FAKETIME_NO_CACHE".into(), "1".into()),
                ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
            ],
            ..Default::default()
        },
        dir.clone(),
    )
    .await;
    // Nothing is deleted while the days go by.
    let s = api
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(json!({"call_retention_days": 0})),
        )
        .await;
    assert_eq!(s["call_retention_days"], 0, "{s}");
    // Two providers of one model: the first answers 500 when told to, and the call fails over.
    for (name, priority) in [("first", 10), ("second", 0)] {
        let fields = json!({"name": name, "kind": "openai", "base_url": mock.base_url(), "priority": priority});
        let provider = api.provider(fields, &format!("sk-{name}-0001")).await;
        api.add_model(
            &provider,
            "mock-model",
            json!({"input_rate": "3.3", "output_rate": "15.7"}),
        )
        .await;
    }
    let (alice, alice_key) = api.user_with_key("alice", "1000").await;
    let (bob, bob_key) = api.user_with_key("bob", "1000").await;

    // Two or three calls a day, at hours that vary, for 60 days.
    let mut calls = 0;
    for day in (1..=DAYS).rev() {
        for i in 0..(2 + day % 2) {
            // At least an hour inside the day, so no call is near the 30-day line.
            let into_day = 60 + (day * 397 + i * 541) % 1300;
            set_clock(&clock, day * 24 * 60 - into_day);
            let fail_first = (day + i) % 5 == 0;
            mock.set(
                "mock-model",
                Behavior {
                    prompt_tokens: 1000 + 37 * day as u64,
                    completion_tokens: 100 + 11 * i as u64,
                    statuses: if fail_first { vec![500] } else { vec![] },
                    ..Default::default()
                },
            );
            let key = if i == 1 { &bob_key } else { &alice_key };
            let body = json!({"model": "mock-model", "stream": i == 2,
                              "messages": [{"role": "user", "content": format!("day {day}")}]});
            let (status, answer) = api.call(Method::POST, "/v1/chat/completions", key, Some(body)).await;
            assert_eq!(status, 200, "{answer}");
            calls += 1;
        }
    }
    set_clock(&clock, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while ledger(&api, &alice).await.len() + ledger(&api, &bob).await.len() < calls + 2 {
        assert!(Instant::now() < deadline, "settlements did not land");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log_before = call_log(&api).await;
    let oldest = log_before.iter().map(created_ms).min().unwrap();
    assert!(oldest < now_ms() - (DAYS - 1) * DAY_MS, "the calls span 60 days");
    let failovers = log_before.iter().filter(|c| c["status"] == "failed").count();
    assert!(failovers >= 20, "{failovers} failed attempts");
    assert_eq!(log_before.len(), calls + failovers);

    let (to, from) = (now_ms(), now_ms() - 90 * DAY_MS);
    let before = usage(&api, &alice_key, from, to).await;
    let ledgers = (ledger(&api, &alice).await, ledger(&api, &bob).await);
    let charged: i128 = ledgers
        .0
        .iter()
        .chain(&ledgers.1)
        .filter(|e| e["kind"] == "usage")
        .map(|e| -nanos(&e["amount"]))
        .sum();
    for (path, answer) in &before {
        if !path.starts_with("/api/me") {
            assert_eq!(
                totals(answer),
                (log_before.len() as i64, failovers as i64, charged),
                "{path}: every attempt, every failure and every nano-credit the ledger charged"
            );
        }
    }
    let odd_offset = format!("/api/admin/usage?from={from}&to={to}&group_by=day&tz=%2B05:30");
    let odd_before = totals(&api.admin(Method::GET, &odd_offset, None).await);
    assert!(hub.terminate(Duration::from_secs(30)).is_some());

    // The real clock, the default retention of 30 days, and the job run at start-up.
    let (mut hub, api) = start_in(
        Launch {
            env: vec![("HUB_TICK_INTERVAL".into(), "1".into())],
            ..Default::default()
        },
        dir.clone(),
    )
    .await;
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({"call_retention_days": 30})),
    )
    .await;
    let cutoff = now_ms() - 30 * DAY_MS;
    let kept: Vec<&Value> = log_before.iter().filter(|c| created_ms(c) >= cutoff).collect();
    assert!(kept.len() > 20 && kept.len() < log_before.len() - 20);
    let deadline = Instant::now() + Duration::from_secs(20);
    let log_after = loop {
        let rows = call_log(&api).await;
        if rows.len() == kept.len() {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "{} rows left, not {}",
            rows.len(),
            kept.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        log_after.iter().collect::<Vec<_>>(),
        kept,
        "the last 30 days, untouched"
    );
    let deleted = log_before.len() - kept.len();
    let logs = plain(&hub.logs());
    assert!(
        logs.contains(&format!("job=\"prune_calls\" count={deleted} more=false")),
        "the job logged what it did:\n{logs}"
    );

    let after = usage(&api, &alice_key, from, to).await;
    for ((path, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(a, b, "{path}: the same answer after {deleted} rows were deleted");
    }
    assert_eq!(
        totals(&api.admin(Method::GET, &odd_offset, None).await),
        odd_before,
        "days at +05:30 keep their totals"
    );
    assert_eq!(
        (ledger(&api, &alice).await, ledger(&api, &bob).await),
        ledgers,
        "the ledger is never pruned"
    );
    assert!(hub.terminate(Duration::from_secs(30)).is_some());
    let audit = hub_e2e::audit_db(&dir.join("hub.db"));
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
}
