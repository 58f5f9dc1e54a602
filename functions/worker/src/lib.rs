//! Hub as a Cloudflare Worker. One [`Hub`] per isolate, built on the first
//! request from the environment (D1 binding `DB`, secret `HUB_MASTER_KEY`,
//! vars); each request is converted, handed to the core, and its (streaming)
//! response converted back. Settlement runs after the response through
//! `ctx.wait_until`, tracked per request (see [`runtime`]). The Cron Trigger
//! (`[triggers] crons` in wrangler.toml) runs the scheduled jobs
//! ([`Hub::tick`]) through the `scheduled` handler. Each user's credit lease
//! is held by their wallet, a Durable Object ([`wallet`]).

#![cfg(target_arch = "wasm32")]
// Isolates are single-threaded: the ports are not Send, nor the Arcs holding them.
#![allow(clippy::arc_with_non_send_sync)]

mod runtime;
mod upstream;
mod wallet;

use bytes::Bytes;
use futures_util::StreamExt;
use hub_core::crypto::MasterKey;
use hub_core::error::ApiError;
use hub_core::options::Runtime;
use hub_core::{Hub, HubOptions};
use runtime::{Scoped, Tracker, WorkerBackground, WorkerClock, WorkerRng};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use worker::{event, Context, Env, Headers, Method, Request, Response, ScheduleContext, ScheduledEvent};

thread_local! {
    /// The isolate's Hub; isolates are single-threaded.
    static HUB: RefCell<Option<Hub>> = const { RefCell::new(None) };
}

pub(crate) fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string()).filter(|v| !v.is_empty())
}

fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|v| v.to_string())
        .or_else(|| var(env, name))
        .filter(|v| !v.is_empty())
}

/// Builds the isolate's Hub from the environment (once).
async fn hub(env: &Env) -> Result<Hub, String> {
    if let Some(h) = HUB.with(|h| h.borrow().clone()) {
        return Ok(h);
    }
    let db = env
        .d1("DB")
        .map_err(|e| format!("the D1 binding `DB` is missing: {e}"))?;
    let key_text = secret(env, "HUB_MASTER_KEY")
        .ok_or("HUB_MASTER_KEY is not set: `wrangler secret put HUB_MASTER_KEY` (32 random bytes, base64)")?;
    let master_key = MasterKey::from_base64(&key_text).map_err(|e| format!("HUB_MASTER_KEY: {e}"))?;
    // Workers limit what an isolate takes on themselves, and no peer address
    // reaches the function: forwarded headers are never believed.
    let options = HubOptions::from_lookup(Runtime::Worker, |name| var(env, name)).map_err(|e| e.to_string())?;
    let credit_leases = options.credit_leases;
    let hub = Hub::new(
        Arc::new(hub_d1::D1Db::new(db)),
        Arc::new(upstream::FetchUpstream),
        Arc::new(WorkerClock),
        Arc::new(WorkerRng),
        Arc::new(WorkerBackground),
        master_key,
        options,
    );
    if credit_leases {
        // Without the binding, every call holds a D1 row (as before wallets).
        if let Ok(namespace) = env.durable_object(wallet::BINDING) {
            hub.set_wallets(Arc::new(wallet::DurableWallets::new(namespace)));
        }
    }
    hub.start().await.map_err(|e| format!("start: {e}"))?;
    if let Some(admin) = secret(env, "HUB_ADMIN_KEY") {
        hub_core::auth::check_admin_key(&admin)?;
        hub.ensure_owner_key(&admin)
            .await
            .map_err(|e| format!("owner key: {e}"))?;
    }
    HUB.with(|h| *h.borrow_mut() = Some(hub.clone()));
    Ok(hub)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let tracker = Rc::new(Tracker::default());
    let response = Scoped::new(tracker.clone(), serve(req, env, tracker.clone())).await;
    // Settlement and call logs finish after the client has its answer.
    ctx.wait_until(tracker.idle());
    response
}

/// The Cron Trigger: runs the scheduled jobs once. The handler's promise
/// lasts until the jobs are done; work they leave running (a configuration
/// reload) is waited for through `wait_until`.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, ctx: ScheduleContext) {
    let tracker = Rc::new(Tracker::default());
    Scoped::new(tracker.clone(), run_jobs(event, env)).await;
    ctx.wait_until(tracker.idle());
}

async fn run_jobs(event: ScheduledEvent, env: Env) {
    let hub = match hub(&env).await {
        Ok(h) => h,
        Err(msg) => {
            worker::console_error!("scheduled jobs: hub cannot start: {msg}");
            return;
        }
    };
    let report = hub.tick(hub.now_ms()).await;
    let text = serde_json::to_string(&report).unwrap_or_default();
    if report.failed() {
        worker::console_error!("scheduled jobs ({}): {text}", event.cron());
    } else {
        worker::console_log!("scheduled jobs ({}): {text}", event.cron());
    }
}

async fn serve(mut req: Request, env: Env, tracker: Rc<Tracker>) -> worker::Result<Response> {
    let hub = match hub(&env).await {
        Ok(h) => h,
        Err(msg) => {
            worker::console_error!("hub cannot start: {msg}");
            return to_worker(
                ApiError::unavailable(format!("Hub is not configured: {msg}"))
                    .into_response(hub_core::error::Protocol::Hub),
                tracker,
            );
        }
    };
    // The whole URL, so the core knows the scheme and host this request came
    // to (Cloudflare routes by host; there is no peer address to trust
    // forwarded headers by).
    let url = req.url()?;
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(req.method().as_ref().as_bytes()).unwrap_or(http::Method::GET))
        .uri(url.as_str());
    for (name, value) in req.headers().entries() {
        builder = builder.header(name, value);
    }
    let body = match req.method() {
        Method::Get | Method::Head => Bytes::new(),
        _ => Bytes::from(req.bytes().await?),
    };
    let request = builder
        .body(body)
        .map_err(|e| worker::Error::RustError(format!("bad request: {e}")))?;
    let response = hub.handle(request).await;
    to_worker(response, tracker)
}

/// The core's response as a Worker response; a streamed body keeps the
/// request's tracker busy until it ends, so settlement is awaited.
fn to_worker(res: hub_core::http::Response, tracker: Rc<Tracker>) -> worker::Result<Response> {
    let (parts, body) = res.into_parts();
    let headers = Headers::new();
    for (name, value) in parts.headers.iter() {
        if let Ok(v) = value.to_str() {
            headers.append(name.as_str(), v)?;
        }
    }
    let response = match body {
        hub_core::http::Body::Full(b) => Response::from_bytes(b.to_vec())?,
        hub_core::http::Body::Stream(s) => {
            let stream = runtime::TrackedStream::new(s, tracker)
                .map(|r| r.map(|b| b.to_vec()).map_err(|e| worker::Error::RustError(e.message)));
            Response::from_stream(stream)?
        }
    };
    Ok(response.with_status(parts.status.as_u16()).with_headers(headers))
}
