//! Anthropic Messages as a provider: the request (`x-api-key`,
//! `anthropic-version`), its event stream and whole answers read into
//! deltas. Usage arrives in two parts (input and cache counts in
//! `message_start`, output in `message_delta`); `input_tokens` excludes cache
//! reads and writes, so each count is billed once at its own rate.

use super::turns::{push_turn, Turn};
use crate::chat::{
    arguments_object, tool_call_index, unsupported, Chat, Delta, Finish, Image, OutputFormat, Part, Tool, ToolChoice,
};
use crate::codec::{Decode, SseDecode};
use crate::error::ApiError;
use crate::metering::Usage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const VERSION: &str = "2023-06-01";

pub fn headers(secret: Option<&str>) -> Vec<(String, String)> {
    let mut h = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("anthropic-version".to_string(), VERSION.to_string()),
    ];
    if let Some(s) = secret {
        h.push(("x-api-key".to_string(), s.to_string()));
    }
    h
}

/// The caller's headers an Anthropic provider gets as they were sent: the
/// API version and the beta features the body may rely on. Nothing else
/// (never the caller's key) is forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarded {
    pub version: Option<String>,
    pub beta: Option<String>,
}

impl Forwarded {
    pub fn from_headers(h: &crate::http::HeaderMap) -> Forwarded {
        // A header sent on several lines is one comma-separated list.
        let get = |name: &str| {
            let values: Vec<&str> = h.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
            (!values.is_empty()).then(|| values.join(","))
        };
        Forwarded {
            version: get("anthropic-version"),
            beta: get("anthropic-beta"),
        }
    }
}

/// Hub's headers for a caller's request passed through: the credential, and
/// the caller's version and betas.
pub fn passthrough_headers(secret: Option<&str>, fwd: &Forwarded) -> Vec<(String, String)> {
    let mut h = headers(secret);
    if let Some(v) = &fwd.version {
        h.retain(|(k, _)| k != "anthropic-version");
        h.push(("anthropic-version".to_string(), v.clone()));
    }
    if let Some(b) = &fwd.beta {
        h.push(("anthropic-beta".to_string(), b.clone()));
    }
    h
}

/// A Messages body, built from the internal model.
#[derive(Debug, Serialize)]
pub struct Body<'a> {
    model: &'a str,
    messages: Vec<Turn<Block<'a>>>,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<OutToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

/// A content block Hub sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    Image {
        source: ImageSource<'a>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
        is_error: bool,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSource<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

#[derive(Debug, Serialize)]
struct OutTool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: &'a Value,
}

#[derive(Debug, Serialize)]
struct OutToolChoice<'a> {
    #[serde(flatten)]
    mode: ChoiceMode<'a>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disable_parallel_tool_use: bool,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ChoiceMode<'a> {
    Auto,
    Any,
    Tool { name: &'a str },
}

#[derive(Debug, Serialize)]
struct Thinking {
    r#type: &'static str,
    budget_tokens: u64,
}

/// A Messages body from the internal model.
pub fn body<'a>(chat: &'a Chat, model: &'a str, default_max_tokens: u64) -> Result<Body<'a>, ApiError> {
    if chat.output != OutputFormat::Text {
        return Err(unsupported("anthropic", "JSON output (`response_format`)"));
    }
    let mut messages = Vec::with_capacity(chat.messages.len());
    for m in &chat.messages {
        let mut content = Vec::with_capacity(m.parts.len());
        for p in &m.parts {
            content.extend(block(p)?);
        }
        if !content.is_empty() {
            push_turn(&mut messages, m.role, content);
        }
    }
    let tools_on = !chat.tools.is_empty() && chat.tool_choice != Some(ToolChoice::None);
    Ok(Body {
        model,
        messages,
        max_tokens: chat.max_tokens.unwrap_or(default_max_tokens),
        system: chat.system.as_deref(),
        tools: if tools_on {
            chat.tools.iter().map(out_tool).collect()
        } else {
            Vec::new()
        },
        tool_choice: tool_choice(chat),
        temperature: chat.temperature,
        top_p: chat.top_p,
        stop_sequences: &chat.stop,
        thinking: chat.reasoning.as_ref().map(|r| Thinking {
            r#type: "enabled",
            budget_tokens: r.budget().max(1024),
        }),
        stream: chat.stream,
    })
}

/// One part as a content block; `None` for what cannot be replayed.
fn block(p: &Part) -> Result<Option<Block<'_>>, ApiError> {
    Ok(Some(match p {
        Part::Text(t) => Block::Text { text: t },
        Part::Image(Image::Base64 { media_type, data }) => Block::Image {
            source: ImageSource::Base64 { media_type, data },
        },
        Part::Image(Image::Url(url)) => Block::Image {
            source: ImageSource::Url { url },
        },
        Part::ToolCall { id, name, arguments } => Block::ToolUse {
            id,
            name,
            input: arguments_object(arguments)?,
        },
        Part::ToolResult { id, content, is_error } => Block::ToolResult {
            tool_use_id: id,
            content,
            is_error: *is_error,
        },
        Part::Reasoning { text, signature } => match signature {
            Some(signature) => Block::Thinking {
                thinking: text,
                signature,
            },
            // Unsigned reasoning (from another provider) cannot be replayed.
            None => return Ok(None),
        },
    }))
}

