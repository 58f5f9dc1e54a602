//! Anthropic callers in process: Messages passed through to Anthropic
//! providers as sent, prompt-cache usage billed at its own rates, caching
//! shown to operators, and `count_tokens`. A scripted provider records what
//! Hub sent; the database is real.

use bytes::Bytes;
use futures_util::StreamExt;
use hub_core::http::{Body, Method, Request, Response};
use hub_core::testing::{Collector, Scripted, ScriptedUpstream};
use hub_core::{Hub, HubOptions};
use serde_json::{json, Value};
use std::sync::Arc;

const ADMIN: &str = "hub_anthropic_admin_key_0123456789";

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
    let f = common::start(common::temp_dir("anthropic"), ADMIN, setup).await;
    World {
        hub: f.hub,
        upstream: f.upstream,
        background: f.background,
        _dir: f.dir,
    }
}

fn request(path: &str, key: &str, body: Bytes, headers: &[(&str, &str)]) -> Request {
    let mut b = http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("x-api-key", key)
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body).unwrap()
}

async fn body_of(res: Response) -> Bytes {
    match res.into_body() {
        Body::Full(b) => b,
        Body::Stream(mut s) => {
            let mut out = Vec::new();
            while let Some(chunk) = s.next().await {
                out.extend_from_slice(&chunk.unwrap());
            }
            Bytes::from(out)
        }
    }
}

fn nanos(v: &Value) -> i64 {
    hub_core::Credits::from_json(v).unwrap().nanos()
}

/// Sonnet-like rates, credits per million tokens: input 3, output 15,
/// cache read 0.3, 5-minute write 3.75, 1-hour write 6.
const RATES: [(&str, &str); 5] = [
    ("input_rate", "3"),
    ("output_rate", "15"),
    ("cache_read_rate", "0.3"),
    ("cache_write_rate", "3.75"),
    ("cache_write_1h_rate", "6"),
];

impl World {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string())))
            .unwrap();
        let res = self.hub.handle(req).await;
        let status = res.status();
        let v: Value = serde_json::from_slice(&body_of(res).await).unwrap_or(Value::Null);
        assert!(status.as_u16() < 300, "{path}: {status} {v}");
        v
    }

    /// A provider of `kind` named `name` offering model "m" at [`RATES`].
    async fn provider(&self, name: &str, kind: &str) {
        let p = self
            .call(
                Method::POST,
                "/api/admin/providers",
                Some(json!({"name": name, "kind": kind, "base_url": format!("http://{name}.test/v1")})),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.call(
            Method::POST,
            &format!("/api/admin/providers/{p}/credentials"),
            Some(json!({"name": "c", "secret": format!("sk-{name}")})),
        )
        .await;
        let mut model = json!({"provider_id": p, "model": "m"});
        for (k, v) in RATES {
            model[k] = json!(v);
        }
        self.call(Method::POST, "/api/admin/models", Some(model)).await;
    }

    /// A user with 1 credit and a key.
    async fn user(&self) -> (String, String) {
        let u = self
            .call(Method::POST, "/api/admin/users", Some(json!({"name": "u"})))
            .await;
        let id = u["id"].as_str().unwrap().to_string();
        let grants = format!("/api/admin/users/{id}/grants");
        self.call(Method::POST, &grants, Some(json!({"amount": "1"}))).await;
        let k = self
            .call(Method::POST, &format!("/api/admin/users/{id}/keys"), Some(json!({})))
            .await;
        (id, k["key"].as_str().unwrap().to_string())
    }

    async fn balance(&self, user: &str) -> (i64, i64) {
        let u = self.call(Method::GET, &format!("/api/admin/users/{user}"), None).await;
        (nanos(&u["balance"]), nanos(&u["held"]))
    }

    async fn calls(&self) -> Vec<Value> {
        self.call(Method::GET, "/api/admin/calls", None).await["data"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn post(&self, path: &str, key: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Response) {
        let res = self
            .hub
            .handle(request(path, key, Bytes::from(body.to_string()), headers))
            .await;
        (res.status().as_u16(), res)
    }
}

/// A request the way Claude Code writes one (odd spacing kept on purpose),
/// with what Hub's internal model cannot carry: a PDF document, a server
/// tool, `context_management`, a thinking block with its signature, and
/// `cache_control` breakpoints (one of them for an hour).
const CLAUDE_CODE_LIKE: &str = r#"{"model" : "anthropic/m", "max_tokens":32000,
 "system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.328"},
           {"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral","ttl":"1h"}}],
 "tools":[{"name":"Bash","description":"run","input_schema":{"type":"object"},"defer_loading":true},
          {"type":"web_search_20250305","name":"web_search","max_uses":2,"cache_control":{"type":"ephemeral"}}],
 "context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},
 "thinking":{"type":"enabled","budget_tokens":31999,"display":"omitted"},
 "messages":[{"role":"user","content":[
     {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0xLjQK"},"citations":{"enabled":true}},
     {"type":"text","text":"Summarise","cache_control":{"type":"ephemeral"}}]},
   {"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"sig=="},{"type":"text","text":"Sure."}]},
   {"role":"user","content":"Go on"}],
 "metadata":{"user_id":"{\"session_id\":\"s\"}"}, "stream":true}"#;

const BETAS: &str = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27";

/// An Anthropic stream: cache reads of 2000, writes of 1000 (400 of them for
/// an hour), 10 uncached input tokens, 7 output tokens (cumulative in `message_delta`).
fn anthropic_stream() -> Vec<String> {
    let start = json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],
        "stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":1000,"cache_read_input_tokens":2000,
        "cache_creation":{"ephemeral_5m_input_tokens":600,"ephemeral_1h_input_tokens":400},"output_tokens":1}}});
    vec![
        format!("event: message_start\ndata: {start}\n\n"),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\",\"citations\":[]}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n".into(),
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n".into(),
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"citations_delta\",\"citation\":{\"type\":\"page_location\"}}}\n\n".into(),
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n".into(),
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n".into(),
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".into(),
    ]
}

