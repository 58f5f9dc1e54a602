//! `POST /v1/embeddings` and `POST /v1/images/generations`: whole answers,
//! the same hold, failover and settlement as chat. Embeddings bill input
//! tokens; images bill per image (plus tokens where the provider counts them).

use super::chat::{admit_key, app_of, candidates_fresh, collect, whole_response, HoldGuard};
use super::failover::{provider_error, transport_failure, Attempts, Failure};
use super::relay::CallMeter;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::Response;
use crate::metering::estimate::PromptSize;
use crate::metering::money::Credits;
use crate::metering::Usage;
use crate::ports::UpstreamRequest;
use crate::protocols::openai::json_object;
use crate::providers::{self, gemini, ideogram, Target, Wire};
use crate::Hub;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Output tokens held per image for providers that bill image tokens.
const IMAGE_TOKEN_BOUND: u64 = 8_000;
const MAX_ANSWER: usize = 256 * 1024 * 1024;

fn model_of(body: &Map<String, Value>) -> Result<String, ApiError> {
    match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => Ok(m.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(ApiError::invalid_field("model", "is required: name the model to call"))
        }
        Some(_) => Err(ApiError::invalid_field("model", "must be a string")),
    }
}

/// Reads a provider's answer: the body for the caller and its usage (None: estimate).
type ReadAnswer<'a> = &'a (dyn Fn(Wire, &[u8], i64) -> Result<(Bytes, Option<Usage>), ApiError> + Sync);

/// One media call: what to hold, how to ask each provider, how to read its answer.
struct MediaCall<'a> {
    endpoint: &'static str,
    kind: &'static str,
    model: String,
    prompt: PromptSize,
    hold_usage: Usage,
    build: &'a (dyn Fn(&Target) -> Result<UpstreamRequest, ApiError> + Sync),
    read: ReadAnswer<'a>,
}

pub async fn embeddings(
    hub: &Hub,
    caller: Arc<Caller>,
    req: crate::http::Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    let body = json_object(req.body())?;
    let model = model_of(&body)?;
    let texts: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                // Token arrays: sized by count, sent through only to OpenAI-compatible providers.
                Value::Array(t) if t.iter().all(Value::is_u64) => Ok(String::new()),
                _ => Err(ApiError::invalid_field(
                    &format!("input[{i}]"),
                    "must be a string or an array of token ids",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Array(_)) => return Err(ApiError::invalid_field("input", "must not be empty")),
        None | Some(Value::Null) => return Err(ApiError::invalid_field("input", "is required")),
        Some(_) => return Err(ApiError::invalid_field("input", "must be a string or an array")),
    };
    let token_ids: u64 = match body.get("input") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_array).map(|t| t.len() as u64).sum(),
        _ => 0,
    };
    let prompt = PromptSize {
        text_bytes: texts.iter().map(|t| t.len() as u64).sum::<u64>() + token_ids,
        messages: texts.len() as u64,
        images: 0,
    };
    let has_tokens = token_ids > 0;
    let body_value = Value::Object(body);
    let build = |t: &Target| -> Result<UpstreamRequest, ApiError> {
        if has_tokens && t.vendor.wire != Wire::OpenAi {
            return Err(crate::chat::unsupported(t.vendor.kind, "Token-id input"));
        }
        providers::embeddings_request(&body_value, &texts, t)
    };
    let model_name = model.clone();
    let read = move |wire: Wire, bytes: &[u8], _created: i64| -> Result<(Bytes, Option<Usage>), ApiError> {
        match wire {
            Wire::Gemini => {
                let vectors = gemini::embed_vectors(bytes)?;
                let data: Vec<Value> = vectors
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
                    .collect();
                let out = json!({"object": "list", "data": data, "model": model_name});
                Ok((Bytes::from(serde_json::to_vec(&out).unwrap_or_default()), None))
            }
            _ => {
                let v: Value = serde_json::from_slice(bytes)
                    .map_err(|_| ApiError::provider("The provider answered with something that is not JSON."))?;
                if v.get("data").is_none() {
                    return Err(ApiError::provider("The provider's answer has no embeddings."));
                }
                let usage = v.get("usage").map(|u| Usage {
                    input_tokens: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
                    ..Default::default()
                });
                Ok((Bytes::copy_from_slice(bytes), usage))
            }
        }
    };
    let call = MediaCall {
        endpoint: "embeddings",
        kind: "embedding",
        model,
        prompt,
        hold_usage: Usage {
            input_tokens: prompt.input_token_bound(),
            ..Default::default()
        },
        build: &build,
        read: &read,
    };
    run(hub, caller, &req, request_id, call).await
}

