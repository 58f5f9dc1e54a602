//! `POST /v1/responses` in process: passed through to a provider that speaks
//! Responses, converted for every other (OpenAI-compatible chat, Anthropic,
//! Gemini, Bedrock, from their recorded wire fixtures), each converted
//! stream checked event by event against OpenAI's published event schemas,
//! and every call billed exactly.

mod schema;

use bytes::Bytes;
use futures_util::StreamExt;
use hub_core::chat::Reply;
use hub_core::codec::{decode_all, Decode};
use hub_core::http::{Body, Method, Request};
use hub_core::metering::{Rates, Usage};
use hub_core::providers::{anthropic, bedrock, gemini, openai_compat};
use hub_core::testing::{Collector, Scripted, ScriptedUpstream};
use hub_core::{Hub, HubOptions};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

const ADMIN: &str = "hub_responses_admin_key_0123456789";
const GRANT_NANOS: i64 = 100_000_000_000;

mod common;

struct World {
    hub: Hub,
    upstream: Arc<ScriptedUpstream>,
    background: Arc<Collector>,
    _dir: common::TempDir,
}

async fn world() -> World {
    let setup = common::Setup {
        options: HubOptions {
            exclusive_database: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let f = common::start(common::temp_dir("responses"), ADMIN, setup).await;
    World {
        hub: f.hub,
        upstream: f.upstream,
        background: f.background,
        _dir: f.dir,
    }
}

fn request(path: &str, key: &str, body: &Value) -> Request {
    http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

impl World {
    /// The status and the body's bytes, a stream read to its end.
    async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Bytes) {
        let res = self.hub.handle(request(path, key, body)).await;
        let status = res.status().as_u16();
        let bytes = match res.into_body() {
            Body::Full(b) => b,
            Body::Stream(mut s) => {
                let mut out = Vec::new();
                while let Some(chunk) = s.next().await {
                    out.extend_from_slice(&chunk.unwrap());
                }
                Bytes::from(out)
            }
        };
        (status, bytes)
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = request(path, ADMIN, &body.clone().unwrap_or(Value::Null));
        *req.method_mut() = method;
        if body.is_none() {
            *req.body_mut() = Bytes::new();
        }
        let res = self.hub.handle(req).await;
        let status = res.status().as_u16();
        let Body::Full(b) = res.into_body() else {
            panic!("admin answers are whole")
        };
        let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
        assert!(status < 300, "{path}: {status} {v}");
        v
    }

    /// A provider of `kind` serving model "m" at `RATES`.
    async fn provider(&self, name: &str, kind: &str, priority: i64) {
        let p = self
            .admin(
                Method::POST,
                "/api/admin/providers",
                Some(
                    json!({"name": name, "kind": kind, "base_url": format!("http://{name}.test/v1"),
                    "region": "us-east-1", "priority": priority}),
                ),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let secret = if kind == "bedrock" {
            "AKIDEXAMPLE:secret"
        } else {
            "sk-test"
        };
        let creds = format!("/api/admin/providers/{p}/credentials");
        self.admin(Method::POST, &creds, Some(json!({"name": "c", "secret": secret})))
            .await;
        self.admin(Method::POST, &creds, Some(json!({"name": "d", "secret": secret})))
            .await;
        self.admin(
            Method::POST,
            "/api/admin/models",
            Some(
                json!({"provider_id": p, "model": "m", "input_rate": "1000", "output_rate": "2000",
                "cache_read_rate": "100", "cache_write_rate": "1250"}),
            ),
        )
        .await;
    }

    /// A user with 100 credits and a key.
    async fn user(&self) -> (String, String) {
        let u = self
            .admin(Method::POST, "/api/admin/users", Some(json!({"name": "u"})))
            .await;
        let id = u["id"].as_str().unwrap().to_string();
        let at = |p: &str| format!("/api/admin/users/{id}/{p}");
        self.admin(Method::POST, &at("grants"), Some(json!({"amount": "100"})))
            .await;
        let k = self.admin(Method::POST, &at("keys"), Some(json!({}))).await;
        (id, k["key"].as_str().unwrap().to_string())
    }

    /// The user's balance and held credit, in nano-credits, once settled.
    async fn money(&self, user: &str) -> (i64, i64) {
        self.background.run().await;
        let u = self.admin(Method::GET, &format!("/api/admin/users/{user}"), None).await;
        let nanos = |v: &Value| hub_core::Credits::from_json(v).unwrap().nanos();
        (nanos(&u["balance"]), nanos(&u["held"]))
    }

    async fn calls(&self) -> Vec<Value> {
        let v = self.admin(Method::GET, "/api/admin/calls", None).await;
        v["data"].as_array().unwrap().clone()
    }
}

/// What model "m" costs (see `World::provider`).
fn cost(u: &Usage) -> i64 {
    let rate = |s: &str| hub_core::metering::money::Rate::parse(s).unwrap();
    let rates = Rates {
        input: rate("1000"),
        output: rate("2000"),
        cache_read: Some(rate("100")),
        cache_write: Some(rate("1250")),
        cache_write_1h: None,
        image: rate("0"),
        ..Default::default()
    };
    rates.cost(u).nanos()
}

fn fixture(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A recorded provider stream, as the scripted provider's answer (in small
/// pieces, so events arrive split).
fn recorded(rel: &str) -> Scripted {
    let bytes = fixture(rel);
    Scripted::Answer {
        status: 200,
        headers: vec![("content-type", "text/event-stream".into())],
        chunks: bytes.chunks(97).map(Bytes::copy_from_slice).collect(),
        then_fail: None,
        then_stall: false,
    }
}

/// The usage a provider's recorded stream reports.
fn reported_usage(decoder: Box<dyn Decode>, rel: &str) -> Usage {
    Reply::from_deltas(decode_all(decoder, &fixture(rel)))
        .unwrap()
        .usage
        .unwrap()
}

/// The events of a Responses stream, in order.
fn events(body: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(body).unwrap();
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let name = block.lines().find_map(|l| l.strip_prefix("event: "));
        // (A stream cut short may end in an event line without data.)
        let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else {
            continue;
        };
        let ev: Value = serde_json::from_str(data).unwrap();
        if let Some(name) = name {
            assert_eq!(ev["type"], name, "the event line names the event");
        }
        out.push(ev);
    }
    out
}

/// Every event valid against its published schema, numbered from 0 by one,
/// every item's events at the item's own index, one terminal event, last.
fn check_stream(events: &[Value]) {
    let mut items: std::collections::HashMap<String, u64> = Default::default();
    for (i, ev) in events.iter().enumerate() {
        let kind = ev["type"].as_str().unwrap();
        let problems = schema::validate(&schema::event_schema(kind), ev);
        assert!(problems.is_empty(), "event {i} `{kind}`: {problems:#?}\n{ev:#}");
        assert_eq!(ev["sequence_number"], i as u64, "event {i}");
        if kind == "response.output_item.added" {
            items.insert(
                ev["item"]["id"].as_str().unwrap().to_string(),
                ev["output_index"].as_u64().unwrap(),
            );
        }
        if let Some(id) = ev["item_id"].as_str().or(ev["item"]["id"].as_str()) {
            assert_eq!(items.get(id), ev["output_index"].as_u64().as_ref(), "event {i}: {ev}");
        }
        let terminal = matches!(kind, "response.completed" | "response.failed" | "response.incomplete");
        assert_eq!(terminal, i == events.len() - 1, "event {i} `{kind}`");
    }
    assert_eq!(events[0]["type"], "response.created");
    assert_eq!(events[1]["type"], "response.in_progress");
}

fn codex_like(stream: bool) -> Value {
    json!({
        "model": "m", "stream": stream, "store": false, "include": ["reasoning.encrypted_content"],
        "input": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
                  {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris and Tokyo?"}]}],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}, "strict": false},
                  {"type": "web_search", "external_web_access": false}],
        "tool_choice": "auto", "parallel_tool_calls": true, "reasoning": {"summary": "auto"},
        "prompt_cache_key": "session-1",
    })
}

/// A provider protocol's stream reader.
type Decoder = fn() -> Box<dyn Decode>;

/// (provider kind, recorded stream, its decoder)
fn recorded_streams() -> Vec<(&'static str, &'static str, Decoder)> {
    vec![
        ("openai-compatible", "openai/stream_text.sse", || {
            Box::new(openai_compat::decoder())
        }),
        ("openai-compatible", "openai/stream_tool_calls.sse", || {
            Box::new(openai_compat::decoder())
        }),
        ("anthropic", "anthropic/stream_text.sse", || {
            Box::new(anthropic::decoder())
        }),
        ("anthropic", "anthropic/stream_tool_use.sse", || {
            Box::new(anthropic::decoder())
        }),
        ("anthropic", "anthropic/stream_thinking.sse", || {
            Box::new(anthropic::decoder())
        }),
        ("gemini", "gemini/stream_text.sse", || Box::new(gemini::decoder("g"))),
        ("gemini", "gemini/stream_function_call.sse", || {
            Box::new(gemini::decoder("g"))
        }),
        ("bedrock", "bedrock/stream_text.bin", || {
            Box::new(bedrock::StreamDecoder::default())
        }),
        ("bedrock", "bedrock/stream_tool_use.bin", || {
            Box::new(bedrock::StreamDecoder::default())
        }),
    ]
}

#[tokio::test]
async fn converted_streams_from_every_provider_protocol_are_valid_responses_events_billed_exactly() {
    for (kind, rel, decoder) in recorded_streams() {
        let w = world().await;
        w.provider("p", kind, 0).await;
        let (user, key) = w.user().await;
        w.upstream.push(recorded(rel));
        let (status, body) = w.post("/v1/responses", &key, &codex_like(true)).await;
        assert_eq!(status, 200, "{rel}: {}", String::from_utf8_lossy(&body));
        let evs = events(&body);
        check_stream(&evs);
        let last = evs.last().unwrap();
        assert_eq!(last["type"], "response.completed", "{rel}");
        // Each call's argument pieces add up to the arguments of its item.
        for item in last["response"]["output"].as_array().unwrap() {
            if item["type"] == "function_call" {
                let pieces: String = evs
                    .iter()
                    .filter(|e| e["type"] == "response.function_call_arguments.delta" && e["item_id"] == item["id"])
                    .map(|e| e["delta"].as_str().unwrap())
                    .collect();
                assert_eq!(item["arguments"], pieces, "{rel}");
                assert!(!pieces.is_empty(), "{rel}: arguments streamed");
            }
        }
        // Billed as the provider reported, to the nano-credit, and shown so.
        let usage = reported_usage(decoder(), rel);
        let (balance, held) = w.money(&user).await;
        assert_eq!((balance, held), (GRANT_NANOS - cost(&usage), 0), "{rel}: {usage:?}");
        assert_eq!(last["response"]["usage"]["output_tokens"], usage.output_tokens, "{rel}");
        assert_eq!(
            last["response"]["usage"]["input_tokens"],
            usage.prompt_tokens(),
            "{rel}"
        );
        let calls = w.calls().await;
        assert_eq!(calls[0]["endpoint"], "responses", "{rel}");
        assert_eq!(calls[0]["status"], "success", "{rel}");
    }
}

#[tokio::test]
async fn reasoning_comes_back_as_a_summary_and_its_signature_round_trips() {
    let w = world().await;
    w.provider("p", "anthropic", 0).await;
    let (_, key) = w.user().await;
    w.upstream.push(recorded("anthropic/stream_thinking.sse"));
    let (_, body) = w.post("/v1/responses", &key, &codex_like(true)).await;
    let evs = events(&body);
    let kinds: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"response.reasoning_summary_text.delta"), "{kinds:?}");
    let output = evs.last().unwrap()["response"]["output"].clone();
    let reasoning = output
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "reasoning")
        .unwrap()
        .clone();
    let encrypted = reasoning["encrypted_content"].as_str().unwrap();
    assert!(encrypted.starts_with("hub-signature:"), "{encrypted}");
    // The client carries the items back (as Codex does): Anthropic gets its thinking block, signed.
    let mut next = codex_like(false);
    for item in output.as_array().unwrap() {
        next["input"].as_array_mut().unwrap().push(item.clone());
    }
    next["input"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "user", "content": "thanks"}));
    w.upstream.push(Scripted::json(
        200,
        serde_json::from_slice(&fixture("anthropic/response_text.json")).unwrap(),
    ));
    let (status, body) = w.post("/v1/responses", &key, &next).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let sent: Value = serde_json::from_slice(&w.upstream.requests()[1].body).unwrap();
    let thinking = &sent["messages"][1]["content"][0];
    assert_eq!(thinking["type"], "thinking", "{sent:#}");
    assert_eq!(thinking["signature"], encrypted.trim_start_matches("hub-signature:"));
}

