//! Telemetry on Lambda, where nothing can be scraped: a call's spans and the
//! metrics go out over OTLP as background work of its invocation, before
//! the invocation ends, to a receiver that decodes them with
//! `opentelemetry-proto`. The handler is called directly, through the
//! streaming adapter, as in `handler.rs`.

use futures_util::StreamExt;
use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::telemetry::OtlpReceiver;
use hub_e2e::{HranaServer, ADMIN_KEY};
use lambda_http::request::LambdaRequest;
use lambda_http::{service_fn, Context, LambdaEvent, Service, StreamAdapter};
use serde_json::{json, Value};

const EVENT: &str = include_str!("data/function_url_request.json");
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

fn event(method: &str, path: &str, key: &str, body: Option<&Value>, traceparent: Option<&str>) -> LambdaRequest {
    let mut v: Value = serde_json::from_str(EVENT).unwrap();
    v["rawPath"] = json!(path);
    v["rawQueryString"] = json!("");
    v["requestContext"]["http"]["path"] = json!(path);
    v["requestContext"]["http"]["method"] = json!(method);
    v["headers"]["authorization"] = json!(format!("Bearer {key}"));
    if let Some(tp) = traceparent {
        v["headers"]["traceparent"] = json!(tp);
    }
    if let Some(b) = body {
        v["body"] = json!(b.to_string());
    }
    serde_json::from_value(v).unwrap()
}

/// Invokes the function to the end of its response; returns status and body.
async fn invoke(req: LambdaRequest) -> (u16, String) {
    let mut svc = StreamAdapter::from(service_fn(hub_lambda::app));
    let resp = svc.call(LambdaEvent::new(req, Context::default())).await.unwrap();
    let status = resp.metadata_prelude.status_code.as_u16();
    let mut text = String::new();
    let mut stream = resp.stream;
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    (status, text)
}

async fn admin(path: &str, body: Value) -> Value {
    let (status, text) = invoke(event("POST", path, ADMIN_KEY, Some(&body), None)).await;
    assert!(status < 300, "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_spans_and_metrics_leave_over_otlp_before_its_invocation_ends() {
    let rx = tokio::task::spawn_blocking(OtlpReceiver::start).await.unwrap();
    let mock = MockProvider::start().await;
    let hrana =
        tokio::task::spawn_blocking(|| HranaServer::start(&hub_e2e::hrana_script(), &hub_e2e::temp_dir("lambda-otlp")))
            .await
            .unwrap();
    std::env::set_var("HUB_DATABASE_URL", &hrana.url);
    std::env::set_var("HUB_MASTER_KEY", hub_e2e::worker::MASTER_KEY);
    std::env::set_var("HUB_ADMIN_KEY", ADMIN_KEY);
    std::env::set_var("HUB_MIGRATE", "1");
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint());
    std::env::set_var("OTEL_SERVICE_NAME", "hub-lambda");

    let p = admin(
        "/api/admin/providers",
        json!({"name": "mock", "kind": "openai", "base_url": mock.base_url()}),
    )
    .await;
    let provider = p["id"].as_str().unwrap();
    admin(
        &format!("/api/admin/providers/{provider}/credentials"),
        json!({"name": "main", "secret": "sk-lambda-0001"}),
    )
    .await;
    admin(
        "/api/admin/models",
        json!({"provider_id": provider, "model": "mock-model", "input_rate": 0.15, "output_rate": 0.6}),
    )
    .await;
    let u = admin("/api/admin/users", json!({"name": "lin"})).await;
    let user = u["id"].as_str().unwrap().to_string();
    admin(
        &format!("/api/admin/users/{user}/grants"),
        json!({"amount": 1, "reason": "test"}),
    )
    .await;
    let k = admin(&format!("/api/admin/users/{user}/keys"), json!({"label": "t"})).await;
    let key = k["key"].as_str().unwrap().to_string();
    mock.set("mock-model", Behavior::default().tokens(30, 10));

    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    for stream in [false, true] {
        let body = json!({"model": "mock-model", "stream": stream, "messages": [{"role": "user", "content": "go"}]});
        let (status, text) = invoke(event(
            "POST",
            "/v1/chat/completions",
            &key,
            Some(&body),
            Some(&traceparent),
        ))
        .await;
        assert_eq!(status, 200, "{text}");
    }

    // Both invocations ended after their exports: nothing to wait for.
    let spans: Vec<Value> = rx.spans().into_iter().filter(|s| s["trace_id"] == TRACE_ID).collect();
    assert_eq!(
        spans.len(),
        4,
        "a call span and an attempt span per call: {:?}",
        rx.received()
    );
    let calls: Vec<&Value> = spans.iter().filter(|s| s["parent_span_id"] == CALLER_SPAN).collect();
    assert_eq!(calls.len(), 2);
    for c in calls {
        assert_eq!(c["service"], "hub-lambda");
        assert_eq!(c["attributes"]["gen_ai.request.model"], "mock-model");
        assert_eq!(c["attributes"]["gen_ai.usage.input_tokens"], 30);
        assert_eq!(c["attributes"]["gen_ai.usage.output_tokens"], 10);
        assert_eq!(c["attributes"]["hub.user.id"], user.as_str());
    }
    assert!(mock
        .received()
        .iter()
        .all(|r| r.header("traceparent").is_some_and(|t| t.contains(TRACE_ID))));

    // The last metrics export counts both calls, and their tokens.
    let metrics = rx.metrics();
    let last = |name: &str| {
        metrics
            .iter()
            .rev()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {metrics:?}"))
            .clone()
    };
    let calls = last("hub.calls");
    let points = calls["sum"]["data_points"].as_array().unwrap();
    let total: f64 = points.iter().map(|p| p["as_double"].as_f64().unwrap()).sum();
    assert_eq!(total, 2.0, "{calls}");
    assert_eq!(
        calls["sum"]["aggregation_temporality"],
        "AGGREGATION_TEMPORALITY_CUMULATIVE"
    );
    assert_eq!(calls["sum"]["is_monotonic"], true);
    let tokens = last("hub.tokens");
    let output: f64 = tokens["sum"]["data_points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["key"] == "kind" && a["value"]["string_value"] == "output")
        })
        .map(|p| p["as_double"].as_f64().unwrap())
        .sum();
    assert_eq!(output, 20.0);
    let duration = last("hub.call.duration");
    let count: u64 = duration["histogram"]["data_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(count, 2);
    assert!(rx.received().iter().all(|r| r["status"] == 200));
}
