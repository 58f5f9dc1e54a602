//! A mock model provider on 127.0.0.1 that speaks every protocol Hub calls
//! (OpenAI-compatible, Anthropic Messages, Gemini, Bedrock Converse with its
//! binary event stream, Ideogram, embeddings, images), records what it
//! received (the full URL, query string included), and answers as a test
//! tells it to, per model name. The protocol is picked by the request path,
//! as the real providers' URLs differ.
//!
//! It refuses what the real provider would refuse (see `mock/checks.rs`): an
//! unknown path or method, a missing credential header, a SigV4 signature
//! that does not verify against [`AWS_TEST_KEYS`], a body without the
//! protocol's required fields, a Gemini stream without `?alt=sse`; each as a
//! 4xx in that provider's error shape naming the problem. So a test fails
//! when Hub sends something a provider would not accept.

mod cache;
mod checks;
mod media;
mod responses;
mod sigv4;

pub use cache::{CacheUsage, MIN_CACHEABLE_TOKENS};
pub use media::{speech_audio, VIDEO_BYTES};

use bytes::Bytes;
use checks::{Endpoint, Incoming};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How the mock answers calls for one model.
#[derive(Debug, Clone)]
pub struct Behavior {
    /// HTTP status; non-2xx answers carry an OpenAI error body.
    pub status: u16,
    /// Content pieces, one per streamed chunk (joined for non-streamed answers).
    pub pieces: Vec<String>,
    /// Pause before each streamed chunk.
    pub delay: Duration,
    /// Pause before the response headers.
    pub header_delay: Duration,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    /// Whether usage is reported at all.
    pub usage: bool,
    /// Fail the stream (drop the connection) after this many chunks.
    pub break_after: Option<usize>,
    /// End the stream with the protocol's own error event after this many chunks.
    pub error_after: Option<usize>,
    /// Tool calls made after the text: name and argument pieces.
    pub tool_calls: Vec<(String, Vec<String>)>,
    /// Prompt tokens written to the cache (Anthropic and Bedrock report them).
    pub cache_write_tokens: u64,
    /// Of those, written for an hour (Anthropic's `ephemeral_1h_input_tokens`).
    pub cache_write_1h_tokens: u64,
    /// Anthropic Messages requests are served from a prompt cache that
    /// behaves as Anthropic documents (see `mock/cache.rs`): the usage
    /// reported comes from it, not from the token counts above.
    pub prompt_caching: bool,
    /// Images an image request returns (default: as many as asked).
    pub images: Option<u64>,
    /// A way to misbehave, for fault tests.
    pub fault: Option<Fault>,
    /// Statuses for the next requests, one each, before `status` applies (bursts of 429/5xx).
    pub statuses: Vec<u16>,
    /// Error answers quote the credential they were sent, as some providers do.
    pub echo_credential: bool,
    /// The message of an error answer (default `mock failure <status>`), e.g.
    /// one quoting the caller's own words as providers do.
    pub error_message: Option<String>,
    /// A tool round trip: answer with the tool calls only until the request
    /// carries a tool's result, then with the text only.
    pub until_tool_result: bool,
    /// The `usage` a transcription answer reports (OpenAI's
    /// `{"type": "duration", "seconds"}` or `{"type": "tokens", …}`).
    pub transcript_usage: Value,
    /// Polls a video job answers "in progress" before it ends.
    pub video_polls: usize,
    /// The seconds a finished video reports (default: as asked).
    pub video_seconds: Option<String>,
    /// The video job fails with this message.
    pub video_failure: Option<String>,
}

/// How a provider can misbehave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Stop sending after this many chunks but keep the connection open.
    StallAfter(usize),
    /// A whole answer that is not JSON.
    MalformedJson,
    /// A stream whose second event's data is not JSON.
    MalformedSse,
    /// One streamed event of this many bytes with no end.
    Oversized(usize),
    /// 200 with an HTML page instead of the answer.
    WrongContentType,
}

impl Behavior {
    /// The default answer with other text pieces.
    pub fn text(pieces: &[&str]) -> Behavior {
        Behavior {
            pieces: pieces.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }
    }

