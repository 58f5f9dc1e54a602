//! What Hub reads from a provider's own Responses answer, passed to the
//! caller unchanged: the usage it bills (from `response.completed`, or
//! `.incomplete` / `.failed`), how much output went by (for an estimate when
//! no usage comes), and whether the answer ended, and how.

use crate::error::ApiError;
use crate::metering::Usage;
use crate::sse::SseParser;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;

/// Responses' `usage`: cached tokens are part of `input_tokens`, reasoning
/// tokens part of `output_tokens`.
#[derive(Debug, Default, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct OutputDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    /// Each input token billed once: cached ones at the cache-read rate,
    /// written ones at the cache-write rate, the rest at the input rate;
    /// output (reasoning included) once at the output rate.
    pub fn to_usage(&self) -> Usage {
        let details = self.input_tokens_details.as_ref();
        let cached = details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(self.input_tokens);
        let written = details
            .and_then(|d| d.cache_write_tokens)
            .unwrap_or(0)
            .min(self.input_tokens - cached);
        let reasoning = self.output_tokens_details.as_ref().and_then(|d| d.reasoning_tokens);
        Usage {
            input_tokens: self.input_tokens - cached - written,
            output_tokens: self.output_tokens,
            cache_read_tokens: cached,
            cache_write_tokens: written,
            // OpenAI reports no cache lifetimes: every write is at the cache-write rate.
            cache_write_1h_tokens: 0,
            reasoning_tokens: reasoning.unwrap_or(0).min(self.output_tokens),
            images: 0,
            ..Default::default()
        }
    }
}

/// Just enough of a stream event to meter it.
#[derive(Debug, Deserialize)]
struct EventView<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    sequence_number: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<Cow<'a, str>>,
    #[serde(default)]
    response: Option<ResponseView>,
    #[serde(default)]
    message: Option<String>,
}

/// Just enough of a Response object (whole, or in a lifecycle event).
#[derive(Debug, Default, Deserialize)]
struct ResponseView {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

/// How a provider's stream ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    Complete,
    /// It said it failed, in its own stream.
    Reported(ApiError),
    /// It sent what is not a Responses stream: Hub closes it with its own
    /// `response.failed`.
    Broken(ApiError),
}

/// What one chunk of a provider's stream carried.
#[derive(Debug, Default)]
pub struct Tapped {
    /// The events to hand on, unchanged, and Hub's own closing event if the
    /// stream broke.
    pub forward: Bytes,
    pub usage: Option<Usage>,
    pub output_bytes: u64,
    pub end: Option<End>,
}

/// Reads a provider's Responses stream as it is relayed.
#[derive(Debug, Default)]
pub struct Tap {
    parser: SseParser,
    response_id: Option<String>,
    last_seq: Option<u64>,
}

impl Tap {
    /// Bytes held back waiting for the rest of an event.
    pub fn pending(&self) -> usize {
        self.parser.pending()
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Tapped {
        let mut t = Tapped::default();
        let mut out = BytesMut::new();
        for ev in self.parser.push(chunk) {
            if ev.data.is_empty() || ev.data == "[DONE]" {
                out.extend_from_slice(&ev.raw);
                continue;
            }
            match serde_json::from_str::<EventView>(&ev.data) {
                Ok(view) => {
                    out.extend_from_slice(&ev.raw);
                    self.read(view, &mut t);
                }
                Err(_) => {
                    t.end = Some(End::Broken(ApiError::provider(
                        "The provider sent a malformed stream event.",
                    )));
                    break;
                }
            }
        }
        if t.end.is_none() && self.parser.pending() > crate::codec::MAX_EVENT_BYTES {
            t.end = Some(End::Broken(ApiError::provider(
                "The provider sent a stream event larger than Hub accepts.",
            )));
        }
        if let Some(End::Broken(e)) = &t.end {
            out.extend_from_slice(&self.failed_event(e));
        }
        t.forward = out.freeze();
        t
    }

    fn read(&mut self, view: EventView, t: &mut Tapped) {
        self.last_seq = view.sequence_number.or(self.last_seq);
        if view.kind.ends_with(".delta") {
            t.output_bytes += view.delta.as_ref().map_or(0, |d| d.len() as u64);
        }
        let response = view.response.unwrap_or_default();
        if let Some(id) = response.id {
            self.response_id.get_or_insert(id);
        }
        if let Some(u) = response.usage {
            t.usage = Some(u.to_usage());
        }
        t.end = match view.kind.as_ref() {
            "response.completed" | "response.incomplete" => Some(End::Complete),
            "response.failed" => Some(End::Reported(reported(response.error.as_ref(), None))),
            "error" => Some(End::Reported(reported(None, view.message))),
            _ => t.end.take(),
        };
    }

    /// Hub's `response.failed`, numbered after the provider's last event.
    pub fn failed_event(&mut self, e: &ApiError) -> Bytes {
        let seq = self.last_seq.map_or(0, |s| s + 1);
        self.last_seq = Some(seq);
        let data = json!({
            "type": "response.failed", "sequence_number": seq,
            "response": {"id": self.response_id.clone().unwrap_or_default(), "object": "response",
                "status": "failed", "error": {"code": "server_error", "message": e.message}, "output": []},
        });
        let mut out = BytesMut::new();
        crate::codec::sse(&mut out, Some("response.failed"), &data);
        out.freeze()
    }
}

/// A failure the provider reported in its own stream, for the call log.
fn reported(error: Option<&Value>, message: Option<String>) -> ApiError {
    let message = message
        .or_else(|| {
            error
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "The provider reported a failure.".to_string());
    ApiError::provider(format!("The provider's response failed: {message}"))
}

/// A whole Response: its usage, and the bytes of its output text.
pub fn whole(body: &[u8]) -> Result<(Option<Usage>, u64), ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::provider("The provider answered with something that is not JSON."))?;
    let usage = v
        .get("usage")
        .and_then(|u| serde_json::from_value::<WireUsage>(u.clone()).ok())
        .map(|u| u.to_usage());
    Ok((usage, text_bytes(v.get("output").unwrap_or(&Value::Null))))
}

/// Bytes of the generated text in an output: texts, arguments, summaries.
fn text_bytes(v: &Value) -> u64 {
    match v {
        Value::Array(a) => a.iter().map(text_bytes).sum(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("text" | "arguments" | "refusal", Value::String(s)) => s.len() as u64,
                _ => text_bytes(v),
            })
            .sum(),
        _ => 0,
    }
}