fn out_tool(t: &Tool) -> OutTool<'_> {
    OutTool {
        name: &t.name,
        description: t.description.as_deref(),
        input_schema: &t.parameters,
    }
}

/// Anthropic's `tool_choice`; `parallel_tool_calls: false` needs one to ride on.
fn tool_choice(chat: &Chat) -> Option<OutToolChoice<'_>> {
    let disable_parallel_tool_use = chat.parallel_tool_calls == Some(false);
    let mode = match &chat.tool_choice {
        Some(ToolChoice::Auto) | None if disable_parallel_tool_use && !chat.tools.is_empty() => ChoiceMode::Auto,
        Some(ToolChoice::Auto) | None | Some(ToolChoice::None) => return None,
        Some(ToolChoice::Required) => ChoiceMode::Any,
        Some(ToolChoice::Tool(name)) => ChoiceMode::Tool { name },
    };
    Some(OutToolChoice {
        mode,
        disable_parallel_tool_use,
    })
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// The cache writes split by lifetime.
    #[serde(default)]
    pub cache_creation: Option<CacheCreation>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct CacheCreation {
    #[serde(default)]
    pub ephemeral_1h_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Folds a later report into this one: fields present replace, absent
    /// ones stay (`message_delta` usage is cumulative, and may repeat or
    /// revise what `message_start` said).
    pub fn merge(&mut self, later: &WireUsage) {
        self.cache_creation = later.cache_creation.or(self.cache_creation);
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later.cache_read_input_tokens.or(self.cache_read_input_tokens);
    }

    pub fn to_usage(self) -> Usage {
        Usage {
            input_tokens: self.input_tokens.unwrap_or(0),
            output_tokens: self.output_tokens.unwrap_or(0),
            cache_read_tokens: self.cache_read_input_tokens.unwrap_or(0),
            cache_write_tokens: self.cache_creation_input_tokens.unwrap_or(0),
            cache_write_1h_tokens: self
                .cache_creation
                .and_then(|c| c.ephemeral_1h_input_tokens)
                .unwrap_or(0),
            ..Default::default()
        }
    }
}

pub fn finish_from(reason: &str) -> Finish {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => Finish::Length,
        "tool_use" => Finish::ToolCalls,
        "refusal" => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

/// One event of a Messages stream, as far as Hub reads it.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        #[serde(default)]
        message: MessageStart,
    },
    ContentBlockStart {
        #[serde(default)]
        index: u64,
        #[serde(default)]
        content_block: BlockStart,
    },
    ContentBlockDelta {
        #[serde(default)]
        index: u64,
        #[serde(default)]
        delta: BlockDelta,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    Error {
        #[serde(default)]
        error: StreamError,
    },
    MessageStop,
    /// `ping`, `content_block_stop` and types yet to come.
    #[serde(other)]
    Other,
}

#[derive(Default, Deserialize)]
struct MessageStart {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStart {
    ToolUse {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        name: Option<String>,
    },
    Text {
        #[serde(default)]
        text: String,
    },
    #[default]
    #[serde(other)]
    Other,
}

#[derive(Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        #[serde(default)]
        text: String,
    },
    ThinkingDelta {
        #[serde(default)]
        thinking: String,
    },
    SignatureDelta {
        #[serde(default)]
        signature: String,
    },
    InputJsonDelta {
        #[serde(default)]
        partial_json: String,
    },
    #[default]
    #[serde(other)]
    Other,
}

#[derive(Default, Deserialize)]
struct MessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct StreamError {
    #[serde(default = "api_error")]
    r#type: String,
    #[serde(default = "unknown_error")]
    message: String,
}

impl Default for StreamError {
    fn default() -> Self {
        StreamError {
            r#type: api_error(),
            message: unknown_error(),
        }
    }
}

fn api_error() -> String {
    "api_error".into()
}

fn unknown_error() -> String {
    "unknown error".into()
}

/// Per-stream state: which content block is which tool call, and usage so far.
#[derive(Default)]
struct StreamState {
    tool_of_block: Vec<(u64, usize)>,
    tools: usize,
    usage: WireUsage,
}

