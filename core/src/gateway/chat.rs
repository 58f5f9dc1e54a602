//! `POST /v1/chat/completions`: one call end to end.
//!
//! Validate → resolve candidates → hold credit → try providers in order until
//! one answers with a first byte → relay (streamed or whole) → settle in the
//! background. Failover happens only before anything reached the client.

use super::relay::{CallMeter, Relay};
use crate::auth::Caller;
use crate::config::Route;
use crate::error::ApiError;
use crate::http::{Body, Response, StatusCode};
use crate::metering::money::Credits;
use crate::metering::Usage;
use crate::ports::{UpstreamError, UpstreamResponse};
use crate::protocols::openai::{parse_chat, ChatRequest, ChunkView};
use crate::providers::openai_compat;
use crate::store::CallLog;
use crate::Hub;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::sync::Arc;

/// Largest non-streamed provider answer Hub will read.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// What one failed attempt tells the next.
struct Failure {
    error: ApiError,
    /// Whether another provider may do better (not for the caller's own mistakes).
    retryable: bool,
}

pub async fn completions(
    hub: &Hub,
    caller: Arc<Caller>,
    req: crate::http::Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    use tracing::Instrument;
    let span = tracing::info_span!("call", request_id = %request_id, call_id = tracing::field::Empty, model = tracing::field::Empty);
    call(hub, caller, req, request_id).instrument(span).await
}

async fn call(
    hub: &Hub,
    caller: Arc<Caller>,
    req: crate::http::Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    let inner = &hub.inner;
    let started_us = inner.clock.monotonic_us();
    let app = crate::http::header(req.headers(), "x-aigne-hub-client-did")
        .or_else(|| crate::http::header(req.headers(), "x-hub-app"))
        .map(|a| a.chars().take(200).collect::<String>())
        .unwrap_or_else(|| caller.key_label.clone());
    let chat = parse_chat(req.body())?;
    let snap = hub.snapshot().await?;
    let settings = &snap.settings;
    let routes: Vec<Route> = snap
        .resolve(&chat.model, "chat")
        .into_iter()
        .filter(|r| caller.may_use_model(&chat.model, &r.provider.name, &r.model.model))
        .take(settings.max_attempts as usize)
        .collect();
    if routes.is_empty() {
        return Err(ApiError::model_not_found(&chat.model));
    }

    let call_id = hub.new_id("call");
    tracing::Span::current()
        .record("call_id", call_id.as_str())
        .record("model", chat.model.as_str());

    // Hold enough for the dearest candidate at the largest possible usage.
    let hold_usage = Usage {
        input_tokens: chat.prompt.input_token_bound(),
        output_tokens: chat.n
            * chat.max_tokens.unwrap_or_else(|| {
                routes[0]
                    .model
                    .max_output_tokens
                    .unwrap_or(settings.default_max_output_tokens)
                    .max(1) as u64
            }),
        ..Default::default()
    };
    let hold_amount = routes
        .iter()
        .map(|r| r.model.rates.cost(&hold_usage))
        .max()
        .unwrap_or(Credits::ZERO);
    let billed = settings.billing_enabled;
    if billed {
        let held = hub
            .place_hold(&call_id, &caller.user_id, hold_amount, settings.hold_ttl_seconds * 1000)
            .await?;
        if !held {
            let mut msg = format!(
                "Insufficient credits: this call needs up to {}{} of free balance.",
                settings.currency_prefix, hold_amount
            );
            if let Some(link) = &settings.payment_link {
                msg.push_str(&format!(" Buy more credits at {link}"));
            }
            return Err(ApiError::insufficient_credits(msg));
        }
    }
    // From here until a relay takes over, a dropped request (the client left
    // while Hub waited on providers) must not strand the hold.
    let mut guard = HoldGuard {
        hub: hub.clone(),
        call_id: call_id.clone(),
        user: caller.user_id.clone(),
        hold: billed.then_some(hold_amount),
        failed: Vec::new(),
    };

    let mut last = ApiError::provider("No provider could serve this model.");
    for (attempt, route) in routes.iter().enumerate() {
        let credential = route.provider.next_credential();
        let upstream_req = openai_compat::chat_request(
            &route.provider.base_url,
            credential.map(|c| c.secret.as_str()),
            chat.upstream_body(&route.model.model),
            inner.options.timeouts,
        );
        let meter = CallMeter {
            hub: hub.clone(),
            call_id: call_id.clone(),
            attempt: attempt as i64 + 1,
            request_id: request_id.to_string(),
            caller: caller.clone(),
            app: app.clone(),
            route: route.clone(),
            credential_id: credential.map(|c| c.id.clone()),
            model: chat.model.clone(),
            stream: chat.stream,
            billed,
            hold: billed.then_some(hold_amount),
            prompt: chat.prompt,
            started_us,
            upstream_ttfb_ms: None,
            ttfb_ms: None,
            earlier_attempts: Vec::new(),
        };
        let sent_us = inner.clock.monotonic_us();
        let outcome = match inner.upstream.send(upstream_req).await {
            Ok(resp) if (200..300).contains(&resp.status) => {
                if chat.stream {
                    stream_first_chunk(resp).await
                } else {
                    read_whole(resp).await
                }
            }
            Ok(resp) => Err(provider_error(resp).await),
            Err(e) => Err(transport_failure(e)),
        };
        let secret = credential.map(|c| c.secret.as_str());
        match outcome {
            Ok(answer) => {
                let mut meter = meter;
                meter.upstream_ttfb_ms = Some(((inner.clock.monotonic_us() - sent_us) / 1000) as i64);
                meter.earlier_attempts = guard.disarm();
                return Ok(match answer {
                    Answer::Stream { first, rest } => stream_response(meter, &chat, first, rest),
                    Answer::Whole {
                        body,
                        usage,
                        output_bytes,
                    } => whole_response(meter, body, usage, output_bytes),
                });
            }
            Err(f) => {
                let error = scrub(f.error, secret);
                tracing::warn!(provider = %route.provider.name, attempt = attempt + 1, status = error.status.as_u16(), "attempt failed: {}", error.message);
                guard.failed.push(meter.failed_log(&error));
                last = error;
                if !f.retryable {
                    break;
                }
            }
        }
    }

    // Nothing reached the client: the guard releases the hold in full and logs the attempts.
    drop(guard);
    Err(last)
}

