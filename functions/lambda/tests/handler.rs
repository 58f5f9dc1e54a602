//! The handler called directly with Function URL events built from committed
//! JSON, through the same streaming adapter `run_with_streaming_response`
//! uses: no emulator. One Hub for the whole file (as in one Lambda instance),
//! on the Hrana test server, with the mock provider.

use futures_util::StreamExt;
use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{cost_nanos, nanos, HranaServer, ADMIN_KEY};
use lambda_http::request::LambdaRequest;
use lambda_http::{service_fn, Context, LambdaEvent, Service, StreamAdapter};
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const EVENT: &str = include_str!("data/function_url_request.json");

/// A Function URL event for a request.
fn event(method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> LambdaRequest {
    let mut v: Value = serde_json::from_str(EVENT).unwrap();
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    v["rawPath"] = json!(path);
    v["rawQueryString"] = json!(query);
    v["requestContext"]["http"]["path"] = json!(path);
    v["requestContext"]["http"]["method"] = json!(method);
    if let Some(k) = key {
        v["headers"]["authorization"] = json!(format!("Bearer {k}"));
    }
    if let Some(b) = body {
        v["body"] = json!(b.to_string());
    }
    serde_json::from_value(v).unwrap()
}

struct Setup {
    _hrana: HranaServer,
    mock: MockProvider,
}

static SETUP: OnceLock<Setup> = OnceLock::new();
/// The tests share one Lambda instance: one invocation at a time, as Lambda does.
static INVOCATION: Mutex<()> = Mutex::const_new(());

async fn setup() -> &'static Setup {
    if let Some(s) = SETUP.get() {
        return s;
    }
    let mock = MockProvider::start().await;
    let hrana = tokio::task::spawn_blocking(|| {
        HranaServer::start(&hub_e2e::hrana_script(), &hub_e2e::temp_dir("lambda-handler"))
    })
    .await
    .unwrap();
    // The function's configuration, as the template sets it.
    std::env::set_var("HUB_DATABASE_URL", &hrana.url);
    std::env::set_var("HUB_MASTER_KEY", hub_e2e::worker::MASTER_KEY);
    std::env::set_var("HUB_ADMIN_KEY", ADMIN_KEY);
    std::env::set_var("HUB_MIGRATE", "1");
    SETUP.get_or_init(|| Setup { _hrana: hrana, mock })
}

/// Invokes the function; returns status, headers and the body chunks with their arrival times.
async fn invoke(req: LambdaRequest) -> (u16, Vec<(String, String)>, Vec<(Duration, String)>) {
    let _one = INVOCATION.lock().await;
    let mut svc = StreamAdapter::from(service_fn(hub_lambda::app));
    let started = Instant::now();
    let resp = svc.call(LambdaEvent::new(req, Context::default())).await.unwrap();
    let status = resp.metadata_prelude.status_code.as_u16();
    let headers = resp
        .metadata_prelude
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let mut chunks = Vec::new();
    let mut stream = resp.stream;
    while let Some(chunk) = stream.next().await {
        chunks.push((started.elapsed(), String::from_utf8_lossy(&chunk.unwrap()).into_owned()));
    }
    (status, headers, chunks)
}

async fn json_call(method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, chunks) = invoke(event(method, path, Some(key), body.as_ref())).await;
    let text: String = chunks.into_iter().map(|c| c.1).collect();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// One test function: a Lambda instance lives in one runtime, as the tests' Hub does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_url_events_through_the_streaming_adapter() {
    health_answers_from_a_function_url_event().await;
    a_stream_arrives_in_pieces_and_is_settled_when_it_ends().await;
}

async fn health_answers_from_a_function_url_event() {
    setup().await;
    let (status, headers, chunks) = invoke(event("GET", "/healthz", None, None)).await;
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(k, _)| k == "x-request-id"));
    assert_eq!(chunks.concat_text(), r#"{"status":"ok"}"#);
    let (status, body) = json_call("GET", "/v1/models", "hub_wrong", None).await;
    assert_eq!(status, 401, "{body}");
}

