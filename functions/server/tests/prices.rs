//! Price catalogue sync and the margin floor, through `hub serve` on a real
//! libSQL file: LiteLLM's and OpenRouter's formats (fixture copies under
//! tests/fixtures/prices) from an upload and from a URL on the scheduled
//! tick; costs, context windows and long-context tiers land; a 300k-token
//! prompt is billed at the tier to the nano-credit; the floor refuses a sell
//! rate below it unless forced; a cost rising above the sell rate flags the
//! model, notifies a webhook and, with auto-disable, stops serving it; every
//! change is in the rate history.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::suite::settled;
use hub_e2e::{eventually, sqlite, Api, HubServer, Launch, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/prices")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Serves one JSON document (changeable) at any path on loopback, as a catalogue URL would.
async fn catalogue_server(doc: Arc<Mutex<Value>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/models", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let body = doc.lock().unwrap().to_string();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = conn.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(body.as_bytes()).await;
            });
        }
    });
    url
}

async fn model(api: &Api, id: &str) -> Value {
    api.admin(Method::GET, &format!("/api/admin/models/{id}"), None).await
}

async fn patch(api: &Api, id: &str, body: Value) -> (u16, Value) {
    api.call(Method::PATCH, &format!("/api/admin/models/{id}"), ADMIN_KEY, Some(body))
        .await
}

