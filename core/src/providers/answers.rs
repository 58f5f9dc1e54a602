//! Reading providers' whole answers to the media endpoints, and telling a
//! refused credential from a refused request: what each wire protocol's
//! answers mean, kept out of the call pipeline.

use super::{gemini, ideogram, Wire};
use crate::error::ApiError;
use crate::metering::Usage;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

fn not_json() -> ApiError {
    ApiError::provider("The provider answered with something that is not JSON.")
}

/// The parts of an OpenAI embeddings answer Hub reads; the rest goes to the caller as is.
#[derive(Deserialize)]
struct OpenAiEmbeddings {
    data: Option<serde::de::IgnoredAny>,
    usage: Option<EmbeddingsUsage>,
}

#[derive(Deserialize)]
struct EmbeddingsUsage {
    #[serde(default)]
    prompt_tokens: u64,
}

/// An embeddings answer as OpenAI's list for the caller, and the provider's
/// usage (None: Hub estimates it).
pub fn embeddings_answer(wire: Wire, body: Bytes, model: &str) -> Result<(Bytes, Option<Usage>), ApiError> {
    if wire == Wire::Gemini {
        let data: Vec<Value> = gemini::embed_vectors(&body)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| serde_json::json!({"object": "embedding", "index": i, "embedding": v}))
            .collect();
        let out = serde_json::json!({"object": "list", "data": data, "model": model});
        return Ok((Bytes::from(out.to_string()), None));
    }
    let answer: OpenAiEmbeddings = serde_json::from_slice(&body).map_err(|_| not_json())?;
    if answer.data.is_none() {
        return Err(ApiError::provider("The provider's answer has no embeddings."));
    }
    let usage = answer.usage.map(|u| Usage {
        input_tokens: u.prompt_tokens,
        ..Default::default()
    });
    Ok((body, usage))
}

/// The parts of an OpenAI image answer Hub reads.
#[derive(Deserialize)]
struct OpenAiImages {
    data: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    usage: ImagesUsage,
}

#[derive(Deserialize, Default)]
struct ImagesUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

/// An image answer as OpenAI's `{"created", "data"}` for the caller, and its usage.
pub fn images_answer(wire: Wire, body: Bytes, created: i64) -> Result<(Bytes, Usage), ApiError> {
    if wire == Wire::Ideogram {
        let (out, images) = ideogram::to_openai(&body, created)?;
        let usage = Usage {
            images,
            ..Default::default()
        };
        return Ok((Bytes::from(out.to_string()), usage));
    }
    let answer: OpenAiImages = serde_json::from_slice(&body).map_err(|_| not_json())?;
    let images = answer
        .data
        .ok_or_else(|| ApiError::provider("The provider's answer has no images."))?
        .len() as u64;
    let usage = Usage {
        images,
        input_tokens: answer.usage.input_tokens,
        output_tokens: answer.usage.output_tokens,
        ..Default::default()
    };
    Ok((body, usage))
}

/// Whether a refusal means the credential itself is bad (not a content
/// policy, a region block or a model the account may not use). Decided from
/// the status and the provider's structured error fields only, never from an
/// error's message: providers quote the caller's own text in messages (an
/// unknown parameter's name, say), and a caller must not be able to get a
/// shared credential disabled by naming a field "invalid api key".
pub fn credential_rejected(status: u16, body: Option<&Value>, aws_error_type: &str) -> bool {
    if status == 401 {
        return true;
    }
    if status != 400 && status != 403 {
        return false;
    }
    let text = |pointer: &str| {
        body.and_then(|v| v.pointer(pointer))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    aws_credential_refused(aws_error_type)
        || aws_credential_refused(text("/__type"))
        // OpenAI and OpenAI-compatible vendors.
        || text("/error/code") == "invalid_api_key"
        // Anthropic.
        || text("/error/type") == "authentication_error"
        // Gemini: 400 INVALID_ARGUMENT with the reason API_KEY_INVALID.
        || gemini_key_invalid(body)
}

/// AWS: `x-amzn-errortype: UnrecognizedClientException:http://…` (or `__type` in the body).
fn aws_credential_refused(error_type: &str) -> bool {
    let name = error_type
        .split([':', '#'])
        .find(|p| p.ends_with("Exception"))
        .unwrap_or("");
    matches!(name, "UnrecognizedClientException" | "InvalidSignatureException")
}

fn gemini_key_invalid(body: Option<&Value>) -> bool {
    body.and_then(|v| v.pointer("/error/details"))
        .and_then(Value::as_array)
        .is_some_and(|details| {
            details
                .iter()
                .any(|d| d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"))
        })
}

/// Whether a probe's answer shows the credential works.
pub fn probe_accepted(wire: Wire, status: u16, body: Option<&Value>, aws_error_type: &str) -> bool {
    match wire {
        // Ideogram has no free authenticated read: the probe asks for an
        // empty generation, which is refused, but not for the credential.
        Wire::Ideogram => !credential_rejected(status, body, aws_error_type) && status < 500,
        _ => (200..300).contains(&status),
    }
}
