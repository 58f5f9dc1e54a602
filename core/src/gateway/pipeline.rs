//! The one call pipeline every model endpoint runs through:
//!
//! candidates → key admission → hold → attempts with failover → relay or
//! collect → settle.
//!
//! What differs between endpoints (how to ask each provider, what a call can
//! cost, how to read and render the answer) is an [`Exchange`]; everything
//! else — which credential each attempt uses, the hold and its release, the
//! call log, failover only before the first byte reached the caller — is
//! here, once.

use super::cache::{Called, HitCost, Lookup, CACHE_HEADER};
use super::failover::{body_failure, provider_error, transport_failure, Attempt, Attempts, Failure};
use super::hold::{admit_key, rate_limit_headers, HoldGuard};
use super::relay::{CallMeter, Mode, Outcome, Relay};
use crate::auth::Caller;
use crate::chat::Reply;
use crate::codec::{Billed, Meta};
use crate::config::{Route, Settings, Snapshot};
use crate::error::ApiError;
use crate::http::{Body, ByteStream, Request, Response};
use crate::kinds::{CacheUse, Endpoint, ModelKind};
use crate::metering::estimate::PromptSize;
use crate::metering::money::Credits;
use crate::metering::Usage;
use crate::ports::{UpstreamRequest, UpstreamResponse};
use crate::store::KeyUse;
use crate::Hub;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::sync::Arc;

/// What a call is, before any provider is chosen.
#[derive(Clone)]
pub(crate) struct Plan {
    pub endpoint: Endpoint,
    /// The kind of model the call needs.
    pub kind: ModelKind,
    /// The model as the caller named it.
    pub model: String,
    pub prompt: PromptSize,
    pub stream: bool,
    /// The largest whole answer read from a provider.
    pub answer_limit: usize,
}

/// A provider's whole answer, read.
pub(crate) enum Whole {
    /// The bytes the caller gets as they are, with the provider's usage
    /// (None: Hub estimates from `output_bytes`).
    Raw {
        body: Bytes,
        usage: Option<Usage>,
        output_bytes: u64,
    },
    /// A chat answer in the internal model, rendered in the caller's protocol.
    Reply(Reply),
    /// The provider's answer to a job it started and Hub follows after this
    /// call answers (OpenAI's `/v1/videos`): the call's hold stays open
    /// until the job ends ([`Exchange::open_job`]).
    Job(Bytes),
}

/// A provider answer followed to its result ([`Exchange::follow`]).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Followed<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes, Failure>> + Send + 'a>>;
#[cfg(target_arch = "wasm32")]
pub(crate) type Followed<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes, Failure>> + 'a>>;

/// A started job, recorded ([`Exchange::open_job`]).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Opened<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, ApiError>> + Send + 'a>>;
#[cfg(target_arch = "wasm32")]
pub(crate) type Opened<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, ApiError>> + 'a>>;

/// What differs between the endpoints that share the pipeline.
pub(crate) trait Exchange: crate::ports::MaybeSendSync {
    fn plan(&self) -> &Plan;

    /// Whether the response cache may answer the request, or keep its
    /// answer: the answer depends on the request body alone, and is kept
    /// in the caller's protocol.
    fn cacheable(&self) -> bool {
        false
    }

    /// The most a call can produce on a route beyond its prompt: the dearest
    /// candidate's worst case is held before any attempt.
    fn worst_output(&self, route: &Route, settings: &Settings) -> Usage;

    /// The most a route's answer is billed for beyond its prompt: reported
    /// usage above it is cut to it (and the call flagged).
    fn output_bound(&self, route: &Route, settings: &Settings) -> Usage {
        self.worst_output(route, settings)
    }

    /// Whether a candidate can take the request as asked, checked for every
    /// candidate before anything is held or sent (a refusal in `request`
    /// comes after the hold).
    fn check(&mut self, _route: &Route) -> Result<(), ApiError> {
        Ok(())
    }

    /// The provider request for an attempt. An error means this provider
    /// cannot take the request as asked; another candidate may.
    fn request(&mut self, hub: &Hub, attempt: &Attempt, settings: &Settings) -> Result<UpstreamRequest, ApiError>;