    pub fn status(status: u16) -> Behavior {
        Behavior {
            status,
            ..Default::default()
        }
    }

    pub fn tokens(mut self, prompt: u64, completion: u64) -> Behavior {
        self.prompt_tokens = prompt;
        self.completion_tokens = completion;
        self
    }

    pub fn delay(mut self, d: Duration) -> Behavior {
        self.delay = d;
        self
    }

    pub fn tool(mut self, name: &str, pieces: &[&str]) -> Behavior {
        self.tool_calls
            .push((name.to_string(), pieces.iter().map(|p| p.to_string()).collect()));
        self
    }

    /// Tokens that are not cached (what every protocol bills at the input rate).
    fn uncached(&self) -> u64 {
        self.prompt_tokens
            .saturating_sub(self.cached_tokens)
            .saturating_sub(self.cache_write_tokens)
    }
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            status: 200,
            pieces: vec!["Hello".into(), ", ".into(), "world".into(), "!".into()],
            delay: Duration::ZERO,
            header_delay: Duration::ZERO,
            prompt_tokens: 12,
            completion_tokens: 4,
            cached_tokens: 0,
            usage: true,
            break_after: None,
            error_after: None,
            tool_calls: Vec::new(),
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            prompt_caching: false,
            images: None,
            fault: None,
            statuses: Vec::new(),
            echo_credential: false,
            error_message: None,
            until_tool_result: false,
            transcript_usage: json!({"type": "duration", "seconds": 3}),
            video_polls: 1,
            video_seconds: None,
            video_failure: None,
        }
    }
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The query string, as sent.
    pub query: Option<String>,
    /// The URL as sent: the host it was sent to, the path and the query.
    pub url: String,
    pub authorization: Option<String>,
    /// Every header, names lower-case.
    pub headers: HashMap<String, String>,
    pub body: Value,
    /// The body as sent (multipart bodies are not JSON).
    pub raw: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// A query parameter's value, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_pairs(self.query.as_deref())
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// The AWS key pairs the suites configure for Bedrock (`ACCESS_KEY_ID:SECRET`):
/// the mock verifies SigV4 signatures made with them, and refuses other keys
/// as AWS does. [`MockProvider::aws_key`] adds more.
pub const AWS_TEST_KEYS: &[(&str, &str)] = &[
    ("AKIDMOCK0001", "secret/mock+key"),
    ("AKID0001", "sec0001"),
    ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
];

#[derive(Default)]
struct State {
    behaviors: Mutex<HashMap<String, Behavior>>,
    received: Mutex<Vec<Received>>,
    /// Streams whose reader went away before the last chunk.
    abandoned: AtomicUsize,
    completed: AtomicUsize,
    /// When the last chunk of the latest stream was written.
    last_finish: Mutex<Option<Instant>>,
    /// While true, streams stop after their first chunk.
    paused: Option<tokio::sync::watch::Sender<bool>>,
    /// Credentials answered with 401, whatever the protocol.
    rejected: Mutex<Vec<String>>,
    /// Every request answered with this redirect (status, location).
    redirect: Mutex<Option<(u16, String)>>,
    /// Access key id → secret key, to verify SigV4 signatures.
    aws_keys: Mutex<HashMap<String, String>>,
    prompt_cache: cache::PromptCache,
    /// The usage reported to each Anthropic Messages request, in order.
    reported: Mutex<Vec<Value>>,
    /// Video jobs by id.
    videos: Mutex<HashMap<String, media::Job>>,
}

/// Stops the mock's accept loop when the last clone of a [`MockProvider`] is
/// dropped (a test that ends or panics), not only when its runtime ends.
struct Stopper(Arc<tokio::sync::Notify>);

impl Drop for Stopper {
    fn drop(&mut self) {
        // A stored permit: the loop sees it even if it is not waiting right now.
        self.0.notify_one();
    }
}

#[derive(Clone)]
pub struct MockProvider {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<Stopper>,
}

