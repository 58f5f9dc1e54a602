//! The call pipeline in process: Hub with a scripted provider, a manual
//! clock, background work run when the test says, and a real embedded
//! database. Each test takes milliseconds.

use bytes::Bytes;
use futures_util::StreamExt;
use hub_core::http::{Body, Method, Request, Response};
use hub_core::ports::{Journal, UpstreamError};
use hub_core::testing::{Collector, ManualClock, MemoryJournal, Scripted, ScriptedUpstream};
use hub_core::{Hub, HubOptions};
use serde_json::{json, Value};
use std::sync::Arc;

const ADMIN: &str = "hub_pipeline_admin_key_0123456789";

mod common;

use common::{temp_dir as new_dir, TempDir};

struct World {
    hub: Hub,
    upstream: Arc<ScriptedUpstream>,
    clock: Arc<ManualClock>,
    background: Arc<Collector>,
    _dir: TempDir,
}

fn temp_dir() -> TempDir {
    new_dir("pipeline")
}

/// A Hub on a fresh embedded database: `exclusive` keeps balances in the
/// credit book (as `hub serve` does), otherwise holds are database rows.
async fn world(exclusive: bool) -> World {
    world_in(temp_dir(), exclusive, None).await
}

/// A Hub on the database in `dir`, with a journal if given (set before start, as runtimes do).
async fn world_in(dir: TempDir, exclusive: bool, journal: Option<Arc<MemoryJournal>>) -> World {
    let setup = common::Setup {
        options: HubOptions {
            exclusive_database: exclusive,
            ..Default::default()
        },
        journal: journal.map(|j| j as Arc<dyn Journal>),
        ..Default::default()
    };
    let f = common::start(dir, ADMIN, setup).await;
    World {
        hub: f.hub,
        upstream: f.upstream,
        clock: f.clock,
        background: f.background,
        _dir: f.dir,
    }
}

fn request(method: Method, path: &str, key: &str, body: Option<Value>) -> Request {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string())))
        .unwrap()
}

async fn body_of(res: Response) -> Bytes {
    match res.into_body() {
        Body::Full(b) => b,
        Body::Stream(mut s) => {
            let mut out = Vec::new();
            while let Some(chunk) = s.next().await {
                match chunk {
                    Ok(c) => out.extend_from_slice(&c),
                    Err(e) => out.extend_from_slice(e.message.as_bytes()),
                }
            }
            Bytes::from(out)
        }
    }
}