#[tokio::test]
async fn whole_converted_answers_are_response_objects() {
    for (kind, rel, out_type) in [
        ("anthropic", "anthropic/response_tool_use.json", "function_call"),
        ("openai-compatible", "openai/chat_response_text.json", "message"),
        ("gemini", "gemini/response_function_call.json", "function_call"),
        ("bedrock", "bedrock/converse_response_text.json", "message"),
    ] {
        let w = world().await;
        w.provider("p", kind, 0).await;
        let (user, key) = w.user().await;
        w.upstream
            .push(Scripted::json(200, serde_json::from_slice(&fixture(rel)).unwrap()));
        let (status, body) = w.post("/v1/responses", &key, &codex_like(false)).await;
        assert_eq!(status, 200, "{rel}: {}", String::from_utf8_lossy(&body));
        let response: Value = serde_json::from_slice(&body).unwrap();
        let as_event = json!({"type": "response.completed", "sequence_number": 0, "response": response});
        let problems = schema::validate(&schema::event_schema("response.completed"), &as_event);
        assert!(problems.is_empty(), "{rel}: {problems:#?}");
        assert_eq!(response["status"], "completed");
        assert!(
            response["output"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["type"] == out_type),
            "{rel}: {response:#}"
        );
        let usage = response["usage"].clone();
        let (balance, _) = w.money(&user).await;
        let billed = Usage {
            input_tokens: usage["input_tokens"].as_u64().unwrap()
                - usage["input_tokens_details"]["cached_tokens"].as_u64().unwrap()
                - usage["input_tokens_details"]["cache_write_tokens"].as_u64().unwrap(),
            cache_read_tokens: usage["input_tokens_details"]["cached_tokens"].as_u64().unwrap(),
            cache_write_tokens: usage["input_tokens_details"]["cache_write_tokens"].as_u64().unwrap(),
            output_tokens: usage["output_tokens"].as_u64().unwrap(),
            ..Default::default()
        };
        assert_eq!(balance, GRANT_NANOS - cost(&billed), "{rel}");
    }
}