/// 10×3 + 7×15 + 2000×0.3 + 600×3.75 + 400×6 = 5385 credits per million.
const STREAM_COST: i64 = 5_385_000;
/// 3000 cached tokens at the input rate (9000 per million) less what they cost (5250).
const STREAM_SAVED: &str = "0.00375";

#[tokio::test]
async fn messages_reach_an_anthropic_provider_as_sent_and_the_stream_comes_back_untouched() {
    let w = world().await;
    w.provider("anthropic", "anthropic").await;
    let (user, key) = w.user().await;
    let stream = anthropic_stream();
    w.upstream
        .push(Scripted::sse(&stream.iter().map(String::as_str).collect::<Vec<_>>()));
    let headers = [("anthropic-version", "2023-06-01"), ("anthropic-beta", BETAS)];
    let (status, res) = w.post("/v1/messages?beta=true", &key, CLAUDE_CODE_LIKE, &headers).await;
    assert_eq!(status, 200);
    let got = body_of(res).await;
    assert_eq!(String::from_utf8_lossy(&got), stream.concat(), "relayed byte for byte");
    w.background.run().await;

    let sent = &w.upstream.requests()[0];
    assert_eq!(sent.url, "http://anthropic.test/v1/messages");
    let expected = CLAUDE_CODE_LIKE.replace(r#""model" : "anthropic/m""#, r#""model" : "m""#);
    assert_eq!(String::from_utf8_lossy(&sent.body), expected, "only the model changed");
    let header = |name: &str| {
        sent.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(header("anthropic-beta"), [BETAS]);
    assert_eq!(header("anthropic-version"), ["2023-06-01"]);
    assert_eq!(
        header("x-api-key"),
        ["sk-anthropic"],
        "the credential, never the caller's key"
    );
    assert!(header("authorization").is_empty());

    assert_eq!(w.balance(&user).await, (1_000_000_000 - STREAM_COST, 0));
    let call = &w.calls().await[0];
    assert_eq!(call["status"], "success");
    assert_eq!(
        (
            &call["input_tokens"],
            &call["output_tokens"],
            &call["cache_read_tokens"]
        ),
        (&json!(10), &json!(7), &json!(2000))
    );
    assert_eq!(
        (&call["cache_write_tokens"], &call["cache_write_1h_tokens"]),
        (&json!(1000), &json!(400))
    );
    assert_eq!(nanos(&call["credits"]), STREAM_COST);
    assert_eq!(call["cache_saved"], STREAM_SAVED);
    let usage = w.call(Method::GET, "/api/admin/usage?group_by=model", None).await;
    assert_eq!(usage["data"][0]["cache_saved"], STREAM_SAVED, "{usage}");
    assert_eq!(usage["data"][0]["cache_read_tokens"], 2000);
}

#[tokio::test]
async fn a_whole_answer_is_relayed_as_sent_and_billed_from_its_usage() {
    let w = world().await;
    w.provider("anthropic", "anthropic").await;
    let (user, key) = w.user().await;
    let answer = json!({"id":"msg_1","type":"message","role":"assistant","model":"m","container":{"id":"c1"},
        "content":[{"type":"text","text":"Hi","citations":[{"type":"char_location","cited_text":"x"}]}],
        "stop_reason":"end_turn","stop_sequence":null,
        "usage":{"input_tokens":10,"cache_creation_input_tokens":1000,"cache_read_input_tokens":2000,
                 "cache_creation":{"ephemeral_5m_input_tokens":600,"ephemeral_1h_input_tokens":400},"output_tokens":7}});
    w.upstream.push(Scripted::json(200, answer.clone()));
    let body = CLAUDE_CODE_LIKE.replace(r#""stream":true"#, r#""stream":false"#);
    let (status, res) = w.post("/v1/messages", &key, &body, &[]).await;
    assert_eq!(status, 200);
    let credits = res
        .headers()
        .get("x-hub-credits")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let got: Value = serde_json::from_slice(&body_of(res).await).unwrap();
    assert_eq!(got, answer);
    assert_eq!(credits, "0.005385");
    w.background.run().await;
    assert_eq!(w.balance(&user).await, (1_000_000_000 - STREAM_COST, 0));
    let header = |name: &str| w.upstream.requests()[0].headers.iter().any(|(k, _)| k == name);
    assert!(!header("anthropic-beta"), "no beta the caller did not send");
}

#[tokio::test]
async fn the_providers_error_event_ends_the_stream_as_sent() {
    let w = world().await;
    w.provider("anthropic", "anthropic").await;
    let (user, key) = w.user().await;
    let mut stream = anthropic_stream();
    stream.truncate(3);
    stream.push("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n".into());
    w.upstream
        .push(Scripted::sse(&stream.iter().map(String::as_str).collect::<Vec<_>>()));
    let (_, res) = w.post("/v1/messages", &key, CLAUDE_CODE_LIKE, &[]).await;
    assert_eq!(String::from_utf8_lossy(&body_of(res).await), stream.concat());
    w.background.run().await;
    let call = &w.calls().await[0];
    assert_eq!(call["status"], "failed");
    assert!(call["error"].as_str().unwrap().contains("Overloaded"), "{call}");
    // Billed for the usage reported before the failure (output 1, from message_start).
    let (balance, held) = w.balance(&user).await;
    assert_eq!(held, 0);
    assert_eq!(1_000_000_000 - balance, nanos(&call["credits"]));
}

#[tokio::test]
async fn what_only_anthropic_takes_is_refused_elsewhere_naming_it_before_any_charge() {
    let w = world().await;
    w.provider("openai", "openai").await;
    let (user, key) = w.user().await;
    let body = CLAUDE_CODE_LIKE.replace("anthropic/m", "openai/m");
    let (status, res) = w.post("/v1/messages", &key, &body, &[]).await;
    let err: Value = serde_json::from_slice(&body_of(res).await).unwrap();
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["type"], "error");
    assert!(
        err["error"]["message"].as_str().unwrap().contains(
            "`messages[0].content[0].type` `document` content blocks are only supported by Anthropic providers"
        ),
        "{err}"
    );
    assert!(w.upstream.requests().is_empty());
    w.background.run().await;
    assert_eq!(w.balance(&user).await, (1_000_000_000, 0));
}

#[tokio::test]
async fn count_tokens_is_asked_of_anthropic_and_estimated_elsewhere_and_never_billed() {
    let w = world().await;
    w.provider("anthropic", "anthropic").await;
    w.provider("openai", "openai").await;
    let (user, key) = w.user().await;
    let body = r#"{"model":"anthropic/m","messages":[{"role":"user","content":"hello there"}],"tools":[{"name":"f","input_schema":{"type":"object"}}]}"#;
    w.upstream.push(Scripted::json(200, json!({"input_tokens": 2095})));
    let beta = [("anthropic-beta", "token-counting-2024-11-01")];
    let (status, res) = w.post("/v1/messages/count_tokens?beta=true", &key, body, &beta).await;
    assert_eq!(status, 200);
    assert!(res.headers().get("x-hub-estimated").is_none());
    assert_eq!(body_of(res).await, r#"{"input_tokens":2095}"#);
    let sent = &w.upstream.requests()[0];
    assert_eq!(sent.url, "http://anthropic.test/v1/messages/count_tokens");
    assert_eq!(String::from_utf8_lossy(&sent.body), body.replace("anthropic/m", "m"));
    assert!(sent
        .headers
        .iter()
        .any(|(k, v)| k == "anthropic-beta" && v == "token-counting-2024-11-01"));

    let (status, res) = w
        .post(
            "/v1/messages/count_tokens",
            &key,
            &body.replace("anthropic/m", "openai/m"),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(res.headers().get("x-hub-estimated").unwrap(), "true");
    let estimate: Value = serde_json::from_slice(&body_of(res).await).unwrap();
    assert!(estimate["input_tokens"].as_u64().unwrap() > 0, "{estimate}");
    assert_eq!(w.upstream.requests().len(), 1, "an estimate asks no provider");

    let (status, res) = w.post("/v1/messages/count_tokens", "hub_wrong", body, &[]).await;
    assert_eq!(status, 401);
    let err: Value = serde_json::from_slice(&body_of(res).await).unwrap();
    assert_eq!(err["error"]["type"], "authentication_error", "{err}");

    w.background.run().await;
    assert_eq!(w.balance(&user).await, (1_000_000_000, 0));
    assert!(w.calls().await.is_empty(), "no call-log rows");
}
