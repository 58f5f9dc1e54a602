//! The response cache against `hub serve` and the mock provider: identical
//! requests, whole and streamed, in the OpenAI and Anthropic protocols, are
//! answered without the provider, marked `hit`, billed the hit fraction and
//! logged with what they saved; anything that differs misses; answers
//! expire; errors and broken streams are never kept; concurrent identical
//! misses are not coalesced.

use futures_util::StreamExt;
use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{cost_nanos, nanos, suite::settled, Api, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct World {
    hub: HubServer,
    api: Api,
    mock: MockProvider,
}

impl World {
    fn db(&self) -> PathBuf {
        self.hub.dir.join("hub.db")
    }

    /// Requests the provider has had so far.
    fn reached(&self) -> usize {
        self.mock.received().len()
    }
}

const RATES: &str = r#"{"input_rate": 2, "output_rate": 8}"#;

async fn world(settings: Value) -> World {
    let mock = MockProvider::start().await;
    let launch = Launch {
        env: vec![("HUB_TICK_INTERVAL".into(), "1".into())],
        ..Default::default()
    };
    let hub = tokio::task::spawn_blocking(move || HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), launch))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let provider = api
        .setup_provider("mock", &mock.base_url(), "sk-mock-secret-0001")
        .await;
    api.add_model(&provider, "mock-model", serde_json::from_str(RATES).unwrap())
        .await;
    mock.set(
        "mock-model",
        Behavior {
            pieces: vec!["Cached ".into(), "answer".into()],
            prompt_tokens: 1000,
            completion_tokens: 500,
            ..Default::default()
        },
    );
    api.admin(Method::PATCH, "/api/admin/settings", Some(settings)).await;
    World { hub, api, mock }
}

/// What a call answered: status, the cache header, the credits billed, the body.
struct Answer {
    status: u16,
    cache: Option<String>,
    credits: i128,
    body: String,
}