/// Releases a call's hold and logs its failed attempts unless a relay took
/// the call over: on failure of every provider, and when the request is
/// dropped mid-flight.
struct HoldGuard {
    hub: Hub,
    call_id: String,
    user: String,
    hold: Option<Credits>,
    failed: Vec<CallLog>,
}

impl HoldGuard {
    /// Hands the call to its meter; returns the failed attempts to log with it.
    fn disarm(&mut self) -> Vec<CallLog> {
        self.hold = None;
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
        if !hold_row && failed.is_empty() {
            return;
        }
        let store = inner.store.clone();
        let now = inner.clock.now_ms();
        let call = self.call_id.clone();
        inner.background.spawn(Box::pin(async move {
            let result = if hold_row {
                store.release_hold(&call, now, &failed).await
            } else {
                store.log_calls(&failed).await
            };
            if let Err(e) = result {
                tracing::error!(call_id = %call, "could not release hold / log failed attempts: {e}");
            }
        }));
    }
}

enum Answer {
    /// A stream that has produced its first chunk.
    Stream {
        first: Bytes,
        rest: crate::http::ByteStream,
    },
    Whole {
        body: Bytes,
        usage: Option<Usage>,
        output_bytes: u64,
    },
}

async fn stream_first_chunk(mut resp: UpstreamResponse) -> Result<Answer, Failure> {
    loop {
        match resp.body.next().await {
            Some(Ok(chunk)) if chunk.is_empty() => continue,
            Some(Ok(first)) => return Ok(Answer::Stream { first, rest: resp.body }),
            Some(Err(e)) => {
                return Err(Failure {
                    error: super::chat_stream_error(&e.0),
                    retryable: true,
                });
            }
            None => {
                return Err(Failure {
                    error: ApiError::provider("The provider closed the stream without sending anything."),
                    retryable: true,
                })
            }
        }
    }
}

