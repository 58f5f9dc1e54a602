//! Hub as an AWS Lambda function behind a Function URL (`InvokeMode:
//! RESPONSE_STREAM`). The Hub is built lazily on the first invocation and
//! shared by the next ones (a small cold start: no schema work unless asked,
//! no provider or database call before it is needed). The database is remote
//! libSQL (Turso, sqld). Lambda freezes the instance when the response ends,
//! so every body, streamed or not, ends only after the call's settlement has
//! been written; a body dropped early (the client left) waits for it in its
//! drop.
//!
//! The same function runs the scheduled jobs ([`Hub::tick`]) when EventBridge
//! invokes it on its schedule: [`run`] takes either event (see [`Invocation`]).

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, StreamBody};
use hub_core::crypto::MasterKey;
use hub_core::error::{ApiError, Protocol};
use hub_core::http::ByteStream;
use hub_core::jobs::TickReport;
use hub_core::options::Runtime;
use hub_core::{Hub, HubOptions};
use hub_native::{OsRng, ReqwestUpstream, SystemClock, Tracker};
use lambda_http::lambda_runtime::FunctionResponse;
use lambda_http::request::LambdaRequest;
use lambda_http::{service_fn, Error, LambdaEvent, Service, StreamAdapter};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The response body `run_with_streaming_response` takes.
pub type StreamingBody = UnsyncBoxBody<Bytes, Error>;

/// How long a dropped body may wait for its settlement.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

struct State {
    hub: Hub,
    tracker: Tracker,
}

static STATE: OnceCell<State> = OnceCell::const_new();

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Builds the Hub from the function's environment.
async fn build() -> Result<State, String> {
    let url = env("HUB_DATABASE_URL").ok_or("HUB_DATABASE_URL is not set (a libsql://, https:// or http:// URL)")?;
    if !(url.starts_with("libsql://") || url.starts_with("https://") || url.starts_with("http://")) {
        return Err("HUB_DATABASE_URL must be a remote libSQL URL: a Lambda's disk does not outlive it".into());
    }
    let db = hub_libsql::LibSqlDb::open(&url, env("HUB_DATABASE_TOKEN"))
        .await
        .map_err(|e| format!("database: {e}"))?;
    let key = env("HUB_MASTER_KEY").ok_or("HUB_MASTER_KEY is not set")?;
    let master_key = MasterKey::from_base64(&key).map_err(|e| format!("HUB_MASTER_KEY: {e}"))?;
    // One call per instance (Lambda scales out instead); no peer address
    // reaches the function, so forwarded headers are never believed.
    let options = HubOptions::from_lookup(Runtime::Lambda, env).map_err(|e| e.to_string())?;
    let tracker = Tracker::new(tokio::runtime::Handle::current());
    let outbound = hub_core::net::OutboundPolicy::new(options.allow_link_local);
    let upstream = ReqwestUpstream::new(options.timeouts.connect, outbound).map_err(|e| format!("HTTP client: {e}"))?;
    let hub = Hub::new(
        Arc::new(db),
        Arc::new(upstream),
        Arc::new(SystemClock::new()),
        Arc::new(OsRng),
        Arc::new(tracker.clone()),
        master_key,
        options,
    );
    hub.set_mailer(Arc::new(hub_mail::SmtpMailer { policy: outbound }));
    hub.start().await.map_err(|e| format!("start: {e}"))?;
    if let Some(admin) = env("HUB_ADMIN_KEY") {
        hub_core::auth::check_admin_key(&admin)?;
        hub.ensure_owner_key(&admin)
            .await
            .map_err(|e| format!("owner key: {e}"))?;
    }
    Ok(State { hub, tracker })
}

/// One invocation of the function: a Function URL request, or EventBridge's
/// schedule (`"source": "aws.events"`, `"detail-type": "Scheduled Event"`).
pub enum Invocation {
    Http(Box<LambdaRequest>),
    Scheduled,
}

/// The two fields that tell a scheduled event from a request.
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "detail-type")]
    detail_type: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for Invocation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let kind: Kind = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        if kind.source.as_deref() == Some("aws.events") && kind.detail_type.as_deref() == Some("Scheduled Event") {
            return Ok(Invocation::Scheduled);
        }
        let request = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        Ok(Invocation::Http(Box::new(request)))
    }
}

/// Runs the function: Function URL requests are served with streamed
/// responses, scheduled events run the jobs and answer with their report.
pub async fn run() -> Result<(), Error> {
    let http = StreamAdapter::from(service_fn(app));
    lambda_http::lambda_runtime::run(service_fn(move |event: LambdaEvent<Invocation>| {
        let mut http = http.clone();
        async move {
            match event.payload {
                Invocation::Http(request) => http
                    .call(LambdaEvent::new(*request, event.context))
                    .await
                    .map(FunctionResponse::StreamingResponse),
                Invocation::Scheduled => scheduled().await.map(FunctionResponse::BufferedResponse),
            }
        }
    }))
    .await
}

