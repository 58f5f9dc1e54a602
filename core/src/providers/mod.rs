//! Providers: one module per wire protocol; vendors that share a protocol are
//! data (a kind, a default base URL, quirks), not code. This module picks the
//! protocol for a route: the request to send, and how to read the answer.

pub mod answers;
pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod ideogram;
pub mod openai_compat;
mod turns;
pub mod video;

use crate::chat::{Chat, Delta};
use crate::codec::Decode;
use crate::error::ApiError;
use crate::ports::{Timeouts, UpstreamRequest};
use bytes::Bytes;

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
    Bedrock,
    Ideogram,
}

impl Wire {
    pub fn name(self) -> &'static str {
        match self {
            Wire::OpenAi => "openai",
            Wire::Anthropic => "anthropic",
            Wire::Gemini => "gemini",
            Wire::Bedrock => "bedrock",
            Wire::Ideogram => "ideogram",
        }
    }
}

/// A kind of provider an operator can configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vendor {
    pub kind: &'static str,
    pub display_name: &'static str,
    pub wire: Wire,
    pub default_base_url: &'static str,
    /// Whether calls need a credential (Ollama runs without one).
    pub needs_secret: bool,
    /// Whether the provider is regional (Bedrock).
    pub needs_region: bool,
    /// Whether it serves OpenAI's Responses API (`POST {base}/responses`):
    /// Responses calls pass through to it instead of being converted.
    pub responses: bool,
}

impl Vendor {
    /// Whether the provider honours `max_completion_tokens` (OpenAI itself;
    /// DeepSeek and others ignore it and read only `max_tokens`).
    pub fn takes_max_completion_tokens(&self) -> bool {
        self.kind == "openai"
    }
}

const fn vendor_of(
    kind: &'static str,
    display_name: &'static str,
    wire: Wire,
    default_base_url: &'static str,
    needs_secret: bool,
) -> Vendor {
    Vendor {
        kind,
        display_name,
        wire,
        default_base_url,
        needs_secret,
        needs_region: false,
        responses: false,
    }
}

/// A vendor that serves the Responses API too.
const fn with_responses(mut v: Vendor) -> Vendor {
    v.responses = true;
    v
}

pub const VENDORS: &[Vendor] = &[
    with_responses(vendor_of(
        "openai",
        "OpenAI",
        Wire::OpenAi,
        "https://api.openai.com/v1",
        true,
    )),
    vendor_of(
        "deepseek",
        "DeepSeek",
        Wire::OpenAi,
        "https://api.deepseek.com/v1",
        true,
    ),
    vendor_of("xai", "xAI", Wire::OpenAi, "https://api.x.ai/v1", true),
    vendor_of(
        "openrouter",
        "OpenRouter",
        Wire::OpenAi,
        "https://openrouter.ai/api/v1",
        true,
    ),
    vendor_of("ollama", "Ollama", Wire::OpenAi, "http://localhost:11434/v1", false),
    vendor_of(
        "doubao",
        "Doubao",
        Wire::OpenAi,
        "https://ark.cn-beijing.volces.com/api/v3",
        true,
    ),
    vendor_of("poe", "Poe", Wire::OpenAi, "https://api.poe.com/v1", true),
    vendor_of("openai-compatible", "OpenAI-compatible", Wire::OpenAi, "", true),
    vendor_of(
        "anthropic",
        "Anthropic",
        Wire::Anthropic,
        "https://api.anthropic.com/v1",
        true,
    ),
    vendor_of(
        "gemini",
        "Google Gemini",
        Wire::Gemini,
        "https://generativelanguage.googleapis.com/v1beta",
        true,
    ),
    Vendor {
        kind: "bedrock",
        display_name: "Amazon Bedrock",
        wire: Wire::Bedrock,
        // Derived from the region: https://bedrock-runtime.{region}.amazonaws.com
        default_base_url: "",
        needs_secret: true,
        needs_region: true,
        responses: false,
    },
    vendor_of("ideogram", "Ideogram", Wire::Ideogram, "https://api.ideogram.ai", true),
];

pub fn vendor(kind: &str) -> Option<&'static Vendor> {
    VENDORS.iter().find(|v| v.kind == kind)
}

