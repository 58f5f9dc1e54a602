//! Anthropic Messages (`POST /v1/messages`) as callers speak it: the request
//! into the internal model, and deltas back into Anthropic's event stream or
//! a whole `message`.

use super::{parse_body, Positive, StrOrList};
use crate::chat::{
    text_of, CachePoints, CacheTtl, Chat, Delta, Finish, Image, Message, Part, Reasoning, Reply, Role, Tool, ToolChoice,
};
use crate::codec::{sse, Billed, Encode};
use crate::error::{ApiError, Protocol};
use crate::metering::estimate::PromptSize;
use crate::metering::Usage;
use bytes::BytesMut;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// A Messages request, as far as Hub reads it (other members are ignored).
#[derive(Deserialize)]
struct MessagesBody {
    model: Option<String>,
    max_tokens: Option<Positive>,
    messages: Option<Vec<InMessage>>,
    system: Option<StrOrList<InTextBlock>>,
    stream: Option<bool>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    /// Checked, not used: no other protocol has it.
    #[allow(dead_code)]
    top_k: Option<u64>,
    stop_sequences: Option<Vec<String>>,
    tools: Option<Vec<InTool>>,
    tool_choice: Option<InToolChoice>,
    #[allow(dead_code)]
    metadata: Option<Map<String, Value>>,
    thinking: Option<InThinking>,
    /// Automatic caching: the last cacheable block is the breakpoint.
    cache_control: Option<InCacheControl>,
}

/// A prompt-cache breakpoint (`{"type": "ephemeral", "ttl": "5m" | "1h"}`).
#[derive(Deserialize)]
struct InCacheControl {
    ttl: Option<String>,
}

impl InCacheControl {
    fn ttl(&self) -> CacheTtl {
        match self.ttl.as_deref() {
            Some("1h") => CacheTtl::OneHour,
            _ => CacheTtl::FiveMinutes,
        }
    }
}

#[derive(Deserialize)]
struct InMessage {
    role: Option<Role>,
    content: Option<StrOrList<InBlock>>,
}

#[derive(Deserialize)]
struct InTextBlock {
    text: Option<String>,
    cache_control: Option<InCacheControl>,
}

/// A content block: every member any kind has, checked by kind afterwards
/// (so that a bad member is named with its whole path).
#[derive(Deserialize)]
struct InBlock {
    #[serde(rename = "type")]
    kind: Option<BlockKind>,
    text: Option<String>,
    /// An image's source object; other kinds have other shapes (a search
    /// result's is its URL), so it is read by kind.
    source: Option<Value>,
    id: Option<String>,
    name: Option<String>,
    input: Option<Value>,
    tool_use_id: Option<String>,
    /// A string or blocks; only its text is carried.
    content: Option<Value>,
    is_error: Option<bool>,
    thinking: Option<String>,
    signature: Option<String>,
    cache_control: Option<InCacheControl>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
enum BlockKind {
    Text,
    Image,
    ToolUse,
    ToolResult,
    Thinking,
    Other(String),
}

impl From<String> for BlockKind {
    fn from(s: String) -> Self {
        match s.as_str() {
            "text" => BlockKind::Text,
            "image" => BlockKind::Image,
            "tool_use" => BlockKind::ToolUse,
            "tool_result" => BlockKind::ToolResult,
            "thinking" => BlockKind::Thinking,
            _ => BlockKind::Other(s),
        }
    }
}

#[derive(Deserialize)]
struct InSource {
    #[serde(rename = "type")]
    kind: Option<String>,
    media_type: Option<String>,
    data: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct InTool {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    description: Option<String>,
    input_schema: Option<Map<String, Value>>,
    cache_control: Option<InCacheControl>,
}

#[derive(Deserialize)]
struct InToolChoice {
    #[serde(rename = "type")]
    kind: Option<ChoiceKind>,
    name: Option<String>,
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ChoiceKind {
    Auto,
    Any,
    Tool,
    None,
}

#[derive(Deserialize)]
struct InThinking {
    #[serde(rename = "type")]
    kind: Option<String>,
    budget_tokens: Option<u64>,
}

/// A member that must be there.
fn required<'a, T>(v: &'a Option<T>, path: &str) -> Result<&'a T, ApiError> {
    v.as_ref().ok_or_else(|| ApiError::invalid_field(path, "is required"))
}

/// Which Messages endpoint a body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/messages`: `max_tokens` is required.
    Create,
    /// `POST /v1/messages/count_tokens`: no output budget.
    CountTokens,
}