    /// A 2xx whole answer followed to the result the caller gets. A provider
    /// that answers with a job (video) is polled here until the job ends,
    /// and its output fetched; a failed job fails the attempt, so the hold
    /// is released. For every other endpoint the answer is the result.
    fn follow<'a>(&'a self, _hub: &'a Hub, _at: &'a Attempt<'a>, answer: Bytes) -> Followed<'a> {
        Box::pin(async move { Ok(answer) })
    }

    /// A 2xx whole answer, read for the caller.
    fn read(&self, route: &Route, body: Bytes, meta: &Meta) -> Result<Whole, ApiError>;

    /// Whether the call's hold outlives the call (a job it starts keeps
    /// it): such a hold is a row of its own, never taken from a lease.
    fn hold_outlives_call(&self) -> bool {
        false
    }

    /// How long the call's hold lives if nothing settles it: a call that
    /// starts a job holds until the job can no longer end.
    fn hold_ttl_ms(&self, settings: &Settings) -> i64 {
        settings.hold_ttl_seconds * 1000
    }

    /// Records a job the provider started ([`Whole::Job`]) with the call's
    /// open hold, and answers the caller. An error releases the hold.
    fn open_job<'a>(&'a self, _hub: &'a Hub, _meter: &'a CallMeter, _answer: Bytes) -> Opened<'a> {
        Box::pin(async { Err(ApiError::internal("This endpoint starts no job.")) })
    }

    /// How a streamed answer's bytes become the caller's, and its content
    /// type; None for endpoints that answer whole only.
    fn relay(&self, _route: &Route, _meta: Meta) -> Option<(Mode, &'static str)> {
        None
    }

    /// The content type of a whole answer passed on as is ([`Whole::Raw`]).
    fn content_type(&self) -> &'static str {
        "application/json"
    }

    /// A whole chat reply ([`Whole::Reply`]) in the caller's protocol.
    fn render(&self, _meta: &Meta, _reply: &Reply, _billed: &Billed) -> Response {
        ApiError::internal("This endpoint has no chat reply.").into_response(crate::error::Protocol::Hub)
    }
}

/// Runs one call through the pipeline.
pub(crate) async fn run(
    hub: &Hub,
    caller: Arc<Caller>,
    req: &Request,
    request_id: &str,
    exchange: &mut dyn Exchange,
) -> Result<Response, ApiError> {
    use tracing::Instrument;
    let span = tracing::info_span!("call", request_id = %request_id, call_id = tracing::field::Empty, model = %exchange.plan().model);
    async move {
        let plan = exchange.plan().clone();
        let started_us = hub.clock().monotonic_us();
        let (snap, routes) = candidates_fresh(hub, &caller, &plan.model, plan.kind).await?;
        let routes = able(exchange, routes)?;
        let cache = match exchange.cacheable() {
            true => {
                let called = Called {
                    endpoint: plan.endpoint,
                    stream: plan.stream,
                    alias: snap.aliases.get(&plan.model).map(|a| &**a),
                };
                Lookup::plan(&snap.settings.response_cache, &caller, req, called)?
            }
            false => None,
        };
        let mut call = Call::new(hub, caller, req, request_id, plan, snap, started_us);
        if let Some(lookup) = &cache {
            if let Some((answer, route)) = lookup.find(hub, &routes).await {
                return call.answer_from_cache(&answer, &route).await;
            }
        }
        call.cache = cache;
        let trace = hub.start_trace(req, started_us);
        if trace.is_none() {
            // Not traced here: the caller's trace context still reaches the provider.
            call.traceparent = crate::http::header(req.headers(), "traceparent").map(str::to_owned);
        }
        let (hold, mut guard, used) = call.admit(&*exchange, &routes).await?;
        guard.trace = trace;
        let mut res = call.attempt(exchange, &routes, hold, guard).await?;
        // Headers leave with the first byte, a stream's included.
        if let Some(used) = used {
            res.headers_mut().extend(rate_limit_headers(&call.caller.limits, &used));
        }
        if call.cache.is_some() {
            crate::http::set_header(&mut res, CACHE_HEADER, CacheUse::Miss.as_str());
        }
        Ok(res)
    }
    .instrument(span)
    .await
}

