//! OpenAI-compatible providers (OpenAI, DeepSeek, xAI, OpenRouter, Ollama,
//! Doubao, Poe, custom URLs): the request (passed through from an OpenAI
//! caller, or built from the internal model), and their answers read into
//! deltas and usage.

use crate::chat::{tool_call_index, Chat, Delta, Finish, OutputFormat, Part, Role, Tool, ToolChoice};
use crate::codec::{Decode, SseDecode};
use crate::error::ApiError;
use crate::metering::Usage;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// OpenAI's `usage` object (also DeepSeek's cache fields).
#[derive(Debug, Default, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek reports cache hits here instead.
    #[serde(default)]
    pub prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl WireUsage {
    /// OpenAI counts cached tokens inside `prompt_tokens`; Hub bills them once,
    /// at the cache-read rate, and the rest at the input rate.
    pub fn to_usage(&self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .or(self.prompt_cache_hit_tokens)
            .unwrap_or(0)
            .min(self.prompt_tokens);
        Usage {
            input_tokens: self.prompt_tokens - cached,
            output_tokens: self.completion_tokens,
            cache_read_tokens: cached,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            images: 0,
            ..Default::default()
        }
    }
}

/// An OpenAI Chat Completions body, built from the internal model.
#[derive(Debug, Serialize)]
pub struct ChatBody<'a> {
    model: &'a str,
    messages: Vec<OutMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<OutToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<OutResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum OutMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: UserContent<'a>,
    },
    Assistant {
        /// `null` when the turn is only tool calls.
        content: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<OutToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: &'a str,
    },
}

/// A user turn's content: plain text when it is one text part, else parts.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum UserContent<'a> {
    Text(&'a str),
    Parts(Vec<OutPart<'a>>),
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutPart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: OutUrl },
}

#[derive(Debug, Serialize)]
struct OutUrl {
    url: String,
}

#[derive(Debug, Serialize)]
struct OutToolCall<'a> {
    id: &'a str,
    r#type: &'static str,
    function: OutFunctionCall<'a>,
}

#[derive(Debug, Serialize)]
struct OutFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Debug, Serialize)]
struct OutTool<'a> {
    r#type: &'static str,
    function: OutFunction<'a>,
}

#[derive(Debug, Serialize)]
struct OutFunction<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: &'a Value,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum OutToolChoice<'a> {
    /// `auto`, `none` or `required`.
    Mode(&'static str),
    Function {
        r#type: &'static str,
        function: OutName<'a>,
    },
}

#[derive(Debug, Serialize)]
struct OutName<'a> {
    name: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutResponseFormat<'a> {
    JsonObject,
    JsonSchema { json_schema: OutJsonSchema<'a> },
}

#[derive(Debug, Serialize)]
struct OutJsonSchema<'a> {
    name: &'a str,
    schema: &'a Value,
    strict: bool,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// An OpenAI Chat Completions body from the internal model.
pub fn chat_body<'a>(chat: &'a Chat, model: &'a str) -> ChatBody<'a> {
    let mut messages = Vec::with_capacity(chat.messages.len() + 1);
    if let Some(system) = &chat.system {
        messages.push(OutMessage::System { content: system });
    }
    for m in &chat.messages {
        match m.role {
            Role::Assistant => messages.push(assistant_message(&m.parts)),
            Role::User => push_user_turn(&mut messages, &m.parts),
        }
    }
    ChatBody {
        model,
        messages,
        tools: chat.tools.iter().map(out_tool).collect(),
        tool_choice: chat.tool_choice.as_ref().map(out_tool_choice),
        parallel_tool_calls: chat.parallel_tool_calls,
        response_format: out_response_format(&chat.output),
        max_tokens: chat.max_tokens,
        temperature: chat.temperature,
        top_p: chat.top_p,
        stop: &chat.stop,
        reasoning_effort: chat.reasoning.as_ref().map(|r| r.effort()),
        stream: chat.stream,
        stream_options: chat.stream.then_some(StreamOptions { include_usage: true }),
    }
}

fn assistant_message(parts: &[Part]) -> OutMessage<'_> {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for p in parts {
        match p {
            Part::Text(t) => text.push_str(t),
            Part::ToolCall { id, name, arguments } => tool_calls.push(OutToolCall {
                id,
                r#type: "function",
                function: OutFunctionCall { name, arguments },
            }),
            _ => {}
        }
    }
    let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
    OutMessage::Assistant { content, tool_calls }
}