async fn collect(resp: &mut UpstreamResponse, limit: usize) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.body.next().await {
        let chunk = chunk.map_err(|e| super::chat_stream_error(&e.0))?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::provider("The provider's answer is too large."));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

async fn read_whole(mut resp: UpstreamResponse) -> Result<Answer, Failure> {
    match collect(&mut resp, MAX_UPSTREAM_BODY).await {
        Ok(body) => match serde_json::from_slice::<ChunkView>(&body) {
            Ok(view) => {
                let usage = view.usage.as_ref().map(|u| u.to_usage());
                let output_bytes = view.output_bytes();
                Ok(Answer::Whole {
                    body,
                    usage,
                    output_bytes,
                })
            }
            Err(_) => Err(Failure {
                error: ApiError::provider("The provider answered with something that is not JSON."),
                retryable: true,
            }),
        },
        Err(error) => Err(Failure { error, retryable: true }),
    }
}

/// A provider's non-2xx answer, classified.
/// (The caller scrubs the credential from the message, whatever the failure.)
async fn provider_error(mut resp: UpstreamResponse) -> Failure {
    let status = resp.status;
    let body = collect(&mut resp, 64 * 1024).await.unwrap_or_default();
    let detail = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.pointer("/message"))
                .or_else(|| v.get("error"))
                .and_then(|m| m.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    let (error, retryable) = match status {
        429 => (
            ApiError::rate_limited(format!("The provider is rate limiting requests: {detail}")),
            true,
        ),
        401 | 403 => (
            ApiError::provider(format!("The provider rejected Hub's credential ({status}): {detail}")),
            true,
        ),
        408 | 504 => (ApiError::provider_timeout(), true),
        400..=499 => {
            let mut e = ApiError::bad_request(format!("The provider refused the request: {detail}"));
            e.status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            (e, false)
        }
        _ => (
            ApiError::provider(format!("The provider failed ({status}): {detail}")),
            true,
        ),
    };
    Failure { error, retryable }
}

fn transport_failure(e: UpstreamError) -> Failure {
    let error = match e {
        UpstreamError::Timeout => ApiError::provider_timeout(),
        other => ApiError::provider(other.to_string()),
    };
    Failure { error, retryable: true }
}

/// Removes a secret from an error message, wherever it came from.
fn scrub(mut e: ApiError, secret: Option<&str>) -> ApiError {
    if let Some(s) = secret.filter(|s| s.len() >= 4) {
        if e.message.contains(s) {
            e.message = e.message.replace(s, "****");
        }
    }
    e
}

fn stream_response(meter: CallMeter, chat: &ChatRequest, first: Bytes, rest: crate::http::ByteStream) -> Response {
    let call_id = meter.call_id.clone();
    let relay = Relay::new(meter, first, rest, !chat.include_usage);
    let mut res = http::Response::new(Body::Stream(Box::pin(relay)));
    let h = res.headers_mut();
    h.insert(
        "content-type",
        http::HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert("cache-control", http::HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    crate::app::set_header(&mut res, "x-hub-call-id", &call_id);
    res
}

fn whole_response(mut meter: CallMeter, body: Bytes, usage: Option<Usage>, output_bytes: u64) -> Response {
    meter.ttfb_ms = Some(meter.elapsed_ms());
    let credits = meter.finish(usage, output_bytes, super::relay::Outcome::Complete);
    let call_id = meter.call_id.clone();
    let mut res = http::Response::new(Body::Full(body));
    res.headers_mut()
        .insert("content-type", http::HeaderValue::from_static("application/json"));
    crate::app::set_header(&mut res, "x-hub-call-id", &call_id);
    crate::app::set_header(&mut res, "x-hub-credits", &credits.to_string());
    res
}