/// A Messages request read: the internal model, and what it cannot carry.
pub struct Messages {
    pub chat: Chat,
    /// The first member only an Anthropic provider takes (a `document`
    /// block, a server tool), refused naming it when the request must be
    /// converted for another provider; an Anthropic provider gets it as sent.
    pub unconvertible: Option<ApiError>,
}

/// Parses and validates a Messages request for conversion: anything the
/// internal model cannot carry is refused.
pub fn parse(bytes: &[u8]) -> Result<Chat, ApiError> {
    let m = parse_messages(bytes, Endpoint::Create)?;
    match m.unconvertible {
        Some(e) => Err(e),
        None => Ok(m.chat),
    }
}

/// What parsing gathers beside the messages.
#[derive(Default)]
struct Reader {
    prompt: PromptSize,
    cache: CachePoints,
    unconvertible: Option<ApiError>,
}

impl Reader {
    /// Records the first member that only an Anthropic provider takes.
    fn unconvertible(&mut self, e: ApiError) {
        self.unconvertible.get_or_insert(e);
    }
}

/// Parses and validates a Messages request, keeping what only Anthropic
/// takes aside (see [`Messages::unconvertible`]).
pub fn parse_messages(bytes: &[u8], endpoint: Endpoint) -> Result<Messages, ApiError> {
    let body: MessagesBody = parse_body(bytes)?;
    let model = match &body.model {
        Some(m) if !m.trim().is_empty() => m.clone(),
        _ => return Err(ApiError::invalid_field("model", "is required: name the model to call")),
    };
    let max_tokens = match endpoint {
        Endpoint::Create => Some(required(&body.max_tokens, "max_tokens")?.0),
        Endpoint::CountTokens => body.max_tokens.as_ref().map(|m| m.0),
    };
    super::output_budget("max_tokens", max_tokens)?;
    let mut r = Reader::default();
    let system = body.system.as_ref().map(|s| system(s, &mut r));
    let messages = messages(body.messages.as_deref(), &mut r)?;
    if let Some(cc) = &body.cache_control {
        mark_last_part(&messages, cc.ttl(), &mut r.cache);
    }
    let mut tools = Vec::new();
    for (i, t) in body.tools.iter().flatten().enumerate() {
        if let Some(tool) = tool(t, &format!("tools[{i}]"), &mut r)? {
            r.prompt.text_bytes += (tool.name.len() as u64) + super::openai::json_len(&tool.parameters);
            tools.push(tool);
        }
        if let Some(cc) = &t.cache_control {
            r.cache.tools.push((tools.len().saturating_sub(1), cc.ttl()));
        }
    }
    let (tool_choice, parallel_tool_calls) = tool_choice(body.tool_choice.as_ref())?;
    let chat = Chat {
        model,
        system,
        messages,
        tools,
        tool_choice,
        max_tokens,
        temperature: body.temperature,
        top_p: body.top_p,
        stop: body.stop_sequences.unwrap_or_default(),
        stream: body.stream.unwrap_or(false),
        reasoning: body
            .thinking
            .filter(|t| t.kind.as_deref() == Some("enabled"))
            .map(|t| Reasoning {
                effort: None,
                budget_tokens: t.budget_tokens,
            }),
        parallel_tool_calls,
        prompt: r.prompt,
        cache: r.cache,
        ..Default::default()
    };
    Ok(Messages {
        chat,
        unconvertible: r.unconvertible,
    })
}

/// The system prompt as one text; a breakpoint on any of its blocks caches it whole.
fn system(s: &StrOrList<InTextBlock>, r: &mut Reader) -> String {
    let text: String = match s {
        StrOrList::Str(s) => s.clone(),
        StrOrList::List(blocks) => {
            let ttls = blocks
                .iter()
                .filter_map(|b| b.cache_control.as_ref().map(InCacheControl::ttl));
            r.cache.system = ttls.max_by_key(|t| *t == CacheTtl::OneHour);
            blocks.iter().filter_map(|b| b.text.as_deref()).collect()
        }
    };
    r.prompt.text_bytes += text.len() as u64;
    text
}