impl World {
    async fn call(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let res = self.hub.handle(request(method, path, key, body)).await;
        let status = res.status().as_u16();
        let bytes = body_of(res).await;
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// A streamed chat call's body, as the runtime would relay it.
    async fn stream(&self, key: &str) -> hub_core::http::ByteStream {
        let res = self
            .hub
            .handle(request(Method::POST, "/v1/chat/completions", key, Some(chat(true))))
            .await;
        match res.into_body() {
            Body::Stream(s) => s,
            Body::Full(b) => panic!("not a stream: {}", String::from_utf8_lossy(&b)),
        }
    }

    async fn admin(&self, method: Method, path: &str, body: Value) -> Value {
        let (status, v) = self.call(method, path, ADMIN, Some(body)).await;
        assert!(status < 300, "{path}: {status} {v}");
        v
    }

    /// An OpenAI-kind provider with credentials and a model "m" at 1000 credits per million both ways.
    async fn provider(&self, secrets: &[&str]) -> String {
        self.named_provider("p", 0, secrets).await
    }

    async fn named_provider(&self, name: &str, priority: i64, secrets: &[&str]) -> String {
        let p = self
            .admin(
                Method::POST,
                "/api/admin/providers",
                json!({"name": name, "kind": "openai", "base_url": format!("http://{name}.test/v1"), "priority": priority}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        for (i, s) in secrets.iter().enumerate() {
            self.admin(
                Method::POST,
                &format!("/api/admin/providers/{p}/credentials"),
                json!({"name": format!("c{i}"), "secret": s}),
            )
            .await;
        }
        self.admin(
            Method::POST,
            "/api/admin/models",
            json!({"provider_id": p, "model": "m", "input_rate": 1000, "output_rate": 1000}),
        )
        .await;
        p
    }

    /// A user with `credits` and a key with these fields; returns (user id, key).
    async fn user(&self, credits: &str, key_fields: Value) -> (String, String) {
        let u = self.admin(Method::POST, "/api/admin/users", json!({"name": "u"})).await;
        let id = u["id"].as_str().unwrap().to_string();
        self.admin(
            Method::POST,
            &format!("/api/admin/users/{id}/grants"),
            json!({"amount": credits}),
        )
        .await;
        let k = self
            .admin(Method::POST, &format!("/api/admin/users/{id}/keys"), key_fields)
            .await;
        (id, k["key"].as_str().unwrap().to_string())
    }

    async fn user_row(&self, id: &str) -> Value {
        self.call(Method::GET, &format!("/api/admin/users/{id}"), ADMIN, None)
            .await
            .1
    }

    async fn ledger(&self, id: &str) -> Vec<Value> {
        let (_, v) = self
            .call(Method::GET, &format!("/api/admin/users/{id}/ledger"), ADMIN, None)
            .await;
        v["data"].as_array().unwrap().clone()
    }

    fn authorizations(&self) -> Vec<String> {
        self.upstream
            .requests()
            .iter()
            .map(|r| {
                r.headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            })
            .collect()
    }
}

fn nanos(v: &Value) -> i64 {
    hub_core::Credits::from_json(v).unwrap().nanos()
}

fn completion(prompt: u64, completion: u64) -> Value {
    json!({"id": "x", "object": "chat.completion", "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})
}

fn chunk(text: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "x", "object": "chat.completion.chunk", "model": "m", "choices": [{"index": 0, "delta": {"content": text}}]})
    )
}

fn usage_chunk(prompt: u64, completion: u64) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "x", "object": "chat.completion.chunk", "model": "m", "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})
    )
}

fn chat(stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
}

/// 1000 credits per million tokens: one token is 0.001 credits.
const PER_TOKEN: i64 = 1_000_000;

#[tokio::test]
async fn a_completed_call_is_settled_exactly_once() {
    for exclusive in [true, false] {
        let w = world(exclusive).await;
        w.provider(&["sk-a"]).await;
        let (user, key) = w.user("1", json!({})).await;
        w.upstream.push(Scripted::json(200, completion(10, 5)));
        let (status, _) = w
            .call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
            .await;
        assert_eq!(status, 200);
        w.background.run().await;
        w.background.run().await;
        let u = w.user_row(&user).await;
        assert_eq!(nanos(&u["balance"]), 1_000_000_000 - 15 * PER_TOKEN, "{u}");
        assert_eq!(nanos(&u["held"]), 0);
        let usage: Vec<Value> = w
            .ledger(&user)
            .await
            .into_iter()
            .filter(|e| e["kind"] == "usage")
            .collect();
        assert_eq!(usage.len(), 1, "exclusive={exclusive}");
    }
}

#[tokio::test]
async fn a_stream_failing_midway_is_billed_for_its_part_and_never_retried() {
    let w = world(true).await;
    w.provider(&["sk-a", "sk-b"]).await;
    let (user, key) = w.user("1", json!({})).await;
    w.upstream
        .push(Scripted::sse(&[&chunk("Hello "), &chunk("world")]).then_fail("connection reset"));
    w.upstream.push(Scripted::json(200, completion(1, 1)));
    let (status, _) = (
        w.call(Method::POST, "/v1/chat/completions", &key, Some(chat(true)))
            .await
            .0,
        (),
    );
    assert_eq!(status, 200, "the stream had begun");
    w.background.run().await;
    assert_eq!(w.upstream.requests().len(), 1, "no failover after the first byte");
    assert_eq!(w.upstream.unused(), 1);
    // Estimated: "hi" is 1 + 4 + 3 = 8 input tokens; "Hello world" 11 bytes, 3 tokens.
    let u = w.user_row(&user).await;
    assert_eq!(nanos(&u["balance"]), 1_000_000_000 - 11 * PER_TOKEN, "{u}");
    let calls = w.call(Method::GET, "/api/admin/calls", ADMIN, None).await.1;
    assert_eq!(calls["data"][0]["status"], "failed");
    assert_eq!(calls["data"][0]["estimated"], true);
}

