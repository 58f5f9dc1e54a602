//! Price catalogue sync and the margin floor, through `hub serve` on a real
//! libSQL file: the runtime-independent scenario (LiteLLM's format uploaded,
//! tiers billed, below cost flagged, notified and disabled; see
//! `hub_e2e::suite`), then OpenRouter's format from a URL on the scheduled
//! tick, the outbound address policy on that URL, the usage row's rates, the
//! margin floor refusing a sell rate unless forced, and the admin's changes
//! in the rate history.

use hub_e2e::mock::MockProvider;
use hub_e2e::suite::{price_fixture, prices_sync_and_bill_the_tier};
use hub_e2e::{eventually, sqlite, Api, HubServer, Launch, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

/// Serves one JSON document at any path on loopback, as a catalogue URL would.
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
    let priced = prices_sync_and_bill_the_tier(&api, &mock).await;

    // The usage row of the 300k-token call keeps the tier rates it was billed at.
    let usage = sqlite(
        &hub.dir.join("hub.db"),
        "SELECT input_tokens, input_rate, output_rate, credits FROM usage",
    );
    assert_eq!(
        usage,
        json!([[300_000, 7_200_000_000i64, 27_000_000_000i64, 2_187_000_000i64]])
    );

    // OpenRouter's model list from a URL, by the scheduled tick.
    let routed = api
        .add_model(
            &priced.openrouter,
            "anthropic/claude-sonnet-4.5",
            json!({"input_rate": "3.3", "output_rate": "16.5", "cache_read_rate": "0.33", "cache_write_rate": "4.125"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = catalogue_server(Arc::new(Mutex::new(price_fixture("openrouter.json")))).await;
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
    assert_eq!(
        (&r["cost_input_rate"], &r["cost_cache_write_rate"]),
        (&json!("3"), &json!("3.75"))
    );
    assert_eq!(
        (&r["context_window"], &r["below_cost"]),
        (&json!(1_000_000), &json!(false))
    );
    // A URL the outbound address policy refuses: 400 naming it.
    let (status, err) = api
        .call(
            Method::POST,
            "/api/admin/prices/sync",
            ADMIN_KEY,
            Some(json!({"format": "openrouter", "url": "http://169.254.169.254/latest/meta-data"})),
        )
        .await;
    assert_eq!((status, &err["error"]["param"]), (400, &json!("url")), "{err}");

    // The margin floor: a sell rate under cost × 1.1 is refused, naming it, unless forced.
    let mini = &priced.mini;
    let (status, err) = patch(&api, mini, json!({"input_rate": "0.16"})).await;
    assert_eq!((status, &err["error"]["param"]), (400, &json!("input_rate")), "{err}");
    assert!(
        err.to_string().contains("0.165"),
        "the least allowed rate is named: {err}"
    );
    assert_eq!(model(&api, mini).await["input_rate"], "0.2", "nothing changed");
    let (status, forced) = patch(&api, mini, json!({"input_rate": "0.16", "force": true})).await;
    assert_eq!(
        (status, &forced["input_rate"], &forced["below_cost"]),
        (200, &json!("0.16"), &json!(false))
    );
    // Forced below cost itself: flagged (and announced) like a sync's.
    let (status, under) = patch(&api, mini, json!({"input_rate": "0.1", "force": true})).await;
    assert_eq!((status, &under["below_cost"]), (200, &json!(true)));
    let events = sqlite(
        &hub.dir.join("hub.db"),
        "SELECT subject FROM events WHERE type = 'model.below_cost' ORDER BY created_at",
    );
    assert_eq!(events, json!([[priced.claude], [mini]]));

    // The admin's changes in the rate history, with who made them.
    let history = api
        .admin(Method::GET, &format!("/api/admin/models/{mini}/rate-history"), None)
        .await;
    let last = &history["data"][0];
    assert_eq!(
        (&last["field"], &last["old"], &last["new"]),
        (&json!("input_rate"), &json!("0.16"), &json!("0.1"))
    );
    assert_eq!(last["source"], "admin");
    assert!(last["actor"].as_str().is_some_and(|a| a.starts_with("usr_")), "{last}");
}
