//! `POST /v1/embeddings` and `POST /v1/images/generations`: whole answers,
//! the same hold, failover and settlement as chat. Embeddings bill input
//! tokens; images bill per image (plus tokens where the provider counts them).

use super::failover::Attempt;
use super::pipeline::{self, Exchange, Plan, Whole};
use crate::auth::Caller;
use crate::codec::Meta;
use crate::config::{Route, Settings};
use crate::error::ApiError;
use crate::http::Response;
use crate::kinds::{Endpoint, ModelKind};
use crate::metering::estimate::PromptSize;
use crate::metering::Usage;
use crate::ports::UpstreamRequest;
use crate::protocols::openai::json_object;
use crate::providers::{self, answers, Wire};
use crate::Hub;
use bytes::Bytes;
use serde_json::{Map, Value};
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

/// A media call's plan: answered whole, never streamed.
fn whole_plan(endpoint: Endpoint, kind: ModelKind, model: String, prompt: PromptSize) -> Plan {
    Plan {
        endpoint,
        kind,
        model,
        prompt,
        stream: false,
        answer_limit: MAX_ANSWER,
    }
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
    let mut exchange = Embeddings {
        plan: whole_plan(Endpoint::Embeddings, ModelKind::Embedding, model, prompt),
        has_token_ids: token_ids > 0,
        body: Value::Object(body),
        texts,
    };
    pipeline::run(hub, caller, &req, request_id, &mut exchange).await
}

/// An embeddings call: billed by input tokens.
struct Embeddings {
    plan: Plan,
    body: Value,
    texts: Vec<String>,
    /// Token-id input only OpenAI-compatible providers take.
    has_token_ids: bool,
}

impl Exchange for Embeddings {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    fn worst_output(&self, _route: &Route, _settings: &Settings) -> Usage {
        Usage::default()
    }

    fn request(&mut self, hub: &Hub, at: &Attempt, _settings: &Settings) -> Result<UpstreamRequest, ApiError> {
        let target = at.target(hub, 1);
        if self.has_token_ids && target.vendor.wire != Wire::OpenAi {
            return Err(crate::chat::unsupported(target.vendor.kind, "Token-id input"));
        }
        providers::embeddings_request(&self.body, &self.texts, &target)
    }

    fn read(&self, route: &Route, body: Bytes, _meta: &Meta) -> Result<Whole, ApiError> {
        let (body, usage) = answers::embeddings_answer(route.provider.vendor.wire, body, &self.plan.model)?;
        Ok(Whole::Raw {
            body,
            usage,
            output_bytes: 0,
        })
    }
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
    let mut exchange = Images {
        plan: whole_plan(Endpoint::Images, ModelKind::Image, model, prompt),
        body: Value::Object(body),
        n,
    };
    pipeline::run(hub, caller, &req, request_id, &mut exchange).await
}

/// An image generation: billed per image, plus tokens where the provider counts them.
struct Images {
    plan: Plan,
    body: Value,
    n: u64,
}

impl Exchange for Images {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    fn worst_output(&self, _route: &Route, _settings: &Settings) -> Usage {
        Usage {
            output_tokens: self.n * IMAGE_TOKEN_BOUND,
            images: self.n,
            ..Default::default()
        }
    }

    fn request(&mut self, hub: &Hub, at: &Attempt, _settings: &Settings) -> Result<UpstreamRequest, ApiError> {
        providers::images_request(&self.body, &at.target(hub, 1))
    }

    fn read(&self, route: &Route, body: Bytes, meta: &Meta) -> Result<Whole, ApiError> {
        let (body, usage) = answers::images_answer(route.provider.vendor.wire, body, meta.created)?;
        Ok(Whole::Raw {
            body,
            usage: Some(usage),
            output_bytes: 0,
        })
    }
}