/// Tool results become `tool` messages, in order; the rest one user message.
fn push_user_turn<'a>(messages: &mut Vec<OutMessage<'a>>, parts: &'a [Part]) {
    let mut content = Vec::new();
    for p in parts {
        match p {
            Part::ToolResult { id, content: c, .. } => messages.push(OutMessage::Tool {
                tool_call_id: id,
                content: c,
            }),
            Part::Text(t) => content.push(OutPart::Text { text: t }),
            Part::Image(img) => content.push(OutPart::ImageUrl {
                image_url: OutUrl { url: img.to_url() },
            }),
            Part::ToolCall { .. } | Part::Reasoning { .. } => {}
        }
    }
    let content = match content.as_slice() {
        [] => return,
        [OutPart::Text { text }] => UserContent::Text(text),
        _ => UserContent::Parts(content),
    };
    messages.push(OutMessage::User { content });
}

fn out_tool(t: &Tool) -> OutTool<'_> {
    OutTool {
        r#type: "function",
        function: OutFunction {
            name: &t.name,
            description: t.description.as_deref(),
            parameters: &t.parameters,
        },
    }
}

fn out_tool_choice(choice: &ToolChoice) -> OutToolChoice<'_> {
    match choice {
        ToolChoice::Auto => OutToolChoice::Mode("auto"),
        ToolChoice::None => OutToolChoice::Mode("none"),
        ToolChoice::Required => OutToolChoice::Mode("required"),
        ToolChoice::Tool(name) => OutToolChoice::Function {
            r#type: "function",
            function: OutName { name },
        },
    }
}

fn out_response_format(output: &OutputFormat) -> Option<OutResponseFormat<'_>> {
    match output {
        OutputFormat::Text => None,
        OutputFormat::Json => Some(OutResponseFormat::JsonObject),
        OutputFormat::JsonSchema { name, schema, strict } => Some(OutResponseFormat::JsonSchema {
            json_schema: OutJsonSchema {
                name,
                schema,
                strict: *strict,
            },
        }),
    }
}

/// One chunk of a stream, or a whole response (`message` instead of `delta`):
/// what Hub reads of it.
#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default, alias = "message")]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    index: u32,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default, alias = "reasoning")]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    /// The provider's numbering; bounded by `tool_call_index` before use.
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// A provider's error object, or anything else in its place (some
/// compatible providers send a bare string): only the message is read.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum WireError {
    Object {
        #[serde(default)]
        message: Option<String>,
    },
    Other(serde::de::IgnoredAny),
}

impl WireError {
    pub(crate) fn message(&self) -> &str {
        match self {
            WireError::Object { message: Some(m) } => m,
            _ => "unknown error",
        }
    }
}

