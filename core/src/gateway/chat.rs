//! Chat calls end to end, for OpenAI (`POST /v1/chat/completions`) and
//! Anthropic (`POST /v1/messages`) callers alike.
//!
//! Validate → resolve candidates → hold credit → try providers in order until
//! one answers with a first byte → relay (streamed or whole, converted to the
//! caller's protocol unless both sides speak OpenAI) → settle in the
//! background. Failover happens only before anything reached the client.

use super::failover::{provider_error, transport_failure, Attempts, Failure};
use super::relay::{CallMeter, Mode, Relay};
use crate::auth::Caller;
use crate::chat::{Chat, Reply};
use crate::codec::{Billed, Encode, Meta};
use crate::config::Route;
use crate::error::ApiError;
use crate::http::{Body, Response};
use crate::metering::estimate::{PromptSize, UNSENT_OUTPUT_BOUND};
use crate::metering::money::Credits;
use crate::metering::Usage;
use crate::ports::UpstreamResponse;
use crate::protocols::openai::{parse_chat, ChatRequest, ChunkView};
use crate::protocols::{aigne, anthropic, openai};
use crate::providers::{self, Wire};
use crate::store::CallLog;
use crate::Hub;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::sync::Arc;

/// Largest non-streamed provider answer Hub will read.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// A chat request as it came in.
pub(crate) enum Inbound {
    OpenAi(ChatRequest),
    Anthropic(Box<Chat>),
    /// AIGNE Hub's own protocols, in one of their answer shapes.
    Aigne(Box<Chat>, aigne::Shape),
}

impl Inbound {
    fn chat(&self) -> Option<&Chat> {
        match self {
            Inbound::OpenAi(_) => None,
            Inbound::Anthropic(c) | Inbound::Aigne(c, _) => Some(c),
        }
    }

    fn model(&self) -> &str {
        match self {
            Inbound::OpenAi(r) => &r.model,
            Inbound::Anthropic(c) | Inbound::Aigne(c, _) => &c.model,
        }
    }

    fn stream(&self) -> bool {
        match self {
            Inbound::OpenAi(r) => r.stream,
            Inbound::Anthropic(c) | Inbound::Aigne(c, _) => c.stream,
        }
    }

    fn prompt(&self) -> PromptSize {
        match self {
            Inbound::OpenAi(r) => r.prompt,
            Inbound::Anthropic(c) | Inbound::Aigne(c, _) => c.prompt,
        }
    }

    fn output_budget(&self) -> (Option<u64>, u64) {
        match self {
            Inbound::OpenAi(r) => (r.max_tokens, r.n),
            Inbound::Anthropic(c) | Inbound::Aigne(c, _) => (c.max_tokens, 1),
        }
    }

    fn endpoint(&self) -> &'static str {
        match self {
            Inbound::OpenAi(_) => "chat",
            Inbound::Anthropic(_) => "messages",
            Inbound::Aigne(_, shape) => shape.endpoint(),
        }
    }

    fn encoder(&self, meta: Meta) -> Box<dyn Encode> {
        match self {
            Inbound::OpenAi(r) => Box::new(openai::Encoder::new(
                &meta.call_id,
                &r.model,
                meta.created,
                r.include_usage,
            )),
            Inbound::Anthropic(c) => Box::new(anthropic::Encoder::new(&meta.call_id, &c.model)),
            Inbound::Aigne(c, shape) => shape.encoder(c, meta),
        }
    }

    fn render(&self, meta: &Meta, reply: &Reply, billed: &Billed) -> Response {
        let json_response = |v: serde_json::Value| crate::http::json(crate::http::StatusCode::OK, &v);
        match self {
            Inbound::OpenAi(r) => json_response(openai::render_reply(&meta.call_id, &r.model, meta.created, reply)),
            Inbound::Anthropic(c) => json_response(anthropic::render_reply(&meta.call_id, &c.model, reply)),
            Inbound::Aigne(c, shape) => shape.render(c, meta, reply, billed),
        }
    }

    /// The content type of a streamed answer.
    fn stream_content_type(&self) -> &'static str {
        match self {
            Inbound::Aigne(_, shape) => shape.content_type(),
            _ => "text/event-stream; charset=utf-8",
        }
    }
}