impl Call<'_> {
    /// Answers with a stored answer: admitted under the key's limits like
    /// any call, billed the hit fraction of what the answer's usage costs at
    /// the model's rates (held first when that is more than nothing),
    /// logged as a hit.
    async fn answer_from_cache(
        &self,
        answer: &crate::store::CachedAnswer,
        route: &Route,
    ) -> Result<Response, ApiError> {
        let settings = &self.snap.settings;
        // At the rates the answer's usage is billed at (a long prompt's tier), as the relay records them.
        let cost = HitCost::new(
            route.model.rates.for_usage(&answer.usage).cost(&answer.usage),
            settings.response_cache.hit_fraction,
        );
        let hold = (self.billed && cost.charge > Credits::ZERO).then_some(cost.charge);
        let ttl_ms = settings.hold_ttl_seconds * 1000;
        let used = admit_key(self.hub, &self.caller, &self.id, &answer.usage, cost.charge, ttl_ms).await?;
        let mut guard = HoldGuard::new(self.hub, &self.id, &self.caller);
        if let Some(hold) = hold {
            guard.place(settings, hold, ttl_ms, true).await?;
        }
        // The stored usage was bounded when a provider produced it.
        let mut meter = self.meter(route, 1, None, hold, answer.usage);
        meter.cache_use = Some(CacheUse::Hit);
        meter.hit = Some(cost);
        meter.held_in = guard.held_in();
        meter.earlier_attempts = guard.disarm();
        meter.ttfb_ms = Some(meter.elapsed_ms());
        let billed = meter.finish(Some(answer.usage), 0, Outcome::Complete);
        let mut res = super::cache::replay(answer);
        if let Some(used) = used {
            res.headers_mut().extend(rate_limit_headers(&self.caller.limits, &used));
        }
        crate::http::set_header(&mut res, CACHE_HEADER, CacheUse::Hit.as_str());
        crate::http::set_header(&mut res, "x-hub-credits", &billed.credits.to_string());
        crate::http::set_header(&mut res, "x-hub-call-id", &self.id);
        Ok(res)
    }

    /// Admits the call under its key's limits and holds its worst case;
    /// returns what the key used in the last minute, when it has limits.
    async fn admit(
        &self,
        exchange: &dyn Exchange,
        routes: &[Route],
    ) -> Result<(Credits, HoldGuard, Option<KeyUse>), ApiError> {
        let hold = self.hold_for(exchange, routes);
        let bound = self.worst_case(exchange, &routes[0]);
        let ttl_ms = exchange.hold_ttl_ms(&self.snap.settings);
        let used = admit_key(self.hub, &self.caller, &self.id, &bound, hold, ttl_ms).await?;
        // From here until a relay takes over, a dropped request (the client left
        // while Hub waited on providers) must not strand the hold.
        let mut guard = HoldGuard::new(self.hub, &self.id, &self.caller);
        if self.billed {
            guard
                .place(&self.snap.settings, hold, ttl_ms, !exchange.hold_outlives_call())
                .await?;
        }
        Ok((hold, guard, used))
    }

    /// Tries the candidates in turn until one answers; failover only before
    /// anything reached the caller.
    async fn attempt(
        &self,
        exchange: &mut dyn Exchange,
        routes: &[Route],
        hold: Credits,
        mut guard: HoldGuard,
    ) -> Result<Response, ApiError> {
        let hub = self.hub;
        let mut failures = Failures::default();
        let mut attempts = Attempts::new(hub, routes, self.snap.settings.max_attempts as usize);
        while let Some(at) = attempts.next_attempt() {
            if let Some(e) = self.too_long_for(at.route) {
                // Not sent: logged as an attempt, so the call log says why the target was passed over.
                attempts.skipped_last();
                let skipped = Attempt { credential: None, ..at };
                guard.failed(self.meter_for(&*exchange, &skipped, hold).failed_log(&e));
                failures.last = Some(e);
                continue;
            }
            let mut upstream = match exchange.request(hub, &at, &self.snap.settings) {
                Ok(r) => r,
                Err(e) => {
                    attempts.forget_last();
                    failures.refused.get_or_insert(e);
                    continue;
                }
            };
            self.propagate(&mut guard, &at, &mut upstream);
            let mut meter = self.meter_for(&*exchange, &at, hold);
            let meta = self.meta(at.route);
            let sent_us = hub.clock().monotonic_us();
            let mut headers_us = None;
            let received = receive(&*exchange, self, &at, upstream, &meta, &mut headers_us).await;
            self.measure(&at, &received, headers_us.map(|us| us.saturating_sub(sent_us)));
            match received {
                Ok(Answer::Whole(Whole::Job(answer))) => {
                    meter.upstream_ttfb_ms = Some(((hub.clock().monotonic_us() - sent_us) / 1000) as i64);
                    meter.earlier_attempts = guard.failed_attempts().to_vec();
                    guard.pause();
                    return match exchange.open_job(hub, &meter, answer).await {
                        // The job has the hold and logged the failed attempts: the
                        // guard, left paused, only stops counting the hold as open.
                        Ok(res) => Ok(res),
                        Err(e) => {
                            // Not recorded: nothing can settle it, so it is released now.
                            guard.resume();
                            guard.failed(meter.failed_log(&e));
                            Err(e)
                        }
                    };
                }
                Ok(answer) => {
                    meter.upstream_ttfb_ms = Some(((hub.clock().monotonic_us() - sent_us) / 1000) as i64);
                    meter.held_in = guard.held_in();
                    meter.earlier_attempts = guard.disarm();
                    meter.trace = guard.trace.take();
                    return Ok(deliver(&*exchange, meter, answer, meta));
                }
                Err(f) => {
                    let (error, go_on) = attempts.failed(&at, f);
                    guard.failed(meter.failed_log(&error));
                    failures.last = Some(error);
                    if !go_on {
                        break;
                    }
                }
            }
        }
        // Nothing reached the client: the guard releases the hold in full and logs the attempts.
        drop(guard);
        Err(failures.into_error())
    }
}