/// Where and as whom one attempt calls.
pub struct Target<'a> {
    pub vendor: &'static Vendor,
    pub base_url: &'a str,
    pub region: &'a str,
    pub secret: Option<&'a str>,
    /// The provider's own model id.
    pub model: &'a str,
    pub timeouts: Timeouts,
    pub now_ms: i64,
    /// `max_tokens` for protocols that require one when the caller set none.
    pub default_max_tokens: u64,
    /// Parameters an alias target sets, merged into a JSON body (in the
    /// provider's own wire format) before it is signed.
    pub overrides: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl Target<'_> {
    fn post(&self, url: String, headers: Vec<(String, String)>, body: Bytes) -> UpstreamRequest {
        self.post_as_is(url, headers, self.overridden(body))
    }

    fn post_as_is(&self, url: String, headers: Vec<(String, String)>, body: Bytes) -> UpstreamRequest {
        UpstreamRequest {
            method: http::Method::POST,
            url,
            headers,
            body,
            timeouts: self.timeouts,
        }
    }

    /// The body with the target's overrides set at its top level; a body
    /// that is not a JSON object (a form) is sent as it is.
    fn overridden(&self, body: Bytes) -> Bytes {
        let Some(overrides) = self.overrides.filter(|o| !o.is_empty()) else {
            return body;
        };
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(mut fields)) => {
                for (k, v) in overrides {
                    fields.insert(k.clone(), v.clone());
                }
                Bytes::from(serde_json::to_vec(&fields).unwrap_or_default())
            }
            _ => body,
        }
    }

    /// A signed (Bedrock) or keyed JSON POST.
    fn json_post(&self, url: String, body: &impl serde::Serialize) -> Result<UpstreamRequest, ApiError> {
        // Overridden before signing: the signature covers the body sent.
        let body = self.overridden(Bytes::from(serde_json::to_vec(body).unwrap_or_default()));
        let headers = match self.vendor.wire {
            Wire::OpenAi => bearer(self.secret),
            Wire::Anthropic => anthropic::headers(self.secret),
            Wire::Gemini => gemini::headers(self.secret),
            Wire::Ideogram => ideogram::headers(self.secret),
            Wire::Bedrock => bedrock::sign(
                "POST",
                &url,
                &body,
                self.secret.unwrap_or_default(),
                self.region,
                "bedrock",
                self.now_ms,
            )?,
        };
        Ok(self.post_as_is(url, headers, body))
    }

    fn bedrock_endpoint(&self) -> String {
        bedrock::endpoint(self.base_url, self.region)
    }
}

fn bearer(secret: Option<&str>) -> Vec<(String, String)> {
    let mut h = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(s) = secret {
        h.push(("authorization".to_string(), format!("Bearer {s}")));
    }
    h
}

/// The chat request for a provider that does not take the caller's body as is.
pub fn chat_request(chat: &Chat, t: &Target) -> Result<UpstreamRequest, ApiError> {
    let base = t.base_url.trim_end_matches('/');
    match t.vendor.wire {
        Wire::OpenAi => t.json_post(
            format!("{base}/chat/completions"),
            &openai_compat::chat_body(chat, t.model),
        ),
        Wire::Anthropic => t.json_post(
            format!("{base}/messages"),
            &anthropic::body(chat, t.model, t.default_max_tokens)?,
        ),
        Wire::Gemini => t.json_post(gemini::chat_url(base, t.model, chat.stream), &gemini::body(chat)?),
        Wire::Bedrock => t.json_post(
            bedrock::chat_url(&t.bedrock_endpoint(), t.model, chat.stream),
            &bedrock::body(chat)?,
        ),
        Wire::Ideogram => Err(ApiError::bad_request(format!(
            "`{}` is an image model; call /v1/images/generations.",
            t.model
        ))),
    }
}

/// Whether a provider can take a chat request as asked: its body is built
/// (and dropped) to find what it cannot express.
pub fn chat_check(chat: &Chat, vendor: &Vendor) -> Result<(), ApiError> {
    match vendor.wire {
        Wire::OpenAi => Ok(()),
        Wire::Anthropic => anthropic::body(chat, "", 1).map(drop),
        Wire::Gemini => gemini::body(chat).map(drop),
        Wire::Bedrock => bedrock::body(chat).map(drop),
        Wire::Ideogram => Err(crate::chat::unsupported(vendor.kind, "Chat")),
    }
}