/// `POST /v1/chat/completions`.
pub async fn completions(
    hub: &Hub,
    caller: Arc<Caller>,
    req: crate::http::Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    let chat = parse_chat(req.body())?;
    traced(hub, caller, &req, request_id, Inbound::OpenAi(chat)).await
}

/// `POST /v1/messages`.
pub async fn messages(
    hub: &Hub,
    caller: Arc<Caller>,
    req: crate::http::Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    let chat = anthropic::parse(req.body())?;
    traced(hub, caller, &req, request_id, Inbound::Anthropic(Box::new(chat))).await
}

/// A parsed request of one of AIGNE Hub's chat endpoints.
pub(crate) async fn aigne(
    hub: &Hub,
    caller: Arc<Caller>,
    req: &crate::http::Request,
    request_id: &str,
    chat: Chat,
    shape: aigne::Shape,
) -> Result<Response, ApiError> {
    traced(hub, caller, req, request_id, Inbound::Aigne(Box::new(chat), shape)).await
}

async fn traced(
    hub: &Hub,
    caller: Arc<Caller>,
    req: &crate::http::Request,
    request_id: &str,
    inbound: Inbound,
) -> Result<Response, ApiError> {
    use tracing::Instrument;
    let span = tracing::info_span!("call", request_id = %request_id, call_id = tracing::field::Empty, model = tracing::field::Empty);
    call(hub, caller, req, request_id, inbound).instrument(span).await
}

/// The caller's app: AIGNE's client DID header, Hub's own, or the key's label.
pub(crate) fn app_of(req: &crate::http::Request, caller: &Caller) -> String {
    crate::http::header(req.headers(), "x-aigne-hub-client-did")
        .or_else(|| crate::http::header(req.headers(), "x-hub-app"))
        .map(|a| a.chars().take(200).collect::<String>())
        .unwrap_or_else(|| caller.key_label.clone())
}

/// The candidates for a model the caller may use, best first.
pub(crate) fn candidates(
    snap: &crate::config::Snapshot,
    caller: &Caller,
    model: &str,
    kind: &str,
) -> Result<Vec<Route>, ApiError> {
    let routes: Vec<Route> = snap
        .resolve(model, kind)
        .into_iter()
        .filter(|r| caller.may_use_model(model, &r.provider.name, &r.model.model))
        .collect();
    if routes.is_empty() {
        return Err(ApiError::model_not_found(model));
    }
    Ok(routes)
}

/// The candidates, looked up again in a fresh snapshot when the model is
/// unknown to a stale one.
pub(crate) async fn candidates_fresh(
    hub: &Hub,
    caller: &Caller,
    model: &str,
    kind: &str,
) -> Result<(Arc<crate::config::Snapshot>, Vec<Route>), ApiError> {
    let snap = hub.snapshot().await?;
    match candidates(&snap, caller, model, kind) {
        Ok(routes) => Ok((snap, routes)),
        Err(e) => match hub.refresh_on_miss(&snap).await? {
            Some(fresh) => {
                let routes = candidates(&fresh, caller, model, kind)?;
                Ok((fresh, routes))
            }
            None => Err(e),
        },
    }
}

/// Admits a call under its key's limits (rpm, tpm, daily and monthly spend),
/// reserving `usage_bound` tokens and `amount` credits; 429 naming the limit.
pub(crate) async fn admit_key(
    hub: &Hub,
    caller: &Caller,
    call_id: &str,
    usage_bound: &Usage,
    amount: Credits,
) -> Result<(), ApiError> {
    if !caller.limits.any() {
        return Ok(());
    }
    let tokens = i64::try_from(usage_bound.input_tokens.saturating_add(usage_bound.output_tokens)).unwrap_or(i64::MAX);
    let now = hub.inner.clock.now_ms();
    let store = hub.store();
    if store
        .admit_key_call(call_id, caller, tokens, amount.nanos(), now)
        .await?
    {
        return Ok(());
    }
    let which = store.key_limit_reached(caller, tokens, amount.nanos(), now).await?;
    Err(ApiError::rate_limited(format!(
        "This API key has reached {which}; try again later."
    )))
}

