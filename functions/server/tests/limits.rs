//! Per-key limits under concurrency: requests per minute, tokens per minute,
//! daily spend caps, enforced by one conditional write per call, so a burst of
//! concurrent calls can never get past them; and the model allow-list.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{Api, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

async fn start() -> (HubServer, Api, MockProvider) {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let p = api.setup_provider("mock", &mock.base_url(), "sk-0001").await;
    api.add_model(&p, "m", json!({"input_rate": 1000, "output_rate": 1000}))
        .await;
    api.add_model(&p, "other", json!({"input_rate": 1000, "output_rate": 1000}))
        .await;
    mock.set("m", Behavior::default().tokens(10, 10));
    (hub, api, mock)
}

async fn key_with(api: &Api, user: &str, limits: Value) -> String {
    let mut body = json!({"label": "limited"});
    for (k, v) in limits.as_object().unwrap() {
        body[k] = v.clone();
    }
    let k = api
        .admin(Method::POST, &format!("/api/admin/users/{user}/keys"), Some(body))
        .await;
    k["key"]
        .as_str()
        .unwrap_or_else(|| panic!("key not created: {k}"))
        .to_string()
}

/// Fires `n` concurrent calls; returns (successes, 429 messages).
async fn burst(api: &Api, key: &str, n: usize, max_tokens: u64) -> (usize, Vec<String>) {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens});
    let calls = (0..n).map(|_| api.call(Method::POST, "/v1/chat/completions", key, Some(body.clone())));
    let mut ok = 0;
    let mut refused = Vec::new();
    for (status, v) in futures_util::future::join_all(calls).await {
        match status {
            200 => ok += 1,
            429 => refused.push(v["error"]["message"].as_str().unwrap_or("").to_string()),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    (ok, refused)
}

#[tokio::test]
async fn requests_per_minute_hold_under_a_burst() {
    let (_hub, api, mock) = start().await;
    let (user, _) = api.user_with_key("rita", "100").await;
    let key = key_with(&api, &user, json!({"rpm_limit": 5})).await;
    let (ok, refused) = burst(&api, &key, 12, 10).await;
    assert_eq!(ok, 5, "exactly the limit got through");
    assert_eq!(refused.len(), 7);
    assert!(refused.iter().all(|m| m.contains("requests-per-minute")), "{refused:?}");
    assert_eq!(mock.received().len(), 5, "refused calls never reach the provider");
}

#[tokio::test]
async fn tokens_per_minute_and_daily_spend_caps_hold_under_a_burst() {
    let (_hub, api, _mock) = start().await;
    let (user, _) = api.user_with_key("tom", "100").await;
    // Each call reserves its bound: "hi" is 18 input tokens plus max_tokens 100 = 118 tokens.
    let tpm = key_with(&api, &user, json!({"tpm_limit": 400})).await;
    let (ok, refused) = burst(&api, &tpm, 10, 100).await;
    assert_eq!(ok, 3, "118 × 3 = 354 ≤ 400 < 118 × 4");
    assert!(refused.iter().all(|m| m.contains("tokens-per-minute")), "{refused:?}");

    // The same bound costs 0.118 credits to hold at 1000 per million: a 0.3 cap admits 2.
    let capped = key_with(&api, &user, json!({"daily_spend_cap": 0.3})).await;
    let (ok, refused) = burst(&api, &capped, 10, 100).await;
    assert_eq!(ok, 2);
    assert!(refused.iter().all(|m| m.contains("daily spend cap")), "{refused:?}");
    // Settlement replaces the reservation by what was used (20 tokens, 0.02 credits each):
    // the cap has room again for the next calls.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (ok, _) = burst(&api, &capped, 1, 100).await;
        if ok == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cap never freed up after settlement"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_key_calls_only_its_allowed_models() {
    let (_hub, api, mock) = start().await;
    let (user, _) = api.user_with_key("ada", "10").await;
    let key = key_with(&api, &user, json!({"allowed_models": ["m"]})).await;
    let (status, _) = api.chat(&key, "m").await;
    assert_eq!(status, 200);
    let (status, body) = api.chat(&key, "other").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(mock.received().len(), 1);
}

/// Beyond `HUB_MAX_IN_FLIGHT` calls at once, a call gets 503 with
/// `retry-after` in its caller's protocol and changes nothing; a stream keeps
/// its slot until it ends, and the admin API is never refused.
#[tokio::test]
async fn calls_beyond_the_in_flight_limit_get_503_and_change_nothing() {
    use futures_util::StreamExt;
    let mock = MockProvider::start().await;
    let launch = Launch {
        env: vec![("HUB_MAX_IN_FLIGHT".into(), "2".into())],
        ..Default::default()
    };
    let hub = tokio::task::spawn_blocking(move || HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), launch))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let p = api.setup_provider("mock", &mock.base_url(), "sk-0001").await;
    api.add_model(&p, "m", json!({"input_rate": 1000, "output_rate": 1000}))
        .await;
    mock.set(
        "m",
        Behavior {
            pieces: vec!["one ".into(), "two".into()],
            ..Default::default()
        }
        .tokens(10, 10),
    );
    let (user, key) = api.user_with_key("ida", "100").await;
    let stream_body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true});

    // Two streams held open after their first chunk fill both slots.
    mock.pause_streams();
    let mut open = Vec::new();
    for _ in 0..2 {
        let resp = api
            .http
            .post(format!("{}/v1/chat/completions", hub.base))
            .bearer_auth(&key)
            .json(&stream_body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), body.next())
            .await
            .expect("first chunk")
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&first).contains("data:"));
        open.push(body);
    }
    let calls_before = api.calls(&format!("user={user}")).await.len();

    let refused = api
        .http
        .post(format!("{}/v1/chat/completions", hub.base))
        .bearer_auth(&key)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let v: Value = refused.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("retry in a moment"),
        "{v}"
    );
    let (status, v) = api
        .call(
            Method::POST,
            "/v1/messages",
            &key,
            Some(json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(status, 503);
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "overloaded_error", "{v}");
    // The admin API still answers; the refused calls left no trace.
    assert_eq!(api.calls(&format!("user={user}")).await.len(), calls_before);
    assert_eq!(mock.received().len(), 2, "a refused call reached the provider");

    // Ended streams give their slots back.
    mock.resume_streams();
    for mut body in open {
        while let Some(chunk) = body.next().await {
            chunk.unwrap();
        }
    }
    let mut status = 0;
    for _ in 0..50 {
        status = api.chat(&key, "m").await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while api.calls(&format!("user={user}")).await.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the three served calls were not logged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(api.calls(&format!("user={user}")).await.len(), 3);
}