/// One call's facts, shared by its attempts.
struct Call<'a> {
    hub: &'a Hub,
    caller: Arc<Caller>,
    id: String,
    request_id: &'a str,
    app: String,
    plan: Plan,
    snap: Arc<Snapshot>,
    /// The request body's size, which bounds the prompt Hub bills.
    body_bytes: u64,
    billed: bool,
    started_us: u64,
    /// The caller's `traceparent`, passed on as it came when Hub does not trace.
    traceparent: Option<String>,
    /// How the response cache takes the call (a miss, once it is past the lookup).
    cache: Option<Lookup>,
}

impl<'a> Call<'a> {
    fn new(
        hub: &'a Hub,
        caller: Arc<Caller>,
        req: &Request,
        request_id: &'a str,
        plan: Plan,
        snap: Arc<Snapshot>,
        started_us: u64,
    ) -> Self {
        let id = hub.new_id("call");
        tracing::Span::current().record("call_id", id.as_str());
        Call {
            hub,
            app: app_of(req, &caller),
            caller,
            id,
            request_id,
            plan,
            body_bytes: req.body().len() as u64,
            billed: snap.settings.billing_enabled,
            snap,
            started_us,
            traceparent: None,
            cache: None,
        }
    }

    /// Why an alias target is passed over without asking it: the prompt's
    /// estimate exceeds the target's context window.
    fn too_long_for(&self, route: &Route) -> Option<ApiError> {
        route.via.as_ref()?;
        let window = super::routing::context_window(&route.model)?;
        // A model priced for prompts past its window (a long-context tier at
        // or above it, as catalogues list 1M-token betas) takes them.
        if route.model.rates.long_context.is_some_and(|t| t.threshold >= window) {
            return None;
        }
        let prompt = self.plan.prompt.input_token_guess();
        (prompt > window).then(|| {
            ApiError::bad_request(format!(
                "The prompt (about {prompt} tokens) exceeds the context window of `{}` ({window} tokens).",
                route.model.model
            ))
            .with_code("context_length_exceeded")
        })
    }