#[tokio::test]
async fn a_converted_stream_failing_midway_ends_with_response_failed_and_is_not_retried() {
    let w = world().await;
    w.provider("p", "openai-compatible", 0).await;
    let (_, key) = w.user().await;
    let chunk = |t: &str| {
        format!(
            "data: {}\n\n",
            json!({"id": "x", "choices": [{"index": 0, "delta": {"content": t}}]})
        )
    };
    w.upstream
        .push(Scripted::sse(&[&chunk("Hello "), &chunk("wor")]).then_fail("connection reset"));
    w.upstream.push(Scripted::sse(&[&chunk("never sent")]));
    let (status, body) = w.post("/v1/responses", &key, &codex_like(true)).await;
    assert_eq!(status, 200);
    let evs = events(&body);
    check_stream(&evs);
    let last = evs.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(
        last["response"]["error"]["code"], "server_error",
        "a code Codex retries"
    );
    assert_eq!(w.upstream.requests().len(), 1, "no failover after the first byte");
    assert_eq!(w.upstream.unused(), 1);
    w.background.run().await;
    assert_eq!(w.calls().await[0]["status"], "failed");
}

#[tokio::test]
async fn a_length_cut_answer_ends_incomplete() {
    let w = world().await;
    w.provider("p", "openai-compatible", 0).await;
    let (_, key) = w.user().await;
    let data = |v: Value| format!("data: {v}\n\n");
    w.upstream.push(Scripted::sse(&[
        &data(json!({"id": "x", "choices": [{"index": 0, "delta": {"content": "Once upon"}}]})),
        &data(json!({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})),
        &data(json!({"id": "x", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})),
        "data: [DONE]\n\n",
    ]));
    let mut req = codex_like(true);
    req["max_output_tokens"] = json!(2);
    let (_, body) = w.post("/v1/responses", &key, &req).await;
    let evs = events(&body);
    check_stream(&evs);
    let last = evs.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(last["response"]["incomplete_details"]["reason"], "max_output_tokens");
    let sent: Value = serde_json::from_slice(&w.upstream.requests()[0].body).unwrap();
    assert_eq!(sent["max_tokens"], 2);
}

