//! A mock OpenAI-compatible provider on 127.0.0.1 that records what it
//! received and answers as a test tells it to, per model name.

use bytes::Bytes;
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
        }
    }
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

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
}

#[derive(Clone)]
pub struct MockProvider {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<tokio::sync::Notify>,
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
            ..Default::default()
        });
        let stop = Arc::new(tokio::sync::Notify::new());
        let (st, sp) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Ok((stream, _)) = listener.accept() => {
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
        MockProvider { addr, state, stop }
    }

    /// The base URL to configure as a provider's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn set(&self, model: &str, behavior: Behavior) {
        self.state.behaviors.lock().unwrap().insert(model.to_string(), behavior);
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
        self.stop.notify_one();
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

fn usage_json(b: &Behavior) -> Value {
    json!({
        "prompt_tokens": b.prompt_tokens,
        "completion_tokens": b.completion_tokens,
        "total_tokens": b.prompt_tokens + b.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": b.cached_tokens},
    })
}

async fn answer(
    state: Arc<State>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Out>, Infallible> {
    let path = req.uri().path().to_string();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    state.received.lock().unwrap().push(Received {
        path: path.clone(),
        authorization,
        body: body.clone(),
    });
    if path.ends_with("/models") {
        return Ok(full(
            200,
            json!({"object": "list", "data": [{"id": "mock-model", "object": "model"}]}),
        ));
    }
    let model = body["model"].as_str().unwrap_or("").to_string();
    let b = state.behaviors.lock().unwrap().get(&model).cloned().unwrap_or_default();
    if !b.header_delay.is_zero() {
        tokio::time::sleep(b.header_delay).await;
    }
    if !(200..300).contains(&b.status) {
        return Ok(full(
            b.status,
            json!({"error": {"message": format!("mock failure {}", b.status), "type": "server_error"}}),
        ));
    }
    let id = "chatcmpl-mock";
    if body["stream"] != Value::Bool(true) {
        let mut resp = json!({
            "id": id, "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": b.pieces.concat()}, "finish_reason": "stop"}],
        });
        if b.usage {
            resp["usage"] = usage_json(&b);
        }
        return Ok(full(200, resp));
    }
    let include_usage = body["stream_options"]["include_usage"] == Value::Bool(true);
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        let chunk = |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
        events.extend(b.pieces.iter().map(|p| chunk(json!({"content": p}), Value::Null)));
        events.push(chunk(json!({}), json!("stop")));
        if include_usage && b.usage {
            events.push(json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage_json(&b)}));
        }
        let mut gate = state.paused.as_ref().map(|p| p.subscribe());
        for (i, ev) in events.iter().enumerate() {
            if b.break_after == Some(i) {
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
            let frame = Frame::data(Bytes::from(format!("data: {ev}\n\n")));
            if tx.send(Ok(frame)).await.is_err() {
                state.abandoned.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
        let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n")))).await;
        *state.last_finish.lock().unwrap() = Some(Instant::now());
        state.completed.fetch_add(1, Ordering::SeqCst);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    Ok(hyper::Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(StreamBody::new(stream).boxed())
        .unwrap())
}