impl MockProvider {
    pub async fn start() -> MockProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock provider");
        let addr = listener.local_addr().expect("mock address");
        let (paused, _) = tokio::sync::watch::channel(false);
        let state = Arc::new(State {
            paused: Some(paused),
            aws_keys: Mutex::new(
                AWS_TEST_KEYS
                    .iter()
                    .map(|(id, secret)| (id.to_string(), secret.to_string()))
                    .collect(),
            ),
            ..Default::default()
        });
        let stop = Arc::new(tokio::sync::Notify::new());
        let (st, sp) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        // A failed accept (a connection reset while queued, no
                        // descriptors left for a moment) must not stop the mock.
                        let Ok((stream, _)) = accepted else {
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        let st = st.clone();
                        tokio::spawn(async move {
                            let svc = hyper::service::service_fn(move |req| answer(st.clone(), req));
                            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                        });
                    }
                    _ = sp.notified() => return,
                }
            }
        });
        MockProvider {
            addr,
            state,
            stop: Arc::new(Stopper(stop)),
        }
    }

    /// The base URL to configure as a provider's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn set(&self, model: &str, behavior: Behavior) {
        self.state.behaviors.lock().unwrap().insert(model.to_string(), behavior);
    }

    /// Answers requests made with this credential with 401 until [`accept`](Self::accept).
    pub fn reject(&self, credential: &str) {
        self.state.rejected.lock().unwrap().push(credential.to_string());
    }

    pub fn accept(&self, credential: &str) {
        self.state.rejected.lock().unwrap().retain(|c| c != credential);
    }

    /// Accepts SigV4 signatures made with this key pair; returns the
    /// credential to configure (`ACCESS_KEY_ID:SECRET`).
    pub fn aws_key(&self, access_key_id: &str, secret: &str) -> String {
        self.state
            .aws_keys
            .lock()
            .unwrap()
            .insert(access_key_id.to_string(), secret.to_string());
        format!("{access_key_id}:{secret}")
    }

    /// Answers every request with a redirect to `location` (a provider moved,
    /// or one trying to send Hub elsewhere).
    pub fn redirect(&self, status: u16, location: &str) {
        *self.state.redirect.lock().unwrap() = Some((status, location.to_string()));
    }

    /// The Anthropic/Gemini/Bedrock/Ideogram base URL (no `/v1`).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The usage the mock reported to each Anthropic Messages request, in order.
    pub fn reported_usage(&self) -> Vec<Value> {
        self.state.reported.lock().unwrap().clone()
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn abandoned(&self) -> usize {
        self.state.abandoned.load(Ordering::SeqCst)
    }

    pub fn completed(&self) -> usize {
        self.state.completed.load(Ordering::SeqCst)
    }

    pub fn last_finish(&self) -> Option<Instant> {
        *self.state.last_finish.lock().unwrap()
    }

    /// Holds every stream after its first chunk until [`resume`](Self::resume).
    pub fn pause_streams(&self) {
        if let Some(p) = &self.state.paused {
            p.send_replace(true);
        }
    }

    pub fn resume_streams(&self) {
        if let Some(p) = &self.state.paused {
            p.send_replace(false);
        }
    }

    pub fn stop(&self) {
        self.stop.0.notify_one();
    }
}

type Out = BoxBody<Bytes, Infallible>;

fn full(status: u16, body: Value) -> hyper::Response<Out> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

/// The protocols the mock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    OpenAi,
    Anthropic,
    Gemini,
    Bedrock,
}