async fn sync(api: &Api, body: Value) -> (u16, Value) {
    api.call(Method::POST, "/api/admin/prices/sync", ADMIN_KEY, Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn catalogues_sync_tiers_bill_and_the_floor_holds() {
    let mock = MockProvider::start().await;
    let launch = Launch {
        env: vec![("HUB_TICK_INTERVAL".into(), "1".into())],
        ..Default::default()
    };
    let hub = tokio::task::spawn_blocking(move || HubServer::start(bin(), launch))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let root = mock.root_url();
    let ant = api
        .provider(
            json!({"name": "ant", "kind": "anthropic", "base_url": format!("{root}/v1")}),
            "sk-ant-0001",
        )
        .await;
    let oai = api
        .provider(
            json!({"name": "oai", "kind": "openai", "base_url": mock.base_url()}),
            "sk-oai-0001",
        )
        .await;
    let or = api
        .provider(
            json!({"name": "or", "kind": "openrouter", "base_url": mock.base_url()}),
            "sk-or-0001",
        )
        .await;
    // Sold 20% over today's costs, without a long-context tier.
    let claude = api
        .add_model(
            &ant,
            "claude-sonnet-4-5",
            json!({"input_rate": "3.6", "output_rate": "18", "cache_read_rate": "0.36", "cache_write_rate": "4.5"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mini = api
        .add_model(&oai, "gpt-4o-mini", json!({"input_rate": "0.2", "output_rate": "0.8"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let routed = api
        .add_model(
            &or,
            "anthropic/claude-sonnet-4.5",
            json!({"input_rate": "3.3", "output_rate": "16.5"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({"margin_percent": "20", "margin_floor_percent": "10"})),
    )
    .await;

    // LiteLLM's price map, uploaded: costs, context windows and the tier land.
    let report = api
        .admin(
            Method::POST,
            "/api/admin/prices/sync",
            Some(json!({"format": "litellm", "catalogue": fixture("litellm.json")})),
        )
        .await;
    let matched: Vec<&str> = report["matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(matched, ["ant/claude-sonnet-4-5", "oai/gpt-4o-mini"], "{report}");
    assert_eq!(report["unmatched"], json!(["or/anthropic/claude-sonnet-4.5"]));
    let c = model(&api, &claude).await;
    assert_eq!(c["cost_input_rate"], "3");
    assert_eq!(c["cost_output_rate"], "15");
    assert_eq!(c["cost_cache_read_rate"], "0.3");
    assert_eq!(c["cost_cache_write_rate"], "3.75");
    assert_eq!(c["cost_input_rate_above_200k"], "6");
    assert_eq!(c["cost_output_rate_above_200k"], "22.5");
    assert_eq!(c["cost_cache_read_rate_above_200k"], "0.6");
    assert_eq!(c["long_context_threshold"], 200_000);
    assert_eq!(c["context_window"], 200_000);
    assert_eq!(c["price_source"], "litellm");
    // The sell tier keeps the model's own 20% over cost.
    assert_eq!(c["input_rate_above_200k"], "7.2");
    assert_eq!(c["output_rate_above_200k"], "27");
    assert_eq!(c["cache_read_rate_above_200k"], "0.72");
    assert_eq!(c["cache_write_rate_above_200k"], "9");
    assert_eq!(c["below_cost"], false, "{c}");
    // gpt-4o-mini sells cache reads at its input rate: above their cost.
    assert_eq!(model(&api, &mini).await["below_cost"], false);
    assert_eq!(c["input_rate"], "3.6", "a sync leaves sell rates above cost alone");
    assert_eq!(model(&api, &mini).await["cost_input_rate"], "0.15");

    // OpenRouter's model list from a URL, by the scheduled tick.
    let doc = Arc::new(Mutex::new(fixture("openrouter.json")));
    let url = catalogue_server(doc.clone()).await;
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({"price_sync_url": url, "price_sync_format": "openrouter", "price_sync_interval_hours": 1})),
    )
    .await;
    let r = eventually("the scheduled sync", Duration::from_secs(20), || async {
        let r = model(&api, &routed).await;
        (r["price_source"] == "openrouter")
            .then_some(r)
            .ok_or("not yet".to_string())
    })
    .await;
    assert_eq!(r["cost_input_rate"], "3");
    assert_eq!(r["cost_cache_write_rate"], "3.75");
    assert_eq!(r["context_window"], 1_000_000);
    // A URL the outbound address policy refuses: 400 naming it, nothing fetched.
    let (status, err) = sync(
        &api,
        json!({"format": "openrouter", "url": "http://169.254.169.254/latest/meta-data"}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(err.to_string().contains("url"), "{err}");

    // A 300k-token prompt is billed at the tier, to the nano-credit.
    mock.set("claude-sonnet-4-5", Behavior::default().tokens(300_000, 1_000));
    let (user, key) = api.user_with_key("long", "10").await;
    let prompt = "x".repeat(310_000);
    let (status, answer) = api
        .call(
            Method::POST,
            "/v1/chat/completions",
            &key,
            Some(json!({"model": "ant/claude-sonnet-4-5", "messages": [{"role": "user", "content": prompt}]})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // 300000 × 7.2 + 1000 × 27 = 2187000 per million = 2.187 credits.
    settled(&api, &user, "7.813").await;
    let db = hub.dir.join("hub.db");
    let usage = sqlite(&db, "SELECT input_tokens, input_rate, output_rate, credits FROM usage");
    assert_eq!(
        usage,
        json!([[300_000, 7_200_000_000i64, 27_000_000_000i64, 2_187_000_000i64]]),
        "the usage row keeps the tier rates"
    );

    // The margin floor: a sell rate under cost × 1.1 is refused, naming it, unless forced.
    let (status, err) = patch(&api, &mini, json!({"input_rate": "0.16"})).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "input_rate", "{err}");
    assert!(
        err.to_string().contains("0.165"),
        "the least allowed rate is named: {err}"
    );
    assert_eq!(model(&api, &mini).await["input_rate"], "0.2", "nothing changed");
    let (status, forced) = patch(&api, &mini, json!({"input_rate": "0.16", "force": true})).await;
    assert_eq!(
        (status, &forced["input_rate"], &forced["below_cost"]),
        (200, &json!("0.16"), &json!(false))
    );

    // A cost rising above the sell rate: flagged, notified and, with auto-disable, no longer served.
    let mut rx = tokio::task::spawn_blocking(|| hub_e2e::webhooks::Receiver::start(None))
        .await
        .unwrap();
    let w = api
        .admin(
            Method::POST,
            "/api/admin/webhooks",
            Some(json!({"url": rx.url(), "events": ["model.below_cost"]})),
        )
        .await;
    rx.set_secret(w["secret"].as_str().unwrap());
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({"below_cost_action": "disable"})),
    )
    .await;
    let mut dearer = fixture("litellm.json");
    dearer["claude-sonnet-4-5"]["input_cost_per_token"] = json!(4e-06);
    let report = api
        .admin(
            Method::POST,
            "/api/admin/prices/sync",
            Some(json!({"format": "litellm", "catalogue": dearer})),
        )
        .await;
    let flagged = report["matched"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == claude.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (&flagged["below_cost"], &flagged["disabled"]),
        (&json!(true), &json!(true)),
        "{report}"
    );
    let c = model(&api, &claude).await;
    assert_eq!(
        (&c["below_cost"], &c["enabled"], &c["cost_input_rate"]),
        (&json!(true), &json!(false), &json!("4"))
    );
    let got = eventually("the below-cost webhook", Duration::from_secs(30), || async {
        rx.of_type("model.below_cost")
            .first()
            .cloned()
            .ok_or("nothing yet".to_string())
    })
    .await;
    assert_eq!(got["verified"], true, "{got}");
    let body = hub_e2e::webhooks::body_of(&got);
    assert_eq!(body["data"]["model_id"], claude.as_str());
    assert_eq!(body["data"]["model"], "claude-sonnet-4-5");
    let served = mock.received().len();
    let (status, err) = api.chat(&key, "ant/claude-sonnet-4-5").await;
    assert_ne!(status, 200, "a disabled model is not served: {err}");
    assert_eq!(mock.received().len(), served, "nothing reached the provider");

    // Every change in the rate history: the sync's and the admin's, with who.
    let history = api
        .admin(Method::GET, &format!("/api/admin/models/{claude}/rate-history"), None)
        .await;
    let rows = history["data"].as_array().unwrap();
    let cost_change = rows
        .iter()
        .find(|r| r["field"] == "cost_input_rate" && r["new"] == "4")
        .unwrap();
    assert_eq!(
        (&cost_change["old"], &cost_change["source"]),
        (&json!("3"), &json!("sync"))
    );
    assert!(rows
        .iter()
        .any(|r| r["field"] == "input_rate_above_200k" && r["new"] == "7.2" && r["source"] == "sync"));
    let mini_history = api
        .admin(Method::GET, &format!("/api/admin/models/{mini}/rate-history"), None)
        .await;
    let admin_change = &mini_history["data"][0];
    assert_eq!(
        (&admin_change["field"], &admin_change["old"], &admin_change["new"]),
        (&json!("input_rate"), &json!("0.2"), &json!("0.16"))
    );
    assert_eq!(admin_change["source"], "admin");
    assert!(
        admin_change["actor"].as_str().is_some_and(|a| a.starts_with("usr_")),
        "{admin_change}"
    );
}