async fn send(w: &World, path: &str, key: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
    let mut req = w
        .api
        .http
        .post(format!("{}{path}", w.api.base))
        .bearer_auth(key)
        .json(body);
    if path == "/v1/messages" {
        req = req.header("anthropic-version", "2023-06-01");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers();
    let cache = h.get("x-hub-cache").map(|v| v.to_str().unwrap().to_string());
    let credits = h.get("x-hub-credits").map_or(0, |v| nanos(&json!(v.to_str().unwrap())));
    // A stream is read chunk by chunk, as a client would.
    let mut stream = resp.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    Answer {
        status,
        cache,
        credits,
        body: String::from_utf8(bytes).unwrap(),
    }
}

fn openai(stream: bool) -> Value {
    json!({"model": "mock-model", "stream": stream, "max_tokens": 600, "temperature": 0.5,
           "messages": [{"role": "user", "content": "What is cached?"}]})
}

fn anthropic(stream: bool) -> Value {
    json!({"model": "mock-model", "stream": stream, "max_tokens": 600,
           "messages": [{"role": "user", "content": "What is cached?"}]})
}

/// The answer's text, whole or streamed, in either protocol.
fn text(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return v["choices"][0]["message"]["content"]
            .as_str()
            .or(v["content"][0]["text"].as_str())
            .unwrap_or_default()
            .to_string();
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .or(v["delta"]["text"].as_str())
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_requests_are_answered_from_the_cache_whole_and_streamed_in_both_protocols() {
    let w = world(json!({"response_cache_enabled": true, "response_cache_hit_fraction": "0.25"})).await;
    let (user, key) = w.api.user_with_key("alice", "10").await;
    let full = cost_nanos(&[(1000, "2"), (500, "8")]);
    let quarter = full / 4;

    for (path, body) in [
        ("/v1/chat/completions", openai(false)),
        ("/v1/chat/completions", openai(true)),
        ("/v1/messages", anthropic(false)),
        ("/v1/messages", anthropic(true)),
    ] {
        let before = w.reached();
        let first = send(&w, path, &key, &body, &[]).await;
        assert_eq!(
            (first.status, first.cache.as_deref()),
            (200, Some("miss")),
            "{path}: {}",
            first.body
        );
        assert_eq!(w.reached(), before + 1);
        assert_eq!(text(&first.body), "Cached answer", "{path}: {}", first.body);
        if body["stream"] == false {
            assert_eq!(first.credits, full, "{path}");
        }

        let again = send(&w, path, &key, &body, &[]).await;
        assert_eq!((again.status, again.cache.as_deref()), (200, Some("hit")), "{path}");
        assert_eq!(w.reached(), before + 1, "{path}: a hit does not reach the provider");
        assert_eq!(again.body, first.body, "{path}: the same answer, byte for byte");
        assert_eq!(again.credits, quarter, "{path}: billed the hit fraction");
        if body["stream"] == true {
            assert!(again.body.contains("\n\ndata: ") || again.body.contains("\n\nevent: "));
        }
    }

    // The same request with its fields in another order is the same request.
    let reordered: Value = serde_json::from_str(
        r#"{"messages": [{"content": "What is cached?", "role": "user"}], "temperature": 0.5,
            "max_tokens": 600, "stream": false, "model": "mock-model"}"#,
    )
    .unwrap();
    let before = w.reached();
    let same = send(&w, "/v1/chat/completions", &key, &reordered, &[]).await;
    assert_eq!(same.cache.as_deref(), Some("hit"));

    // Anything that changes the answer misses: temperature, tools, the user.
    let mut warmer = openai(false);
    warmer["temperature"] = json!(0.9);
    let mut with_tools = openai(false);
    with_tools["tools"] = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    for body in [&warmer, &with_tools] {
        let a = send(&w, "/v1/chat/completions", &key, body, &[]).await;
        assert_eq!((a.status, a.cache.as_deref()), (200, Some("miss")), "{body}");
    }
    let (bob, bob_key) = w.api.user_with_key("bob", "10").await;
    let bobs = send(&w, "/v1/chat/completions", &bob_key, &openai(false), &[]).await;
    assert_eq!(
        bobs.cache.as_deref(),
        Some("miss"),
        "another user's answer is not shared"
    );
    assert_eq!(w.reached(), before + 3);

    // The caller turns it off for one request, or refreshes the answer.
    let off = send(
        &w,
        "/v1/chat/completions",
        &key,
        &openai(false),
        &[("x-hub-cache", "off")],
    )
    .await;
    assert_eq!((off.status, off.cache), (200, None));
    let refreshed = send(
        &w,
        "/v1/chat/completions",
        &key,
        &openai(false),
        &[("x-hub-cache", "refresh")],
    )
    .await;
    assert_eq!(refreshed.cache.as_deref(), Some("miss"));
    assert_eq!(w.reached(), before + 5);
    let bad = send(
        &w,
        "/v1/chat/completions",
        &key,
        &openai(false),
        &[("x-hub-cache", "maybe")],
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let bad = send(&w, "/v1/messages", &key, &anthropic(false), &[("x-hub-cache-ttl", "0")]).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("\"type\":\"error\""),
        "an Anthropic caller gets an Anthropic error: {}",
        bad.body
    );

    // The call log marks hits with what they saved; the balance and ledger agree.
    // 13 calls logged (the two refused with 400 asked nothing): settled in the background.
    let calls = hub_e2e::eventually("13 calls logged", Duration::from_secs(10), || async {
        let calls = w.api.calls(&format!("user={user}&limit=100")).await;
        match calls.len() {
            13 => Ok(calls),
            n => Err(format!("{n} calls")),
        }
    })
    .await;
    let hits: Vec<&Value> = calls.iter().filter(|c| c["response_cache"] == "hit").collect();
    assert_eq!(hits.len(), 5, "{calls:?}");
    for h in &hits {
        assert_eq!(nanos(&h["credits"]), quarter);
        assert_eq!(nanos(&h["response_cache_saved"]), full - quarter);
        assert_eq!(h["provider"], "mock");
    }
    let misses: Vec<&Value> = calls.iter().filter(|c| c["response_cache"] == "miss").collect();
    assert_eq!(misses.len(), 7, "{calls:?}");
    assert!(
        misses.iter().all(|c| nanos(&c["credits"]) == full),
        "a miss is billed in full"
    );
    assert!(
        calls.iter().any(|c| c["response_cache"].is_null()),
        "the call with the cache off"
    );
    let spent: i128 = calls.iter().map(|c| nanos(&c["credits"])).sum();
    assert_eq!(
        spent,
        8 * full + 5 * quarter,
        "seven misses and the call with the cache off in full, five hits at a quarter"
    );
    let left = hub_core::Credits::from_nanos((10_000_000_000i128 - spent) as i64).to_string();
    settled(&w.api, &user, &left).await;
    settled(
        &w.api,
        &bob,
        &hub_core::Credits::from_nanos((10_000_000_000i128 - bobs.credits) as i64).to_string(),
    )
    .await;
    let audit = hub_e2e::audit_db_settled(&w.db());
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
}

/// An answer given through an alias is the alias's as it stood: once its
/// targets' parameter overrides change, the same request asks the provider
/// again, with the new parameters.
#[tokio::test(flavor = "multi_thread")]
async fn an_edited_alias_does_not_answer_from_before_the_edit() {
    let w = world(json!({"response_cache_enabled": true})).await;
    let (_, key) = w.api.user_with_key("alice", "10").await;
    let targets = |t: f64| json!([{"model": "mock-model", "overrides": {"temperature": t}}]);
    let alias = w
        .api
        .admin(
            Method::POST,
            "/api/admin/aliases",
            Some(json!({"name": "steady", "targets": targets(0.0)})),
        )
        .await;
    let path = format!("/api/admin/aliases/{}", alias["id"].as_str().unwrap());
    let mut body = openai(false);
    body["model"] = json!("steady");
    let sent_temperature = |w: &World| w.mock.received().last().unwrap().body["temperature"].as_f64();

    let first = send(&w, "/v1/chat/completions", &key, &body, &[]).await;
    assert_eq!(
        (first.status, first.cache.as_deref()),
        (200, Some("miss")),
        "{}",
        first.body
    );
    assert_eq!(sent_temperature(&w), Some(0.0));
    let again = send(&w, "/v1/chat/completions", &key, &body, &[]).await;
    assert_eq!(again.cache.as_deref(), Some("hit"));
    assert_eq!(w.reached(), 1);

    w.api
        .admin(Method::PATCH, &path, Some(json!({"targets": targets(1.0)})))
        .await;
    let edited = send(&w, "/v1/chat/completions", &key, &body, &[]).await;
    assert_eq!(
        (edited.status, edited.cache.as_deref()),
        (200, Some("miss")),
        "{}",
        edited.body
    );
    assert_eq!(w.reached(), 2, "the edited alias asks the provider");
    assert_eq!(sent_temperature(&w), Some(1.0));
    let again = send(&w, "/v1/chat/completions", &key, &body, &[]).await;
    assert_eq!(again.cache.as_deref(), Some("hit"), "and keeps the new answer");
    assert_eq!(w.reached(), 2);

    // The model itself, named directly, never shared the alias's answers.
    let direct = send(&w, "/v1/chat/completions", &key, &openai(false), &[]).await;
    assert_eq!(direct.cache.as_deref(), Some("miss"));
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_expire_errors_are_never_kept_and_concurrent_misses_each_reach_the_provider() {
    let w = world(json!({"response_cache_enabled": true})).await;
    let (user, key) = w.api.user_with_key("carol", "10").await;
    let chat = "/v1/chat/completions";

    // Kept for one second: a hit at once, a miss after it expired.
    let short = [("x-hub-cache-ttl", "1")];
    let mut body = openai(false);
    body["messages"][0]["content"] = json!("short-lived");
    assert_eq!(send(&w, chat, &key, &body, &short).await.cache.as_deref(), Some("miss"));
    let hit = send(&w, chat, &key, &body, &[]).await;
    assert_eq!(
        (hit.cache.as_deref(), hit.credits),
        (Some("hit"), 0),
        "a hit is free by default"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let before = w.reached();
    assert_eq!(send(&w, chat, &key, &body, &short).await.cache.as_deref(), Some("miss"));
    assert_eq!(w.reached(), before + 1);

    // The scheduled tick deletes expired answers from the table.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = hub_e2e::sqlite(
            &w.db(),
            "SELECT COUNT(*) FROM response_cache WHERE expires_at <= CAST(strftime('%s','now') AS INTEGER) * 1000",
        );
        if left == json!([[0]]) {
            break;
        }
        assert!(Instant::now() < deadline, "expired answers still stored: {left}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A provider error is not kept: the same request reaches the provider again.
    let mut failing = openai(false);
    failing["messages"][0]["content"] = json!("fails");
    w.mock.set(
        "mock-model",
        Behavior {
            status: 500,
            ..Default::default()
        },
    );
    let failed = send(&w, chat, &key, &failing, &[]).await;
    assert_eq!(failed.status, 502, "{}", failed.body);
    // Nor is a stream that broke midway.
    let mut broken = openai(true);
    broken["messages"][0]["content"] = json!("breaks");
    w.mock.set(
        "mock-model",
        Behavior {
            pieces: vec!["a".into(), "b".into(), "c".into()],
            break_after: Some(1),
            ..Default::default()
        },
    );
    send(&w, chat, &key, &broken, &[]).await;
    w.mock.set("mock-model", Behavior::default());
    let before = w.reached();
    assert_eq!(send(&w, chat, &key, &failing, &[]).await.cache.as_deref(), Some("miss"));
    assert_eq!(send(&w, chat, &key, &broken, &[]).await.cache.as_deref(), Some("miss"));
    assert_eq!(w.reached(), before + 2);

    // Concurrent identical misses are not coalesced: each reaches the provider once.
    w.mock.set(
        "mock-model",
        Behavior {
            header_delay: Duration::from_millis(300),
            ..Default::default()
        },
    );
    let mut together = openai(false);
    together["messages"][0]["content"] = json!("all at once");
    let before = w.reached();
    let answers = futures_util::future::join_all((0..3).map(|_| send(&w, chat, &key, &together, &[]))).await;
    assert!(answers.iter().all(|a| a.cache.as_deref() == Some("miss")));
    assert_eq!(w.reached(), before + 3);
    assert_eq!(send(&w, chat, &key, &together, &[]).await.cache.as_deref(), Some("hit"));
    assert_eq!(w.reached(), before + 3);

    // A key can be kept out of the cache; a request can still ask for it.
    let k = w
        .api
        .admin(Method::GET, &format!("/api/admin/users/{user}/keys"), None)
        .await;
    let key_id = k["data"][0]["id"].as_str().unwrap().to_string();
    let patched = w
        .api
        .admin(
            Method::PATCH,
            &format!("/api/admin/keys/{key_id}"),
            Some(json!({"response_cache": false})),
        )
        .await;
    assert_eq!(patched["response_cache"], false);
    let skipped = send(&w, chat, &key, &together, &[]).await;
    assert_eq!(skipped.cache, None);
    assert_eq!(
        send(&w, chat, &key, &together, &[("x-hub-cache", "on")])
            .await
            .cache
            .as_deref(),
        Some("hit")
    );

    // Shared across users when the operator allows it.
    let (_, dave) = w.api.user_with_key("dave", "10").await;
    assert_eq!(
        send(&w, chat, &dave, &together, &[]).await.cache.as_deref(),
        Some("miss")
    );
    w.api
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(json!({"response_cache_shared": true})),
        )
        .await;
    let mut shared = openai(false);
    shared["messages"][0]["content"] = json!("for everyone");
    assert_eq!(
        send(&w, chat, &key, &shared, &[("x-hub-cache", "on")])
            .await
            .cache
            .as_deref(),
        Some("miss")
    );
    assert_eq!(send(&w, chat, &dave, &shared, &[]).await.cache.as_deref(), Some("hit"));

    // Off for the Hub: no lookup, no header.
    w.api
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(json!({"response_cache_enabled": false})),
        )
        .await;
    assert_eq!(send(&w, chat, &dave, &shared, &[]).await.cache, None);
    let audit = hub_e2e::audit_db_settled(&w.db());
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
}

/// The scenario every runtime runs, on remote libSQL: holds are database
/// rows there, so a hit billed more than nothing places and settles one.
#[tokio::test(flavor = "multi_thread")]
async fn identical_requests_hit_on_remote_libsql() {
    let dir = hub_e2e::temp_dir("cache-hrana");
    let hrana = hub_e2e::HranaServer::start(&hub_e2e::hrana_script(), &dir);
    let mock = MockProvider::start().await;
    let launch = Launch::remote(&hrana);
    let hub = tokio::task::spawn_blocking(move || HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), launch))
        .await
        .unwrap();
    hub_e2e::suite::response_cache_answers_identical_requests(&Api::new(&hub.base), &mock).await;
}