/// The credential a request presents, whatever the protocol's header.
fn credential(headers: &HashMap<String, String>) -> Option<String> {
    if let Some(a) = headers.get("authorization") {
        if let Some(c) = a.strip_prefix("Bearer ") {
            return Some(c.to_string());
        }
        // SigV4: `Credential=AKID/date/region/service/aws4_request`.
        if let Some(rest) = a.split("Credential=").nth(1) {
            return rest.split('/').next().map(str::to_owned);
        }
    }
    ["x-api-key", "x-goog-api-key", "api-key"]
        .iter()
        .find_map(|h| headers.get(*h).cloned())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn error_body(proto: Proto, status: u16, message: &str) -> Value {
    match proto {
        Proto::OpenAi => {
            let kind = match status {
                400..=499 => "invalid_request_error",
                _ => "server_error",
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
        Proto::Anthropic => {
            let kind = match status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        Proto::Gemini => {
            let kind = match status {
                400 => "INVALID_ARGUMENT",
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                _ => "UNAVAILABLE",
            };
            json!({"error": {"code": status, "message": message, "status": kind}})
        }
        Proto::Bedrock => json!({"message": message}),
    }
}

/// A refusal in the protocol's error shape (with `x-amzn-errortype` for Bedrock).
fn refused(proto: Proto, r: checks::Refusal) -> hyper::Response<Out> {
    let mut resp = full(r.status, error_body(proto, r.status, &r.message));
    if let (Proto::Bedrock, Some(t)) = (proto, r.aws_type) {
        resp.headers_mut()
            .insert("x-amzn-errortype", hyper::header::HeaderValue::from_static(t));
    }
    resp
}

/// A query string's pairs, decoded.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

async fn answer(
    state: Arc<State>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Out>, Infallible> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().map(str::to_owned);
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let url = format!(
        "http://{}{}",
        headers.get("host").map_or("", String::as_str),
        req.uri().path_and_query().map_or(path.as_str(), |p| p.as_str())
    );
    let authorization = headers.get("authorization").cloned();
    let raw = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    state.received.lock().unwrap().push(Received {
        method: method.clone(),
        path: path.clone(),
        query: raw_query.clone(),
        url,
        authorization,
        headers: headers.clone(),
        body: body.clone(),
        raw: raw.clone(),
    });
    if let Some((status, location)) = state.redirect.lock().unwrap().clone() {
        return Ok(hyper::Response::builder()
            .status(status)
            .header("location", location)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(b"moved")).boxed())
            .unwrap());
    }
    let ask = media::Ask {
        method: &method,
        path: &path,
        headers: &headers,
        raw: &raw,
        body: &body,
        host: headers.get("host").cloned().unwrap_or_default(),
    };
    if let Some(resp) = media::answer(&state, &ask).await {
        return Ok(resp);
    }
    let query = query_pairs(raw_query.as_deref());
    let Some(endpoint) = Endpoint::of(&path, &headers, &query) else {
        let message = format!("the mock provider has no endpoint {method} {path}");
        return Ok(full(404, error_body(Proto::OpenAi, 404, &message)));
    };
    let proto = endpoint.proto();
    let incoming = Incoming {
        method: &method,
        path: &path,
        query: &query,
        raw_query: raw_query.as_deref(),
        headers: &headers,
        body: &body,
        raw: &raw,
    };
    let keys = state.aws_keys.lock().unwrap().clone();
    if let Err(refusal) = checks::check(&endpoint, &incoming, &keys) {
        return Ok(refused(proto, refusal));
    }
    if let Some(c) = credential(&headers) {
        if state.rejected.lock().unwrap().contains(&c) {
            return Ok(full(401, error_body(proto, 401, "invalid api key")));
        }
    }
    let model = match &endpoint {
        Endpoint::OpenAiModels | Endpoint::AnthropicModels | Endpoint::GeminiModels | Endpoint::BedrockModels => {
            return Ok(full(
                200,
                json!({"object": "list", "data": [{"id": "mock-model", "object": "model"}]}),
            ))
        }
        Endpoint::GeminiGenerate { model, .. } | Endpoint::GeminiEmbed { model } => model.clone(),
        Endpoint::BedrockConverse { model, .. } | Endpoint::IdeogramV2 { model } => model.clone(),
        Endpoint::IdeogramLegacy => body["image_request"]["model"].as_str().unwrap_or("").to_string(),
        Endpoint::IdeogramV3 => "V_3".to_string(),
        _ => body["model"].as_str().unwrap_or("").to_string(),
    };
    let mut b = {
        let mut all = state.behaviors.lock().unwrap();
        let entry = all.entry(model.clone()).or_default();
        let mut b = entry.clone();
        if !entry.statuses.is_empty() {
            b.status = entry.statuses.remove(0);
        }
        b
    };
    if b.until_tool_result {
        if responses::has_tool_result(&body) {
            b.tool_calls.clear();
        } else {
            b.pieces.clear();
        }
    }
    if endpoint == Endpoint::AnthropicMessages && (200..300).contains(&b.status) {
        if b.prompt_caching {
            let u = state.prompt_cache.serve(&body);
            b.cached_tokens = u.read;
            b.cache_write_tokens = u.write_5m + u.write_1h;
            b.cache_write_1h_tokens = u.write_1h;
            b.prompt_tokens = u.read + u.write_5m + u.write_1h + u.uncached;
        }
        state.reported.lock().unwrap().push(anthropic_usage(&b));
    }
    if !b.header_delay.is_zero() {
        tokio::time::sleep(b.header_delay).await;
    }
    match &b.fault {
        Some(Fault::WrongContentType) => {
            return Ok(hyper::Response::builder()
                .status(200)
                .header("content-type", "text/html")
                .body(Full::new(Bytes::from_static(b"<html><body>Service maintenance</body></html>")).boxed())
                .unwrap())
        }
        Some(Fault::MalformedJson) if body["stream"] != Value::Bool(true) => {
            return Ok(hyper::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{\"id\": \"chatcmpl-x\", \"choices\": [")).boxed())
                .unwrap())
        }
        _ => {}
    }
    if !(200..300).contains(&b.status) {
        let mut msg = b
            .error_message
            .clone()
            .unwrap_or_else(|| format!("mock failure {}", b.status));
        if b.echo_credential {
            msg.push_str(&format!(
                ": incorrect API key provided: {}",
                credential(&headers).unwrap_or_default()
            ));
        }
        return Ok(full(b.status, error_body(proto, b.status, &msg)));
    }
    let stream = match &endpoint {
        Endpoint::OpenAiEmbeddings | Endpoint::GeminiEmbed { .. } => {
            return Ok(full(200, embeddings(proto, &body, &b)));
        }
        Endpoint::OpenAiImages | Endpoint::IdeogramLegacy | Endpoint::IdeogramV3 | Endpoint::IdeogramV2 { .. } => {
            return Ok(full(200, images(&endpoint, &body, &raw, &b)));
        }
        Endpoint::GeminiGenerate { stream, .. } | Endpoint::BedrockConverse { stream, .. } => *stream,
        _ => body["stream"] == Value::Bool(true),
    };
    let speaks_responses = endpoint == Endpoint::OpenAiResponses;
    if !stream && speaks_responses {
        return Ok(full(200, responses::whole(&model, &b)));
    }
    if !stream {
        return Ok(full(200, whole(proto, &model, &b)));
    }
    let include_usage = body["stream_options"]["include_usage"] == Value::Bool(true);
    let mut frames = if speaks_responses {
        responses::frames(&model, &b)
    } else {
        stream_frames(proto, &model, &b, include_usage)
    };
    match &b.fault {
        Some(Fault::MalformedSse) if frames.len() > 1 => {
            frames[1] = Bytes::from_static(b"data: {\"choices\": [{\"delta\": \n\n")
        }
        Some(Fault::Oversized(n)) if frames.len() > 1 => frames[1] = Bytes::from(format!("data: {}", "x".repeat(*n))),
        _ => {}
    }
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        let mut gate = state.paused.as_ref().map(|p| p.subscribe());
        for (i, frame) in frames.into_iter().enumerate() {
            if b.break_after == Some(i) {
                return;
            }
            if b.fault == Some(Fault::StallAfter(i)) {
                // Hold the connection open, sending nothing, until the reader leaves.
                tx.closed().await;
                state.abandoned.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if b.error_after == Some(i) {
                let _ = tx.send(Ok(Frame::data(stream_error(proto)))).await;
                return;
            }
            if i == 1 {
                if let Some(g) = gate.as_mut() {
                    while *g.borrow_and_update() {
                        if g.changed().await.is_err() {
                            break;
                        }
                    }
                }
            }
            if !b.delay.is_zero() && i > 0 {
                tokio::time::sleep(b.delay).await;
            }
            if tx.send(Ok(Frame::data(frame))).await.is_err() {
                state.abandoned.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
        *state.last_finish.lock().unwrap() = Some(Instant::now());
        state.completed.fetch_add(1, Ordering::SeqCst);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let content_type = if proto == Proto::Bedrock {
        "application/vnd.amazon.eventstream"
    } else {
        "text/event-stream"
    };
    Ok(hyper::Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(StreamBody::new(stream).boxed())
        .unwrap())
}

fn openai_usage(b: &Behavior) -> Value {
    json!({
        "prompt_tokens": b.prompt_tokens,
        "completion_tokens": b.completion_tokens,
        "total_tokens": b.prompt_tokens.saturating_add(b.completion_tokens),
        "prompt_tokens_details": {"cached_tokens": b.cached_tokens},
    })
}

fn anthropic_usage(b: &Behavior) -> Value {
    json!({
        "input_tokens": b.uncached(),
        "cache_read_input_tokens": b.cached_tokens,
        "cache_creation_input_tokens": b.cache_write_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": b.cache_write_tokens.saturating_sub(b.cache_write_1h_tokens),
            "ephemeral_1h_input_tokens": b.cache_write_1h_tokens,
        },
        "output_tokens": b.completion_tokens,
    })
}

fn gemini_usage(b: &Behavior) -> Value {
    json!({
        "promptTokenCount": b.prompt_tokens,
        "cachedContentTokenCount": b.cached_tokens,
        "candidatesTokenCount": b.completion_tokens,
        "totalTokenCount": b.prompt_tokens.saturating_add(b.completion_tokens),
    })
}

fn bedrock_usage(b: &Behavior) -> Value {
    json!({
        "inputTokens": b.uncached(),
        "cacheReadInputTokens": b.cached_tokens,
        "cacheWriteInputTokens": b.cache_write_tokens,
        "outputTokens": b.completion_tokens,
        "totalTokens": b.prompt_tokens.saturating_add(b.completion_tokens),
    })
}

fn args_of(pieces: &[String]) -> Value {
    serde_json::from_str(&pieces.concat()).unwrap_or(json!({}))
}

/// A whole (non-streamed) chat answer.
fn whole(proto: Proto, model: &str, b: &Behavior) -> Value {
    let text = b.pieces.concat();
    let tools = !b.tool_calls.is_empty();
    match proto {
        Proto::OpenAi => {
            let mut message = json!({"role": "assistant", "content": text});
            if tools {
                message["tool_calls"] = b
                    .tool_calls
                    .iter()
                    .enumerate()
                    .map(|(i, (name, args))| json!({"id": format!("call_{i}"), "type": "function", "function": {"name": name, "arguments": args.concat()}}))
                    .collect();
            }
            let mut resp = json!({
                "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": if tools { "tool_calls" } else { "stop" }}],
            });
            if b.usage {
                resp["usage"] = openai_usage(b);
            }
            resp
        }
        Proto::Anthropic => {
            let mut content = vec![json!({"type": "text", "text": text})];
            content.extend(b.tool_calls.iter().enumerate().map(
                |(i, (name, args))| json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": args_of(args)}),
            ));
            let mut resp = json!({
                "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": if tools { "tool_use" } else { "end_turn" }, "stop_sequence": null,
            });
            if b.usage {
                resp["usage"] = anthropic_usage(b);
            }
            resp
        }
        Proto::Gemini => {
            let mut parts = vec![json!({"text": text})];
            parts.extend(
                b.tool_calls
                    .iter()
                    .map(|(name, args)| json!({"functionCall": {"name": name, "args": args_of(args)}})),
            );
            let mut resp = json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}], "modelVersion": model});
            if b.usage {
                resp["usageMetadata"] = gemini_usage(b);
            }
            resp
        }
        Proto::Bedrock => {
            let mut content = vec![json!({"text": text})];
            content.extend(b.tool_calls.iter().enumerate().map(
                |(i, (name, args))| json!({"toolUse": {"toolUseId": format!("tooluse_{i}"), "name": name, "input": args_of(args)}}),
            ));
            let mut resp = json!({
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": if tools { "tool_use" } else { "end_turn" },
                "metrics": {"latencyMs": 10},
            });
            if b.usage {
                resp["usage"] = bedrock_usage(b);
            }
            resp
        }
    }
}

