//! The black-box suite against `hub serve`: real processes, real HTTP, a real
//! libSQL database (embedded file, or remote through the Hrana test server),
//! and a mock provider on 127.0.0.1.

use futures_util::StreamExt;
use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{cost_nanos, nanos, Api, HranaServer, HubServer, Launch, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

const RATES: &str = r#"{"input_rate": 0.15, "output_rate": 0.6, "cache_read_rate": 0.075}"#;

struct World {
    hub: HubServer,
    api: Api,
    mock: MockProvider,
}

async fn world(launch: Launch) -> World {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(move || HubServer::start(bin(), launch))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let provider = api
        .setup_provider("mock", &mock.base_url(), "sk-mock-secret-0001")
        .await;
    api.add_model(&provider, "mock-model", serde_json::from_str(RATES).unwrap())
        .await;
    World { hub, api, mock }
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "stream": stream, "max_tokens": 100})
}

async fn post_chat(api: &Api, key: &str, body: &Value) -> reqwest::Response {
    api.http
        .post(format!("{}/v1/chat/completions", api.base))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn non_streaming_chat_is_billed_exactly() {
    let w = world(Launch::default()).await;
    w.mock.set(
        "mock-model",
        Behavior {
            prompt_tokens: 1234,
            completion_tokens: 567,
            cached_tokens: 200,
            ..Default::default()
        },
    );
    let (user, key) = w.api.user_with_key("alice", "10").await;

    let mut body = chat("mock/mock-model", false);
    body["max_tokens"] = json!(1000);
    let resp = post_chat(&w.api, &key, &body).await;
    assert_eq!(resp.status(), 200);
    let credits = resp.headers()["x-hub-credits"].to_str().unwrap().to_string();
    assert!(resp.headers().contains_key("x-hub-call-id") && resp.headers().contains_key("x-request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hello, world!");
    assert_eq!(body["usage"]["prompt_tokens"], 1234);

    // The provider got its own model id, Hub's credential, and every parameter.
    let got = &w.mock.received()[0];
    assert_eq!(got.body["model"], "mock-model");
    assert_eq!(got.body["max_tokens"], 1000);
    assert_eq!(got.authorization.as_deref(), Some("Bearer sk-mock-secret-0001"));

    // 1034 fresh input tokens, 200 cached (billed once, at the cache rate), 567 output.
    let expected = cost_nanos(&[(1034, "0.15"), (200, "0.075"), (567, "0.6")]);
    assert_eq!(nanos(&Value::String(credits)), expected);
    let u = w
        .api
        .wait_user(&user, "settlement", |u| {
            u["held"] == "0" && nanos(&u["balance"]) < 10_000_000_000
        })
        .await;
    assert_eq!(nanos(&u["balance"]), 10_000_000_000 - expected);
    assert_eq!(w.api.ledger_sum(&user).await, nanos(&u["balance"]));

    let calls = w.api.calls(&format!("user={user}")).await;
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(
        (
            c["status"].as_str(),
            c["input_tokens"].as_u64(),
            c["cache_read_tokens"].as_u64(),
            c["output_tokens"].as_u64()
        ),
        (Some("success"), Some(1034), Some(200), Some(567))
    );
    assert_eq!(nanos(&c["credits"]), expected);
    assert_eq!(c["estimated"], false);
    assert_eq!(c["provider"], "mock");
    assert_eq!(c["app"], "test");
}

/// Balances, grants, rates and a call's credits of 1,234,567.123456789 come
/// back as that exact decimal string everywhere.
#[tokio::test]
async fn money_comes_back_as_exact_decimal_strings() {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(|| HubServer::start(bin(), Launch::default()))
        .await
        .unwrap();
    hub_e2e::suite::money_comes_back_exactly(&Api::new(&hub.base), &mock).await;
}

#[tokio::test]
async fn streaming_chat_arrives_as_the_provider_writes_it() {
    let w = world(Launch::default()).await;
    let pieces: Vec<String> = (0..8).map(|i| format!("w{i} ")).collect();
    w.mock.set(
        "mock-model",
        Behavior {
            pieces,
            delay: Duration::from_millis(150),
            prompt_tokens: 20,
            completion_tokens: 16,
            ..Default::default()
        },
    );
    let (user, key) = w.api.user_with_key("bob", "1").await;

    let started = Instant::now();
    let resp = post_chat(&w.api, &key, &chat("mock-model", true)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    let mut first_content_at = None;
    while let Some(chunk) = stream.next().await {
        let chunk = String::from_utf8(chunk.unwrap().to_vec()).unwrap();
        if first_content_at.is_none() && chunk.contains("\"w0 \"") {
            first_content_at = Some(Instant::now());
        }
        text.push_str(&chunk);
    }
    let finished = w.mock.last_finish().expect("the provider finished");
    let first = first_content_at.expect("content arrived");
    // The first words reached the client long before the provider finished (8 × 150 ms).
    assert!(
        finished.duration_since(first) > Duration::from_millis(800),
        "first chunk {:?} after start, provider finished {:?} later",
        first - started,
        finished.duration_since(first)
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    // Hub asked for usage upstream, and removed the usage chunk the caller did not ask for.
    assert_eq!(w.mock.received()[0].body["stream_options"]["include_usage"], true);
    assert!(!text.contains("\"usage\""), "{text}");

    let expected = cost_nanos(&[(20, "0.15"), (16, "0.6")]);
    let u = w
        .api
        .wait_user(&user, "settlement", |u| {
            u["held"] == "0" && nanos(&u["balance"]) < 1_000_000_000
        })
        .await;
    assert_eq!(nanos(&u["balance"]), 1_000_000_000 - expected);
    let c = &w.api.calls(&format!("user={user}")).await[0];
    assert_eq!(c["estimated"], false);
    assert!(c["ttfb_ms"].as_i64().unwrap() < 1000, "{c}");

    // A caller that asks for usage gets the usage chunk.
    let mut body = chat("mock-model", true);
    body["stream_options"] = json!({"include_usage": true});
    let text = post_chat(&w.api, &key, &body).await.text().await.unwrap();
    assert!(
        text.contains("\"usage\":{\"completion_tokens\":16") || text.contains("\"prompt_tokens\":20"),
        "{text}"
    );
}

#[tokio::test]
async fn no_credit_means_402_and_no_provider_call() {
    let w = world(Launch::default()).await;
    let (user, key) = w.api.user_with_key("carol", "0").await;
    let resp = post_chat(&w.api, &key, &chat("mock-model", false)).await;
    assert_eq!(resp.status(), 402);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert!(w.mock.received().is_empty());
    assert_eq!(w.api.user(&user).await["held"], "0");

    // With billing off, the same user may call, and credits are still computed.
    w.api
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(json!({"billing_enabled": false})),
        )
        .await;
    let resp = post_chat(&w.api, &key, &chat("mock-model", false)).await;
    assert_eq!(resp.status(), 200);
    // The default answer: 12 prompt and 4 completion tokens at 0.15 and 0.6 per million.
    assert_eq!(
        nanos(&Value::String(resp.headers()["x-hub-credits"].to_str().unwrap().into())),
        cost_nanos(&[(12, "0.15"), (4, "0.6")])
    );
    // Settlement runs in the background and writes the call's log row with
    // any charge in one batch: once the row is there, a charge would show.
    wait_calls(&w.api, &format!("user={user}"), 1).await;
    assert_eq!(w.api.user(&user).await["balance"], "0");
}

#[tokio::test]
async fn concurrent_streams_never_overspend() {
    concurrent_streams_never_overspend_on(Launch::default()).await;
}

/// The same race with holds as database rows (a shared, remote database).
#[tokio::test]
async fn concurrent_streams_never_overspend_on_remote_libsql() {
    let dir = hub_e2e::temp_dir("hrana-race");
    let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
    concurrent_streams_never_overspend_on(Launch::remote(&hrana)).await;
}

async fn concurrent_streams_never_overspend_on(launch: Launch) {
    let w = world(launch).await;
    w.mock.set(
        "mock-model",
        Behavior {
            prompt_tokens: 10,
            completion_tokens: 20,
            ..Default::default()
        },
    );
    // Every stream stays open after its first chunk until all 50 calls have their answer (200 or 402).
    w.mock.pause_streams();
    let p = w.api.admin(Method::GET, "/api/admin/models", None).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // 1000 credits per million tokens: "hi" holds (2 + 8 + 8 input + 1000 output) tokens.
    w.api
        .admin(
            Method::PATCH,
            &format!("/api/admin/models/{p}"),
            Some(json!({"input_rate": 1000, "output_rate": 1000, "cache_read_rate": null})),
        )
        .await;
    let hold = cost_nanos(&[(18 + 1000, "1000")]);
    let grant = 10 * hold;
    let (user, key) = w.api.user_with_key("dave", &decimal(grant)).await;

    let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "stream": true, "max_tokens": 1000});
    let answers = futures_util::future::join_all((0..50).map(|_| post_chat(&w.api, &key, &body))).await;
    w.mock.resume_streams();
    let tasks: Vec<_> = answers
        .into_iter()
        .map(|resp| {
            tokio::spawn(async move {
                let status = resp.status().as_u16();
                (status, resp.text().await.unwrap())
            })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let (status, text) = t.await.unwrap();
        match status {
            200 => {
                assert!(text.ends_with("data: [DONE]\n\n"));
                ok += 1
            }
            402 => refused += 1,
            other => panic!("unexpected {other}: {text}"),
        }
    }
    assert_eq!(ok, 10, "{ok} calls succeeded with credit for exactly 10 in flight");
    assert_eq!(ok + refused, 50);
    let per_call = cost_nanos(&[(10, "1000"), (20, "1000")]);
    let u = w
        .api
        .wait_user(&user, "all settled", |u| {
            u["held"] == "0" && nanos(&u["balance"]) == grant - ok as i128 * per_call
        })
        .await;
    assert!(nanos(&u["balance"]) >= 0);
    assert_eq!(w.api.ledger_sum(&user).await, nanos(&u["balance"]));
    assert_eq!(w.mock.received().len(), ok);
}

/// The call log once it has `n` rows for the query (settlement is asynchronous).
async fn wait_calls(api: &Api, query: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let calls = api.calls(query).await;
        if calls.len() >= n {
            return calls;
        }
        assert!(
            Instant::now() < deadline,
            "call log has {} of {n} rows for {query}",
            calls.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A user's ledger once it has at least `n` entries (settlement is asynchronous).
async fn ledger_once_settled(api: &Api, user: &str, n: usize) -> Vec<Value> {
    let path = &format!("/api/admin/users/{user}/ledger");
    hub_e2e::eventually(
        &format!("{n} ledger entries for {user}"),
        Duration::from_secs(10),
        move || async move {
            let ledger = api.admin(Method::GET, path, None).await;
            let entries = ledger["data"].as_array().cloned().unwrap_or_default();
            if entries.len() >= n {
                Ok(entries)
            } else {
                Err(ledger.to_string())
            }
        },
    )
    .await
}

fn decimal(n: i128) -> String {
    format!("{}.{:09}", n / 1_000_000_000, n % 1_000_000_000)
}

#[tokio::test]
async fn client_disconnect_bills_only_what_was_delivered() {
    let w = world(Launch::default()).await;
    let pieces: Vec<String> = (0..50).map(|_| "word ".to_string()).collect();
    w.mock.set(
        "mock-model",
        Behavior {
            pieces,
            delay: Duration::from_millis(40),
            prompt_tokens: 9,
            completion_tokens: 50,
            ..Default::default()
        },
    );
    let (user, key) = w.api.user_with_key("erin", "1").await;

    let resp = post_chat(&w.api, &key, &chat("mock-model", true)).await;
    let mut stream = resp.bytes_stream();
    let mut words = 0;
    while words < 5 {
        let chunk = stream.next().await.unwrap().unwrap();
        words += String::from_utf8_lossy(&chunk).matches("word ").count();
    }
    drop(stream);

    let deadline = Instant::now() + Duration::from_secs(5);
    while w.mock.abandoned() == 0 {
        assert!(
            Instant::now() < deadline,
            "the provider stream was not closed after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w.mock.completed(), 0);
    let u = w
        .api
        .wait_user(&user, "settlement", |u| u["held"] == "0" && u["balance"] != "1")
        .await;
    let c = &w.api.calls(&format!("user={user}")).await[0];
    assert_eq!(c["status"], "aborted");
    assert_eq!(c["estimated"], true);
    let out = c["output_tokens"].as_u64().unwrap();
    // Delivered: 5 to 8 words of 5 bytes, a token per 4 bytes rounded up; far below the 50
    // the provider would have charged.
    assert!(
        (5..=8u64).any(|words| out == (words * 5).div_ceil(4)),
        "estimated {out} output tokens"
    );
    let input = c["input_tokens"].as_u64().unwrap();
    // "Say hello": 3 tokens of text + 4 for its message + 3 for the reply.
    assert_eq!(input, 10);
    assert_eq!(nanos(&c["credits"]), cost_nanos(&[(input, "0.15"), (out, "0.6")]));
    assert_eq!(nanos(&u["balance"]), 1_000_000_000 - nanos(&c["credits"]));
    assert_eq!(w.api.ledger_sum(&user).await, nanos(&u["balance"]));
}

#[tokio::test]
async fn provider_failures_release_the_hold_and_map_to_gateway_errors() {
    let w = world(Launch {
        env: vec![("HUB_FIRST_BYTE_TIMEOUT".into(), "1".into())],
        ..Default::default()
    })
    .await;
    let provider = w.api.admin(Method::GET, "/api/admin/providers", None).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.api
        .add_model(&provider, "broken", serde_json::from_str(RATES).unwrap())
        .await;
    w.api
        .add_model(&provider, "slow", serde_json::from_str(RATES).unwrap())
        .await;
    w.mock.set(
        "broken",
        Behavior {
            status: 500,
            ..Default::default()
        },
    );
    w.mock.set(
        "slow",
        Behavior {
            header_delay: Duration::from_secs(3),
            ..Default::default()
        },
    );
    let (user, key) = w.api.user_with_key("frank", "1").await;

    let resp = post_chat(&w.api, &key, &chat("broken", false)).await;
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("500"), "{body}");
    assert!(!body.to_string().contains("sk-mock-secret"));

    let resp = post_chat(&w.api, &key, &chat("slow", true)).await;
    assert_eq!(resp.status(), 504);

    let u = w.api.wait_user(&user, "holds released", |u| u["held"] == "0").await;
    assert_eq!(nanos(&u["balance"]), 1_000_000_000, "a failed call must cost nothing");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let calls = w.api.calls(&format!("user={user}&status=failed")).await;
        if calls.len() == 2 {
            assert!(calls.iter().any(|c| c["http_status"] == 504));
            break;
        }
        assert!(Instant::now() < deadline, "failed attempts not logged: {calls:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let w = world(Launch {
        env: vec![("HUB_MAX_BODY_BYTES".into(), "65536".into())],
        ..Default::default()
    })
    .await;
    let (user, key) = w.api.user_with_key("gina", "1").await;
    let url = format!("{}/v1/chat/completions", w.api.base);
    let send = |body: Vec<u8>, key: Option<&str>| {
        let mut r = w
            .api
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    type Case<'a> = (Vec<u8>, Option<&'a str>, u16, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (b"{not json".to_vec(), Some(&key), 400, None),
        (vec![0xff, 0xfe, 0x00], Some(&key), 400, None),
        (
            br#"{"messages":[{"role":"user","content":"x"}]}"#.to_vec(),
            Some(&key),
            400,
            Some("model"),
        ),
        (
            br#"{"model":"mock-model","messages":"hello"}"#.to_vec(),
            Some(&key),
            400,
            Some("messages"),
        ),
        (
            br#"{"model":"mock-model","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#.to_vec(),
            Some(&key),
            400,
            Some("temperature"),
        ),
        (
            br#"{"model":"mock-model","messages":[{"role":"user","content":"x"}],"max_tokens":-5}"#.to_vec(),
            Some(&key),
            400,
            Some("max_tokens"),
        ),
        (
            br#"{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}"#.to_vec(),
            Some(&key),
            404,
            Some("model"),
        ),
        (
            br#"{"model":"mock-model","messages":[{"role":"user","content":"x"}]}"#.to_vec(),
            None,
            401,
            None,
        ),
        (
            br#"{"model":"mock-model","messages":[{"role":"user","content":"x"}]}"#.to_vec(),
            Some("hub_not_a_real_key"),
            401,
            None,
        ),
        (
            format!(
                r#"{{"model":"mock-model","messages":[{{"role":"user","content":"{}"}}]}}"#,
                "x".repeat(70_000)
            )
            .into_bytes(),
            Some(&key),
            413,
            None,
        ),
    ];
    for (body, k, status, param) in cases {
        let preview = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
        let resp = send(body, k).await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{preview}");
        let v: Value = resp.json().await.unwrap();
        assert!(
            v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{preview}: {v}"
        );
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], p, "{preview}: {v}");
        }
    }
    // Revoked and expired keys.
    let k = w
        .api
        .admin(
            Method::POST,
            &format!("/api/admin/users/{user}/keys"),
            Some(json!({"label": "short"})),
        )
        .await;
    w.api
        .admin(
            Method::DELETE,
            &format!("/api/admin/keys/{}", k["id"].as_str().unwrap()),
            None,
        )
        .await;
    let resp = send(
        serde_json::to_vec(&chat("mock-model", false)).unwrap(),
        k["key"].as_str(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 401);
    let soon = json!({"label": "soon", "expires_at": (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 + 1200)});
    let k = w
        .api
        .admin(Method::POST, &format!("/api/admin/users/{user}/keys"), Some(soon))
        .await;
    let resp = send(
        serde_json::to_vec(&chat("mock-model", false)).unwrap(),
        k["key"].as_str(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    // Deliberately lets time pass: the key's 1.2 s lifetime runs out (expiry
    // is the clock; there is nothing else to wait for).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resp = send(
        serde_json::to_vec(&chat("mock-model", false)).unwrap(),
        k["key"].as_str(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 401);

    // Nothing was written by the refused requests: the grant, and the usage
    // entry of the one successful call once its settlement lands.
    let ledger = ledger_once_settled(&w.api, &user, 2).await;
    assert_eq!(ledger.len(), 2, "{ledger:?}");
    assert_eq!(w.mock.received().len(), 1);
}

#[tokio::test]
async fn admin_api_validates_and_refuses_members() {
    let w = world(Launch::default()).await;
    let (_, key) = w.api.user_with_key("hank", "0").await;
    let (status, _) = w.api.call(Method::GET, "/api/admin/users", &key, None).await;
    assert_eq!(status, 403);
    let (status, _) = w.api.call(Method::GET, "/api/admin/users", "", None).await;
    assert_eq!(status, 401);
    let (status, me) = w.api.call(Method::GET, "/api/me", &key, None).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("member")));

    let provider = w.api.admin(Method::GET, "/api/admin/providers", None).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (body, field) in [
        (
            json!({"provider_id": provider, "model": "m2", "input_rate": "cheap"}),
            "input_rate",
        ),
        (
            json!({"provider_id": provider, "model": "m2", "output_rate": -1}),
            "output_rate",
        ),
        (
            json!({"provider_id": provider, "model": "m2", "input_rate": 0.0000000001}),
            "input_rate",
        ),
        (json!({"provider_id": "nope", "model": "m2"}), "provider_id"),
        (json!({"provider_id": provider}), "model"),
        (
            json!({"provider_id": provider, "model": "m2", "colour": "red"}),
            "colour",
        ),
    ] {
        let (status, v) = w
            .api
            .call(Method::POST, "/api/admin/models", ADMIN_KEY, Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"]["param"], field, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(field));
    }
    let (status, v) = w
        .api
        .call(
            Method::POST,
            "/api/admin/providers",
            ADMIN_KEY,
            Some(json!({"kind": "mystery"})),
        )
        .await;
    assert_eq!((status, v["error"]["param"].as_str()), (400, Some("kind")));
    let (status, _) = w
        .api
        .call(
            Method::POST,
            "/api/admin/providers",
            ADMIN_KEY,
            Some(json!({"kind": "openai", "name": "mock"})),
        )
        .await;
    assert_eq!(status, 409);

    // Secrets are write-only: only a masked hint comes back.
    let creds = w
        .api
        .admin(
            Method::GET,
            &format!("/api/admin/providers/{provider}/credentials"),
            None,
        )
        .await;
    assert!(!creds.to_string().contains("sk-mock-secret-0001"));
    assert_eq!(creds["data"][0]["secret_hint"], "sk-m****0001");
    let test = w
        .api
        .admin(
            Method::POST,
            &format!(
                "/api/admin/credentials/{}/test",
                creds["data"][0]["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(test["ok"], true, "{test}");

    // The models a key may use.
    let (status, models) = w.api.call(Method::GET, "/v1/models", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "mock/mock-model");

    // Settings round trip.
    let s = w
        .api
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(json!({"starter_credits": 2.5, "currency_prefix": "€"})),
        )
        .await;
    assert_eq!(
        (s["starter_credits"].as_str(), s["currency_prefix"].as_str()),
        (Some("2.5"), Some("€"))
    );
    let u = w
        .api
        .admin(Method::POST, "/api/admin/users", Some(json!({"name": "ivy"})))
        .await;
    assert_eq!(nanos(&u["balance"]), 2_500_000_000);
    // Lists are paged: following `next_cursor` visits every user exactly once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = w
            .api
            .admin(Method::GET, &format!("/api/admin/users?limit=2{cursor}"), None)
            .await;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|u| u["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let all = w.api.admin(Method::GET, "/api/admin/users?limit=500", None).await;
    let mut expected: Vec<String> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    assert!(expected.len() >= 3, "the owner, hank and ivy");
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);
    // `q` searches on the server, in any case, by name, email or id; `%` is a character, not a wildcard.
    let names = |page: Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_string())
            .collect()
    };
    let found = w.api.admin(Method::GET, "/api/admin/users?q=%20IV%20", None).await;
    assert_eq!(names(found), ["ivy"]);
    let by_id = w
        .api
        .admin(
            Method::GET,
            &format!("/api/admin/users?q={}", u["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(names(by_id), ["ivy"]);
    let wildcard = w.api.admin(Method::GET, "/api/admin/users?q=%25", None).await;
    assert_eq!(names(wildcard), Vec::<String>::new());
    // A search pages like the list: one match a page, `next_cursor` to the next, every match once.
    let mut matches = names(w.api.admin(Method::GET, "/api/admin/users?q=n&limit=500", None).await);
    assert!(matches.contains(&"hank".to_string()) && !matches.contains(&"ivy".to_string()));
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = w
            .api
            .admin(Method::GET, &format!("/api/admin/users?q=n&limit=1{cursor}"), None)
            .await;
        assert_eq!(page["data"].as_array().unwrap().len(), 1);
        let next = page["next_cursor"].as_str().map(|c| format!("&cursor={c}"));
        paged.extend(names(page));
        match next {
            Some(c) => cursor = c,
            None => break,
        }
    }
    matches.sort();
    paged.sort();
    assert_eq!(paged, matches);
    let usage = w
        .api
        .admin(Method::GET, "/api/admin/usage?group_by=day&tz=%2B02:00", None)
        .await;
    assert!(usage["data"].is_array());
}

#[tokio::test]
async fn remote_libsql_round_trip_through_hrana() {
    let dir = hub_e2e::temp_dir("hrana");
    let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
    let w = world(Launch::remote(&hrana)).await;
    w.mock.set(
        "mock-model",
        Behavior {
            prompt_tokens: 100,
            completion_tokens: 50,
            ..Default::default()
        },
    );
    let (user, key) = w.api.user_with_key("remote", "1").await;
    for stream in [false, true] {
        let resp = post_chat(&w.api, &key, &chat("mock-model", stream)).await;
        assert_eq!(resp.status(), 200);
        let _ = resp.bytes().await.unwrap();
    }
    let each = cost_nanos(&[(100, "0.15"), (50, "0.6")]);
    let u = w
        .api
        .wait_user(&user, "settlement", |u| {
            u["held"] == "0" && nanos(&u["balance"]) == 1_000_000_000 - 2 * each
        })
        .await;
    assert_eq!(w.api.ledger_sum(&user).await, nanos(&u["balance"]));
    // The data really lives in the remote database file.
    let dbfile = dir.join("remote.db");
    let out = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select count(*), sum(credits) from usage').fetchone())"])
        .arg(&dbfile)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("(2, {})", 2 * each)
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_streams_and_settles_them() {
    let mut w = world(Launch::default()).await;
    let pieces: Vec<String> = (0..10).map(|i| format!("p{i} ")).collect();
    w.mock.set(
        "mock-model",
        Behavior {
            pieces,
            delay: Duration::from_millis(100),
            prompt_tokens: 7,
            completion_tokens: 30,
            ..Default::default()
        },
    );
    let (user, key) = w.api.user_with_key("jay", "1").await;
    let resp = post_chat(&w.api, &key, &chat("mock-model", true)).await;
    let mut stream = resp.bytes_stream();
    let _ = stream.next().await;
    // SIGTERM, the server staying in its guard (stopped if this test fails).
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &w.hub.child.id().to_string()])
        .status();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "the in-flight stream was cut: {text}"
    );
    let status = hub_e2e::eventually("hub's exit after SIGTERM", Duration::from_secs(10), || {
        let exited = w.hub.child.try_wait();
        async move {
            match exited {
                Ok(Some(status)) => Ok(status),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert!(status.success(), "{status}");
    // Restart on the same database: the call was settled, exactly, before exit.
    let dir = w.hub.dir.clone();
    let again = tokio::task::spawn_blocking(move || HubServer::start_in(bin(), Launch::default(), dir))
        .await
        .unwrap();
    let api = Api::new(&again.base);
    let u = api.user(&user).await;
    assert_eq!(u["held"], "0");
    assert_eq!(
        nanos(&u["balance"]),
        1_000_000_000 - cost_nanos(&[(7, "0.15"), (30, "0.6")])
    );
}

#[tokio::test]
async fn client_leaving_before_the_answer_releases_the_hold() {
    let w = world(Launch::default()).await;
    w.mock.set(
        "mock-model",
        Behavior {
            header_delay: Duration::from_millis(1500),
            ..Default::default()
        },
    );
    let (user, key) = w.api.user_with_key("kim", "1").await;
    for stream in [false, true] {
        let gave_up = w
            .api
            .http
            .post(format!("{}/v1/chat/completions", w.api.base))
            .bearer_auth(&key)
            .timeout(Duration::from_millis(300))
            .json(&chat("mock-model", stream))
            .send()
            .await;
        assert!(gave_up.is_err(), "the client should have timed out");
    }
    let u = w.api.wait_user(&user, "holds released", |u| u["held"] == "0").await;
    assert_eq!(
        nanos(&u["balance"]),
        1_000_000_000,
        "nothing was delivered, nothing is billed"
    );
    // The key still has its whole balance to spend.
    let (status, me) = w.api.call(Method::GET, "/api/me", &key, None).await;
    assert_eq!((status, nanos(&me["available"])), (200, 1_000_000_000));
}

#[tokio::test]
async fn a_stream_that_stalls_ends_with_an_error_event_and_bills_what_was_delivered() {
    let w = world(Launch {
        env: vec![("HUB_IDLE_TIMEOUT".into(), "1".into())],
        ..Default::default()
    })
    .await;
    let pieces = vec!["early ".to_string(), "late".to_string()];
    w.mock.set(
        "mock-model",
        Behavior {
            pieces,
            delay: Duration::from_millis(2500),
            ..Default::default()
        },
    );
    let (user, key) = w.api.user_with_key("lee", "1").await;
    let started = Instant::now();
    let text = post_chat(&w.api, &key, &chat("mock-model", true))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(2400),
        "the stall was not cut short"
    );
    assert!(text.contains("\"role\":\"assistant\""), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(
        last.starts_with("data: {\"error\""),
        "the stream must end with an error event: {text}"
    );
    assert!(last.contains("provider_timeout"), "{last}");
    let c = wait_calls(&w.api, &format!("user={user}"), 1).await.remove(0);
    let u = w.api.wait_user(&user, "settlement", |u| u["held"] == "0").await;
    assert_eq!(
        (c["status"].as_str(), c["http_status"].as_i64()),
        (Some("failed"), Some(504))
    );
    assert_eq!(nanos(&u["balance"]), 1_000_000_000 - nanos(&c["credits"]));
}