fn messages(list: Option<&[InMessage]>, r: &mut Reader) -> Result<Vec<Message>, ApiError> {
    match list {
        None => Err(ApiError::invalid_field("messages", "is required")),
        Some([]) => Err(ApiError::invalid_field("messages", "must contain at least one message")),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, m)| message(m, i, r))
            .collect::<Result<Vec<_>, _>>(),
    }
}

/// Automatic caching: the breakpoint goes after the last block of the prompt.
fn mark_last_part(messages: &[Message], ttl: CacheTtl, cache: &mut CachePoints) {
    let Some((i, m)) = messages.iter().enumerate().next_back() else {
        return;
    };
    if let Some(j) = m.parts.len().checked_sub(1) {
        if cache.after_part(i, j).is_none() {
            cache.parts.push((i, j, ttl));
        }
    }
}

fn message(m: &InMessage, i: usize, r: &mut Reader) -> Result<Message, ApiError> {
    let path = format!("messages[{i}]");
    let role = *required(&m.role, &format!("{path}.role"))?;
    r.prompt.messages += 1;
    let mut parts = Vec::new();
    match required(&m.content, &format!("{path}.content"))? {
        StrOrList::Str(s) => {
            r.prompt.text_bytes += s.len() as u64;
            parts.push(Part::Text(s.clone()));
        }
        StrOrList::List(blocks) => {
            for (j, b) in blocks.iter().enumerate() {
                parts.extend(block(b, &format!("{path}.content[{j}]"), r)?);
                if let (Some(cc), Some(last)) = (&b.cache_control, parts.len().checked_sub(1)) {
                    r.cache.parts.push((i, last, cc.ttl()));
                }
            }
        }
    }
    Ok(Message { role, parts })
}

/// A client tool; a server tool (`type` other than `custom`) is only Anthropic's.
fn tool(t: &InTool, path: &str, r: &mut Reader) -> Result<Option<Tool>, ApiError> {
    if let Some(kind) = t.kind.as_deref().filter(|k| *k != "custom") {
        r.prompt.text_bytes += t.name.as_ref().map_or(0, |n| n.len() as u64);
        r.unconvertible(ApiError::invalid_field(
            &format!("{path}.type"),
            format!("server tool `{kind}` is only supported by Anthropic providers; others take client tools with an input_schema"),
        ));
        return Ok(None);
    }
    let name = required(&t.name, &format!("{path}.name"))?;
    let schema = t
        .input_schema
        .clone()
        .ok_or_else(|| ApiError::invalid_field(&format!("{path}.input_schema"), "is required and must be an object"))?;
    Ok(Some(Tool {
        name: name.clone(),
        description: t.description.clone(),
        parameters: Value::Object(schema),
    }))
}

/// The tool choice, and whether parallel tool use was turned off.
fn tool_choice(tc: Option<&InToolChoice>) -> Result<(Option<ToolChoice>, Option<bool>), ApiError> {
    let Some(tc) = tc else { return Ok((None, None)) };
    let choice = match tc.kind {
        Some(ChoiceKind::Auto) => ToolChoice::Auto,
        Some(ChoiceKind::Any) => ToolChoice::Required,
        Some(ChoiceKind::None) => ToolChoice::None,
        Some(ChoiceKind::Tool) => ToolChoice::Tool(required(&tc.name, "tool_choice.name")?.clone()),
        None => {
            return Err(ApiError::invalid_field(
                "tool_choice.type",
                "must be `auto`, `any`, `tool` or `none`",
            ))
        }
    };
    let parallel = (tc.disable_parallel_tool_use == Some(true)).then_some(false);
    Ok((Some(choice), parallel))
}