    /// Feeds latency routing: a provider's time to first byte when it
    /// answered, a failure when it failed (not when the request was at fault).
    fn measure<T>(&self, at: &Attempt, received: &Result<T, Failure>, ttfb_us: Option<u64>) {
        let speed = self.hub.speed();
        match received {
            Ok(_) => speed.succeeded(&at.route.model.id, ttfb_us.unwrap_or(0) as f64 / 1000.0),
            Err(f) if f.class.counts_against_provider() => speed.failed(&at.route.model.id),
            Err(_) => {}
        }
    }

    /// Sends the provider the attempt's trace context: its own span when the
    /// call is traced, else the caller's as it came.
    fn propagate(&self, guard: &mut HoldGuard, at: &Attempt, upstream: &mut UpstreamRequest) {
        let header = match guard.trace.as_mut() {
            Some(t) => t.begin_attempt(
                self.hub.rng(),
                self.hub.clock().monotonic_us(),
                at.route.provider.vendor.kind,
                &at.route.model.model,
            ),
            None => self.traceparent.clone(),
        };
        if let Some(h) = header {
            upstream.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("traceparent"));
            upstream.headers.push(("traceparent".into(), h));
        }
    }

    /// The most a route can use: the prompt's bound and the exchange's output.
    fn worst_case(&self, exchange: &dyn Exchange, route: &Route) -> Usage {
        Usage {
            input_tokens: self.plan.prompt.input_token_bound(),
            ..exchange.worst_output(route, &self.snap.settings)
        }
    }

    /// Enough for the dearest candidate at the largest possible usage.
    fn hold_for(&self, exchange: &dyn Exchange, routes: &[Route]) -> Credits {
        routes
            .iter()
            .map(|r| {
                let worst = self.worst_case(exchange, r);
                // At the tier's rates when the prompt may cross it, judged by the
                // most input the call may be billed for (the meter's bound), not
                // the estimate; every prompt token may come back as a cache
                // write, dearer than input.
                let ceiling = Usage {
                    input_tokens: self.plan.prompt.input_token_ceiling(self.body_bytes),
                    ..worst
                };
                let billed = r.model.rates.for_usage(&ceiling);
                let rates = crate::metering::Rates {
                    input: billed.dearest_prompt_rate(),
                    ..billed
                };
                rates.cost(&worst)
            })
            .max()
            .unwrap_or(Credits::ZERO)
    }

    /// The meter of an attempt at a provider.
    fn meter_for(&self, exchange: &dyn Exchange, at: &Attempt, hold: Credits) -> CallMeter {
        let bound = Usage {
            input_tokens: self.plan.prompt.input_token_ceiling(self.body_bytes),
            ..exchange.output_bound(at.route, &self.snap.settings)
        };
        let credential = at.credential.map(|c| c.id.clone());
        let mut meter = self.meter(
            at.route,
            at.number as i64,
            credential,
            self.billed.then_some(hold),
            bound,
        );
        meter.cache_use = self.cache.as_ref().map(|_| CacheUse::Miss);
        meter.record = self.cache.as_ref().map(Lookup::recorder);
        meter
    }

    fn meter(
        &self,
        route: &Route,
        attempt: i64,
        credential_id: Option<String>,
        hold: Option<Credits>,
        bound: Usage,
    ) -> CallMeter {
        CallMeter {
            bound,
            hub: self.hub.clone(),
            call_id: self.id.clone(),
            attempt,
            request_id: self.request_id.to_string(),
            caller: self.caller.clone(),
            app: self.app.clone(),
            route: route.clone(),
            credential_id,
            model: self.plan.model.clone(),
            endpoint: self.plan.endpoint,
            kind: self.plan.kind,
            stream: self.plan.stream,
            billed: self.billed,
            hold,
            held_in: None,
            prompt: self.plan.prompt,
            started_us: self.started_us,
            upstream_ttfb_ms: None,
            ttfb_ms: None,
            earlier_attempts: Vec::new(),
            trace: None,
            cache_use: None,
            record: None,
            hit: None,
        }
    }

    fn meta(&self, route: &Route) -> Meta {
        Meta {
            call_id: self.id.clone(),
            model: self.plan.model.clone(),
            model_with_provider: format!("{}/{}", route.provider.name, route.model.model),
            created: self.hub.now_ms() / 1000,
            credit_prefix: self.snap.settings.currency_prefix.clone(),
        }
    }
}