/// Runs the scheduled jobs once; returns once what they started has finished
/// too, before Lambda freezes the instance.
pub async fn scheduled() -> Result<TickReport, Error> {
    let state = STATE.get_or_try_init(build).await.map_err(|msg| {
        tracing::error!("hub cannot start: {msg}");
        Error::from(format!("Hub is not configured: {msg}"))
    })?;
    let report = state.hub.tick(state.hub.now_ms()).await;
    let _ = tokio::time::timeout(SETTLE_WAIT, state.tracker.wait_idle()).await;
    let text = serde_json::to_string(&report).unwrap_or_default();
    if report.failed() {
        tracing::warn!(report = %text, "scheduled jobs: some failed");
    } else {
        tracing::info!(report = %text, "scheduled jobs");
    }
    Ok(report)
}

/// The function's handler: a Function URL request in, a streamed response out.
pub async fn app(req: lambda_http::Request) -> Result<http::Response<StreamingBody>, Error> {
    let state = match STATE.get_or_try_init(build).await {
        Ok(s) => s,
        Err(msg) => {
            tracing::error!("hub cannot start: {msg}");
            let res = ApiError::unavailable(format!("Hub is not configured: {msg}")).into_response(Protocol::Hub);
            return Ok(to_lambda(res, None, None));
        }
    };
    // No background work runs while the function is frozen: leases are
    // renewed and returned while an invocation runs, when due (usually
    // nothing to do), so a lease a long stream holds from outlives it.
    let upkeep = LeaseUpkeep::start(&state.hub);
    let (parts, body) = req.into_parts();
    let body = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(t) => Bytes::from(t),
        lambda_http::Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let mut request = http::Request::new(body);
    *request.method_mut() = parts.method;
    *request.uri_mut() = https_uri(&parts.uri);
    *request.headers_mut() = parts.headers;
    let res = state.hub.handle(request).await;
    Ok(to_lambda(res, Some(state.tracker.clone()), upkeep))
}

/// The lease upkeep of one invocation: every `upkeep_every_ms` from its
/// start until its response has ended (dropped with it).
struct LeaseUpkeep(tokio::task::JoinHandle<()>);

impl LeaseUpkeep {
    fn start(hub: &Hub) -> Option<LeaseUpkeep> {
        hub.lease_upkeep_loop().map(|upkeep| LeaseUpkeep(tokio::spawn(upkeep)))
    }
}

impl Drop for LeaseUpkeep {
    fn drop(&mut self) {
        // A renewal cut short changes nothing: the lease is used only
        // within the life its last completed renewal gave it.
        self.0.abort();
    }
}

/// The request's URI as the core sees it: Function URLs are HTTPS only, so
/// the scheme is `https` whatever `X-Forwarded-Proto` (which `lambda_http`
/// builds the URI from) says; the host is the one the URL was called at.
fn https_uri(uri: &http::Uri) -> http::Uri {
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    uri.authority()
        .and_then(|a| format!("https://{a}{path}").parse().ok())
        .or_else(|| path.parse().ok())
        .unwrap_or_default()
}

fn to_lambda(
    res: hub_core::http::Response,
    tracker: Option<Tracker>,
    upkeep: Option<LeaseUpkeep>,
) -> http::Response<StreamingBody> {
    let (parts, body) = res.into_parts();
    let inner: ByteStream = match body {
        hub_core::http::Body::Full(b) => Box::pin(futures_util::stream::iter([Ok(b)])),
        hub_core::http::Body::Stream(s) => s,
    };
    let settled = SettledBody {
        inner,
        tracker,
        waiting: None,
        done: false,
        _upkeep: upkeep,
    };
    let body = BodyExt::boxed_unsync(StreamBody::new(futures_util::StreamExt::map(settled, |r| {
        r.map(http_body::Frame::data).map_err(|e| Error::from(e.message))
    })));
    http::Response::from_parts(parts, body)
}

/// A response body that ends only once the call's settlement is written.
struct SettledBody {
    inner: ByteStream,
    tracker: Option<Tracker>,
    waiting: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    done: bool,
    /// Runs for as long as the body does.
    _upkeep: Option<LeaseUpkeep>,
}

impl Stream for SettledBody {
    type Item = Result<Bytes, hub_core::http::BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.waiting.is_none() {
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(None) => {
                    let Some(tracker) = this.tracker.clone() else {
                        this.done = true;
                        return Poll::Ready(None);
                    };
                    this.waiting = Some(Box::pin(async move {
                        let _ = tokio::time::timeout(SETTLE_WAIT, tracker.wait_idle()).await;
                    }));
                }
                other => return other,
            }
        }
        match this.waiting.as_mut().map(|w| w.as_mut().poll(cx)) {
            Some(Poll::Ready(())) | None => {
                this.done = true;
                Poll::Ready(None)
            }
            Some(Poll::Pending) => Poll::Pending,
        }
    }
}

impl Drop for SettledBody {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // The client left: the core's stream settles as it drops; wait for
        // that write before Lambda freezes the instance.
        let inner = std::mem::replace(&mut self.inner, Box::pin(futures_util::stream::empty()));
        drop(inner);
        if let (Some(tracker), Ok(handle)) = (self.tracker.clone(), tokio::runtime::Handle::try_current()) {
            if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
                tokio::task::block_in_place(|| {
                    handle.block_on(async {
                        let _ = tokio::time::timeout(SETTLE_WAIT, tracker.wait_idle()).await;
                    })
                });
            }
        }
    }
}