/// Reserves `amount` for the call, or says why not with a 402.
async fn hold(
    hub: &Hub,
    settings: &crate::config::Settings,
    call_id: &str,
    user: &str,
    amount: Credits,
) -> Result<(), ApiError> {
    if hub
        .place_hold(call_id, user, amount, settings.hold_ttl_seconds * 1000)
        .await?
    {
        return Ok(());
    }
    Err(hub.not_enough(settings, Some(amount)))
}

async fn call(
    hub: &Hub,
    caller: Arc<Caller>,
    req: &crate::http::Request,
    request_id: &str,
    inbound: Inbound,
) -> Result<Response, ApiError> {
    let inner = &hub.inner;
    let started_us = inner.clock.monotonic_us();
    let app = app_of(req, &caller);
    let model = inbound.model().to_string();
    let (snap, routes) = candidates_fresh(hub, &caller, &model, "chat").await?;
    let settings = &snap.settings;

    let call_id = hub.new_id("call");
    tracing::Span::current()
        .record("call_id", call_id.as_str())
        .record("model", model.as_str());

    // Hold enough for the dearest candidate at the largest possible usage.
    let (max_tokens, n) = inbound.output_budget();
    let default_max_tokens = |r: &Route| {
        r.model
            .max_output_tokens
            .unwrap_or(settings.default_max_output_tokens)
            .max(1) as u64
    };
    let prompt = inbound.prompt();
    let worst_case = |r: &Route| Usage {
        input_tokens: prompt.input_token_bound(),
        // At most 128 × 2^32: exact, as is its cost (see MAX_OUTPUT_TOKENS).
        output_tokens: n.saturating_mul(max_tokens.unwrap_or_else(|| default_max_tokens(r))),
        ..Default::default()
    };
    let hold_amount = routes
        .iter()
        .map(|r| r.model.rates.cost(&worst_case(r)))
        .max()
        .unwrap_or(Credits::ZERO);
    let billed = settings.billing_enabled;
    let bound = worst_case(&routes[0]);
    admit_key(hub, &caller, &call_id, &bound, hold_amount).await?;
    // From here until a relay takes over, a dropped request (the client left
    // while Hub waited on providers) must not strand the hold.
    let mut guard = HoldGuard::new(hub, &call_id, &caller.user_id, None, caller.limits.any());
    if billed {
        guard.place(settings, hold_amount).await?;
    }

    let stream = inbound.stream();
    // An OpenAI request in the internal model, made once if a provider needs it.
    let mut converted: Option<Result<Chat, ApiError>> = None;
    let mut refused: Option<ApiError> = None;
    let mut last: Option<ApiError> = None;
    let mut attempts = Attempts::new(hub, &routes, settings.max_attempts as usize);
    while let Some(at) = attempts.next_attempt() {
        let route = at.route;
        let wire = route.provider.vendor.wire;
        let target = at.target(hub, default_max_tokens(route));
        let passthrough = matches!(inbound, Inbound::OpenAi(_)) && wire == Wire::OpenAi;
        let built = match &inbound {
            Inbound::OpenAi(r) if passthrough => Ok(providers::passthrough_request(
                r.upstream_body(&route.model.model, route.provider.vendor.takes_max_completion_tokens()),
                &target,
            )),
            Inbound::OpenAi(r) => match converted.get_or_insert_with(|| r.to_chat()) {
                Ok(chat) => providers::chat_request(chat, &target),
                Err(e) => Err(e.clone()),
            },
            other => match other.chat() {
                Some(chat) => providers::chat_request(chat, &target),
                None => Err(ApiError::internal("no request to send")),
            },
        };
        let upstream_req = match built {
            Ok(r) => r,
            Err(e) => {
                // This provider cannot take the request as asked; another may.
                attempts.forget_last();
                refused.get_or_insert(e);
                continue;
            }
        };
        let meter = CallMeter {
            bound: Usage {
                input_tokens: prompt.input_token_ceiling(req.body().len() as u64),
                output_tokens: output_bound(route, max_tokens, n, default_max_tokens(route)),
                ..Default::default()
            },
            hub: hub.clone(),
            call_id: call_id.clone(),
            attempt: at.number as i64,
            request_id: request_id.to_string(),
            caller: caller.clone(),
            app: app.clone(),
            route: route.clone(),
            credential_id: at.credential.map(|c| c.id.clone()),
            model: model.clone(),
            endpoint: inbound.endpoint(),
            stream,
            billed,
            hold: billed.then_some(hold_amount),
            prompt,
            started_us,
            upstream_ttfb_ms: None,
            ttfb_ms: None,
            earlier_attempts: Vec::new(),
        };
        let sent_us = inner.clock.monotonic_us();
        let outcome = match hub.send_upstream(upstream_req).await {
            Ok(resp) if (200..300).contains(&resp.status) => {
                if stream {
                    match not_a_stream(&resp) {
                        Some(f) => Err(f),
                        None => stream_first_chunk(resp).await,
                    }
                } else {
                    read_whole(resp, passthrough, wire, &call_id).await
                }
            }
            Ok(resp) => Err(provider_error(resp).await),
            Err(e) => Err(transport_failure(e)),
        };
        match outcome {
            Ok(answer) => {
                let mut meter = meter;
                meter.upstream_ttfb_ms = Some(((inner.clock.monotonic_us() - sent_us) / 1000) as i64);
                meter.earlier_attempts = guard.disarm();
                let meta = Meta {
                    call_id: call_id.clone(),
                    model: model.clone(),
                    model_with_provider: format!("{}/{}", route.provider.name, route.model.model),
                    created: inner.clock.now_ms() / 1000,
                    credit_prefix: settings.currency_prefix.clone(),
                };
                return Ok(match answer {
                    Answer::Stream { first, rest } => {
                        let mode = match &inbound {
                            Inbound::OpenAi(r) if passthrough => Mode::passthrough(!r.include_usage),
                            _ => Mode::transcode(providers::chat_decoder(wire, &call_id), inbound.encoder(meta)),
                        };
                        stream_response(meter, first, rest, mode, inbound.stream_content_type())
                    }
                    Answer::Raw {
                        body,
                        usage,
                        output_bytes,
                    } => whole_response(meter, body, usage, output_bytes),
                    Answer::Reply(mut reply) => {
                        meter.ttfb_ms = Some(meter.elapsed_ms());
                        let billed = meter.finish(reply.usage, reply.output_bytes, super::relay::Outcome::Complete);
                        // The caller sees the usage it is billed for (cut to the bound if the provider overstated it).
                        if reply.usage.is_some() {
                            reply.usage = Some(billed.usage);
                        }
                        let mut res = inbound.render(&meta, &reply, &billed);
                        crate::app::set_header(&mut res, "x-hub-call-id", &call_id);
                        crate::app::set_header(&mut res, "x-hub-credits", &billed.credits.to_string());
                        res
                    }
                });
            }
            Err(f) => {
                let (error, go_on) = attempts.failed(&at, f);
                guard.failed.push(meter.failed_log(&error));
                last = Some(error);
                if !go_on {
                    break;
                }
            }
        }
    }

    // Nothing reached the client: the guard releases the hold in full and logs the attempts.
    drop(guard);
    Err(last
        .or(refused)
        .unwrap_or_else(|| ApiError::provider("No provider could serve this model: every credential is disabled.")))
}

