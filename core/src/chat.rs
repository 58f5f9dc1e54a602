//! The one internal model of a chat call. Every inbound protocol parses into a
//! [`Chat`] and renders from [`Delta`]s; every provider protocol builds its
//! request from a [`Chat`] and parses its answer into [`Delta`]s. A whole
//! (non-streamed) answer is the same deltas, gathered by a [`Reply`].

use crate::error::ApiError;
use crate::metering::estimate::PromptSize;
use crate::metering::Usage;
use serde_json::Value;

/// A chat request, whatever protocol it came in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chat {
    /// The model as the caller named it.
    pub model: String,
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub output: OutputFormat,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub stream: bool,
    /// Extended thinking / reasoning, when asked for.
    pub reasoning: Option<Reasoning>,
    pub parallel_tool_calls: Option<bool>,
    pub prompt: PromptSize,
    /// Where the caller asked for the prompt to be cached, for providers whose
    /// caching is explicit (Bedrock); others cache on their own.
    pub cache: CachePoints,
}

/// Prompt-cache breakpoints (Anthropic's `cache_control`): the prompt up to
/// and including each marked item is to be cached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachePoints {
    /// After the system prompt.
    pub system: Option<CacheTtl>,
    /// After `tools[i]`.
    pub tools: Vec<(usize, CacheTtl)>,
    /// After `messages[i].parts[j]`.
    pub parts: Vec<(usize, usize, CacheTtl)>,
}

impl CachePoints {
    pub fn after_tool(&self, i: usize) -> Option<CacheTtl> {
        self.tools.iter().find(|t| t.0 == i).map(|t| t.1)
    }

    pub fn after_part(&self, message: usize, part: usize) -> Option<CacheTtl> {
        self.parts.iter().find(|p| p.0 == message && p.1 == part).map(|p| p.2)
    }
}