#[tokio::test]
async fn a_stream_the_client_drops_is_billed_once_for_what_was_delivered() {
    let w = world(true).await;
    w.provider(&["sk-a"]).await;
    let (user, key) = w.user("1", json!({})).await;
    w.upstream
        .push(Scripted::sse(&[&chunk("Hello "), &chunk("world")]).then_stall());
    let mut body = w.stream(&key).await;
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("Hello"));
    drop(body);
    w.background.run().await;
    // The first chunk alone went out: "Hello " is 6 bytes, 2 tokens; input 8 (estimated).
    let u = w.user_row(&user).await;
    assert_eq!(nanos(&u["balance"]), 1_000_000_000 - 10 * PER_TOKEN, "{u}");
    assert_eq!(nanos(&u["held"]), 0);
    let usage = w
        .ledger(&user)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "usage")
        .count();
    assert_eq!(usage, 1);
}

#[tokio::test]
async fn a_finished_call_is_journaled_before_its_last_byte_and_marked_done_once_committed() {
    let w = world(true).await;
    let journal = Arc::new(MemoryJournal::default());
    w.hub.set_journal(journal.clone());
    w.provider(&["sk-a"]).await;
    let (user, key) = w.user("1", json!({})).await;
    // Streamed: the journal has the settlement before the caller sees `[DONE]`.
    w.upstream
        .push(Scripted::sse(&[&chunk("Hi"), &usage_chunk(10, 5), "data: [DONE]\n\n"]));
    let mut body = w.stream(&key).await;
    let mut seen = String::new();
    while let Some(chunk) = body.next().await {
        let text = String::from_utf8_lossy(&chunk.unwrap()).into_owned();
        if text.contains("[DONE]") {
            assert_eq!(journal.appended(), 1, "journaled before [DONE] went out");
        }
        seen.push_str(&text);
    }
    assert!(seen.contains("[DONE]"));
    // Whole: journaled before the answer is returned.
    w.upstream.push(Scripted::json(200, completion(10, 5)));
    let res = w
        .hub
        .handle(request(Method::POST, "/v1/chat/completions", &key, Some(chat(false))))
        .await;
    assert_eq!(journal.appended(), 2, "journaled before the answer");
    assert_eq!(journal.open(), 2, "nothing committed yet");
    drop(res);
    w.background.run().await;
    assert_eq!(journal.open(), 0, "both marked done once committed");
    let u = w.user_row(&user).await;
    assert_eq!(nanos(&u["balance"]), 1_000_000_000 - 30 * PER_TOKEN);
}

#[tokio::test]
async fn a_restart_commits_what_the_journal_holds_exactly_once() {
    let journal = Arc::new(MemoryJournal::default());
    let w = world_in(temp_dir(), true, Some(journal.clone())).await;
    w.provider(&["sk-a"]).await;
    let (user, key) = w.user("1", json!({})).await;
    w.upstream.push(Scripted::json(200, completion(10, 5)));
    assert_eq!(
        w.call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
            .await
            .0,
        200
    );
    // The process dies before its background work ran: only the journal knows the call.
    w.background.abandon();
    assert_eq!(journal.open(), 1);
    let World { hub, _dir: dir, .. } = w;
    drop(hub);
    let w = world_in(dir, true, Some(journal.clone())).await;
    assert_eq!(journal.open(), 0, "committed at start-up");
    let u = w.user_row(&user).await;
    assert_eq!(nanos(&u["balance"]), 1_000_000_000 - 15 * PER_TOKEN);
    // Replaying again (another crash before the journal was trimmed) charges nothing more.
    let stmts = journal.pending().unwrap();
    assert!(stmts.is_empty());
    let usage = w
        .ledger(&user)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "usage")
        .count();
    assert_eq!(usage, 1);
}