/// A provider's own Responses stream (OpenAI's event shapes).
fn openai_responses_stream() -> Vec<u8> {
    let mut out = Vec::new();
    for line in String::from_utf8(fixture("responses/stream_reasoning.jsonl"))
        .unwrap()
        .lines()
    {
        let ev: Value = serde_json::from_str(line).unwrap();
        out.extend_from_slice(format!("event: {}\ndata: {line}\n\n", ev["type"].as_str().unwrap()).as_bytes());
    }
    out
}

#[tokio::test]
async fn a_provider_that_speaks_responses_gets_the_body_as_sent_and_its_stream_is_relayed_unchanged() {
    let w = world().await;
    w.provider("p", "openai", 0).await;
    let (user, key) = w.user().await;
    let stream = openai_responses_stream();
    w.upstream.push(Scripted::Answer {
        status: 200,
        headers: vec![("content-type", "text/event-stream".into())],
        chunks: stream.chunks(61).map(Bytes::copy_from_slice).collect(),
        then_fail: None,
        then_stall: false,
    });
    let mut req = codex_like(true);
    req["client_metadata"] = json!({"session_id": "s"});
    req["tools"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "custom", "name": "apply_patch", "format": {"type": "text"}}));
    let (status, body) = w.post("/v1/responses", &key, &req).await;
    assert_eq!(status, 200);
    assert_eq!(body, Bytes::from(stream.clone()), "relayed byte for byte");
    let sent = &w.upstream.requests()[0];
    assert_eq!(sent.url, "http://p.test/v1/responses");
    // As sent, but for the model and the hosted web search Hub cannot bill (dropped, as for every provider).
    let mut expected = req.clone();
    expected["model"] = json!("m");
    expected["tools"].as_array_mut().unwrap().remove(1);
    assert_eq!(
        serde_json::from_slice::<Value>(&sent.body).unwrap(),
        expected,
        "the body as sent"
    );
    // The usage of response.completed: cached input at the cache-read rate, reasoning once in output.
    let completed: Value = events(&stream).last().unwrap().clone();
    let u = &completed["response"]["usage"];
    let cached = u["input_tokens_details"]["cached_tokens"].as_u64().unwrap();
    assert!(cached > 0, "the fixture reports cached tokens");
    let usage = Usage {
        input_tokens: u["input_tokens"].as_u64().unwrap() - cached,
        cache_read_tokens: cached,
        output_tokens: u["output_tokens"].as_u64().unwrap(),
        ..Default::default()
    };
    assert_eq!(w.money(&user).await, (GRANT_NANOS - cost(&usage), 0));
    let calls = w.calls().await;
    assert_eq!(
        (calls[0]["endpoint"].as_str(), calls[0]["estimated"].as_bool()),
        (Some("responses"), Some(false))
    );
}

