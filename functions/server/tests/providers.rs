//! Every inbound protocol against every provider protocol, through `hub
//! serve` and the mock provider: text, tool calls and usage round-trip,
//! streamed and whole; billing is exact under each provider's usage
//! semantics; failover, errors after the first byte, credential health,
//! embeddings and images.

use futures_util::StreamExt;
use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{cost_nanos, nanos, Api, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

async fn start(launch: Launch) -> (HubServer, Api, MockProvider) {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(move || HubServer::start(bin(), launch))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    (hub, api, mock)
}

/// Rates in credits per million; cache writes cost what input costs, so every
/// protocol's split of the same prompt costs the same.
fn rates() -> Value {
    json!({"input_rate": 1.5, "output_rate": 6, "cache_read_rate": 0.3, "cache_write_rate": 1.5})
}

/// The four chat protocols on one mock: (provider name, model id).
async fn chat_providers(api: &Api, mock: &MockProvider) -> Vec<(&'static str, &'static str)> {
    let root = mock.root_url();
    let setups = [
        (
            json!({"name": "oai", "kind": "openai", "base_url": mock.base_url()}),
            "sk-openai-0001",
            "gpt-mock",
        ),
        (
            json!({"name": "ant", "kind": "anthropic", "base_url": format!("{root}/v1")}),
            "sk-ant-0001",
            "claude-mock",
        ),
        (
            json!({"name": "gem", "kind": "gemini", "base_url": format!("{root}/v1beta")}),
            "AIza-gem-0001",
            "gemini-mock",
        ),
        (
            json!({"name": "bed", "kind": "bedrock", "base_url": root, "region": "us-west-2"}),
            "AKIDMOCK0001:secret/mock+key",
            "anthropic.claude-mock-v1:0",
        ),
    ];
    let mut out = Vec::new();
    for (fields, secret, model) in setups {
        let name = fields["name"].as_str().unwrap().to_string();
        let id = api.provider(fields, secret).await;
        api.add_model(&id, model, rates()).await;
        out.push((leak(name), model));
    }
    out
}

/// The call log of a user once it has `n` rows (logs are written in the background).
async fn wait_calls(api: &Api, user: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = api.calls(&format!("user={user}&limit=100")).await;
        if log.len() >= n {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} call rows, got {}: {log:?}",
            log.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A provider's first credential once `check` holds (health changes are recorded in the background).
async fn wait_credential(api: &Api, provider: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let creds = api
            .admin(
                Method::GET,
                &format!("/api/admin/providers/{provider}/credentials"),
                None,
            )
            .await;
        if check(&creds["data"][0]) {
            return creds["data"][0].clone();
        }
        assert!(Instant::now() < deadline, "credential never reached the state: {creds}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// What a caller saw, in any protocol.
#[derive(Debug, Default)]
struct Seen {
    text: String,
    tool_name: String,
    tool_args: String,
    tool_id: String,
    input_tokens: u64,
    cached_tokens: u64,
    output_tokens: u64,
    finish: String,
    error: Option<String>,
}

fn sse_events(text: &str) -> Vec<(Option<String>, String)> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (name, data)
        })
        .collect()
}

fn read_openai_stream(text: &str) -> Seen {
    let mut s = Seen::default();
    let events = sse_events(text);
    assert_eq!(
        events.last().map(|e| e.1.as_str()),
        Some("[DONE]"),
        "stream must end with [DONE]: {text}"
    );
    for (_, data) in events {
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&data).unwrap();
        if let Some(e) = v.get("error") {
            s.error = Some(e["message"].as_str().unwrap_or("").to_string());
            continue;
        }
        assert_eq!(v["object"], "chat.completion.chunk");
        if let Some(d) = v.pointer("/choices/0/delta") {
            s.text.push_str(d["content"].as_str().unwrap_or(""));
            for c in d["tool_calls"].as_array().into_iter().flatten() {
                if let Some(n) = c.pointer("/function/name").and_then(Value::as_str) {
                    s.tool_name = n.to_string();
                    s.tool_id = c["id"].as_str().unwrap_or("").to_string();
                }
                s.tool_args
                    .push_str(c.pointer("/function/arguments").and_then(Value::as_str).unwrap_or(""));
            }
        }
        if let Some(f) = v.pointer("/choices/0/finish_reason").and_then(Value::as_str) {
            s.finish = f.to_string();
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            s.input_tokens = u["prompt_tokens"].as_u64().unwrap();
            s.cached_tokens = u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0);
            s.output_tokens = u["completion_tokens"].as_u64().unwrap();
        }
    }
    s
}