#[tokio::test]
async fn a_rejected_credential_is_disabled_and_the_next_one_serves() {
    let w = world(true).await;
    let p = w.provider(&["sk-bad", "sk-good"]).await;
    let (_, key) = w.user("1", json!({})).await;
    // Whichever credential comes first is rejected; the other serves.
    w.upstream.push(Scripted::json(
        401,
        json!({"error": {"message": "bad key", "code": "invalid_api_key"}}),
    ));
    w.upstream.push(Scripted::json(200, completion(1, 1)));
    let (status, v) = w
        .call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
        .await;
    assert_eq!(status, 200, "{v}");
    let auth = w.authorizations();
    assert_eq!(auth.len(), 2);
    assert_ne!(auth[0], auth[1], "rotated to the other credential");
    w.background.run().await;
    let creds = w
        .call(
            Method::GET,
            &format!("/api/admin/providers/{p}/credentials"),
            ADMIN,
            None,
        )
        .await
        .1;
    let statuses: Vec<&str> = creds["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == "disabled").count(), 1, "{creds}");
    // Later calls use only the good credential.
    for _ in 0..3 {
        w.upstream.push(Scripted::json(200, completion(1, 1)));
        assert_eq!(
            w.call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
                .await
                .0,
            200
        );
    }
    let auth = w.authorizations();
    assert!(auth[2..].iter().all(|a| *a == auth[1]), "{auth:?}");
}

#[tokio::test]
async fn a_rate_limited_credential_cools_down() {
    let w = world(true).await;
    w.provider(&["sk-a", "sk-b"]).await;
    let (_, key) = w.user("1", json!({})).await;
    w.upstream
        .push(Scripted::json(429, json!({"error": {"message": "slow down"}})).header("retry-after", "30"));
    w.upstream.push(Scripted::json(200, completion(1, 1)));
    assert_eq!(
        w.call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
            .await
            .0,
        200
    );
    let limited = w.authorizations()[0].clone();
    // While it cools, the other credential takes the calls.
    for _ in 0..4 {
        w.upstream.push(Scripted::json(200, completion(1, 1)));
        assert_eq!(
            w.call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
                .await
                .0,
            200
        );
    }
    let auth = w.authorizations();
    assert!(auth[1..].iter().all(|a| *a != limited), "{auth:?}");
    // After the cooldown both serve again.
    w.clock.advance_ms(31_000);
    for _ in 0..4 {
        w.upstream.push(Scripted::json(200, completion(1, 1)));
        w.call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
            .await;
    }
    assert!(w.authorizations()[6..].contains(&limited));
}

#[tokio::test]
async fn a_request_dropped_while_waiting_on_the_provider_releases_its_hold() {
    for exclusive in [true, false] {
        let w = world(exclusive).await;
        w.provider(&["sk-a"]).await;
        let (user, key) = w.user("1", json!({})).await;
        w.upstream.push(Scripted::Hang);
        let call = w
            .hub
            .handle(request(Method::POST, "/v1/chat/completions", &key, Some(chat(false))));
        let mut call = Box::pin(call);
        // Drive it until it waits on the provider, then give up (the client left).
        for _ in 0..2000 {
            if w.upstream.requests().len() == 1 {
                break;
            }
            let waited = tokio::time::timeout(std::time::Duration::from_millis(1), call.as_mut()).await;
            assert!(waited.is_err(), "the call cannot end: its provider never answers");
        }
        assert_eq!(w.upstream.requests().len(), 1);
        let held = w.user_row(&user).await;
        assert!(nanos(&held["held"]) > 0, "exclusive={exclusive}: held while waiting");
        drop(call);
        w.background.run().await;
        let u = w.user_row(&user).await;
        assert_eq!(nanos(&u["held"]), 0, "exclusive={exclusive}: {u}");
        assert_eq!(nanos(&u["balance"]), 1_000_000_000);
    }
}

#[tokio::test]
async fn key_limits_are_reserved_at_admission_and_replaced_by_usage() {
    let w = world(true).await;
    w.provider(&["sk-a"]).await;
    // Each call reserves its bound, 18 input + 50 output = 68 tokens, against 100 a minute.
    let (_, key) = w.user("1", json!({"tpm_limit": 100})).await;
    w.upstream.push(Scripted::sse(&[&chunk("Hi")]).then_stall());
    let mut open = w.stream(&key).await;
    open.next().await.unwrap().unwrap();
    let (status, v) = w
        .call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
        .await;
    assert_eq!(status, 429, "68 + 68 > 100 while the first is open: {v}");
    // The first ends having used 2 + 8 = 10 tokens (estimated): 10 + 68 ≤ 100.
    drop(open);
    w.background.run().await;
    w.upstream.push(Scripted::json(200, completion(10, 5)));
    let (status, v) = w
        .call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
        .await;
    assert_eq!(status, 200, "{v}");
    // A minute later the window is empty again.
    w.background.run().await;
    w.clock.advance_ms(61_000);
    w.upstream.push(Scripted::json(200, completion(10, 5)));
    assert_eq!(
        w.call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn a_provider_that_fails_before_answering_is_skipped() {
    let w = world(true).await;
    w.named_provider("first", 10, &["sk-a"]).await;
    w.named_provider("second", 0, &["sk-b"]).await;
    let (user, key) = w.user("1", json!({})).await;
    w.upstream
        .push(Scripted::Fail(UpstreamError::Connect("refused".into())));
    w.upstream.push(Scripted::json(200, completion(2, 3)));
    let (status, _) = w
        .call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
        .await;
    assert_eq!(status, 200);
    w.background.run().await;
    let u = w.user_row(&user).await;
    assert_eq!(nanos(&u["balance"]), 1_000_000_000 - 5 * PER_TOKEN);
    let calls = w.call(Method::GET, "/api/admin/calls", ADMIN, None).await.1;
    let statuses: Vec<&str> = calls["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 2, "both attempts logged: {calls}");
    assert!(statuses.contains(&"failed") && statuses.contains(&"success"));
    let urls: Vec<String> = w.upstream.requests().iter().map(|r| r.url.clone()).collect();
    assert!(
        urls[0].starts_with("http://first.test/") && urls[1].starts_with("http://second.test/"),
        "{urls:?}"
    );
}

/// The events of a streamed answer's body, as text.
async fn stream_text(mut body: hub_core::http::ByteStream) -> String {
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Err(e) => text.push_str(&e.message),
        }
    }
    text
}

#[tokio::test]
async fn a_stream_that_goes_quiet_ends_with_a_timeout_and_one_that_breaks_with_a_failure() {
    let w = world(true).await;
    w.provider(&["sk-a"]).await;
    let (_, key) = w.user("1", json!({})).await;
    w.upstream.push(Scripted::sse(&[&chunk("Hello")]).then_time_out());
    let quiet = stream_text(w.stream(&key).await).await;
    assert!(quiet.contains("provider_timeout"), "{quiet}");
    // A provider message that merely mentions a timeout is not one.
    w.upstream
        .push(Scripted::sse(&[&chunk("Hello")]).then_fail("reset while reading the timeout header"));
    let broken = stream_text(w.stream(&key).await).await;
    assert!(!broken.contains("provider_timeout"), "{broken}");
    assert!(broken.contains("stream failed"), "{broken}");
}

#[tokio::test]
async fn a_stream_request_answered_with_a_json_page_fails_over() {
    let w = world(true).await;
    w.named_provider("first", 10, &["sk-a"]).await;
    w.named_provider("second", 0, &["sk-b"]).await;
    let (_, key) = w.user("1", json!({})).await;
    w.upstream.push(Scripted::json(200, completion(1, 1)));
    w.upstream
        .push(Scripted::sse(&[&chunk("Hi"), &usage_chunk(2, 1), "data: [DONE]\n\n"]));
    let text = stream_text(w.stream(&key).await).await;
    assert!(text.contains("Hi") && text.contains("[DONE]"), "{text}");
    assert_eq!(w.upstream.requests().len(), 2);
}

/// A provider with embedding and image models at 1000 credits per million
/// tokens and 0.5 credits per image.
async fn media_provider(w: &World, name: &str, priority: i64) {
    let p = w
        .admin(
            Method::POST,
            "/api/admin/providers",
            json!({"name": name, "kind": "openai", "base_url": format!("http://{name}.test/v1"), "priority": priority}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.admin(
        Method::POST,
        &format!("/api/admin/providers/{p}/credentials"),
        json!({"name": "c", "secret": format!("sk-{name}")}),
    )
    .await;
    for (model, kind) in [("e", "embedding"), ("img", "image")] {
        w.admin(
            Method::POST,
            "/api/admin/models",
            json!({"provider_id": p, "model": model, "type": kind, "input_rate": 1000, "output_rate": 1000, "image_rate": "0.5"}),
        )
        .await;
    }
}

#[tokio::test]
async fn embeddings_and_images_share_the_pipeline_failover_and_exact_billing() {
    let w = world(true).await;
    media_provider(&w, "first", 10).await;
    media_provider(&w, "second", 0).await;
    // Enough for the images' hold: 2 × 8,000 output tokens and 2 images.
    let (user, key) = w.user("100", json!({})).await;
    w.upstream
        .push(Scripted::json(503, json!({"error": {"message": "down"}})));
    w.upstream.push(Scripted::json(
        200,
        json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}], "usage": {"prompt_tokens": 7, "total_tokens": 7}}),
    ));
    let (status, v) = w
        .call(
            Method::POST,
            "/v1/embeddings",
            &key,
            Some(json!({"model": "e", "input": "hello"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"][0]["embedding"][0], 0.1);
    w.upstream.push(Scripted::json(
        200,
        json!({"created": 1, "data": [{"url": "https://img.test/1"}, {"url": "https://img.test/2"}]}),
    ));
    let (status, v) = w
        .call(
            Method::POST,
            "/v1/images/generations",
            &key,
            Some(json!({"model": "img", "prompt": "a cat", "n": 2})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    w.background.run().await;
    // 7 tokens at 0.001 and two images at 0.5.
    let u = w.user_row(&user).await;
    assert_eq!(
        nanos(&u["balance"]),
        100_000_000_000 - 7 * PER_TOKEN - 1_000_000_000,
        "{u}"
    );
    assert_eq!(nanos(&u["held"]), 0);
    let urls: Vec<String> = w.upstream.requests().iter().map(|r| r.url.clone()).collect();
    assert!(urls[0].starts_with("http://first.test/") && urls[1].starts_with("http://second.test/"));
    let calls = w.call(Method::GET, "/api/admin/calls", ADMIN, None).await.1;
    assert_eq!(calls["data"].as_array().unwrap().len(), 3, "{calls}");
}

/// A stand-in for the Worker's wallets: answers holds from a lease (or
/// fails, as an unreachable wallet does) and records what it is told.
#[derive(Default)]
struct FakeWallets {
    unreachable: bool,
    told: std::sync::Mutex<Vec<String>>,
    /// To read the user's balance when a close arrives.
    hub: std::sync::OnceLock<Hub>,
}

impl FakeWallets {
    fn told(&self) -> Vec<String> {
        self.told.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl hub_core::ports::Wallets for FakeWallets {
    async fn hold(
        &self,
        user: &str,
        _call: &str,
        amount: hub_core::Credits,
        _ttl_ms: i64,
    ) -> Result<Option<hub_core::metering::lease::LeaseId>, hub_core::ports::DbError> {
        if self.unreachable {
            return Err(hub_core::ports::DbError::Unavailable("wallet: no answer".into()));
        }
        self.told
            .lock()
            .unwrap()
            .push(format!("hold {user} {}", amount.nanos()));
        Ok(Some("lse_wallet".into()))
    }

    async fn close(
        &self,
        user: &str,
        lease: Option<&str>,
        _call: &str,
        charge: hub_core::Credits,
    ) -> Result<(), hub_core::ports::DbError> {
        let lease = lease.unwrap_or("-");
        let balance = match self.hub.get() {
            Some(hub) => {
                let res = hub
                    .handle(request(Method::GET, &format!("/api/admin/users/{user}"), ADMIN, None))
                    .await;
                let u: Value = serde_json::from_slice(&body_of(res).await).unwrap();
                nanos(&u["balance"])
            }
            None => 0,
        };
        let line = format!("close {user} {lease} {} at balance {balance}", charge.nanos());
        self.told.lock().unwrap().push(line);
        Ok(())
    }

    async fn held(&self, _user: &str) -> Result<hub_core::Credits, hub_core::ports::DbError> {
        Ok(hub_core::Credits::ZERO)
    }

    async fn revoke(&self, user: &str) -> Result<(), hub_core::ports::DbError> {
        self.told.lock().unwrap().push(format!("revoke {user}"));
        Ok(())
    }
}

/// With wallets (the Worker), a call holds through the user's wallet and
/// writes no hold row before the provider; the wallet hears of the call's
/// end only once its settlement has committed; a call that fails before
/// any output gives its hold back at once; credit taken away revokes.
#[tokio::test]
async fn a_hub_with_wallets_holds_through_them_and_closes_after_the_commit() {
    let w = world(false).await;
    let wallets = Arc::new(FakeWallets::default());
    let _ = wallets.hub.set(w.hub.clone());
    w.hub.set_wallets(wallets.clone());
    w.provider(&["sk-a"]).await;
    let (user, key) = w.user("1", json!({})).await;
    let hold = 68 * PER_TOKEN;
    w.upstream.push(Scripted::json(200, completion(10, 5)));
    let (status, v) = w
        .call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(wallets.told(), [format!("hold {user} {hold}")]);
    assert_eq!(nanos(&w.user_row(&user).await["held"]), 0, "no hold row");
    // The settlement is queued, not committed: the wallet is not told yet;
    // when it is, the charge is in the balance already.
    assert_eq!(wallets.told().len(), 1);
    w.background.run().await;
    let after = 1_000_000_000 - 15 * PER_TOKEN;
    assert_eq!(
        wallets.told()[1],
        format!("close {user} lse_wallet {} at balance {after}", 15 * PER_TOKEN)
    );
    let u = w.user_row(&user).await;
    assert_eq!(nanos(&u["balance"]), after);
    assert_eq!(nanos(&u["held"]), 0);
    // A provider failing before any output: the hold comes back, nothing charged.
    w.upstream
        .push(Scripted::json(500, json!({"error": {"message": "down"}})));
    let (status, _) = w
        .call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
        .await;
    assert_eq!(status, 502);
    w.background.run().await;
    assert_eq!(
        wallets.told()[3],
        format!("close {user} lse_wallet 0 at balance {after}")
    );
    // Credit taken away: the wallet is told before the adjustment answers.
    w.admin(
        Method::POST,
        &format!("/api/admin/users/{user}/grants"),
        json!({"amount": "-0.5"}),
    )
    .await;
    assert_eq!(wallets.told()[4], format!("revoke {user}"));
}

/// A wallet that cannot be reached: 503, and no provider is asked.
#[tokio::test]
async fn an_unreachable_wallet_is_503_before_any_provider() {
    let w = world(false).await;
    w.hub.set_wallets(Arc::new(FakeWallets {
        unreachable: true,
        ..Default::default()
    }));
    w.provider(&["sk-a"]).await;
    let (user, key) = w.user("1", json!({})).await;
    w.upstream.push(Scripted::json(200, completion(10, 5)));
    let (status, v) = w
        .call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
        .await;
    assert_eq!(status, 503, "{v}");
    assert!(w.upstream.requests().is_empty());
    w.background.run().await;
    let u = w.user_row(&user).await;
    assert_eq!((nanos(&u["balance"]), nanos(&u["held"])), (1_000_000_000, 0));
}
