//! Routing against `hub serve` on a real libSQL file and mock providers:
//! a model alias that falls back across its targets (a provider failure, a
//! context window too small, a content-policy refusal) in the OpenAI and
//! Anthropic protocols, billed at the serving target's rates; and latency
//! routing that follows the faster of two providers, leaves it when it
//! fails and returns when it recovers.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::suite::settled;
use hub_e2e::{cost_nanos, nanos, Api, HubServer, Launch, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

async fn start_hub() -> HubServer {
    tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap()
}

/// A prompt of about 500 tokens (Hub estimates four bytes a token).
fn long_prompt() -> String {
    "All work and no play. ".repeat(90)
}

/// A call that must answer 200: its call id and its body's text.
async fn post(api: &Api, path: &str, key: &str, body: Value) -> (String, String) {
    let resp = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let call_id = resp
        .headers()
        .get("x-hub-call-id")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{path}: {text}");
    (call_id, text)
}

/// The call log's rows for one call, by attempt.
fn attempts_of(rows: &[Value], call_id: &str) -> Vec<Value> {
    let mut mine: Vec<Value> = rows.iter().filter(|r| r["call_id"] == call_id).cloned().collect();
    mine.sort_by_key(|r| r["attempt"].as_i64());
    mine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_falls_back_across_its_targets_in_every_protocol() {
    let (a, b, c) = (
        MockProvider::start().await,
        MockProvider::start().await,
        MockProvider::start().await,
    );
    let hub = start_hub().await;
    let api = Api::new(&hub.base);
    let pa = api
        .provider(
            json!({"name": "a", "kind": "openai", "base_url": a.base_url()}),
            "sk-a-0001",
        )
        .await;
    let pb = api
        .provider(
            json!({"name": "b", "kind": "openai", "base_url": b.base_url()}),
            "sk-b-0001",
        )
        .await;
    let pc = api
        .provider(
            json!({"name": "c", "kind": "anthropic", "base_url": c.base_url()}),
            "sk-c-0001",
        )
        .await;
    api.add_model(&pa, "first", json!({"input_rate": 1, "output_rate": 1}))
        .await;
    api.add_model(&pa, "risky", json!({"input_rate": 1, "output_rate": 1}))
        .await;
    api.add_model(
        &pb,
        "small",
        json!({"input_rate": 1, "output_rate": 1, "metadata": {"context_window": 100}}),
    )
    .await;
    let big = api
        .add_model(
            &pc,
            "big",
            json!({"input_rate": 3, "output_rate": 7, "metadata": {"context_window": 200000}}),
        )
        .await;
    assert_eq!(big["context_window"], 200000);
    a.set("first", Behavior::status(500));
    a.set(
        "risky",
        Behavior {
            status: 400,
            error_message: Some("Your request was rejected as a result of our safety system.".into()),
            ..Default::default()
        },
    );
    c.set("big", Behavior::text(&["Served", " by big"]).tokens(100, 20));

    // Refused with the field named, nothing created.
    for (body, field, why) in [
        (json!({"name": "x", "targets": ["nope"]}), "targets", "names no model"),
        (json!({"name": "big", "targets": ["first"]}), "name", "model's name"),
        (json!({"name": "a/x", "targets": ["first"]}), "name", "`/`"),
        (
            json!({"name": "x", "targets": [{"model": "big", "overrides": {"model": "y"}}]}),
            "targets",
            "`model`",
        ),
        (
            json!({"name": "x", "targets": ["big"], "routing": "fastest"}),
            "routing",
            "priority",
        ),
        (json!({"name": "x", "targets": []}), "targets", "1 to 10"),
    ] {
        let (status, err) = api
            .call(Method::POST, "/api/admin/aliases", ADMIN_KEY, Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["param"], field, "{err}");
        assert!(err["error"]["message"].as_str().unwrap().contains(why), "{err}");
    }
    let alias = api
        .admin(
            Method::POST,
            "/api/admin/aliases",
            Some(json!({"name": "smart", "description": "first, then small, then big",
                "targets": ["a/first", {"model": "small"}, {"model": "big", "overrides": {"top_k": 5}}]})),
        )
        .await;
    assert_eq!(alias["routing"], "priority");
    assert_eq!(alias["targets"][2], json!({"model": "big", "overrides": {"top_k": 5}}));
    let (status, dup) = api
        .call(
            Method::POST,
            "/api/admin/aliases",
            ADMIN_KEY,
            Some(json!({"name": "smart", "targets": ["big"]})),
        )
        .await;
    assert_eq!(status, 409, "{dup}");

    let (user, key) = api.user_with_key("alias", "1").await;
    let models = api.call(Method::GET, "/v1/models", &key, None).await.1;
    let listed: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"smart"), "{listed:?}");

    // OpenAI's protocol, whole.
    let prompt = long_prompt();
    let (openai_call, answer) = post(
        &api,
        "/v1/chat/completions",
        &key,
        json!({"model": "smart", "messages": [{"role": "user", "content": prompt}]}),
    )
    .await;
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "Served by big");

    // Anthropic's protocol, streamed.
    let (anthropic_call, stream) = post(
        &api,
        "/v1/messages",
        &key,
        json!({"model": "smart", "max_tokens": 50, "stream": true,
            "messages": [{"role": "user", "content": prompt}]}),
    )
    .await;
    assert!(
        stream.contains("Served") && stream.contains("by big") && stream.contains("message_stop"),
        "{stream}"
    );

    // The small target was passed over without being asked; the big one got its override.
    assert!(b.received().is_empty(), "the small target is never called");
    let sent = c.received();
    assert_eq!(sent.len(), 2);
    assert!(
        sent.iter().all(|r| r.body["top_k"] == 5 && r.body["model"] == "big"),
        "{sent:?}"
    );

    // Billed at the serving target's rates, exactly.
    let cost = cost_nanos(&[(100, "3"), (20, "7")]);
    let left = hub_core::Credits::from_nanos((1_000_000_000 - 2 * cost) as i64).to_string();
    settled(&api, &user, &left).await;

    // Three attempts each, with their reasons; the alias and the model each asked for.
    let rows = api.calls(&format!("user={user}&limit=50")).await;
    for call_id in [&openai_call, &anthropic_call] {
        let tries = attempts_of(&rows, call_id);
        assert_eq!(tries.len(), 3, "{tries:?}");
        let seen: Vec<(Value, Value, Value, Value)> = tries
            .iter()
            .map(|t| {
                (
                    t["attempt"].clone(),
                    t["provider"].clone(),
                    t["upstream_model"].clone(),
                    t["status"].clone(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (json!(1), json!("a"), json!("first"), json!("failed")),
                (json!(2), json!("b"), json!("small"), json!("failed")),
                (json!(3), json!("c"), json!("big"), json!("success")),
            ]
        );
        assert!(tries.iter().all(|t| t["alias"] == "smart" && t["model"] == "smart"));
        assert!(tries[0]["error"].as_str().unwrap().contains("500"), "{}", tries[0]);
        assert!(
            tries[1]["error"].as_str().unwrap().contains("context window"),
            "{}",
            tries[1]
        );
        assert_eq!(tries[1]["credential_id"], Value::Null, "never sent");
        assert_eq!(nanos(&tries[2]["credits"]), cost);
        assert_eq!(nanos(&tries[0]["credits"]) + nanos(&tries[1]["credits"]), 0);
    }

    // A content-policy refusal moves on only when the alias asks for it.
    let careful = api
        .admin(
            Method::POST,
            "/api/admin/aliases",
            Some(json!({"name": "careful", "targets": ["risky", "big"], "fallback_on_refusal": true})),
        )
        .await;
    let (status, answer) = api.chat(&key, "careful").await;
    assert_eq!(
        (status, &answer["choices"][0]["message"]["content"]),
        (200, &json!("Served by big")),
        "{answer}"
    );
    let path = format!("/api/admin/aliases/{}", careful["id"].as_str().unwrap());
    api.admin(Method::PATCH, &path, Some(json!({"fallback_on_refusal": false})))
        .await;
    let (status, refused) = api.chat(&key, "careful").await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("safety system"),
        "{refused}"
    );

    // A key's allow-list takes the alias's name.
    let allowed = api
        .admin(
            Method::POST,
            &format!("/api/admin/users/{user}/keys"),
            Some(json!({"label": "only-smart", "allowed_models": ["smart"]})),
        )
        .await;
    let only_smart = allowed["key"].as_str().unwrap();
    assert_eq!(api.chat(only_smart, "smart").await.0, 200);
    assert_eq!(api.chat(only_smart, "careful").await.0, 404);
    let listed = api.call(Method::GET, "/v1/models", only_smart, None).await.1;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["smart"]);

    // Deleted, it is gone; every write was audited.
    api.admin(Method::DELETE, &path, None).await;
    assert_eq!(api.chat(&key, "careful").await.0, 404);
    let audit = api
        .admin(Method::GET, "/api/admin/audit?resource=alias&limit=50", None)
        .await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "create").count(),
        9,
        "refused creates are audited too: {actions:?}"
    );
    assert!(
        actions.contains(&"update") && actions.contains(&"delete"),
        "{actions:?}"
    );
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