/// How long a provider keeps a cached prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheTtl {
    #[default]
    FiveMinutes,
    OneHour,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One turn. Tool results travel in user turns (as Anthropic, Gemini and
/// Bedrock have them); OpenAI's `tool` messages map onto that.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Image(Image),
    /// A tool call the assistant made; `arguments` is JSON text.
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    ToolResult {
        id: String,
        content: String,
        is_error: bool,
    },
    /// The assistant's earlier reasoning (Anthropic needs it back, signed, with tool use).
    Reasoning {
        text: String,
        signature: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// Inline bytes, base64.
    Base64 { media_type: String, data: String },
    /// A URL the provider fetches itself.
    Url(String),
}

impl Image {
    /// An image from an OpenAI-style URL, which may be a `data:` URL.
    pub fn from_url(url: &str) -> Image {
        if let Some(rest) = url.strip_prefix("data:") {
            if let Some((meta, data)) = rest.split_once(',') {
                if let Some(media_type) = meta.strip_suffix(";base64") {
                    return Image::Base64 {
                        media_type: media_type.to_string(),
                        data: data.to_string(),
                    };
                }
            }
        }
        Image::Url(url.to_string())
    }

    pub fn to_url(&self) -> String {
        match self {
            Image::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
            Image::Url(u) => u.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Some tool must be called.
    Required,
    /// This tool must be called.
    Tool(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub enum OutputFormat {
    #[default]
    Text,
    /// Any JSON object.
    Json,
    JsonSchema {
        name: String,
        schema: Value,
        strict: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reasoning {
    /// `low`, `medium`, `high` (OpenAI's words).
    pub effort: Option<String>,
    /// A token budget (Anthropic's and Gemini's way).
    pub budget_tokens: Option<u64>,
}

impl Reasoning {
    /// A budget in tokens, from the budget or the effort.
    pub fn budget(&self) -> u64 {
        self.budget_tokens.unwrap_or(match self.effort.as_deref() {
            Some("minimal" | "low") => 1024,
            Some("high") => 16_384,
            _ => 4096,
        })
    }

    /// An effort word, from the effort or the budget.
    pub fn effort(&self) -> &str {
        match (&self.effort, self.budget_tokens) {
            (Some(e), _) => e,
            (None, Some(b)) if b <= 2048 => "low",
            (None, Some(b)) if b >= 12_000 => "high",
            _ => "medium",
        }
    }
}

/// Why generation stopped, in the caller-neutral form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

impl Finish {
    /// The name OpenAI's `finish_reason` (and `gen_ai.response.finish_reasons`) gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
            Finish::ToolCalls => "tool_calls",
            Finish::ContentFilter => "content_filter",
        }
    }
}

/// One step of an answer. A stream is a sequence of these; so is a whole answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Text(String),
    Reasoning(String),
    /// The signature closing a reasoning block (Anthropic).
    ReasoningSignature(String),
    /// A tool call's start (`id` and `name` set) or a piece of its arguments.
    /// `index` counts tool calls from 0 in the order they start.
    ToolCall {
        index: usize,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    /// The usage so far; a later one replaces an earlier one.
    Usage(Usage),
    Finish(Finish),
    /// The provider failed midway; nothing follows.
    Error(ApiError),
}

impl Delta {
    /// Bytes of generated output, for estimating tokens when usage never comes.
    pub fn output_bytes(&self) -> u64 {
        match self {
            Delta::Text(t) | Delta::Reasoning(t) => t.len() as u64,
            Delta::ToolCall { name, arguments, .. } => (arguments.len() + name.as_ref().map_or(0, String::len)) as u64,
            _ => 0,
        }
    }
}

/// A whole answer: the deltas gathered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub text: String,
    pub reasoning: String,
    pub reasoning_signature: Option<String>,
    pub tool_calls: Vec<ToolCallOut>,
    pub finish: Option<Finish>,
    pub usage: Option<Usage>,
    pub output_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCallOut {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// The most tool calls one answer may carry. A provider numbers its tool
/// calls itself (OpenAI's `index`), and Hub gathers the pieces of call `i`
/// in slot `i`: without a bound, one chunk claiming index 4294967295 would
/// make Hub allocate billions of slots. Real answers carry a handful; 128 is
/// also the most choices (`n`) a caller may ask for.
pub const MAX_TOOL_CALLS: usize = 128;

/// A provider's tool-call index, checked against [`MAX_TOOL_CALLS`]; beyond
/// it, the provider's answer is refused (an error delta, never an allocation).
pub fn tool_call_index(index: u64) -> Result<usize, ApiError> {
    match usize::try_from(index) {
        Ok(i) if i < MAX_TOOL_CALLS => Ok(i),
        _ => Err(ApiError::provider(format!(
            "The provider sent a tool call numbered {index}; Hub accepts at most {MAX_TOOL_CALLS} tool calls in one answer."
        ))),
    }
}

/// The slot of tool call `index` in `calls`, grown to reach it (at most
/// [`MAX_TOOL_CALLS`] slots, whatever the index).
pub fn tool_call_slot(calls: &mut Vec<ToolCallOut>, index: usize) -> Result<&mut ToolCallOut, ApiError> {
    let index = tool_call_index(index as u64)?;
    if calls.len() <= index {
        calls.resize_with(index + 1, ToolCallOut::default);
    }
    Ok(&mut calls[index])
}

impl Reply {
    pub fn push(&mut self, d: Delta) -> Result<(), ApiError> {
        self.output_bytes += d.output_bytes();
        match d {
            Delta::Text(t) => self.text.push_str(&t),
            Delta::Reasoning(t) => self.reasoning.push_str(&t),
            Delta::ReasoningSignature(s) => self.reasoning_signature = Some(s),
            Delta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => {
                let call = tool_call_slot(&mut self.tool_calls, index)?;
                if let Some(id) = id {
                    call.id = id;
                }
                if let Some(name) = name {
                    call.name = name;
                }
                call.arguments.push_str(&arguments);
            }
            Delta::Usage(u) => self.usage = Some(u),
            Delta::Finish(f) => self.finish = Some(f),
            Delta::Error(e) => return Err(e),
        }
        Ok(())
    }

    pub fn from_deltas(deltas: impl IntoIterator<Item = Delta>) -> Result<Reply, ApiError> {
        let mut r = Reply::default();
        for d in deltas {
            r.push(d)?;
        }
        Ok(r)
    }

    /// The finish reason, inferred when the provider gave none.
    pub fn finish_reason(&self) -> Finish {
        self.finish.unwrap_or(if self.tool_calls.is_empty() {
            Finish::Stop
        } else {
            Finish::ToolCalls
        })
    }
}

/// What a provider protocol cannot express, as the 400 the caller sees.
pub fn unsupported(provider_kind: &str, what: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{what} is not supported by provider kind `{provider_kind}`; pick a model served by another provider or drop the parameter."
    ))
}

/// A JSON object from tool-call argument text (`{}` for empty text).
pub fn arguments_object(arguments: &str) -> Result<Value, ApiError> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(ApiError::bad_request(
            "A tool call's `arguments` must be a JSON object encoded as a string.",
        )),
    }
}

/// Text of a tool result given as a string or as content blocks.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_gathers_tool_call_pieces_by_index() {
        let r = Reply::from_deltas([
            Delta::Text("Let me look.".into()),
            Delta::ToolCall {
                index: 0,
                id: Some("a".into()),
                name: Some("weather".into()),
                arguments: String::new(),
            },
            Delta::ToolCall {
                index: 1,
                id: Some("b".into()),
                name: Some("time".into()),
                arguments: "{}".into(),
            },
            Delta::ToolCall {
                index: 0,
                id: None,
                name: None,
                arguments: "{\"city\":".into(),
            },
            Delta::ToolCall {
                index: 0,
                id: None,
                name: None,
                arguments: "\"Paris\"}".into(),
            },
        ])
        .unwrap();
        assert_eq!(r.tool_calls[0].arguments, "{\"city\":\"Paris\"}");
        assert_eq!(r.tool_calls[1].name, "time");
        assert_eq!(r.finish_reason(), Finish::ToolCalls);
    }

    #[test]
    fn a_tool_call_index_beyond_the_bound_is_refused_without_growing() {
        let call = |index| Delta::ToolCall {
            index,
            id: None,
            name: None,
            arguments: "{}".into(),
        };
        let e = Reply::from_deltas([call(1_000_000_000)]).unwrap_err();
        assert_eq!(e.status.as_u16(), 502, "{e:?}");
        let mut r = Reply::default();
        assert!(r.push(call(usize::MAX)).is_err());
        assert!(r.tool_calls.is_empty());
        r.push(call(MAX_TOOL_CALLS - 1)).unwrap();
        assert_eq!(r.tool_calls.len(), MAX_TOOL_CALLS);
    }

    #[test]
    fn data_urls_become_inline_images() {
        assert_eq!(
            Image::from_url("data:image/png;base64,iVBO"),
            Image::Base64 {
                media_type: "image/png".into(),
                data: "iVBO".into()
            }
        );
        assert_eq!(Image::from_url("https://x/y.png"), Image::Url("https://x/y.png".into()));
        assert_eq!(
            Image::from_url("data:image/png;base64,iVBO").to_url(),
            "data:image/png;base64,iVBO"
        );
    }
}