/// A Responses caller's body (`ResponsesRequest::upstream_body`), to a
/// provider that speaks Responses.
pub fn responses_request(body: Bytes, t: &Target) -> UpstreamRequest {
    let base = t.base_url.trim_end_matches('/');
    t.post(format!("{base}/responses"), bearer(t.secret), body)
}

/// An OpenAI caller's body, as is but for its model and its output budget
/// (`ChatRequest::upstream_body`), to an OpenAI-compatible provider.
pub fn passthrough_request(body: Bytes, t: &Target) -> UpstreamRequest {
    let base = t.base_url.trim_end_matches('/');
    t.post(format!("{base}/chat/completions"), bearer(t.secret), body)
}

/// An Anthropic caller's Messages body (its model already the provider's),
/// passed through to an Anthropic provider at `path` (`messages`,
/// `messages/count_tokens`) with the caller's version and betas.
pub fn anthropic_passthrough_request(
    path: &str,
    body: Bytes,
    forwarded: &anthropic::Forwarded,
    t: &Target,
) -> UpstreamRequest {
    let base = t.base_url.trim_end_matches('/');
    t.post(
        format!("{base}/{path}"),
        anthropic::passthrough_headers(t.secret, forwarded),
        body,
    )
}

/// A stream reader for a provider's chat stream.
pub fn chat_decoder(wire: Wire, id_prefix: &str) -> Box<dyn Decode> {
    match wire {
        Wire::OpenAi | Wire::Ideogram => Box::new(openai_compat::decoder()),
        Wire::Anthropic => Box::new(anthropic::decoder()),
        Wire::Gemini => Box::new(gemini::decoder(id_prefix)),
        Wire::Bedrock => Box::new(bedrock::StreamDecoder::default()),
    }
}

/// A whole chat answer read into deltas.
pub fn chat_decode_whole(wire: Wire, body: &[u8], id_prefix: &str) -> Result<Vec<Delta>, ApiError> {
    match wire {
        Wire::OpenAi | Wire::Ideogram => openai_compat::decode_whole(body),
        Wire::Anthropic => anthropic::decode_whole(body),
        Wire::Gemini => gemini::decode_whole(body, id_prefix),
        Wire::Bedrock => bedrock::decode_whole(body),
    }
}

/// An embeddings request: OpenAI's body passed through, or Gemini's batch call.
pub fn embeddings_request(body: &serde_json::Value, texts: &[String], t: &Target) -> Result<UpstreamRequest, ApiError> {
    let base = t.base_url.trim_end_matches('/');
    match t.vendor.wire {
        Wire::OpenAi => {
            let mut body = body.clone();
            body["model"] = serde_json::Value::String(t.model.to_string());
            t.json_post(format!("{base}/embeddings"), &body)
        }
        Wire::Gemini => {
            let dims = body.get("dimensions").and_then(serde_json::Value::as_u64);
            t.json_post(
                format!("{base}/models/{}:batchEmbedContents", t.model),
                &gemini::embed_body(t.model, texts, dims),
            )
        }
        _ => Err(crate::chat::unsupported(t.vendor.kind, "Embeddings")),
    }
}

/// An image generation request: OpenAI's body passed through, or Ideogram's.
pub fn images_request(body: &serde_json::Value, t: &Target) -> Result<UpstreamRequest, ApiError> {
    let base = t.base_url.trim_end_matches('/');
    match t.vendor.wire {
        Wire::OpenAi => {
            let mut body = body.clone();
            body["model"] = serde_json::Value::String(t.model.to_string());
            t.json_post(format!("{base}/images/generations"), &body)
        }
        Wire::Ideogram => {
            let (url, content_type, payload) = ideogram::request(base, t.model, body)?;
            let mut headers = ideogram::headers(t.secret);
            headers.retain(|(k, _)| k != "content-type");
            headers.push(("content-type".into(), content_type));
            Ok(t.post(url, headers, payload))
        }
        _ => Err(crate::chat::unsupported(t.vendor.kind, "Image generation")),
    }
}