/// One content block as a part; None for a kind only Anthropic takes.
fn block(b: &InBlock, path: &str, r: &mut Reader) -> Result<Option<Part>, ApiError> {
    let field = |f: &str| format!("{path}.{f}");
    let text = |v: &Option<String>, f: &str| required(v, &field(f)).cloned();
    let prompt = &mut r.prompt;
    Ok(Some(match required(&b.kind, &field("type"))? {
        BlockKind::Text => {
            let t = text(&b.text, "text")?;
            prompt.text_bytes += t.len() as u64;
            Part::Text(t)
        }
        BlockKind::Image => {
            prompt.images += 1;
            Part::Image(image(required(&b.source, &field("source"))?, &field("source"))?)
        }
        BlockKind::ToolUse => {
            let arguments = b.input.as_ref().map_or_else(|| "{}".into(), Value::to_string);
            prompt.text_bytes += arguments.len() as u64;
            Part::ToolCall {
                id: text(&b.id, "id")?,
                name: text(&b.name, "name")?,
                arguments,
            }
        }
        BlockKind::ToolResult => {
            let content = text_of(b.content.as_ref().unwrap_or(&Value::Null));
            prompt.text_bytes += content.len() as u64;
            Part::ToolResult {
                id: text(&b.tool_use_id, "tool_use_id")?,
                content,
                is_error: b.is_error.unwrap_or(false),
            }
        }
        BlockKind::Thinking => Part::Reasoning {
            text: text(&b.thinking, "thinking")?,
            signature: b.signature.clone(),
        },
        BlockKind::Other(other) => {
            prompt.text_bytes += other_block_bytes(b);
            r.unconvertible(ApiError::invalid_field(
                &field("type"),
                format!("`{other}` content blocks are only supported by Anthropic providers"),
            ));
            return Ok(None);
        }
    }))
}

/// The text a block of a kind Hub does not convert gives the model to read
/// (a document's data or text, a search result's content), for sizing the prompt.
fn other_block_bytes(b: &InBlock) -> u64 {
    let json_len = |v: &Option<Value>| v.as_ref().map_or(0, super::openai::json_len);
    let text_len = |v: &Option<String>| v.as_ref().map_or(0, |t| t.len() as u64);
    text_len(&b.text) + text_len(&b.thinking) + json_len(&b.source) + json_len(&b.content) + json_len(&b.input)
}

fn image(src: &Value, path: &str) -> Result<Image, ApiError> {
    let src: InSource = serde_json::from_value(src.clone()).map_err(|_| {
        ApiError::invalid_field(
            path,
            "must be an object whose `type`, `media_type`, `data` and `url` are strings",
        )
    })?;
    let text = |v: &Option<String>, f: &str| required(v, &format!("{path}.{f}")).cloned();
    match required(&src.kind, &format!("{path}.type"))?.as_str() {
        "base64" => Ok(Image::Base64 {
            media_type: text(&src.media_type, "media_type")?,
            data: text(&src.data, "data")?,
        }),
        "url" => Ok(Image::Url(text(&src.url, "url")?)),
        other => Err(ApiError::invalid_field(
            &format!("{path}.type"),
            format!("`{other}` image sources are not supported"),
        )),
    }
}

pub fn stop_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCalls => "tool_use",
        Finish::ContentFilter => "refusal",
    }
}

/// Anthropic's `usage` object: `input_tokens` excludes cache reads and writes.
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    Tool(usize),
}

/// Writes Anthropic's event stream from deltas: `message_start`, one
/// `content_block_*` run per block, `message_delta` with the stop reason and
/// usage, `message_stop`.
pub struct Encoder {
    id: String,
    model: String,
    started: bool,
    open: Option<Block>,
    next_index: usize,
    finish: Option<Finish>,
    saw_tool_call: bool,
}

impl Encoder {
    pub fn new(id: &str, model: &str) -> Self {
        Encoder {
            id: format!("msg_{id}"),
            model: model.to_string(),
            started: false,
            open: None,
            next_index: 0,
            finish: None,
            saw_tool_call: false,
        }
    }

    fn start(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            let msg = json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }});
            sse(out, Some("message_start"), &msg);
        }
    }

    fn close(&mut self, out: &mut BytesMut) {
        if self.open.take().is_some() {
            sse(
                out,
                Some("content_block_stop"),
                &json!({"type": "content_block_stop", "index": self.next_index - 1}),
            );
        }
    }

    /// Makes `block` the open one, opening it with `first` as its start.
    fn open(&mut self, block: Block, first: Value, out: &mut BytesMut) {
        if self.open == Some(block) {
            return;
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some(block);
        sse(
            out,
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": index, "content_block": first}),
        );
    }

    fn block_delta(&self, delta: Value, out: &mut BytesMut) {
        sse(
            out,
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": self.next_index - 1, "delta": delta}),
        );
    }
}