impl StreamState {
    fn on_event(&mut self, data: &str, out: &mut Vec<Delta>) {
        let Ok(event) = serde_json::from_str::<Event>(data) else {
            return out.push(Delta::Error(ApiError::provider(
                "The provider sent a malformed stream event.",
            )));
        };
        match event {
            Event::MessageStart { message } => self.on_usage(message.usage, out),
            Event::ContentBlockStart { index, content_block } => self.on_block_start(index, content_block, out),
            Event::ContentBlockDelta { index, delta } => self.on_block_delta(index, delta, out),
            Event::MessageDelta { delta, usage } => {
                if let Some(r) = delta.stop_reason {
                    out.push(Delta::Finish(finish_from(&r)));
                }
                self.on_usage(usage, out);
            }
            Event::Error { error } => out.push(Delta::Error(error.into_api_error())),
            Event::MessageStop | Event::Other => {}
        }
    }

    fn on_usage(&mut self, usage: Option<WireUsage>, out: &mut Vec<Delta>) {
        if let Some(u) = usage {
            self.usage.merge(&u);
            out.push(Delta::Usage(self.usage.to_usage()));
        }
    }

    fn on_block_start(&mut self, block: u64, start: BlockStart, out: &mut Vec<Delta>) {
        match start {
            BlockStart::ToolUse { id, name } => {
                let index = match tool_call_index(self.tools as u64) {
                    Ok(i) => i,
                    Err(e) => return out.push(Delta::Error(e)),
                };
                self.tools += 1;
                self.tool_of_block.push((block, index));
                out.push(Delta::ToolCall {
                    index,
                    id,
                    name,
                    arguments: String::new(),
                });
            }
            BlockStart::Text { text } if !text.is_empty() => out.push(Delta::Text(text)),
            BlockStart::Text { .. } | BlockStart::Other => {}
        }
    }

    fn on_block_delta(&mut self, block: u64, delta: BlockDelta, out: &mut Vec<Delta>) {
        match delta {
            BlockDelta::TextDelta { text } => out.push(Delta::Text(text)),
            BlockDelta::ThinkingDelta { thinking } => out.push(Delta::Reasoning(thinking)),
            BlockDelta::SignatureDelta { signature } => out.push(Delta::ReasoningSignature(signature)),
            BlockDelta::InputJsonDelta { partial_json } => {
                if let Some(&(_, index)) = self.tool_of_block.iter().find(|(b, _)| *b == block) {
                    out.push(Delta::ToolCall {
                        index,
                        id: None,
                        name: None,
                        arguments: partial_json,
                    });
                }
            }
            BlockDelta::Other => {}
        }
    }
}

impl StreamError {
    fn into_api_error(self) -> ApiError {
        ApiError::provider(format!(
            "The provider's stream failed ({}): {}",
            self.r#type, self.message
        ))
    }
}

/// What one event of a Messages stream passed through as it is tells the meter.
#[derive(Debug, PartialEq)]
pub enum Observed {
    /// Output the caller received, in bytes of text (for an estimate should the usage never come).
    Output(u64),
    /// The usage so far (`message_start`, then each cumulative `message_delta`).
    Usage(Usage),
    /// `message_stop`: the answer is complete.
    Complete,
    /// The provider's `error` event: the stream ends with it.
    Failed(ApiError),
    /// Nothing to meter (`ping`, block starts and stops, types yet to come).
    Nothing,
    /// Not a Messages event.
    Malformed,
}

/// Meters a Messages stream passed through untouched.
#[derive(Default)]
pub struct StreamMeter {
    usage: WireUsage,
    /// `message_delta`'s stop reason, until the relay takes it.
    stop_reason: Option<String>,
}

impl StreamMeter {
    /// The stop reason the stream gave, once.
    pub fn take_stop_reason(&mut self) -> Option<String> {
        self.stop_reason.take()
    }

    pub fn observe(&mut self, data: &str) -> Observed {
        let Ok(event) = serde_json::from_str::<Event>(data) else {
            return Observed::Malformed;
        };
        let usage = match event {
            Event::MessageStart { message } => message.usage,
            Event::MessageDelta { delta, usage } => {
                self.stop_reason = delta.stop_reason;
                usage
            }
            Event::ContentBlockDelta { delta, .. } => return Observed::Output(delta.output_bytes()),
            Event::MessageStop => return Observed::Complete,
            Event::Error { error } => return Observed::Failed(error.into_api_error()),
            Event::ContentBlockStart { .. } | Event::Other => return Observed::Nothing,
        };
        match usage {
            Some(u) => {
                self.usage.merge(&u);
                Observed::Usage(self.usage.to_usage())
            }
            None => Observed::Nothing,
        }
    }
}

