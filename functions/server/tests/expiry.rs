//! Credits that expire, against `hub serve`: the case with the clock
//! moved two days on (the same database restarted under libfaketime), holds
//! that cannot spend expired credit before the expiry is written (on the
//! embedded credit book and on a shared remote database), concurrent calls
//! spending across buckets exactly, adjustments taking from the soonest
//! bucket, and bad expiries refused with nothing changed.

use futures_util::future::join_all;
use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{nanos, Api, HranaServer, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY_MS: i64 = 86_400_000;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn start_in(launch: Launch, dir: PathBuf) -> (HubServer, Api) {
    let hub = tokio::task::spawn_blocking(move || HubServer::start_in(bin(), launch, dir))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    (hub, api)
}

/// A provider on the mock whose model bills output only, at 0.01 credits a
/// token: a call with `max_tokens: 10` holds 0.1 and, answering 10 tokens,
/// costs exactly that.
async fn setup(api: &Api, mock: &MockProvider) {
    let provider = api.setup_provider("mock", &mock.base_url(), "sk-mock-0001").await;
    api.add_model(&provider, "mock-model", json!({"input_rate": 0, "output_rate": 10000}))
        .await;
    mock.set("mock-model", Behavior::default().tokens(7, 10));
}

async fn call(api: &Api, key: &str) -> (u16, Value) {
    let body = json!({"model": "mock/mock-model", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    api.call(Method::POST, "/v1/chat/completions", key, Some(body)).await
}

async fn grant(api: &Api, user: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/admin/users/{user}/grants");
    api.call(Method::POST, &path, hub_e2e::ADMIN_KEY, Some(body)).await
}

async fn ledger(api: &Api, user: &str) -> Vec<Value> {
    let l = api
        .admin(Method::GET, &format!("/api/admin/users/{user}/ledger?limit=500"), None)
        .await;
    l["data"].as_array().unwrap().clone()
}

/// (amount, remaining) of the user's live buckets, soonest expiry first.
async fn buckets(api: &Api, user: &str) -> Vec<(String, String)> {
    let b = api
        .admin(Method::GET, &format!("/api/admin/users/{user}/credit-buckets"), None)
        .await;
    let text = |v: &Value| v.as_str().unwrap().to_string();
    b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (text(&b["amount"]), text(&b["remaining"])))
        .collect()
}

/// Waits until the user's settled balance is `expected` with nothing held.
async fn settled(api: &Api, user: &str, expected: &str) -> Value {
    let want = nanos(&json!(expected));
    api.wait_user(user, expected, |u| u["held"] == "0" && nanos(&u["balance"]) == want)
        .await
}

/// The case: grants of 10 (expiring tomorrow) and 10 (never), usage
/// of 4, the clock moved past the expiry: the balance is 10, the ledger
/// shows 6 expired, and nothing else changed.
#[tokio::test]
async fn unspent_credit_expires_when_the_clock_passes_its_expiry() {
    let mock = MockProvider::start().await;
    let dir = hub_e2e::temp_dir("expiry-clock");
    let (mut hub, api) = start_in(Launch::default(), dir.clone()).await;
    setup(&api, &mock).await;
    let (user, key) = api.user_with_key("customer", "0").await;
    let tomorrow = now_ms() + DAY_MS;
    let (status, g) = grant(
        &api,
        &user,
        json!({"amount": 10, "reason": "promo", "expires_at": tomorrow}),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    grant(&api, &user, json!({"amount": 10})).await;
    // Usage of 4: 40 calls of 0.1, each held and charged exactly.
    for _ in 0..40 {
        assert_eq!(call(&api, &key).await.0, 200);
    }
    settled(&api, &user, "16").await;
    assert_eq!(
        buckets(&api, &user).await,
        [("10".into(), "6".into())],
        "usage spent the expiring credit first"
    );
    let (_, me) = api.call(Method::GET, "/api/me", &key, None).await;
    assert_eq!(
        (&me["expiring"]["amount"], &me["expiring"]["next_amount"]),
        (&json!("6"), &json!("6")),
        "{me}"
    );
    let before = ledger(&api, &user).await;
    let calls_before = api.calls(&format!("user={user}")).await;
    assert!(hub.terminate(Duration::from_secs(30)).is_some(), "hub stopped");

    // The same database, two days later: libfaketime preloaded into Hub
    // itself (the `faketime` wrapper would fork, and stopping the wrapper
    // would leave Hub running).
    let later = Launch {
        env: vec![
            ("LD_PRELOAD".into(), hub_e2e::libfaketime()),
            ("FAKETIME".into(), "+2d".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ],
        ..Default::default()
    };
    let (mut hub, api) = start_in(later, dir.clone()).await;
    let (_, me) = api.call(Method::GET, "/api/me", &key, None).await;
    assert_eq!(
        (&me["balance"], &me["expiring"]["amount"]),
        (&json!("10"), &json!("0")),
        "{me}"
    );
    let after = ledger(&api, &user).await;
    assert_eq!(after.len(), before.len() + 1, "one entry more: {after:?}");
    assert_eq!(&after[1..], &before[..], "nothing else changed");
    let expiry = &after[0];
    assert_eq!(
        (&expiry["kind"], &expiry["amount"], &expiry["reason"]),
        (&json!("expiry"), &json!("-6"), &json!("expired: promo")),
        "{expiry}"
    );
    assert_eq!(expiry["created_at"], g["expires_at"], "dated when the credit expired");
    assert_eq!(api.ledger_sum(&user).await, nanos(&json!("10")));
    assert_eq!(api.calls(&format!("user={user}")).await, calls_before);
    assert!(buckets(&api, &user).await.is_empty());
    // The clock really moved: what Hub writes now is dated two days on.
    let (_, g) = grant(
        &api,
        &user,
        json!({"amount": "0.000000001", "expires_at": now_ms() + 3 * DAY_MS}),
    )
    .await;
    let written = ledger(&api, &user).await[0]["created_at"].as_str().unwrap().to_string();
    assert!(
        written.as_str() > expiry["created_at"].as_str().unwrap(),
        "{written} vs {g}"
    );
    assert!(hub.terminate(Duration::from_secs(30)).is_some());
    let audit = hub_e2e::audit_db(&dir.join("hub.db"));
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
}

/// Credit past its expiry is refused to a hold even before anything wrote
/// its expiry entry (no read of the balance, no sweep in between).
async fn expired_credit_cannot_be_held(launch: Launch) {
    let mock = MockProvider::start().await;
    let (_hub, api) = start_in(launch, hub_e2e::temp_dir("expiry-hold")).await;
    setup(&api, &mock).await;
    let (user, key) = api.user_with_key("customer", "0").await;
    let expires_at = now_ms() + 2_000;
    grant(&api, &user, json!({"amount": 1, "expires_at": expires_at})).await;
    assert_eq!(call(&api, &key).await.0, 200, "spendable before it expires");
    settled(&api, &user, "0.9").await;
    tokio::time::sleep(Duration::from_millis(
        (expires_at - now_ms()).clamp(0, 3_000) as u64 + 200,
    ))
    .await;
    let (status, body) = call(&api, &key).await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(mock.received().len(), 1, "the provider was not called");
    // Read, the balance shows the expiry.
    settled(&api, &user, "0").await;
    assert_eq!(ledger(&api, &user).await[0]["amount"], "-0.9");
}

#[tokio::test]
async fn expired_credit_cannot_be_held_on_the_embedded_book() {
    expired_credit_cannot_be_held(Launch::default()).await;
}

#[tokio::test]
async fn expired_credit_cannot_be_held_on_remote_libsql() {
    let dir = hub_e2e::temp_dir("expiry-remote");
    let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
    expired_credit_cannot_be_held(Launch::remote(&hrana)).await;
}

/// 25 concurrent calls of 0.1 spend three buckets in order of expiry (1, 1,
/// and 0.5 of 1) and leave the credit that never expires alone; then an
/// adjustment takes from the soonest bucket left.
async fn concurrent_calls_spend_buckets_in_order(launch: Launch) {
    let mock = MockProvider::start().await;
    let dir = hub_e2e::temp_dir("expiry-concurrent");
    let embedded = launch.db.is_none();
    let (_hub, api) = start_in(launch, dir.clone()).await;
    setup(&api, &mock).await;
    let (user, key) = api.user_with_key("customer", "1").await;
    let now = now_ms();
    for hours in [3, 1, 2] {
        let at = now + hours * 3_600_000;
        let body = json!({"amount": 1, "reason": format!("{hours}h"), "expires_at": at});
        assert_eq!(grant(&api, &user, body).await.0, 201);
    }
    let answers = join_all((0..25).map(|_| call(&api, &key))).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    settled(&api, &user, "1.5").await;
    assert_eq!(buckets(&api, &user).await, [("1".into(), "0.5".into())]);
    let b = api
        .admin(Method::GET, &format!("/api/admin/users/{user}/credit-buckets"), None)
        .await;
    assert_eq!(b["data"][0]["reason"], "3h", "the latest bucket is the one left: {b}");
    // What the bucket came from: an admin's grant (the site names it by this reference).
    let reference = b["data"][0]["ref"].as_str().unwrap_or_default();
    assert!(reference.starts_with("grant:grt_"), "{b}");

    // A negative adjustment (as a refund writes) takes from the soonest bucket first.
    grant(&api, &user, json!({"amount": 1.5, "expires_at": now + 1_800_000})).await;
    grant(&api, &user, json!({"amount": -1})).await;
    assert_eq!(
        buckets(&api, &user).await,
        [("1.5".into(), "0.5".into()), ("1".into(), "0.5".into())]
    );
    let u = api.user(&user).await;
    assert_eq!(
        (nanos(&u["balance"]), api.ledger_sum(&user).await),
        (2_000_000_000, 2_000_000_000)
    );
    if embedded {
        let audit = hub_e2e::audit_db_settled(&dir.join("hub.db"));
        assert!(audit.problems.is_empty(), "{:?}", audit.problems);
    }
}

#[tokio::test]
async fn concurrent_calls_spend_buckets_in_order_on_the_embedded_book() {
    concurrent_calls_spend_buckets_in_order(Launch::default()).await;
}

#[tokio::test]
async fn concurrent_calls_spend_buckets_in_order_on_remote_libsql() {
    let dir = hub_e2e::temp_dir("expiry-remote");
    let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
    concurrent_calls_spend_buckets_in_order(Launch::remote(&hrana)).await;
    let audit = hub_e2e::audit_db_settled(&dir.join("remote.db"));
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
}

/// A past or present expiry, or one on a negative amount, is refused with
/// 400 naming the field, and changes nothing.
#[tokio::test]
async fn bad_expiries_are_refused_and_change_nothing() {
    let (_hub, api) = start_in(Launch::default(), hub_e2e::temp_dir("expiry-refused")).await;
    let (user, _) = api.user_with_key("customer", "5").await;
    let now = now_ms();
    for body in [
        json!({"amount": 1, "expires_at": now - 1000}),
        json!({"amount": 1, "expires_at": "2020-01-01T00:00:00Z"}),
        json!({"amount": -1, "expires_at": now + DAY_MS}),
        json!({"amount": 1, "expires_at": "tomorrow"}),
        json!({"amount": 1, "expires_at": "10000-01-01T00:00:00Z"}),
    ] {
        let (status, v) = grant(&api, &user, body.clone()).await;
        assert_eq!(
            (status, &v["error"]["param"]),
            (400, &json!("expires_at")),
            "{body}: {v}"
        );
    }
    assert_eq!(ledger(&api, &user).await.len(), 1, "only the starting grant");
    assert_eq!(api.user(&user).await["balance"], "5");
    assert!(buckets(&api, &user).await.is_empty());
    // null means never.
    let (status, v) = grant(&api, &user, json!({"amount": 1, "expires_at": null})).await;
    assert_eq!((status, &v["expires_at"]), (201, &Value::Null), "{v}");
}

/// The same scenario the Worker and Lambda run.
#[tokio::test]
async fn credits_expire_through_the_ledger() {
    let (_hub, api) = start_in(Launch::default(), hub_e2e::temp_dir("expiry-suite")).await;
    hub_e2e::suite::credits_expire_through_the_ledger(&api).await;
}