/// A transcription or translation form (its `model` already the provider's)
/// to `{base}/{path}` of an OpenAI-compatible provider; others have no such
/// endpoint (Gemini transcribes only through `generateContent`).
pub fn transcription_request(
    path: &str,
    form: &crate::multipart::Form,
    seed: &str,
    t: &Target,
) -> Result<UpstreamRequest, ApiError> {
    if t.vendor.wire != Wire::OpenAi {
        return Err(crate::chat::unsupported(t.vendor.kind, "Audio transcription"));
    }
    let base = t.base_url.trim_end_matches('/');
    let (content_type, body) = form.encode(seed);
    let mut headers = bearer(t.secret);
    headers.retain(|(k, _)| k != "content-type");
    headers.push(("content-type".into(), content_type));
    Ok(t.post(format!("{base}/{path}"), headers, body))
}

/// A speech request: OpenAI's body with the provider's model, to an
/// OpenAI-compatible provider.
pub fn speech_request(body: &serde_json::Value, t: &Target) -> Result<UpstreamRequest, ApiError> {
    if t.vendor.wire != Wire::OpenAi {
        return Err(crate::chat::unsupported(t.vendor.kind, "Text to speech"));
    }
    let base = t.base_url.trim_end_matches('/');
    let mut body = body.clone();
    body["model"] = serde_json::Value::String(t.model.to_string());
    t.json_post(format!("{base}/audio/speech"), &body)
}

/// A cheap authenticated request that tells whether a credential works.
pub fn probe_request(t: &Target) -> Result<UpstreamRequest, ApiError> {
    let base = t.base_url.trim_end_matches('/');
    let get = |url: String, headers: Vec<(String, String)>| UpstreamRequest {
        method: http::Method::GET,
        url,
        headers,
        body: Bytes::new(),
        timeouts: t.timeouts,
    };
    Ok(match t.vendor.wire {
        Wire::OpenAi => get(format!("{base}/models"), bearer(t.secret)),
        Wire::Anthropic => get(format!("{base}/models"), anthropic::headers(t.secret)),
        Wire::Gemini => get(format!("{base}/models"), gemini::headers(t.secret)),
        Wire::Ideogram => return ideogram::probe(base, t.secret, t.timeouts),
        Wire::Bedrock => {
            // The control plane lists foundation models; a custom base URL is used as is.
            let url = if t.base_url.is_empty() {
                format!("https://bedrock.{}.amazonaws.com/foundation-models", t.region)
            } else {
                format!("{base}/foundation-models")
            };
            let headers = bedrock::sign(
                "GET",
                &url,
                b"",
                t.secret.unwrap_or_default(),
                t.region,
                "bedrock",
                t.now_ms,
            )?;
            get(url, headers)
        }
    })
}

#[cfg(test)]
mod override_tests {
    use super::*;
    use serde_json::json;

    fn target<'a>(overrides: Option<&'a serde_json::Map<String, serde_json::Value>>) -> Target<'a> {
        Target {
            vendor: vendor("openai").unwrap(),
            base_url: "http://127.0.0.1:9/v1",
            region: "",
            secret: Some("sk-test"),
            model: "m",
            timeouts: Timeouts::default(),
            now_ms: 0,
            default_max_tokens: 16,
            overrides,
        }
    }

    #[test]
    fn overrides_are_set_on_json_bodies_only() {
        let o = json!({"reasoning_effort": "high", "temperature": 0.1});
        let t = target(o.as_object());
        let body = Bytes::from_static(br#"{"model":"m","temperature":1,"messages":[]}"#);
        let sent: serde_json::Value = serde_json::from_slice(&passthrough_request(body, &t).body).unwrap();
        assert_eq!(
            sent,
            json!({"model": "m", "temperature": 0.1, "reasoning_effort": "high", "messages": []})
        );
        let form = Bytes::from_static(b"--b\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\nm\r\n--b--");
        assert_eq!(target(o.as_object()).post("u".into(), vec![], form.clone()).body, form);
        let plain = Bytes::from_static(br#"{"model":"m"}"#);
        assert_eq!(target(None).post("u".into(), vec![], plain.clone()).body, plain);
    }
}