fn sse(event: Option<&str>, data: &Value) -> Bytes {
    match event {
        Some(e) => Bytes::from(format!("event: {e}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}

/// The frames of a streamed chat answer: the first carries the first text.
fn stream_frames(proto: Proto, model: &str, b: &Behavior, include_usage: bool) -> Vec<Bytes> {
    let tools = !b.tool_calls.is_empty();
    let mut out = Vec::new();
    match proto {
        Proto::OpenAi => {
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            };
            out.push(sse(
                None,
                &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            ));
            out.extend(
                b.pieces
                    .iter()
                    .map(|p| sse(None, &chunk(json!({"content": p}), Value::Null))),
            );
            for (i, (name, args)) in b.tool_calls.iter().enumerate() {
                out.push(sse(None, &chunk(json!({"tool_calls": [{"index": i, "id": format!("call_{i}"), "type": "function", "function": {"name": name, "arguments": ""}}]}), Value::Null)));
                out.extend(args.iter().map(|a| {
                    sse(
                        None,
                        &chunk(
                            json!({"tool_calls": [{"index": i, "function": {"arguments": a}}]}),
                            Value::Null,
                        ),
                    )
                }));
            }
            out.push(sse(
                None,
                &chunk(json!({}), json!(if tools { "tool_calls" } else { "stop" })),
            ));
            if include_usage && b.usage {
                out.push(sse(None, &json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": openai_usage(b)})));
            }
            out.push(Bytes::from_static(b"data: [DONE]\n\n"));
        }
        Proto::Anthropic => {
            let mut start_usage = anthropic_usage(b);
            start_usage["output_tokens"] = json!(1);
            if !b.usage {
                start_usage = json!({});
            }
            out.push(sse(Some("message_start"), &json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": start_usage}})));
            out.push(sse(
                Some("content_block_start"),
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ));
            out.push(sse(Some("ping"), &json!({"type": "ping"})));
            out.extend(b.pieces.iter().map(|p| {
                sse(
                    Some("content_block_delta"),
                    &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
                )
            }));
            out.push(sse(
                Some("content_block_stop"),
                &json!({"type": "content_block_stop", "index": 0}),
            ));
            for (i, (name, args)) in b.tool_calls.iter().enumerate() {
                let index = i + 1;
                out.push(sse(Some("content_block_start"), &json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": {}}})));
                out.extend(args.iter().map(|a| sse(Some("content_block_delta"), &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": a}}))));
                out.push(sse(
                    Some("content_block_stop"),
                    &json!({"type": "content_block_stop", "index": index}),
                ));
            }
            let end_usage = if b.usage {
                json!({"output_tokens": b.completion_tokens})
            } else {
                json!({})
            };
            out.push(sse(Some("message_delta"), &json!({"type": "message_delta", "delta": {"stop_reason": if tools { "tool_use" } else { "end_turn" }, "stop_sequence": null}, "usage": end_usage})));
            out.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
        }
        Proto::Gemini => {
            // Gemini streams end lines with CRLF and repeat running usage totals.
            let chunk = |parts: Value, finish: Option<&str>, output: u64| {
                let mut c = json!({"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}], "modelVersion": model});
                if let Some(f) = finish {
                    c["candidates"][0]["finishReason"] = json!(f);
                }
                if b.usage {
                    let mut u = gemini_usage(b);
                    u["candidatesTokenCount"] = json!(output);
                    c["usageMetadata"] = u;
                }
                Bytes::from(format!("data: {c}\r\n\r\n"))
            };
            let n = b.pieces.len() as u64;
            for (i, p) in b.pieces.iter().enumerate() {
                let running = b.completion_tokens * (i as u64 + 1) / n.max(1);
                let last = i + 1 == b.pieces.len() && !tools;
                out.push(chunk(json!([{"text": p}]), last.then_some("STOP"), running));
            }
            if tools {
                let parts: Vec<Value> = b
                    .tool_calls
                    .iter()
                    .map(|(name, args)| json!({"functionCall": {"name": name, "args": args_of(args)}}))
                    .collect();
                out.push(chunk(Value::Array(parts), Some("STOP"), b.completion_tokens));
            }
        }
        Proto::Bedrock => {
            use hub_core::providers::bedrock::frame;
            let ev = |t: &str, p: Value| Bytes::from(frame("event", t, &p));
            out.push(ev("messageStart", json!({"role": "assistant"})));
            // The first frame carries text, as the first useful chunk.
            let mut pieces = b.pieces.iter();
            if let Some(first) = pieces.next() {
                out[0] = Bytes::from(
                    [
                        out[0].to_vec(),
                        frame(
                            "event",
                            "contentBlockDelta",
                            &json!({"contentBlockIndex": 0, "delta": {"text": first}}),
                        ),
                    ]
                    .concat(),
                );
            }
            out.extend(pieces.map(|p| {
                ev(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": p}}),
                )
            }));
            out.push(ev("contentBlockStop", json!({"contentBlockIndex": 0})));
            for (i, (name, args)) in b.tool_calls.iter().enumerate() {
                let index = i + 1;
                out.push(ev("contentBlockStart", json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": format!("tooluse_{i}"), "name": name}}})));
                out.extend(args.iter().map(|a| {
                    ev(
                        "contentBlockDelta",
                        json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": a}}}),
                    )
                }));
                out.push(ev("contentBlockStop", json!({"contentBlockIndex": index})));
            }
            out.push(ev(
                "messageStop",
                json!({"stopReason": if tools { "tool_use" } else { "end_turn" }}),
            ));
            if b.usage {
                out.push(ev(
                    "metadata",
                    json!({"usage": bedrock_usage(b), "metrics": {"latencyMs": 10}}),
                ));
            }
        }
    }
    out
}

/// The protocol's own mid-stream error.
fn stream_error(proto: Proto) -> Bytes {
    match proto {
        Proto::OpenAi => sse(
            None,
            &json!({"error": {"message": "mock overloaded midway", "type": "server_error"}}),
        ),
        Proto::Anthropic => sse(
            Some("error"),
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "mock overloaded midway"}}),
        ),
        Proto::Gemini => sse(
            None,
            &json!({"error": {"code": 503, "message": "mock overloaded midway", "status": "UNAVAILABLE"}}),
        ),
        Proto::Bedrock => Bytes::from(hub_core::providers::bedrock::frame(
            "exception",
            "throttlingException",
            &json!({"message": "mock overloaded midway"}),
        )),
    }
}

fn embeddings(proto: Proto, body: &Value, b: &Behavior) -> Value {
    let count = match proto {
        Proto::Gemini => body["requests"].as_array().map_or(1, Vec::len),
        _ => match &body["input"] {
            Value::Array(a) => a.len(),
            _ => 1,
        },
    };
    let vector = |i: usize| json!([0.25 * i as f64, -0.5, 1.0]);
    match proto {
        Proto::Gemini => json!({"embeddings": (0..count).map(|i| json!({"values": vector(i)})).collect::<Vec<_>>()}),
        _ => json!({
            "object": "list",
            "data": (0..count).map(|i| json!({"object": "embedding", "index": i, "embedding": vector(i)})).collect::<Vec<_>>(),
            "model": body["model"],
            "usage": {"prompt_tokens": b.prompt_tokens, "total_tokens": b.prompt_tokens},
        }),
    }
}

fn images(endpoint: &Endpoint, body: &Value, raw: &[u8], b: &Behavior) -> Value {
    let asked = match endpoint {
        Endpoint::IdeogramV3 => {
            let text = String::from_utf8_lossy(raw);
            text.split("name=\"num_images\"\r\n\r\n")
                .nth(1)
                .and_then(|r| r.split("\r\n").next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(1)
        }
        Endpoint::IdeogramLegacy => body["image_request"]["num_images"].as_u64().unwrap_or(1),
        _ => body["n"].as_u64().or(body["num_images"].as_u64()).unwrap_or(1),
    };
    let n = b.images.unwrap_or(asked);
    if *endpoint == Endpoint::OpenAiImages {
        json!({"created": 1, "data": (0..n).map(|i| json!({"url": format!("https://images.mock/{i}.png")})).collect::<Vec<_>>()})
    } else {
        json!({"created": "2026-01-01T00:00:00Z", "data": (0..n).map(|i| json!({
            "url": format!("https://ideogram.mock/{i}.png"), "prompt": "a mock image", "resolution": "1024x1024",
            "is_image_safe": true, "seed": 7,
        })).collect::<Vec<_>>()})
    }
}
