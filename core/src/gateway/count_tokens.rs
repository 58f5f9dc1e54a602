//! `POST /v1/messages/count_tokens`: how many input tokens a Messages
//! request would use. Free: no hold, no charge, no call-log row (it calls no
//! model), but it needs a valid key and the key's model allow-list applies.
//!
//! An Anthropic provider counts itself (the caller's body and betas passed
//! through to its own `/v1/messages/count_tokens`); for any other provider
//! Hub answers its own estimate, flagged `x-hub-estimated: true`.

use super::chat::AnthropicIn;
use super::failover::{provider_error, transport_failure, Attempts, Failure};
use super::pipeline::{candidates_fresh, collect};
use crate::auth::Caller;
use crate::chat::Chat;
use crate::error::ApiError;
use crate::http::{Response, StatusCode};
use crate::kinds::ModelKind;
use crate::ports::UpstreamRequest;
use crate::protocols::anthropic::Endpoint;
use crate::providers::Wire;
use crate::Hub;
use bytes::Bytes;
use serde::Deserialize;
use std::sync::Arc;

/// The largest count answer Hub reads from a provider.
const MAX_ANSWER: usize = 1024 * 1024;

/// `POST /v1/messages/count_tokens`.
pub async fn count_tokens(hub: &Hub, caller: Arc<Caller>, req: crate::http::Request) -> Result<Response, ApiError> {
    let messages = AnthropicIn::read(&req, Endpoint::CountTokens)?;
    let (snap, routes) = candidates_fresh(hub, &caller, &messages.chat().model, ModelKind::Chat).await?;
    let mut attempts = Attempts::new(hub, &routes, snap.settings.max_attempts as usize);
    let mut last = None;
    while let Some(at) = attempts.next_attempt() {
        if at.route.provider.vendor.wire != Wire::Anthropic {
            return Ok(estimate(messages.chat()));
        }
        let upstream = messages.passthrough_request("messages/count_tokens", &at.target(hub, 0))?;
        match ask(hub, upstream).await {
            Ok(body) => return Ok(counted(body)),
            Err(f) => {
                let (error, go_on) = attempts.failed(&at, f);
                last = Some(error);
                if !go_on {
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        ApiError::provider("No provider could count tokens for this model: every credential is disabled.")
    }))
}

/// An Anthropic provider's count, as far as Hub checks it.
#[derive(Deserialize)]
struct Count {
    #[allow(dead_code)]
    input_tokens: u64,
}

/// Asks one provider; its answer is relayed as it is once it reads as a count.
async fn ask(hub: &Hub, upstream: UpstreamRequest) -> Result<Bytes, Failure> {
    let mut resp = hub.send_upstream(upstream).await.map_err(transport_failure)?;
    if !(200..300).contains(&resp.status) {
        return Err(provider_error(resp).await);
    }
    let body = collect(&mut resp, MAX_ANSWER).await?;
    serde_json::from_slice::<Count>(&body).map_err(|_| {
        Failure::retryable(ApiError::provider(
            "The provider's token count is not `{\"input_tokens\": N}`.",
        ))
    })?;
    Ok(body)
}

fn counted(body: Bytes) -> Response {
    let mut res = http::Response::new(crate::http::Body::Full(body));
    res.headers_mut()
        .insert("content-type", http::HeaderValue::from_static("application/json"));
    res
}

/// Hub's estimate of the prompt (about four bytes of text per token, plus
/// per-message and per-image allowances), for providers that cannot count.
fn estimate(chat: &Chat) -> Response {
    let tokens = chat.prompt.input_token_guess();
    let mut res = crate::http::json(StatusCode::OK, &serde_json::json!({"input_tokens": tokens}));
    crate::http::set_header(&mut res, "x-hub-estimated", "true");
    res
}