fn read_openai_whole(v: &Value) -> Seen {
    let m = &v["choices"][0]["message"];
    let call = &m["tool_calls"][0];
    Seen {
        text: m["content"].as_str().unwrap_or("").to_string(),
        tool_name: call["function"]["name"].as_str().unwrap_or("").to_string(),
        tool_args: call["function"]["arguments"].as_str().unwrap_or("").to_string(),
        tool_id: call["id"].as_str().unwrap_or("").to_string(),
        input_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap(),
        cached_tokens: v["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0),
        output_tokens: v["usage"]["completion_tokens"].as_u64().unwrap(),
        finish: v["choices"][0]["finish_reason"].as_str().unwrap_or("").to_string(),
        error: None,
    }
}

fn read_anthropic_stream(text: &str) -> Seen {
    let mut s = Seen::default();
    let mut usage = serde_json::Map::new();
    let events = sse_events(text);
    let names: Vec<&str> = events.iter().filter_map(|e| e.0.as_deref()).collect();
    if names.last() != Some(&"error") {
        assert_eq!(names.first(), Some(&"message_start"), "{text}");
        assert_eq!(names.last(), Some(&"message_stop"), "{text}");
    }
    for (name, data) in events {
        let v: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(name.as_deref(), v["type"].as_str(), "event name and type agree");
        match v["type"].as_str().unwrap() {
            "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                s.tool_name = v["content_block"]["name"].as_str().unwrap().to_string();
                s.tool_id = v["content_block"]["id"].as_str().unwrap().to_string();
            }
            "content_block_delta" => match v["delta"]["type"].as_str().unwrap() {
                "text_delta" => s.text.push_str(v["delta"]["text"].as_str().unwrap()),
                "input_json_delta" => s.tool_args.push_str(v["delta"]["partial_json"].as_str().unwrap()),
                _ => {}
            },
            // Usage as Anthropic's SDKs read it: `message_start` has the prompt's
            // counts, each `message_delta` the running totals it carries.
            "message_start" => usage.extend(v["message"]["usage"].as_object().cloned().unwrap_or_default()),
            "message_delta" => {
                s.finish = v["delta"]["stop_reason"].as_str().unwrap_or("").to_string();
                usage.extend(v["usage"].as_object().cloned().unwrap_or_default());
            }
            "error" => s.error = Some(v["error"]["message"].as_str().unwrap_or("").to_string()),
            _ => {}
        }
    }
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    s.input_tokens = n("input_tokens") + n("cache_read_input_tokens") + n("cache_creation_input_tokens");
    s.cached_tokens = n("cache_read_input_tokens");
    s.output_tokens = n("output_tokens");
    s
}

fn read_anthropic_whole(v: &Value) -> Seen {
    assert_eq!(v["type"], "message");
    let mut s = Seen::default();
    for block in v["content"].as_array().unwrap() {
        match block["type"].as_str().unwrap() {
            "text" => s.text.push_str(block["text"].as_str().unwrap()),
            "tool_use" => {
                s.tool_name = block["name"].as_str().unwrap().to_string();
                s.tool_id = block["id"].as_str().unwrap().to_string();
                s.tool_args = block["input"].to_string();
            }
            _ => {}
        }
    }
    let u = &v["usage"];
    s.input_tokens = u["input_tokens"].as_u64().unwrap()
        + u["cache_read_input_tokens"].as_u64().unwrap()
        + u["cache_creation_input_tokens"].as_u64().unwrap();
    s.cached_tokens = u["cache_read_input_tokens"].as_u64().unwrap();
    s.output_tokens = u["output_tokens"].as_u64().unwrap();
    s.finish = v["stop_reason"].as_str().unwrap().to_string();
    s
}