impl Encode for Encoder {
    fn delta(&mut self, d: &Delta, out: &mut BytesMut) {
        self.start(out);
        match d {
            Delta::Text(t) => {
                self.open(Block::Text, json!({"type": "text", "text": ""}), out);
                self.block_delta(json!({"type": "text_delta", "text": t}), out);
            }
            Delta::Reasoning(t) => {
                self.open(Block::Thinking, json!({"type": "thinking", "thinking": ""}), out);
                self.block_delta(json!({"type": "thinking_delta", "thinking": t}), out);
            }
            Delta::ReasoningSignature(s) => {
                self.open(Block::Thinking, json!({"type": "thinking", "thinking": ""}), out);
                self.block_delta(json!({"type": "signature_delta", "signature": s}), out);
            }
            Delta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => {
                self.saw_tool_call = true;
                self.open(
                    Block::Tool(*index),
                    json!({"type": "tool_use", "id": id.clone().unwrap_or_default(),
                           "name": name.clone().unwrap_or_default(), "input": {}}),
                    out,
                );
                if !arguments.is_empty() {
                    self.block_delta(json!({"type": "input_json_delta", "partial_json": arguments}), out);
                }
            }
            Delta::Finish(f) => self.finish = Some(*f),
            Delta::Usage(_) | Delta::Error(_) => {}
        }
    }

    fn end(&mut self, billed: &Billed, out: &mut BytesMut) {
        self.start(out);
        self.close(out);
        let finish = self.finish.unwrap_or(if self.saw_tool_call {
            Finish::ToolCalls
        } else {
            Finish::Stop
        });
        let usage = usage_json(&billed.usage);
        sse(
            out,
            Some("message_delta"),
            &json!({"type": "message_delta", "delta": {"stop_reason": stop_reason(finish), "stop_sequence": null}, "usage": usage}),
        );
        sse(out, Some("message_stop"), &json!({"type": "message_stop"}));
    }

    fn error(&mut self, e: &ApiError, out: &mut BytesMut) {
        sse(out, Some("error"), &e.body(Protocol::Anthropic));
    }
}

/// A whole `message` from a reply.
pub fn render_reply(id: &str, model: &str, r: &Reply) -> Value {
    let mut content = Vec::new();
    if !r.reasoning.is_empty() {
        content.push(json!({"type": "thinking", "thinking": r.reasoning, "signature": r.reasoning_signature.clone().unwrap_or_default()}));
    }
    if !r.text.is_empty() {
        content.push(json!({"type": "text", "text": r.text}));
    }
    for c in &r.tool_calls {
        let input: Value = serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
    }
    json!({
        "id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop_reason(r.finish_reason()), "stop_sequence": null,
        "usage": r.usage.as_ref().map(usage_json).unwrap_or_else(|| json!({"input_tokens": 0, "output_tokens": 0})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> ApiError {
        parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn validates_with_field_names() {
        assert_eq!(
            err(r#"{"model":"m","messages":[]}"#).param.as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            err(r#"{"model":"m","max_tokens":10,"messages":[]}"#).param.as_deref(),
            Some("messages")
        );
        assert_eq!(
            err(r#"{"model":"m","max_tokens":10,"messages":[{"role":"system","content":"x"}]}"#)
                .param
                .as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            err(r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"document"}]}]}"#)
                .param
                .as_deref(),
            Some("messages[0].content[0].type")
        );
        assert_eq!(
            err(r#"{"model":"m","max_tokens":10,"stream":"yes","messages":[{"role":"user","content":"x"}]}"#)
                .param
                .as_deref(),
            Some("stream")
        );
    }

    #[test]
    fn encoder_opens_and_closes_blocks_in_order() {
        let mut e = Encoder::new("1", "claude");
        let mut out = BytesMut::new();
        for d in [
            Delta::Text("Hi".into()),
            Delta::ToolCall {
                index: 0,
                id: Some("t1".into()),
                name: Some("f".into()),
                arguments: String::new(),
            },
            Delta::ToolCall {
                index: 0,
                id: None,
                name: None,
                arguments: "{\"a\":1}".into(),
            },
            Delta::Finish(Finish::ToolCalls),
        ] {
            e.delta(&d, &mut out);
        }
        e.end(
            &Billed {
                usage: Usage {
                    input_tokens: 5,
                    output_tokens: 7,
                    ..Default::default()
                },
                credits: Default::default(),
            },
            &mut out,
        );
        let text = String::from_utf8(out.to_vec()).unwrap();
        let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(
            events,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(text.contains(r#""stop_reason":"tool_use""#));
        assert!(text.contains(r#""output_tokens":7"#));
    }
}