/// The most output tokens a route's answer can hold: the budget sent to the
/// provider (the caller's, or Hub's default where the protocol requires one),
/// else the model's known limit, times `n`.
fn output_bound(route: &Route, max_tokens: Option<u64>, n: u64, default_max_tokens: u64) -> u64 {
    let per_answer = max_tokens.unwrap_or_else(|| match route.provider.vendor.wire {
        // Anthropic requires a budget: Hub sends its default.
        Wire::Anthropic => default_max_tokens,
        _ => route
            .model
            .max_output_tokens
            .map_or(UNSENT_OUTPUT_BOUND, |m| m.max(1) as u64),
    });
    n.saturating_mul(per_answer)
}

/// Releases a call's hold and logs its failed attempts unless a relay took
/// the call over: on failure of every provider, and when the request is
/// dropped mid-flight.
pub(crate) struct HoldGuard {
    hub: Hub,
    call_id: String,
    user: String,
    pub hold: Option<Credits>,
    /// A key-limits reservation to give back if no relay takes the call.
    key_limited: bool,
    pub failed: Vec<CallLog>,
}

impl HoldGuard {
    pub fn new(hub: &Hub, call_id: &str, user: &str, hold: Option<Credits>, key_limited: bool) -> Self {
        HoldGuard {
            hub: hub.clone(),
            call_id: call_id.to_string(),
            user: user.to_string(),
            hold,
            key_limited,
            failed: Vec::new(),
        }
    }