#[tokio::test]
async fn a_whole_responses_answer_passes_through_and_is_billed_from_its_usage() {
    let w = world().await;
    w.provider("p", "openai", 0).await;
    let (user, key) = w.user().await;
    let answer = events(&openai_responses_stream()).last().unwrap()["response"].clone();
    w.upstream.push(Scripted::json(200, answer.clone()));
    let (status, body) = w.post("/v1/responses", &key, &codex_like(false)).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), answer);
    let u = &answer["usage"];
    let cached = u["input_tokens_details"]["cached_tokens"].as_u64().unwrap();
    let usage = Usage {
        input_tokens: u["input_tokens"].as_u64().unwrap() - cached,
        cache_read_tokens: cached,
        output_tokens: u["output_tokens"].as_u64().unwrap(),
        ..Default::default()
    };
    assert_eq!(w.money(&user).await, (GRANT_NANOS - cost(&usage), 0));
}

#[tokio::test]
async fn a_passed_through_stream_cut_short_ends_with_response_failed() {
    let w = world().await;
    w.provider("p", "openai", 0).await;
    let (_, key) = w.user().await;
    let stream = openai_responses_stream();
    let cut = &stream[..stream.len() / 2];
    w.upstream.push(Scripted::Answer {
        status: 200,
        headers: vec![("content-type", "text/event-stream".into())],
        chunks: vec![Bytes::copy_from_slice(cut)],
        then_fail: None,
        then_stall: false,
    });
    let (_, body) = w.post("/v1/responses", &key, &codex_like(true)).await;
    let evs = events(&body);
    let last = evs.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["error"]["code"], "server_error");
    assert_eq!(
        last["sequence_number"],
        evs[evs.len() - 2]["sequence_number"].as_u64().unwrap() + 1
    );
}