pub async fn images(
    hub: &Hub,
    caller: Arc<Caller>,
    req: crate::http::Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    let body = json_object(req.body())?;
    let model = model_of(&body)?;
    let prompt_text = match body.get("prompt") {
        Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::invalid_field("prompt", "is required"))
        }
        Some(_) => return Err(ApiError::invalid_field("prompt", "must be a string")),
    };
    let n = match body.get("n") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=10) => n,
            _ => return Err(ApiError::invalid_field("n", "must be an integer from 1 to 10")),
        },
    };
    // A streamed image answer is not the JSON Hub reads to count images: the
    // provider would charge for images Hub could not bill.
    for field in ["stream", "partial_images"] {
        if body
            .get(field)
            .is_some_and(|v| !v.is_null() && v != &Value::Bool(false))
        {
            return Err(ApiError::invalid_field(
                field,
                "is not supported: images are answered whole",
            ));
        }
    }
    for field in ["size", "quality", "response_format", "style", "user"] {
        if body.get(field).is_some_and(|v| !v.is_string() && !v.is_null()) {
            return Err(ApiError::invalid_field(field, "must be a string"));
        }
    }
    let prompt = PromptSize {
        text_bytes: prompt_text.len() as u64,
        messages: 1,
        images: 0,
    };
    let body_value = Value::Object(body);
    let build = |t: &Target| providers::images_request(&body_value, t);
    let read = |wire: Wire, bytes: &[u8], created: i64| -> Result<(Bytes, Option<Usage>), ApiError> {
        match wire {
            Wire::Ideogram => {
                let (out, images) = ideogram::to_openai(bytes, created)?;
                let usage = Usage {
                    images,
                    ..Default::default()
                };
                Ok((Bytes::from(serde_json::to_vec(&out).unwrap_or_default()), Some(usage)))
            }
            _ => {
                let v: Value = serde_json::from_slice(bytes)
                    .map_err(|_| ApiError::provider("The provider answered with something that is not JSON."))?;
                let images = v
                    .get("data")
                    .and_then(Value::as_array)
                    .ok_or_else(|| ApiError::provider("The provider's answer has no images."))?
                    .len() as u64;
                let u = v.get("usage");
                let tokens = |k: &str| u.and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0);
                let usage = Usage {
                    images,
                    input_tokens: tokens("input_tokens"),
                    output_tokens: tokens("output_tokens"),
                    ..Default::default()
                };
                Ok((Bytes::copy_from_slice(bytes), Some(usage)))
            }
        }
    };
    let call = MediaCall {
        endpoint: "images",
        kind: "image",
        model,
        prompt,
        hold_usage: Usage {
            input_tokens: prompt.input_token_bound(),
            output_tokens: n * IMAGE_TOKEN_BOUND,
            images: n,
            ..Default::default()
        },
        build: &build,
        read: &read,
    };
    run(hub, caller, &req, request_id, call).await
}

async fn run(
    hub: &Hub,
    caller: Arc<Caller>,
    req: &crate::http::Request,
    request_id: &str,
    call: MediaCall<'_>,
) -> Result<Response, ApiError> {
    let inner = &hub.inner;
    let started_us = inner.clock.monotonic_us();
    let app = app_of(req, &caller);
    let (snap, routes) = candidates_fresh(hub, &caller, &call.model, call.kind).await?;
    let settings = &snap.settings;
    let call_id = hub.new_id("call");
    let hold_amount = routes
        .iter()
        .map(|r| r.model.rates.cost(&call.hold_usage))
        .max()
        .unwrap_or(Credits::ZERO);
    let billed = settings.billing_enabled;
    admit_key(hub, &caller, &call_id, &call.hold_usage, hold_amount).await?;
    let mut guard = HoldGuard::new(hub, &call_id, &caller.user_id, None, caller.limits.any());
    if billed {
        guard.place(settings, hold_amount).await?;
    }
    let mut refused: Option<ApiError> = None;
    let mut last: Option<ApiError> = None;
    let mut attempts = Attempts::new(hub, &routes, settings.max_attempts as usize);
    while let Some(at) = attempts.next_attempt() {
        let route = at.route;
        let target = at.target(hub, 1);
        let upstream_req = match (call.build)(&target) {
            Ok(r) => r,
            Err(e) => {
                attempts.forget_last();
                refused.get_or_insert(e);
                continue;
            }
        };
        let mut meter = CallMeter {
            bound: Usage {
                input_tokens: call.prompt.input_token_ceiling(req.body().len() as u64),
                ..call.hold_usage
            },
            hub: hub.clone(),
            call_id: call_id.clone(),
            attempt: at.number as i64,
            request_id: request_id.to_string(),
            caller: caller.clone(),
            app: app.clone(),
            route: route.clone(),
            credential_id: at.credential.map(|c| c.id.clone()),
            model: call.model.clone(),
            endpoint: call.endpoint,
            stream: false,
            billed,
            hold: billed.then_some(hold_amount),
            prompt: call.prompt,
            started_us,
            upstream_ttfb_ms: None,
            ttfb_ms: None,
            earlier_attempts: Vec::new(),
        };
        let sent_us = inner.clock.monotonic_us();
        let outcome = match hub.send_upstream(upstream_req).await {
            Ok(mut resp) if (200..300).contains(&resp.status) => match collect(&mut resp, MAX_ANSWER).await {
                Ok(bytes) => (call.read)(route.provider.vendor.wire, &bytes, inner.clock.now_ms() / 1000)
                    .map_err(Failure::retryable),
                Err(f) => Err(f),
            },
            Ok(resp) => Err(provider_error(resp).await),
            Err(e) => Err(transport_failure(e)),
        };
        match outcome {
            Ok((body, usage)) => {
                meter.upstream_ttfb_ms = Some(((inner.clock.monotonic_us() - sent_us) / 1000) as i64);
                meter.earlier_attempts = guard.disarm();
                return Ok(whole_response(meter, body, usage, 0));
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
    drop(guard);
    Err(last
        .or(refused)
        .unwrap_or_else(|| ApiError::provider("No provider could serve this model: every credential is disabled.")))
}