    /// Holds `amount` for the call (402 when the free balance cannot cover it).
    /// A hold row is released even if the request is dropped while its write
    /// is in flight, so the guard is armed before it (releasing a hold that
    /// was never placed changes nothing); the credit book's hold is taken
    /// without waiting, so it is armed once taken.
    pub async fn place(&mut self, settings: &crate::config::Settings, amount: Credits) -> Result<(), ApiError> {
        let in_database = self.hub.holds_in_database();
        if in_database {
            self.hold = Some(amount);
        }
        let hub = self.hub.clone();
        let result = hold(&hub, settings, &self.call_id, &self.user, amount).await;
        self.hold = (result.is_ok() || in_database).then_some(amount);
        result
    }

    /// Hands the call to its meter; returns the failed attempts to log with it.
    pub fn disarm(&mut self) -> Vec<CallLog> {
        self.hold = None;
        self.key_limited = false;
        std::mem::take(&mut self.failed)
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        let inner = &self.hub.inner;
        let hold = self.hold.take();
        let failed = std::mem::take(&mut self.failed);
        if let (Some(hold), Some(book)) = (hold, inner.book.get()) {
            book.settle(&self.user, hold, Credits::ZERO);
        }
        let hold_row = hold.is_some() && self.hub.holds_in_database();
        let key_limited = std::mem::take(&mut self.key_limited);
        let now = inner.clock.now_ms();
        let mut stmts: Vec<crate::ports::Stmt> = failed.iter().map(crate::store::call_log_stmt).collect();
        if hold_row {
            stmts.push(crate::store::Store::release_hold_stmt(&self.call_id, now));
        }
        // Nothing was used: the key's limits get the reservation back (the request still counts).
        if key_limited {
            stmts.push(crate::store::Store::key_call_stmt(&self.call_id, 0, 0));
        }
        if !stmts.is_empty() {
            // Retried until committed, like a settlement: a hold left open would
            // lock the user's credit until it expires.
            self.hub.commit_settlement(&self.call_id, stmts);
        }
    }
}

enum Answer {
    /// A stream that has produced its first chunk.
    Stream {
        first: Bytes,
        rest: crate::http::ByteStream,
    },
    /// An OpenAI-compatible provider's whole answer for an OpenAI caller, as is.
    Raw {
        body: Bytes,
        usage: Option<Usage>,
        output_bytes: u64,
    },
    /// A whole answer read into the internal model, to render for the caller.
    Reply(Reply),
}

