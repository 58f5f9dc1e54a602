//! Metrics and traces of `hub serve`: `/metrics` read by the Prometheus
//! reference parser (`prometheus-client`) matches the calls made, as the
//! call log records them; traces reach an OTLP receiver that decodes them
//! with `opentelemetry-proto`, continue the caller's trace, carry the
//! `gen_ai` attributes, and name the provider attempt Hub sent the provider
//! in its `traceparent`; export failures never touch a call.

use futures_util::StreamExt;
use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::telemetry::{parse_prometheus, OtlpReceiver, Page};
use hub_e2e::{eventually, free_port, nanos, Api, HubServer, Launch, ADMIN_KEY};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const RATES: &str = r#"{"input_rate": 0.15, "output_rate": 0.6, "cache_read_rate": 0.075}"#;
const METRICS_TOKEN: &str = "metrics_scraper_token_0123456789";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A Hub whose model `gpt-test` is offered first by `down` (its mock fails
/// every call with a 500) and then by `mock`: every call fails over once.
struct World {
    hub: HubServer,
    api: Api,
    mock: MockProvider,
    down: MockProvider,
}

async fn world(env: Vec<(String, String)>) -> World {
    let (mock, down) = (MockProvider::start().await, MockProvider::start().await);
    let hub = tokio::task::spawn_blocking(move || {
        let launch = Launch {
            env,
            ..Default::default()
        };
        HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), launch)
    })
    .await
    .unwrap();
    let api = Api::new(&hub.base);
    down.set("gpt-test", Behavior::status(500));
    let first = api
        .provider(
            json!({"name": "down", "kind": "openai", "base_url": down.base_url(), "priority": 10}),
            "sk-down-0001",
        )
        .await;
    let second = api
        .provider(
            json!({"name": "mock", "kind": "openai", "base_url": mock.base_url(), "priority": 1}),
            "sk-mock-0001",
        )
        .await;
    for p in [&first, &second] {
        api.add_model(p, "gpt-test", serde_json::from_str(RATES).unwrap()).await;
    }
    World { hub, api, mock, down }
}

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-test", "messages": [{"role": "user", "content": "Say hello to the trace"}], "stream": stream})
}

/// Makes a chat call (reading a stream to its end); returns its status.
async fn call(api: &Api, key: &str, body: &Value, traceparent: Option<&str>) -> u16 {
    let mut req = api
        .http
        .post(format!("{}/v1/chat/completions", api.base))
        .bearer_auth(key)
        .json(body);
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        chunk.unwrap();
    }
    status
}

async fn scrape(url: &str, bearer: Option<&str>) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, resp.text().await.unwrap())
}