#[tokio::test]
async fn what_the_provider_cannot_do_is_refused_before_anything_is_held_or_sent() {
    let w = world().await;
    w.provider("p", "anthropic", 0).await;
    let (user, key) = w.user().await;
    for (change, param) in [
        (
            json!({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}),
            "tools[0].type",
        ),
        (json!({"previous_response_id": "resp_1"}), "previous_response_id"),
        (json!({"include": ["message.output_text.logprobs"]}), "include[0]"),
        (
            json!({"text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}}}),
            "text.format",
        ),
    ] {
        let mut req = codex_like(true);
        for (k, v) in change.as_object().unwrap() {
            req[k] = v.clone();
        }
        let (status, body) = w.post("/v1/responses", &key, &req).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains(param.split('[').next().unwrap()),
            "{param}: {v}"
        );
    }
    assert!(w.upstream.requests().is_empty(), "nothing sent");
    assert_eq!(w.money(&user).await, (GRANT_NANOS, 0), "nothing held or billed");
    assert!(w.calls().await.is_empty(), "no call logged");
}

#[tokio::test]
async fn a_request_only_some_candidates_can_take_goes_to_those() {
    let w = world().await;
    w.provider("claude", "anthropic", 10).await;
    w.provider("oai", "openai", 0).await;
    let (_, key) = w.user().await;
    let answer = events(&openai_responses_stream()).last().unwrap()["response"].clone();
    w.upstream.push(Scripted::json(200, answer));
    let mut req = codex_like(false);
    // Log probabilities: only a provider that speaks Responses can give them.
    req["top_logprobs"] = json!(2);
    let (status, _) = w.post("/v1/responses", &key, &req).await;
    assert_eq!(status, 200);
    let urls: Vec<String> = w.upstream.requests().iter().map(|r| r.url.clone()).collect();
    assert_eq!(urls, ["http://oai.test/v1/responses"]);
}

#[tokio::test]
async fn hosted_tools_stored_files_and_prompts_are_refused_even_for_a_provider_that_speaks_responses() {
    let w = world().await;
    w.provider("oai", "openai", 0).await;
    let (user, key) = w.user().await;
    let cases = [
        (
            "tools[1].type",
            json!({"tools": [{"type": "function", "name": "f", "parameters": {}}, {"type": "file_search", "vector_store_ids": ["vs_1"]}]}),
        ),
        (
            "tools[0].type",
            json!({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}),
        ),
        ("prompt", json!({"prompt": {"id": "pmpt_1"}})),
        (
            "input[0]",
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]}),
        ),
        (
            "input[1]",
            json!({"input": [{"role": "user", "content": "hi"}, {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_file", "file_id": "file-2"}]}]}),
        ),
    ];
    for (param, change) in cases {
        let mut req = codex_like(false);
        for (k, v) in change.as_object().unwrap() {
            req[k] = v.clone();
        }
        let (status, body) = w.post("/v1/responses", &key, &req).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 400, "{param}: {v}");
        assert_eq!(v["error"]["param"], param, "{v}");
    }
    assert!(w.upstream.requests().is_empty(), "nothing sent");
    assert_eq!(w.money(&user).await, (GRANT_NANOS, 0), "nothing held or billed");
}