trait Text {
    fn concat_text(&self) -> String;
}

impl Text for Vec<(Duration, String)> {
    fn concat_text(&self) -> String {
        self.iter().map(|c| c.1.as_str()).collect()
    }
}

async fn a_stream_arrives_in_pieces_and_is_settled_when_it_ends() {
    let s = setup().await;
    let (_, p) = json_call(
        "POST",
        "/api/admin/providers",
        ADMIN_KEY,
        Some(json!({"name": "mock", "kind": "openai", "base_url": s.mock.base_url()})),
    )
    .await;
    let provider = p["id"].as_str().unwrap();
    json_call(
        "POST",
        &format!("/api/admin/providers/{provider}/credentials"),
        ADMIN_KEY,
        Some(json!({"name": "main", "secret": "sk-lambda-0001"})),
    )
    .await;
    json_call(
        "POST",
        "/api/admin/models",
        ADMIN_KEY,
        Some(json!({"provider_id": provider, "model": "mock-model", "input_rate": 0.15, "output_rate": 0.6})),
    )
    .await;
    let (_, u) = json_call("POST", "/api/admin/users", ADMIN_KEY, Some(json!({"name": "lin"}))).await;
    let user = u["id"].as_str().unwrap().to_string();
    json_call(
        "POST",
        &format!("/api/admin/users/{user}/grants"),
        ADMIN_KEY,
        Some(json!({"amount": 1, "reason": "test"})),
    )
    .await;
    let (_, k) = json_call(
        "POST",
        &format!("/api/admin/users/{user}/keys"),
        ADMIN_KEY,
        Some(json!({"label": "t"})),
    )
    .await;
    let key = k["key"].as_str().unwrap().to_string();

    let pieces: Vec<String> = (0..5).map(|i| format!("p{i} ")).collect();
    s.mock.set(
        "mock-model",
        Behavior {
            pieces,
            ..Behavior::default().tokens(30, 10).delay(Duration::from_millis(150))
        },
    );
    let body = json!({"model": "mock-model", "stream": true, "messages": [{"role": "user", "content": "go"}]});
    let (status, headers, chunks) = invoke(event("POST", "/v1/chat/completions", Some(&key), Some(&body))).await;
    assert_eq!(status, 200, "{}", chunks.concat_text());
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream")));
    let first = chunks.iter().find(|c| c.1.contains("\"p0 \"")).expect("first piece").0;
    let last = chunks.last().unwrap().0;
    assert!(
        last - first >= Duration::from_millis(500),
        "streamed: first {first:?}, last {last:?}"
    );
    assert!(chunks.concat_text().contains("data: [DONE]"));

    // The invocation ended only after settlement: the balance is already right.
    let (_, u) = json_call("GET", &format!("/api/admin/users/{user}"), ADMIN_KEY, None).await;
    assert_eq!(
        nanos(&u["balance"]),
        1_000_000_000 - cost_nanos(&[(30, "0.15"), (10, "0.6")]),
        "{u}"
    );
    assert_eq!(nanos(&u["held"]), 0);
}

/// One function takes both events it is invoked with: EventBridge's schedule
/// is told apart from a Function URL request by its `source` and `detail-type`.
#[test]
fn a_scheduled_event_and_a_function_url_request_are_told_apart() {
    let scheduled: hub_lambda::Invocation = serde_json::from_str(include_str!("data/scheduled_event.json")).unwrap();
    assert!(matches!(scheduled, hub_lambda::Invocation::Scheduled));
    let request: hub_lambda::Invocation = serde_json::from_str(EVENT).unwrap();
    assert!(matches!(request, hub_lambda::Invocation::Http(_)));
    // Another service's event is neither: the function refuses it.
    let other = r#"{"source": "aws.s3", "detail-type": "Object Created", "detail": {}}"#;
    assert!(serde_json::from_str::<hub_lambda::Invocation>(other).is_err());
}