/// The page once every call is settled (its figures are added at settlement).
async fn settled_page(url: &str, calls: usize) -> Page {
    eventually("every call in /metrics", Duration::from_secs(10), || async {
        let (status, _, text) = scrape(url, Some(METRICS_TOKEN)).await;
        assert_eq!(status, 200, "{text}");
        let page = parse_prometheus(&text);
        match page.sum("hub_calls_total", &[]) as usize {
            n if n == calls => Ok(page),
            n => Err(format!("{n} calls of {calls}")),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_with_the_reference_parser_and_match_the_calls_made() {
    let metrics_port = free_port();
    let w = world(vec![
        ("HUB_METRICS_TOKEN".into(), METRICS_TOKEN.into()),
        ("HUB_METRICS_LISTEN".into(), format!("127.0.0.1:{metrics_port}")),
    ])
    .await;
    w.mock.set(
        "gpt-test",
        Behavior {
            cached_tokens: 3,
            ..Behavior::text(&["Hello", " there"]).tokens(20, 7)
        },
    );
    let (_user, key) = w.api.user_with_key("ada", "10").await;
    for stream in [false, false, false, true, true] {
        assert_eq!(call(&w.api, &key, &chat(stream), None).await, 200);
    }
    // A model only `down` serves: the call fails, with no other attempt.
    let down_only = w
        .api
        .provider(
            json!({"name": "solo", "kind": "openai", "base_url": w.down.base_url()}),
            "sk-solo-0001",
        )
        .await;
    w.api
        .add_model(&down_only, "gpt-broken", serde_json::from_str(RATES).unwrap())
        .await;
    w.down.set("gpt-broken", Behavior::status(500));
    let broken = json!({"model": "gpt-broken", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(call(&w.api, &key, &broken, None).await, 502);

    // Who may read it: the metrics token or an admin key; not a caller's key.
    let url = w.hub.url("/metrics");
    assert_eq!(scrape(&url, None).await.0, 401);
    assert_eq!(scrape(&url, Some(&key)).await.0, 403);
    assert_eq!(scrape(&url, Some(ADMIN_KEY)).await.0, 200);
    let (_, content_type, _) = scrape(&url, Some(METRICS_TOKEN)).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");

    let page = settled_page(&url, 6).await;
    let ok = [
        ("endpoint", "chat"),
        ("model", "gpt-test"),
        ("provider", "mock"),
        ("status", "success"),
    ];
    assert_eq!(page.kind("hub_calls"), Some("counter"), "{:?}", page.families.keys());
    assert_eq!(page.sum("hub_calls_total", &ok), 5.0);
    assert_eq!(
        page.sum(
            "hub_calls_total",
            &[("model", "gpt-broken"), ("provider", "solo"), ("status", "failed")]
        ),
        1.0
    );
    // Each of the five tried `down` first.
    assert_eq!(page.sum("hub_failovers_total", &[("provider", "down")]), 5.0);

    // Tokens and credits are the call log's, to the nano-credit.
    let calls = w.api.calls("limit=100").await;
    let finals: Vec<&Value> = calls
        .iter()
        .filter(|c| c["status"] == "success" && c["model"] == "gpt-test")
        .collect();
    assert_eq!(finals.len(), 5, "{calls:?}");
    let total = |field: &str| finals.iter().map(|c| c[field].as_u64().unwrap()).sum::<u64>() as f64;
    for (kind, field) in [
        ("input", "input_tokens"),
        ("output", "output_tokens"),
        ("cache_read", "cache_read_tokens"),
    ] {
        let mut labels = ok.to_vec();
        labels.push(("kind", kind));
        assert_eq!(page.sum("hub_tokens_total", &labels), total(field), "{kind} tokens");
    }
    assert_eq!(total("output_tokens"), 35.0);
    let credits: i128 = finals.iter().map(|c| nanos(&c["credits"])).sum();
    let reported = page.sum("hub_credits_total", &ok);
    assert!(
        (reported - credits as f64 / 1e9).abs() < 1e-9,
        "{reported} vs {credits} nanos"
    );
    assert_eq!(page.sum("hub_cache_hits_total", &ok), 5.0);

    // Latency histograms: one observation per call; first bytes for every answer.
    assert_eq!(page.kind("hub_call_duration_seconds"), Some("histogram"));
    assert_eq!(page.sum("hub_call_duration_seconds_count", &ok), 5.0);
    let mut inf = ok.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(page.sum("hub_call_duration_seconds_bucket", &inf), 5.0);
    assert_eq!(page.sum("hub_time_to_first_byte_seconds_count", &ok), 5.0);

    // Gauges: nothing in flight or held once the calls ended; the
    // credentials are in rotation; the process has memory; commits happened.
    for gauge in ["hub_calls_in_flight", "hub_holds_open"] {
        assert_eq!(page.kind(gauge), Some("gauge"), "{gauge} is on the page");
        assert_eq!(page.sum(gauge, &[]), 0.0, "{gauge}");
    }
    assert_eq!(
        page.sum("hub_credential_up", &[("provider", "mock"), ("credential", "main")]),
        1.0
    );
    assert!(page.sum("process_resident_memory_bytes", &[]) > 1e6);
    assert_eq!(page.kind("hub_db_write_queue"), Some("gauge"));

    // Every call's writes were committed (the failed one's too), and timed.
    eventually("the commits", Duration::from_secs(10), || async {
        let page = parse_prometheus(&scrape(&url, Some(METRICS_TOKEN)).await.2);
        match page.sum("hub_db_commit_duration_seconds_count", &[]) {
            n if n >= 6.0 => Ok(()),
            n => Err(format!("{n} commits")),
        }
    })
    .await;

    // The separate address serves the same page (with the token, since one is set).
    let separate = format!("http://127.0.0.1:{metrics_port}/metrics");
    assert_eq!(scrape(&separate, None).await.0, 401);
    let (status, _, text) = scrape(&separate, Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(parse_prometheus(&text).sum("hub_calls_total", &ok), 5.0);
}

/// Spans of `trace` once the exporter sent at least `n`.
async fn spans_of(rx: &OtlpReceiver, trace: &str, n: usize) -> Vec<Value> {
    eventually("the spans at the receiver", Duration::from_secs(15), || async {
        let spans: Vec<Value> = rx.spans().into_iter().filter(|s| s["trace_id"] == trace).collect();
        match spans.len() >= n {
            true => Ok(spans),
            false => Err(format!("{} spans of {n}: {:?}", spans.len(), rx.received())),
        }
    })
    .await
}

fn otlp_env(rx: &OtlpReceiver) -> Vec<(String, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), rx.endpoint()),
        ("OTEL_EXPORTER_OTLP_HEADERS".into(), "x-collector-key=s3cret%21".into()),
        ("OTEL_SERVICE_NAME".into(), "hub-under-test".into()),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn traces_continue_the_callers_trace_with_gen_ai_attributes_and_reach_the_provider() {
    let rx = tokio::task::spawn_blocking(OtlpReceiver::start).await.unwrap();
    let w = world(otlp_env(&rx)).await;
    w.mock.set("gpt-test", Behavior::text(&["Hi", "!"]).tokens(11, 2));
    let (user, key) = w.api.user_with_key("grace", "10").await;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");

    for stream in [false, true] {
        assert_eq!(call(&w.api, &key, &chat(stream), Some(&traceparent)).await, 200);
    }
    // Two calls of two attempts each: 6 spans in the caller's trace.
    let spans = spans_of(&rx, TRACE_ID, 6).await;
    let calls: Vec<&Value> = spans.iter().filter(|s| s["parent_span_id"] == CALLER_SPAN).collect();
    assert_eq!(calls.len(), 2, "{spans:#?}");
    for c in &calls {
        let a = &c["attributes"];
        assert_eq!(c["name"], "chat gpt-test");
        assert_eq!(c["kind"], 2, "a server span");
        assert_eq!(c["service"], "hub-under-test");
        assert_eq!(a["gen_ai.operation.name"], "chat");
        assert_eq!(a["gen_ai.system"], "openai");
        assert_eq!(a["gen_ai.request.model"], "gpt-test");
        assert_eq!(a["gen_ai.response.model"], "gpt-test");
        assert_eq!(a["gen_ai.usage.input_tokens"], 11);
        assert_eq!(a["gen_ai.usage.output_tokens"], 2);
        assert_eq!(a["hub.user.id"], user.as_str());
        assert_eq!(a["hub.provider"], "mock");
        assert_eq!(a["hub.attempts"], 2);
        assert!(a["hub.key.id"].as_str().unwrap().starts_with("key"), "{a}");
        assert!(nanos(&a["hub.credits"]) > 0, "{a}");
        assert_eq!(c["status"], 1, "ok");
        assert!(
            c["events"].as_array().unwrap().is_empty(),
            "no content captured by default"
        );
        assert!(c["end"].as_u64() >= c["start"].as_u64());
    }
    for c in &calls {
        assert_eq!(
            c["attributes"]["gen_ai.response.finish_reasons"],
            json!(["stop"]),
            "whole answers and streams: {c}"
        );
    }

    // Each call's attempts: `down` failed (an error span), then `mock`
    // answered; the provider was sent the answering attempt's own span.
    let sent: Vec<String> = w
        .mock
        .received()
        .iter()
        .map(|r| r.header("traceparent").unwrap_or_default().to_string())
        .collect();
    assert_eq!(sent.len(), 2);
    for c in &calls {
        let attempts: Vec<&Value> = spans.iter().filter(|s| s["parent_span_id"] == c["span_id"]).collect();
        assert_eq!(attempts.len(), 2, "{spans:#?}");
        assert!(attempts.iter().all(|s| s["kind"] == 3), "client spans");
        let failed = attempts
            .iter()
            .find(|s| s["attributes"]["hub.provider"] == "down")
            .unwrap();
        assert_eq!(failed["status"], 2, "{failed}");
        assert_eq!(failed["attributes"]["http.response.status_code"], 502);
        let answered = attempts
            .iter()
            .find(|s| s["attributes"]["hub.provider"] == "mock")
            .unwrap();
        assert_eq!(answered["status"], 1);
        let header = format!("00-{TRACE_ID}-{}-01", answered["span_id"].as_str().unwrap());
        assert!(sent.contains(&header), "{header} not in {sent:?}");
    }
    let down = w.down.received();
    assert_eq!(down.len(), 2, "each traced call tried `down` first");
    assert!(down.iter().all(|r| r
        .header("traceparent")
        .is_some_and(|t| t.starts_with(&format!("00-{TRACE_ID}-")))));

    // A call without a trace context starts its own trace.
    let before = rx.spans().len();
    assert_eq!(call(&w.api, &key, &chat(false), None).await, 200);
    let fresh = eventually("a new trace", Duration::from_secs(15), || async {
        let spans = rx.spans();
        match spans.len() >= before + 3 {
            true => Ok(spans[before..].to_vec()),
            false => Err("not yet".to_string()),
        }
    })
    .await;
    assert!(fresh
        .iter()
        .all(|s| s["trace_id"] != TRACE_ID && s["trace_id"] == fresh[0]["trace_id"]));
    // Every export carried OTEL_EXPORTER_OTLP_HEADERS and protobuf.
    for r in rx.received() {
        assert_eq!(r["content_type"], "application/x-protobuf");
        assert_eq!(r["status"], 200, "{r}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prompts_and_answers_are_recorded_only_when_asked_and_cut_to_the_cap() {
    let rx = tokio::task::spawn_blocking(OtlpReceiver::start).await.unwrap();
    let mut env = otlp_env(&rx);
    env.push(("HUB_TRACE_CONTENT".into(), "16".into()));
    let w = world(env).await;
    w.mock.set("gpt-test", Behavior::text(&["Hello", ", world"]));
    let (_, key) = w.api.user_with_key("lin", "10").await;
    let body = chat(false);
    let answer = w
        .api
        .http
        .post(format!("{}/v1/chat/completions", w.api.base))
        .bearer_auth(&key)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(answer.contains("Hello, world"), "{answer}");
    let spans = spans_of(&rx, TRACE_ID, 3).await;
    let c = spans.iter().find(|s| s["parent_span_id"] == CALLER_SPAN).unwrap();
    let events = c["events"].as_array().unwrap();
    let event = |name: &str, key: &str| {
        let e = events
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {c}"));
        e["attributes"][key].as_str().unwrap().to_string()
    };
    // The request as sent and the answer as received, each cut to 16 bytes.
    let sent = serde_json::to_string(&body).unwrap();
    assert_eq!(event("gen_ai.content.prompt", "gen_ai.prompt"), sent[..16]);
    assert_eq!(event("gen_ai.content.completion", "gen_ai.completion"), answer[..16]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_fails_or_is_not_there_never_touches_a_call() {
    // Nothing listens at the endpoint.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let w = world(vec![
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(),
            format!("{nowhere}/v1/traces"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "50".into()),
        ("HUB_METRICS_TOKEN".into(), METRICS_TOKEN.into()),
    ])
    .await;
    let (_, key) = w.api.user_with_key("max", "10").await;
    let started = Instant::now();
    for stream in [false, true, false] {
        assert_eq!(call(&w.api, &key, &chat(stream), None).await, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let url = w.hub.url("/metrics");
    eventually("failed exports counted", Duration::from_secs(10), || async {
        let (_, _, text) = scrape(&url, Some(METRICS_TOKEN)).await;
        let page = parse_prometheus(&text);
        match page.sum("hub_otlp_export_failures_total", &[]) {
            n if n >= 1.0 => Ok(()),
            n => Err(format!("{n} failures")),
        }
    })
    .await;

    // A collector that answers 503 loses that batch, and the next one is delivered.
    let mut rx = tokio::task::spawn_blocking(OtlpReceiver::start).await.unwrap();
    rx.fail_next(1);
    let w = world(otlp_env(&rx)).await;
    let (_, key) = w.api.user_with_key("max", "10").await;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    assert_eq!(call(&w.api, &key, &chat(false), Some(&traceparent)).await, 200);
    eventually("the refused export", Duration::from_secs(10), || async {
        match rx.received().iter().any(|r| r["status"] == 503) {
            true => Ok(()),
            false => Err("not yet".to_string()),
        }
    })
    .await;
    assert_eq!(call(&w.api, &key, &chat(true), Some(&traceparent)).await, 200);
    // The refused batch is not sent again: what arrived is the second call's.
    let spans = spans_of(&rx, TRACE_ID, 3).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert!(
        spans.iter().all(|s| s["attributes"]["hub.stream"] == true),
        "{spans:#?}"
    );
}