pub fn finish_from(reason: &str) -> Finish {
    match reason {
        "length" => Finish::Length,
        "tool_calls" | "function_call" => Finish::ToolCalls,
        "content_filter" => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

/// Deltas of one chunk (or of a whole response: `message` instead of `delta`).
fn chunk_deltas(data: &str, out: &mut Vec<Delta>) {
    let chunk: WireChunk = match serde_json::from_str(data) {
        Ok(c) => c,
        Err(_) => {
            return out.push(Delta::Error(ApiError::provider(
                "The provider sent a malformed stream chunk.",
            )))
        }
    };
    if let Some(err) = chunk.error {
        return out.push(Delta::Error(ApiError::provider(format!(
            "The provider's stream failed: {}",
            err.message()
        ))));
    }
    // Only the first choice is carried through the internal model.
    for c in chunk.choices.into_iter().filter(|c| c.index == 0) {
        if let Some(d) = c.delta {
            if let Err(e) = delta_deltas(d, out) {
                return out.push(Delta::Error(e));
            }
        }
        if let Some(f) = c.finish_reason {
            out.push(Delta::Finish(finish_from(&f)));
        }
    }
    if let Some(u) = chunk.usage {
        out.push(Delta::Usage(u.to_usage()));
    }
}

/// Deltas of one choice's `delta` (or `message`).
fn delta_deltas(d: WireDelta, out: &mut Vec<Delta>) -> Result<(), ApiError> {
    if let Some(r) = d.reasoning_content.filter(|r| !r.is_empty()) {
        out.push(Delta::Reasoning(r));
    }
    if let Some(t) = d.content.filter(|t| !t.is_empty()) {
        out.push(Delta::Text(t));
    }
    for (pos, call) in d.tool_calls.into_iter().flatten().enumerate() {
        // The index is the provider's word: bounded before anything is sized by it.
        let index = tool_call_index(call.index.unwrap_or(pos as u64))?;
        let (name, arguments) = call.function.map(|f| (f.name, f.arguments)).unwrap_or_default();
        out.push(Delta::ToolCall {
            index,
            id: call.id,
            name,
            arguments: arguments.unwrap_or_default(),
        });
    }
    Ok(())
}

/// Reads an OpenAI chat stream.
pub fn decoder() -> impl Decode {
    SseDecode::new(|_, data: &str, out: &mut Vec<Delta>| chunk_deltas(data, out))
}

/// Reads a whole chat completion.
pub fn decode_whole(body: &[u8]) -> Result<Vec<Delta>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::provider("The provider's answer is not UTF-8."))?;
    let mut out = Vec::new();
    chunk_deltas(text, &mut out);
    match out.as_slice() {
        [Delta::Error(e)] => Err(e.clone()),
        _ => Ok(out),
    }
}

/// OpenAI's `usage` object from the internal one (cached tokens inside `prompt_tokens`).
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens(),
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens(),
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_tokens_are_not_billed_twice() {
        let u: WireUsage = serde_json::from_str(
            r#"{"prompt_tokens":100,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":60},"completion_tokens_details":{"reasoning_tokens":5}}"#,
        )
        .unwrap();
        let u = u.to_usage();
        assert_eq!(
            (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens),
            (40, 60, 20, 5)
        );
        let d: WireUsage =
            serde_json::from_str(r#"{"prompt_tokens":10,"completion_tokens":1,"prompt_cache_hit_tokens":4}"#).unwrap();
        assert_eq!(d.to_usage().cache_read_tokens, 4);
    }

    /// One chunk naming tool call 4294967295 (or 10^9) must not make Hub size
    /// anything by it: the answer becomes an error, in the stream and whole.
    #[test]
    fn a_hostile_tool_call_index_is_an_error_not_an_allocation() {
        for index in ["4294967295", "1000000000", "18446744073709551615"] {
            let chunk = format!(
                r#"{{"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":{index},"id":"c","function":{{"name":"f","arguments":"{{}}"}}}}]}}}}]}}"#
            );
            let stream = format!("data: {chunk}\n\ndata: [DONE]\n\n");
            let deltas = crate::codec::decode_all(decoder(), stream.as_bytes());
            assert!(
                !deltas.iter().any(|d| matches!(d, Delta::ToolCall { .. })),
                "index {index}: {deltas:?}"
            );
            match deltas.as_slice() {
                [Delta::Error(e)] => assert!(e.message.contains(index), "{e:?}"),
                other => panic!("index {index}: expected one error, got {other:?}"),
            }
            let whole = chunk.replace("\"delta\"", "\"message\"");
            let refused = decode_whole(whole.as_bytes()).and_then(crate::chat::Reply::from_deltas);
            assert_eq!(refused.map_err(|e| e.status.as_u16()), Err(502));
        }
        // The last index Hub takes still works.
        let ok = r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":127,"id":"c","function":{"name":"f","arguments":"{}"}}]}}]}"#;
        let r = crate::chat::Reply::from_deltas(crate::codec::decode_all(decoder(), format!("{ok}\n\n").as_bytes()))
            .unwrap();
        assert_eq!((r.tool_calls.len(), r.tool_calls[127].name.as_str()), (128, "f"));
    }
}