/// A conversation with a tool round trip, in the caller's protocol.
fn request(anthropic: bool, model: &str, stream: bool) -> (String, Value) {
    if anthropic {
        (
            "/v1/messages".into(),
            json!({
                "model": model, "max_tokens": 200, "stream": stream,
                "system": "You are terse.",
                "tools": [{"name": "get_weather", "description": "Weather by city",
                           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
                "messages": [
                    {"role": "user", "content": "Weather in Lyon?"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_prev", "name": "get_weather", "input": {"city": "Lyon"}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_prev", "content": "Sunny, 21C"}]},
                    {"role": "user", "content": "And Paris?"}
                ]
            }),
        )
    } else {
        (
            "/v1/chat/completions".into(),
            json!({
                "model": model, "max_tokens": 200, "stream": stream,
                "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
                "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
                "messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "Weather in Lyon?"},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_prev", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}]},
                    {"role": "tool", "tool_call_id": "toolu_prev", "content": "Sunny, 21C"},
                    {"role": "user", "content": "And Paris?"}
                ]
            }),
        )
    }
}

/// The tool result reached the provider in its own protocol.
fn assert_history_converted(provider: &str, got: &hub_e2e::mock::Received) {
    let body = got.body.to_string();
    match provider {
        "oai" => {
            assert_eq!(got.body["messages"][0]["role"], "system");
            assert!(
                body.contains(r#""role":"tool""#) && body.contains(r#""tool_call_id":"toolu_prev""#),
                "{body}"
            );
        }
        "ant" => {
            assert_eq!(got.header("anthropic-version"), Some("2023-06-01"));
            assert_eq!(got.header("x-api-key"), Some("sk-ant-0001"));
            assert_eq!(got.body["system"], "You are terse.");
            assert!(
                body.contains(r#""type":"tool_result""#) && body.contains(r#""tool_use_id":"toolu_prev""#),
                "{body}"
            );
            assert_eq!(got.body["tools"][0]["input_schema"]["type"], "object");
        }
        "gem" => {
            assert_eq!(got.header("x-goog-api-key"), Some("AIza-gem-0001"));
            assert_eq!(got.body["systemInstruction"]["parts"][0]["text"], "You are terse.");
            assert!(body.contains(r#""functionResponse":{"name":"get_weather""#), "{body}");
            assert_eq!(got.body["contents"][1]["role"], "model");
        }
        "bed" => {
            let auth = got.header("authorization").unwrap();
            assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDMOCK0001/"), "{auth}");
            assert!(auth.contains("/us-west-2/bedrock/aws4_request"), "{auth}");
            assert!(got.header("x-amz-date").is_some());
            assert!(
                got.path.starts_with("/model/anthropic.claude-mock-v1%3A0/converse"),
                "{}",
                got.path
            );
            assert!(
                body.contains(r#""toolResult":{"#) && body.contains(r#""toolUseId":"toolu_prev""#),
                "{body}"
            );
            assert_eq!(got.body["system"][0]["text"], "You are terse.");
        }
        other => panic!("unknown provider {other}"),
    }
}

#[tokio::test]
async fn every_inbound_protocol_round_trips_through_every_provider_protocol() {
    let (_hub, api, mock) = start(Launch::default()).await;
    let providers = chat_providers(&api, &mock).await;
    for (_, model) in &providers {
        let mut b = Behavior::text(&["Hel", "lo"])
            .tokens(1000, 50)
            .tool("get_weather", &["{\"city\":", "\"Paris\"}"]);
        b.cached_tokens = 200;
        b.cache_write_tokens = 100;
        mock.set(model, b);
    }
    let (user, key) = api.user_with_key("matrix", "100").await;
    // 700 uncached + 100 written (both at the input rate), 200 read from cache, 50 out.
    let expected = cost_nanos(&[(800, "1.5"), (200, "0.3"), (50, "6")]);
    let mut calls = 0;
    for anthropic in [false, true] {
        for &(provider, model) in &providers {
            for stream in [false, true] {
                let label = format!(
                    "{} -> {provider}, stream {stream}",
                    if anthropic { "anthropic" } else { "openai" }
                );
                let before = mock.received().len();
                let (path, body) = request(anthropic, &format!("{provider}/{model}"), stream);
                let mut req = api.http.post(format!("{}{path}", api.base)).json(&body);
                // Anthropic callers authenticate the Anthropic way.
                req = if anthropic {
                    req.header("x-api-key", &key)
                } else {
                    req.bearer_auth(&key)
                };
                let resp = req.send().await.unwrap();
                if resp.status() != 200 {
                    panic!("{label}: {} {}", resp.status(), resp.text().await.unwrap());
                }
                let credits_header = resp
                    .headers()
                    .get("x-hub-credits")
                    .map(|v| v.to_str().unwrap().to_string());
                let seen = if stream {
                    assert!(resp.headers()["content-type"]
                        .to_str()
                        .unwrap()
                        .starts_with("text/event-stream"));
                    let text = resp.text().await.unwrap();
                    if anthropic {
                        read_anthropic_stream(&text)
                    } else {
                        read_openai_stream(&text)
                    }
                } else {
                    let v: Value = resp.json().await.unwrap();
                    if anthropic {
                        read_anthropic_whole(&v)
                    } else {
                        read_openai_whole(&v)
                    }
                };
                calls += 1;
                assert_eq!(seen.error, None, "{label}");
                assert_eq!(seen.text, "Hello", "{label}");
                assert_eq!(seen.tool_name, "get_weather", "{label}");
                let args: Value =
                    serde_json::from_str(&seen.tool_args).unwrap_or_else(|_| panic!("{label}: {}", seen.tool_args));
                assert_eq!(args, json!({"city": "Paris"}), "{label}");
                assert!(!seen.tool_id.is_empty(), "{label}: tool calls carry an id");
                assert_eq!(
                    seen.finish,
                    if anthropic { "tool_use" } else { "tool_calls" },
                    "{label}"
                );
                // Whatever the provider's split, the caller sees the whole prompt,
                // the cached part and the output in its own protocol's terms.
                assert_eq!(
                    (seen.input_tokens, seen.cached_tokens, seen.output_tokens),
                    (1000, 200, 50),
                    "{label}"
                );
                if let Some(c) = credits_header {
                    assert_eq!(nanos(&Value::String(c)), expected, "{label}");
                }
                let received = mock.received();
                assert_eq!(received.len(), before + 1, "{label}: one provider request");
                assert_history_converted(provider, &received[before]);
            }
        }
    }
    // Every call billed exactly the same, whatever the protocols.
    let log = wait_calls(&api, &user, calls).await;
    assert_eq!(log.len(), calls);
    for c in &log {
        assert_eq!(nanos(&c["credits"]), expected, "{c}");
        assert_eq!(c["status"], "success");
        assert_eq!(c["estimated"], false);
    }
    let balance = 100_000_000_000 - expected * calls as i128;
    api.wait_user(&user, "settlements", |u| {
        nanos(&u["balance"]) == balance && nanos(&u["held"]) == 0
    })
    .await;
    assert_eq!(api.ledger_sum(&user).await, balance);
}

#[tokio::test]
async fn a_failing_provider_is_skipped_and_its_attempt_logged() {
    let (_hub, api, mock) = start(Launch::default()).await;
    let broken = MockProvider::start().await;
    let first = api
        .provider(
            json!({"name": "first", "kind": "openai", "base_url": broken.base_url(), "priority": 10}),
            "sk-first-0001",
        )
        .await;
    let second = api
        .provider(
            json!({"name": "second", "kind": "anthropic", "base_url": format!("{}/v1", mock.root_url())}),
            "sk-second-0001",
        )
        .await;
    api.add_model(&first, "shared", rates()).await;
    api.add_model(&second, "shared", rates()).await;
    broken.set("shared", Behavior::status(503));
    let (user, key) = api.user_with_key("bob", "5").await;

    for stream in [false, true] {
        let resp = api
            .http
            .post(format!("{}/v1/chat/completions", api.base))
            .bearer_auth(&key)
            .json(&json!({"model": "shared", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "the client never sees the failed attempt");
        let text = resp.text().await.unwrap();
        assert!(text.contains("Hello") && text.contains("world"), "{text}");
    }
    let log = wait_calls(&api, &user, 4).await;
    let failed: Vec<&Value> = log.iter().filter(|c| c["status"] == "failed").collect();
    let ok: Vec<&Value> = log.iter().filter(|c| c["status"] == "success").collect();
    assert_eq!((failed.len(), ok.len()), (2, 2), "{log:?}");
    for f in failed {
        assert_eq!(f["provider"], "first");
        assert_eq!(f["attempt"], 1);
        assert_eq!(f["http_status"], 502);
        assert!(f["error"].as_str().unwrap().contains("503"));
        assert_eq!(nanos(&f["credits"]), 0);
    }
    for s in ok {
        assert_eq!(s["provider"], "second");
        assert_eq!(s["attempt"], 2);
    }
    // A request the provider refuses (4xx) is the caller's mistake: no failover.
    broken.set("shared", Behavior::status(422));
    let (status, body) = api.chat(&key, "shared").await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("refused"));
}

#[tokio::test]
async fn a_failure_after_the_first_byte_ends_the_stream_in_the_callers_protocol() {
    let (_hub, api, mock) = start(Launch::default()).await;
    let spare = MockProvider::start().await;
    let gem = api
        .provider(
            json!({"name": "gem", "kind": "gemini", "base_url": format!("{}/v1beta", mock.root_url()), "priority": 5}),
            "AIza-0001",
        )
        .await;
    let backup = api
        .provider(
            json!({"name": "backup", "kind": "openai", "base_url": spare.base_url()}),
            "sk-b-0001",
        )
        .await;
    api.add_model(&gem, "flaky", rates()).await;
    api.add_model(&backup, "flaky", rates()).await;
    let mut b = Behavior::text(&["one ", "two ", "three ", "four"]);
    b.error_after = Some(2);
    mock.set("flaky", b);
    let (user, key) = api.user_with_key("carol", "5").await;

    let resp = api
        .http
        .post(format!("{}/v1/chat/completions", api.base))
        .bearer_auth(&key)
        .json(&json!({"model": "flaky", "stream": true, "messages": [{"role": "user", "content": "count"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let events = sse_events(&text);
    assert!(text.starts_with("data: "), "{text}");
    let last: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mock overloaded midway"),
        "{text}"
    );
    assert!(text.contains("one ") && text.contains("two ") && !text.contains("three"));

    let resp = api
        .http
        .post(format!("{}/v1/messages", api.base))
        .header("x-api-key", &key)
        .json(&json!({"model": "flaky", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "count"}]}))
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    let events = sse_events(&text);
    assert_eq!(events.first().unwrap().0.as_deref(), Some("message_start"));
    let (name, data) = events.last().unwrap();
    assert_eq!(name.as_deref(), Some("error"), "{text}");
    let err: Value = serde_json::from_str(data).unwrap();
    assert_eq!(err["type"], "error");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("mock overloaded midway"));

    // No retry after the first byte: the backup never heard of it.
    assert!(spare.received().is_empty());
    let log = wait_calls(&api, &user, 2).await;
    assert_eq!(log.len(), 2);
    assert!(
        log.iter().all(|c| c["status"] == "failed" && c["http_status"] == 502),
        "{log:?}"
    );
    // Billed for what was delivered, by the running count Gemini sends with every chunk:
    // the mock's 12 prompt tokens and 2 output tokens at 1.5 and 6 per million.
    for c in &log {
        assert_eq!(
            (c["input_tokens"].as_u64(), c["output_tokens"].as_u64()),
            (Some(12), Some(2)),
            "{c}"
        );
        assert_eq!(nanos(&c["credits"]), cost_nanos(&[(12, "1.5"), (2, "6")]), "{c}");
    }
}

#[tokio::test]
async fn a_rejected_credential_is_disabled_and_re_enabled_when_it_works_again() {
    let launch = Launch {
        env: vec![("HUB_CREDENTIAL_RECHECK".into(), "1".into())],
        ..Default::default()
    };
    let (hub, api, mock) = start(launch).await;
    let ant = api
        .provider(
            json!({"name": "ant", "kind": "anthropic", "base_url": format!("{}/v1", mock.root_url()), "priority": 5}),
            "sk-ant-revoked",
        )
        .await;
    let oai = api
        .provider(
            json!({"name": "oai", "kind": "openai", "base_url": mock.base_url()}),
            "sk-oai-0001",
        )
        .await;
    api.add_model(&ant, "m", rates()).await;
    api.add_model(&oai, "m", rates()).await;
    mock.reject("sk-ant-revoked");
    let (_, key) = api.user_with_key("dan", "5").await;
    let ask = || {
        api.call(
            Method::POST,
            "/v1/chat/completions",
            &key,
            Some(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})),
        )
    };

    let (status, body) = ask().await;
    assert_eq!(status, 200, "{body}");
    let cred = wait_credential(&api, &ant, |c| c["status"] == "disabled").await;
    assert!(cred["last_error"].as_str().unwrap().contains("401"), "{cred}");

    // While disabled it is not used: calls go straight to the other provider.
    let before = mock
        .received()
        .iter()
        .filter(|r| r.header("x-api-key") == Some("sk-ant-revoked"))
        .count();
    for _ in 0..3 {
        assert_eq!(ask().await.0, 200);
    }
    let probes_and_calls = mock.received();
    let chat_attempts = probes_and_calls
        .iter()
        .filter(|r| r.header("x-api-key") == Some("sk-ant-revoked") && r.path.ends_with("/messages"))
        .count();
    assert_eq!(chat_attempts, 1, "a disabled credential gets no calls");
    assert!(probes_and_calls.len() > before);

    // The key works again: the re-check notices and puts it back in rotation.
    mock.accept("sk-ant-revoked");
    let cred = wait_credential(&api, &ant, |c| c["status"] == "active").await;
    assert!(cred["last_error"].is_null(), "{cred}");
    assert!(hub.logs().contains("credential works again"));
    let n = mock.received().len();
    assert_eq!(ask().await.0, 200);
    let last = &mock.received()[n];
    assert_eq!(
        last.header("x-api-key"),
        Some("sk-ant-revoked"),
        "back in rotation, first by priority"
    );
}

#[tokio::test]
async fn embeddings_and_images_bill_exactly() {
    let (_hub, api, mock) = start(Launch::default()).await;
    let root = mock.root_url();
    let oai = api
        .provider(
            json!({"name": "oai", "kind": "openai", "base_url": mock.base_url()}),
            "sk-oai-0001",
        )
        .await;
    let gem = api
        .provider(
            json!({"name": "gem", "kind": "gemini", "base_url": format!("{root}/v1beta")}),
            "AIza-0001",
        )
        .await;
    let ideo = api
        .provider(
            json!({"name": "ideo", "kind": "ideogram", "base_url": root}),
            "ideo-key-0001",
        )
        .await;
    let add = |p: String, model: &'static str, kind: &'static str, fields: Value| {
        let api = &api;
        async move {
            let mut body = json!({"provider_id": p, "model": model, "type": kind});
            for (k, v) in fields.as_object().unwrap() {
                body[k] = v.clone();
            }
            let m = api.admin(Method::POST, "/api/admin/models", Some(body)).await;
            assert!(m["id"].is_string(), "{m}");
        }
    };
    add(
        oai.clone(),
        "text-embedding-mock",
        "embedding",
        json!({"input_rate": 0.02}),
    )
    .await;
    add(
        gem.clone(),
        "gemini-embedding-mock",
        "embedding",
        json!({"input_rate": 0.15}),
    )
    .await;
    add(oai.clone(), "image-mock", "image", json!({"image_rate": 0.04})).await;
    add(ideo.clone(), "V_3", "image", json!({"image_rate": 0.08})).await;
    add(ideo.clone(), "V_2", "image", json!({"image_rate": 0.05})).await;
    mock.set("text-embedding-mock", Behavior::default().tokens(321, 0));
    let (user, key) = api.user_with_key("erin", "10").await;

    let (status, body) = api
        .call(
            Method::POST,
            "/v1/embeddings",
            &key,
            Some(json!({"model": "text-embedding-mock", "input": ["a", "b"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/embeddings",
            &key,
            Some(json!({"model": "gem/gemini-embedding-mock", "input": "hello there"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["embedding"], json!([0.0, -0.5, 1.0]));
    let gem_req = mock
        .received()
        .into_iter()
        .find(|r| r.path.contains(":batchEmbedContents"))
        .unwrap();
    assert_eq!(
        gem_req.body["requests"][0]["content"]["parts"][0]["text"],
        "hello there"
    );

    let (status, body) = api
        .call(
            Method::POST,
            "/v1/images/generations",
            &key,
            Some(json!({"model": "image-mock", "prompt": "a red fox", "n": 2})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/images/generations",
            &key,
            Some(json!({"model": "ideo/V_3", "prompt": "a blue fox", "n": 3, "size": "1024x1024"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 3);
    assert!(body["data"][0]["url"]
        .as_str()
        .unwrap()
        .starts_with("https://ideogram.mock/"));
    let v3 = mock
        .received()
        .into_iter()
        .find(|r| r.path == "/v1/ideogram-v3/generate")
        .unwrap();
    assert_eq!(v3.header("api-key"), Some("ideo-key-0001"));
    let form = String::from_utf8_lossy(&v3.raw).to_string();
    assert!(form.contains("a blue fox") && form.contains("1x1"), "{form}");
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/images/generations",
            &key,
            Some(json!({"model": "V_2", "prompt": "a green fox"})),
        )
        .await;
    assert_eq!(status, 200);
    let legacy = mock.received().into_iter().find(|r| r.path == "/generate").unwrap();
    assert_eq!(legacy.body["image_request"]["prompt"], "a green fox");

    // Bad input is refused before anything is called or held.
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/images/generations",
            &key,
            Some(json!({"model": "V_2", "prompt": ""})),
        )
        .await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("prompt")));
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/embeddings",
            &key,
            Some(json!({"model": "text-embedding-mock", "input": [1.5]})),
        )
        .await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("input[0]")));

    let log = wait_calls(&api, &user, 5).await;
    let credits_of = |model: &str| {
        nanos(
            &log.iter()
                .find(|c| c["model"] == model)
                .unwrap_or_else(|| panic!("{model}: {log:?}"))["credits"],
        )
    };
    assert_eq!(credits_of("text-embedding-mock"), cost_nanos(&[(321, "0.02")]));
    assert_eq!(credits_of("image-mock"), 2 * 40_000_000);
    assert_eq!(credits_of("ideo/V_3"), 3 * 80_000_000);
    assert_eq!(credits_of("V_2"), 50_000_000);
    // Gemini reports no token count for embeddings: estimated and flagged.
    let gem_call = log.iter().find(|c| c["model"] == "gem/gemini-embedding-mock").unwrap();
    assert_eq!(gem_call["estimated"], true);
    // "hello there": 3 tokens of text + 4 for the input + 3.
    assert_eq!(gem_call["input_tokens"], 10);
    assert_eq!(nanos(&gem_call["credits"]), cost_nanos(&[(10, "0.15")]));
    let spent: i128 = log.iter().map(|c| nanos(&c["credits"])).sum();
    api.wait_user(&user, "settlements", |u| nanos(&u["balance"]) == 10_000_000_000 - spent)
        .await;
}

#[tokio::test]
async fn anthropic_callers_get_anthropic_errors() {
    let (_hub, api, mock) = start(Launch::default()).await;
    let p = api
        .provider(
            json!({"name": "oai", "kind": "openai", "base_url": mock.base_url()}),
            "sk-0001",
        )
        .await;
    api.add_model(&p, "gpt-mock", rates()).await;
    let (_, key) = api.user_with_key("fay", "0").await;
    let post = |body: Value, key: Option<&str>| {
        let mut r = api.http.post(format!("{}/v1/messages", api.base)).json(&body);
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        async move {
            let resp = r.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let ok_body = json!({"model": "gpt-mock", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = post(ok_body.clone(), None).await;
    assert_eq!(status, 401);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    let (status, body) = post(json!({"model": "gpt-mock", "messages": []}), Some(&key)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("max_tokens"));
    // No credit: 402, nothing sent to the provider.
    let (status, body) = post(ok_body, Some(&key)).await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["type"], "error");
    assert!(mock.received().is_empty());
    // What a provider cannot express is refused, naming it.
    let (_, key2) = api.user_with_key("gus", "5").await;
    let ant = api
        .provider(
            json!({"name": "ant", "kind": "anthropic", "base_url": format!("{}/v1", mock.root_url())}),
            "sk-a-0001",
        )
        .await;
    api.add_model(&ant, "claude-mock", rates()).await;
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/chat/completions",
            &key2,
            Some(json!({"model": "claude-mock", "logprobs": true, "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "logprobs");
    let (status, body) = api
        .call(Method::POST, "/v1/chat/completions", &key2, Some(json!({"model": "claude-mock", "response_format": {"type": "json_object"}, "messages": [{"role": "user", "content": "hi"}]})))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("anthropic"),
        "{body}"
    );
    assert!(mock.received().is_empty());
}

/// A stream through a converting relay reaches the client as it is produced.
#[tokio::test]
async fn converted_streams_arrive_incrementally() {
    let (_hub, api, mock) = start(Launch::default()).await;
    let bed = api
        .provider(
            json!({"name": "bed", "kind": "bedrock", "base_url": mock.root_url(), "region": "eu-west-1"}),
            "AKID0001:sec0001",
        )
        .await;
    api.add_model(&bed, "slow", rates()).await;
    mock.set(
        "slow",
        Behavior::text(&["a", "b", "c", "d", "e"]).delay(Duration::from_millis(250)),
    );
    let (_, key) = api.user_with_key("hal", "5").await;
    let started = Instant::now();
    let resp = api
        .http
        .post(format!("{}/v1/messages", api.base))
        .header("x-api-key", &key)
        .json(&json!({"model": "slow", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "go"}]}))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut first_text = None;
    let mut all = String::new();
    while let Some(chunk) = body.next().await {
        all.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if first_text.is_none() && all.contains("text_delta") {
            first_text = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let first = first_text.expect("text arrived");
    assert!(total >= Duration::from_millis(1000), "{total:?}");
    assert!(
        total - first >= Duration::from_millis(800),
        "first text at {first:?}, end at {total:?}"
    );
    assert!(
        all.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{all}"
    );
}
