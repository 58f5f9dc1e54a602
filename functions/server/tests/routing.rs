//! Routing against `hub serve` on a real libSQL file and mock providers:
//! a model alias that falls back across its targets (a provider failure, a
//! context window too small, a content-policy refusal) in the OpenAI and
//! Anthropic protocols, billed at the serving target's rates; and latency
//! routing that follows the faster of two providers, leaves it when it
//! fails and returns when it recovers.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{suite, Api, HubServer, Launch, ADMIN_KEY};
use reqwest::Method;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

async fn start_hub() -> HubServer {
    tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_falls_back_across_its_targets_in_every_protocol() {
    let hub = start_hub().await;
    suite::alias_falls_back_across_its_targets(&Api::new(&hub.base)).await;
    drop(hub);
}

/// Which provider answered each of `n` calls: the mock whose request count grew first.
async fn run_calls(api: &Api, key: &str, fast: &MockProvider, n: usize) -> Vec<bool> {
    let mut firsts = Vec::with_capacity(n);
    for _ in 0..n {
        let before = fast.received().len();
        let (status, answer) = api.chat(key, "m").await;
        assert_eq!(status, 200, "{answer}");
        firsts.push(fast.received().len() > before);
    }
    firsts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_routing_follows_the_faster_provider() {
    let (fast, slow) = (MockProvider::start().await, MockProvider::start().await);
    let hub = start_hub().await;
    let api = Api::new(&hub.base);
    let mut rows = BTreeMap::new();
    for (name, mock) in [("fast", &fast), ("slow", &slow)] {
        let p = api
            .provider(
                json!({"name": name, "kind": "openai", "base_url": mock.base_url()}),
                &format!("sk-{name}-0001"),
            )
            .await;
        let row = api.add_model(&p, "m", json!({"input_rate": 1, "output_rate": 1})).await;
        rows.insert(name, row["id"].as_str().unwrap().to_string());
    }
    fast.set("m", Behavior::text(&["quick"]));
    slow.set(
        "m",
        Behavior {
            header_delay: Duration::from_millis(300),
            ..Behavior::text(&["slow"])
        },
    );
    let (status, err) = api
        .call(
            Method::PATCH,
            &format!("/api/admin/models/{}", rows["fast"]),
            ADMIN_KEY,
            Some(json!({"routing": "fastest"})),
        )
        .await;
    assert_eq!((status, &err["error"]["param"]), (400, &json!("routing")), "{err}");
    for id in rows.values() {
        let m = api
            .admin(
                Method::PATCH,
                &format!("/api/admin/models/{id}"),
                Some(json!({"routing": "latency"})),
            )
            .await;
        assert_eq!(m["routing"], "latency");
    }
    let (_, key) = api.user_with_key("latency", "10").await;

    // Warm-up: both measured.
    run_calls(&api, &key, &fast, 10).await;
    let firsts = run_calls(&api, &key, &fast, 200).await;
    let to_fast = firsts.iter().filter(|f| **f).count();
    assert!(to_fast >= 180, "{to_fast} of 200 calls went to the faster provider");
    assert!(to_fast < 200, "the slower one is still probed");

    // The fast one fails: within 10 calls it stops being tried first (but for probes).
    fast.set("m", Behavior::status(500));
    let firsts = run_calls(&api, &key, &fast, 40).await;
    let late_tries = firsts[10..].iter().filter(|f| **f).count();
    assert!(
        late_tries <= 2,
        "after 10 calls the failing provider is only probed: {firsts:?}"
    );

    // It recovers: the probes find out, and it regains the traffic.
    fast.set("m", Behavior::text(&["quick"]));
    let firsts = run_calls(&api, &key, &fast, 200).await;
    let back = firsts[100..].iter().filter(|f| **f).count();
    assert!(
        back >= 90,
        "{back} of the last 100 calls went to the recovered provider: {firsts:?}"
    );
    drop(hub);
}