impl BlockDelta {
    fn output_bytes(&self) -> u64 {
        match self {
            BlockDelta::TextDelta { text } => text.len() as u64,
            BlockDelta::ThinkingDelta { thinking } => thinking.len() as u64,
            BlockDelta::InputJsonDelta { partial_json } => partial_json.len() as u64,
            BlockDelta::SignatureDelta { .. } | BlockDelta::Other => 0,
        }
    }
}

/// A whole `message` passed through as it is: its usage and the output bytes it holds.
pub fn read_whole(body: &[u8]) -> Result<(Option<Usage>, u64), ApiError> {
    let deltas = decode_whole(body)?;
    let usage = deltas.iter().find_map(|d| match d {
        Delta::Usage(u) => Some(*u),
        _ => None,
    });
    Ok((usage, deltas.iter().map(Delta::output_bytes).sum()))
}

pub fn decoder() -> impl Decode {
    let mut state = StreamState::default();
    SseDecode::new(move |_, data: &str, out: &mut Vec<Delta>| state.on_event(data, out))
}

/// A whole `message`, as far as Hub reads it.
#[derive(Deserialize)]
struct WholeMessage {
    #[serde(default)]
    content: Vec<WholeBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WholeBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    ToolUse {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        input: Option<Value>,
    },
    #[serde(other)]
    Other,
}

/// A whole `message` into deltas.
pub fn decode_whole(body: &[u8]) -> Result<Vec<Delta>, ApiError> {
    let m: WholeMessage = serde_json::from_slice(body)
        .map_err(|_| ApiError::provider("The provider answered with something that is not a Messages answer."))?;
    let mut out = Vec::new();
    let mut tools = 0;
    for block in m.content {
        match block {
            WholeBlock::Text { text } => out.push(Delta::Text(text)),
            WholeBlock::Thinking { thinking, signature } => {
                out.push(Delta::Reasoning(thinking));
                out.extend(signature.map(Delta::ReasoningSignature));
            }
            WholeBlock::ToolUse { id, name, input } => {
                out.push(Delta::ToolCall {
                    index: tool_call_index(tools)?,
                    id,
                    name,
                    arguments: input.map_or_else(|| "{}".into(), |v| v.to_string()),
                });
                tools += 1;
            }
            WholeBlock::Other => {}
        }
    }
    out.extend(m.stop_reason.map(|r| Delta::Finish(finish_from(&r))));
    out.extend(m.usage.map(|u| Delta::Usage(u.to_usage())));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_all;

    #[test]
    fn a_passed_through_stream_gives_its_stop_reason_once() {
        let mut m = StreamMeter::default();
        m.observe(r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":3,"output_tokens":1}}}"#);
        assert_eq!(m.take_stop_reason(), None);
        m.observe(r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#);
        assert_eq!(m.take_stop_reason().as_deref(), Some("end_turn"));
        assert_eq!(m.take_stop_reason(), None);
    }

    #[test]
    fn usage_split_across_events_is_merged() {
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":30,\"cache_creation_input_tokens\":5,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":20}}\n\n",
        );
        let r = crate::chat::Reply::from_deltas(decode_all(decoder(), stream.as_bytes())).unwrap();
        let u = r.usage.unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.cache_read_tokens,
                u.cache_write_tokens,
                u.output_tokens
            ),
            (10, 30, 5, 20)
        );
        assert_eq!(r.tool_calls[0].arguments, "{\"a\":1}");
        assert_eq!(r.finish, Some(Finish::ToolCalls));
    }

    #[test]
    fn unknown_events_and_blocks_are_skipped_and_tool_calls_are_bounded() {
        let mut stream = String::from(concat!(
            "event: ping\ndata: {\"type\":\"ping\"}\n\n",
            "data: {\"type\":\"future_event\",\"x\":[1]}\n\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"s\"}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"citations_delta\",\"citation\":{}}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        ));
        assert_eq!(decode_all(decoder(), stream.as_bytes()), vec![Delta::Text("Hi".into())]);
        // One tool call past the bound is an error, not a 129th slot.
        for i in 0..=crate::chat::MAX_TOOL_CALLS {
            stream.push_str(&format!(
                "data: {{\"type\":\"content_block_start\",\"index\":{i},\"content_block\":{{\"type\":\"tool_use\",\"id\":\"t{i}\",\"name\":\"f\"}}}}\n\n"
            ));
        }
        let deltas = decode_all(decoder(), stream.as_bytes());
        assert!(
            matches!(deltas.last(), Some(Delta::Error(e)) if e.message.contains("at most 128")),
            "{:?}",
            deltas.last()
        );
        // A known event of the wrong shape is a malformed stream.
        let bad = "data: {\"type\":\"content_block_delta\",\"index\":\"zero\",\"delta\":{}}\n\n";
        assert!(matches!(
            decode_all(decoder(), bad.as_bytes()).as_slice(),
            [Delta::Error(_)]
        ));
    }
}