/// A 200 answer to a stream request that is a page or a JSON body, not a stream.
fn not_a_stream(resp: &UpstreamResponse) -> Option<Failure> {
    let ct = crate::http::header(&resp.headers, "content-type").unwrap_or("");
    (ct.starts_with("text/html") || ct.starts_with("application/json")).then(|| {
        Failure::retryable(ApiError::provider(format!(
            "The provider answered a stream request with `{ct}` instead of a stream."
        )))
    })
}

async fn stream_first_chunk(mut resp: UpstreamResponse) -> Result<Answer, Failure> {
    loop {
        match resp.body.next().await {
            Some(Ok(chunk)) if chunk.is_empty() => continue,
            Some(Ok(first)) => return Ok(Answer::Stream { first, rest: resp.body }),
            Some(Err(e)) => return Err(Failure::retryable(super::chat_stream_error(&e.0))),
            None => {
                return Err(Failure::retryable(ApiError::provider(
                    "The provider closed the stream without sending anything.",
                )))
            }
        }
    }
}

pub(crate) async fn collect(resp: &mut UpstreamResponse, limit: usize) -> Result<Bytes, Failure> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.body.next().await {
        let chunk = chunk.map_err(|e| Failure::retryable(super::chat_stream_error(&e.0)))?;
        if buf.len() + chunk.len() > limit {
            return Err(Failure::retryable(ApiError::provider(
                "The provider's answer is too large.",
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn not_json() -> Failure {
    Failure::retryable(ApiError::provider(
        "The provider answered with something that is not JSON.",
    ))
}

/// Reads a whole answer: as is when both sides speak OpenAI, else into the internal model.
async fn read_whole(
    mut resp: UpstreamResponse,
    passthrough: bool,
    wire: Wire,
    call_id: &str,
) -> Result<Answer, Failure> {
    let body = collect(&mut resp, MAX_UPSTREAM_BODY).await?;
    if passthrough {
        let view = serde_json::from_slice::<ChunkView>(&body).map_err(|_| not_json())?;
        let usage = view.usage.as_ref().map(|u| u.to_usage());
        let output_bytes = view.output_bytes();
        return Ok(Answer::Raw {
            body,
            usage,
            output_bytes,
        });
    }
    let deltas = providers::chat_decode_whole(wire, &body, call_id).map_err(Failure::retryable)?;
    let reply = Reply::from_deltas(deltas).map_err(Failure::retryable)?;
    if reply.text.is_empty() && reply.tool_calls.is_empty() && reply.finish.is_none() && reply.usage.is_none() {
        return Err(not_json());
    }
    Ok(Answer::Reply(reply))
}

fn stream_response(
    meter: CallMeter,
    first: Bytes,
    rest: crate::http::ByteStream,
    mode: Mode,
    content_type: &'static str,
) -> Response {
    let call_id = meter.call_id.clone();
    let relay = Relay::new(meter, first, rest, mode);
    let mut res = http::Response::new(Body::Stream(Box::pin(relay)));
    let h = res.headers_mut();
    h.insert("content-type", http::HeaderValue::from_static(content_type));
    h.insert("cache-control", http::HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    crate::app::set_header(&mut res, "x-hub-call-id", &call_id);
    res
}

pub(crate) fn whole_response(mut meter: CallMeter, body: Bytes, usage: Option<Usage>, output_bytes: u64) -> Response {
    meter.ttfb_ms = Some(meter.elapsed_ms());
    let credits = meter
        .finish(usage, output_bytes, super::relay::Outcome::Complete)
        .credits;
    let call_id = meter.call_id.clone();
    let mut res = http::Response::new(Body::Full(body));
    res.headers_mut()
        .insert("content-type", http::HeaderValue::from_static("application/json"));
    crate::app::set_header(&mut res, "x-hub-call-id", &call_id);
    crate::app::set_header(&mut res, "x-hub-credits", &credits.to_string());
    res
}