/// Why no attempt succeeded.
#[derive(Default)]
struct Failures {
    /// The first provider that could not take the request as asked.
    refused: Option<ApiError>,
    /// The last attempt's error.
    last: Option<ApiError>,
}

impl Failures {
    fn into_error(self) -> ApiError {
        self.last
            .or(self.refused)
            .unwrap_or_else(|| ApiError::provider("No provider could serve this model: every credential is disabled."))
    }
}

/// A provider's successful answer, as far as it was read before choosing it.
enum Answer {
    /// A stream that has produced its first chunk, and how to relay it.
    Stream {
        first: Bytes,
        rest: ByteStream,
        mode: Mode,
        content_type: &'static str,
    },
    Whole(Whole),
}

/// Sends one attempt and reads its answer far enough to know it succeeded:
/// a stream's first chunk, or a whole answer.
/// `headers_us` gets when the provider's response headers arrived.
async fn receive(
    exchange: &dyn Exchange,
    call: &Call<'_>,
    at: &Attempt<'_>,
    upstream: UpstreamRequest,
    meta: &Meta,
    headers_us: &mut Option<u64>,
) -> Result<Answer, Failure> {
    let route = at.route;
    // How a stream would be relayed is settled before the provider is asked.
    let relay = match call.plan.stream {
        true => match exchange.relay(route, meta.clone()) {
            Some(relay) => Some(relay),
            None => return Err(Failure::fatal(ApiError::bad_request("This endpoint does not stream."))),
        },
        false => None,
    };
    let mut resp = call.hub.send_upstream(upstream).await.map_err(transport_failure)?;
    *headers_us = Some(call.hub.clock().monotonic_us());
    if !(200..300).contains(&resp.status) {
        return Err(provider_error(resp).await);
    }
    if let Some((mode, content_type)) = relay {
        if let Some(f) = not_a_stream(&resp) {
            return Err(f);
        }
        let (first, rest) = first_chunk(resp).await?;
        return Ok(Answer::Stream {
            first,
            rest,
            mode,
            content_type,
        });
    }
    let body = collect(&mut resp, call.plan.answer_limit).await?;
    let body = exchange.follow(call.hub, at, body).await?;
    exchange
        .read(route, body, meta)
        .map(Answer::Whole)
        .map_err(Failure::retryable)
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

async fn first_chunk(mut resp: UpstreamResponse) -> Result<(Bytes, ByteStream), Failure> {
    loop {
        match resp.body.next().await {
            Some(Ok(chunk)) if chunk.is_empty() => continue,
            Some(Ok(first)) => return Ok((first, resp.body)),
            Some(Err(e)) => return Err(Failure::retryable(body_failure(&e))),
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
        let chunk = chunk.map_err(|e| Failure::retryable(body_failure(&e)))?;
        if buf.len() + chunk.len() > limit {
            return Err(Failure::retryable(ApiError::provider(
                "The provider's answer is too large.",
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Hands the answer to the caller; the meter settles the call when it ends.
fn deliver(exchange: &dyn Exchange, mut meter: CallMeter, answer: Answer, meta: Meta) -> Response {
    let call_id = meter.call_id.clone();
    let mut res = match answer {
        Answer::Stream {
            first,
            rest,
            mode,
            content_type,
        } => stream_response(Relay::new(meter, first, rest, mode, content_type), content_type),
        Answer::Whole(Whole::Raw {
            body,
            usage,
            output_bytes,
        }) => {
            meter.ttfb_ms = Some(meter.elapsed_ms());
            if let Some(t) = meter.trace.as_mut() {
                t.capture_completion(&body);
                t.finish_reasons = crate::telemetry::trace::finish_reasons(meter.endpoint, &body);
            }
            let billed = meter.finish(usage, output_bytes, Outcome::Complete);
            if let Some(mut r) = meter.record.take() {
                r.push(&body);
                r.keep(&meter.hub, &meter.route, &billed, exchange.content_type());
            }
            let mut res = http::Response::new(Body::Full(body));
            res.headers_mut()
                .insert("content-type", http::HeaderValue::from_static(exchange.content_type()));
            crate::http::set_header(&mut res, "x-hub-credits", &billed.credits.to_string());
            res
        }
        // `Call::attempt` opens jobs; none reaches here.
        Answer::Whole(Whole::Job(_)) => {
            ApiError::internal("A started job was not recorded.").into_response(crate::error::Protocol::Hub)
        }
        Answer::Whole(Whole::Reply(mut reply)) => {
            meter.ttfb_ms = Some(meter.elapsed_ms());
            if let Some(t) = meter.trace.as_mut() {
                t.capture_completion(reply.text.as_bytes());
                t.finish_reasons = vec![reply.finish_reason().as_str().to_string()];
            }
            let billed = meter.finish(reply.usage, reply.output_bytes, Outcome::Complete);
            // The caller sees the usage it is billed for (cut to the bound if the provider overstated it).
            if reply.usage.is_some() {
                reply.usage = Some(billed.usage);
            }
            let mut res = exchange.render(&meta, &reply, &billed);
            if let (Some(mut r), Body::Full(body)) = (meter.record.take(), res.body()) {
                let content_type = crate::http::header(res.headers(), "content-type").unwrap_or("application/json");
                r.push(body);
                r.keep(&meter.hub, &meter.route, &billed, content_type);
            }
            crate::http::set_header(&mut res, "x-hub-credits", &billed.credits.to_string());
            res
        }
    };
    crate::http::set_header(&mut res, "x-hub-call-id", &call_id);
    res
}

fn stream_response(relay: Relay, content_type: &'static str) -> Response {
    let mut res = http::Response::new(Body::Stream(Box::pin(relay)));
    let h = res.headers_mut();
    h.insert("content-type", http::HeaderValue::from_static(content_type));
    h.insert("cache-control", http::HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    res
}

/// The caller's app: AIGNE's client DID header, Hub's own, or the key's label.
fn app_of(req: &Request, caller: &Caller) -> String {
    crate::http::header(req.headers(), "x-aigne-hub-client-did")
        .or_else(|| crate::http::header(req.headers(), "x-hub-app"))
        .map(|a| a.chars().take(200).collect::<String>())
        .unwrap_or_else(|| caller.key_label.clone())
}

/// The candidates that can take the request; if none can, the first one's refusal.
fn able(exchange: &mut dyn Exchange, routes: Vec<Route>) -> Result<Vec<Route>, ApiError> {
    let mut refused = None;
    let mut able = Vec::with_capacity(routes.len());
    for r in routes {
        match exchange.check(&r) {
            Ok(()) => able.push(r),
            Err(e) => {
                refused.get_or_insert(e);
            }
        }
    }
    match refused {
        Some(e) if able.is_empty() => Err(e),
        _ => Ok(able),
    }
}

/// The candidates for a model or alias the caller may use, best first.
fn candidates(
    hub: &Hub,
    snap: &Snapshot,
    caller: &Caller,
    model: &str,
    kind: ModelKind,
) -> Result<Vec<Route>, ApiError> {
    let routes: Vec<Route> = super::routing::resolve(snap, hub.speed(), model, kind)
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
    kind: ModelKind,
) -> Result<(Arc<Snapshot>, Vec<Route>), ApiError> {
    let snap = hub.snapshot().await?;
    match candidates(hub, &snap, caller, model, kind) {
        Ok(routes) => Ok((snap, routes)),
        Err(e) => match hub.refresh_on_miss(&snap).await? {
            Some(fresh) => {
                let routes = candidates(hub, &fresh, caller, model, kind)?;
                Ok((fresh, routes))
            }
            None => Err(e),
        },
    }
}
