//! AIGNE Hub's own chat protocols, as its clients speak them:
//!
//! * `POST /api/v2/chat`, the AIGNE framework's (`AIGNEHubChatModel`):
//!   `{input: ChatModelInput, options: {streaming}}`, answered with a
//!   `ChatModelOutput` or a stream of `ModelResponseChunk`s
//!   (`{"delta":{"text":{"text"}}}`, `{"delta":{"json":{…}}}`), errors as
//!   `event: error`, no `[DONE]`;
//! * `POST /api/v2/chat/completions` and `/api/v2/completions`, the legacy
//!   camelCase schema with three answer shapes: SSE `{delta}`/`{usage}`/`{error}`
//!   frames (with `Accept: text/event-stream`), raw text (`stream: true`
//!   without it), or JSON `{role, text, content, toolCalls}`.

use super::{parse_body, Positive, StrOrObject};
use crate::chat::{
    tool_call_slot, Chat, Delta, Image, Message, OutputFormat, Part, Reasoning, Reply, Role, Tool, ToolCallOut,
    ToolChoice,
};
use crate::codec::{sse, Billed, Encode, Meta};
use crate::error::{ApiError, Protocol};
use crate::http::{Response, StatusCode};
use crate::metering::estimate::PromptSize;
use bytes::BytesMut;
use serde::Deserialize;
use serde_json::{json, Map, Number, Value};

/// How an AIGNE caller wants its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `/api/v2/chat`: ChatModelOutput, or ModelResponseChunk SSE when streaming.
    Framework,
    /// Legacy completions with `Accept: text/event-stream`.
    LegacySse,
    /// Legacy completions, `stream: true` without SSE: the text itself.
    LegacyText,
    /// Legacy completions, not streamed: `{role, text, content, toolCalls}`.
    LegacyJson,
}

impl Shape {
    pub fn endpoint(self) -> crate::kinds::Endpoint {
        match self {
            Shape::Framework => crate::kinds::Endpoint::AigneChat,
            _ => crate::kinds::Endpoint::AigneCompletions,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Shape::LegacyText => "text/plain; charset=utf-8",
            _ => "text/event-stream; charset=utf-8",
        }
    }

    pub fn encoder(self, chat: &Chat, meta: Meta) -> Box<dyn Encode> {
        match self {
            Shape::Framework => Box::new(FrameworkEncoder {
                meta,
                json_output: chat.output != OutputFormat::Text,
                reply: Reply::default(),
            }),
            Shape::LegacySse | Shape::LegacyJson => Box::new(LegacySseEncoder {
                calls: Vec::new(),
                started: false,
            }),
            Shape::LegacyText => Box::new(TextEncoder),
        }
    }

    pub fn render(self, chat: &Chat, meta: &Meta, reply: &Reply, billed: &Billed) -> Response {
        let v = match self {
            Shape::Framework => output(meta, reply, billed, chat.output != OutputFormat::Text),
            _ => json!({
                "role": "assistant",
                "text": reply.text,
                "content": reply.text,
                "toolCalls": if reply.tool_calls.is_empty() { Value::Null } else { legacy_calls(&reply.tool_calls) },
            }),
        };
        crate::http::json(StatusCode::OK, &v)
    }
}

// ------------------------------------------------------------------ parsing

/// `POST /api/v2/chat`: `{input, options, model?}`.
#[derive(Deserialize)]
struct FrameworkBody {
    model: Option<Value>,
    input: Option<FrameworkInput>,
    options: Option<FrameworkOptions>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FrameworkInput {
    model: Option<Value>,
    model_options: Option<ModelOptions>,
    messages: Option<Vec<InMessage>>,
    tools: Option<Vec<InTool>>,
    tool_choice: Option<StrOrObject<InNamedTool>>,
    response_format: Option<InResponseFormat>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModelOptions {
    model: Option<Value>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<Positive>,
    parallel_tool_calls: Option<Value>,
    reasoning_effort: Option<Effort>,
}

#[derive(Deserialize)]
struct FrameworkOptions {
    streaming: Option<bool>,
}

/// `reasoningEffort`: a word, or a token budget.
#[derive(Deserialize)]
#[serde(untagged, expecting = "a string or a number")]
enum Effort {
    Word(String),
    Budget(Number),
}

/// `POST /api/v2/chat/completions`: the legacy camelCase schema.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyBody {
    model: Option<Value>,
    stream: Option<bool>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<Positive>,
    messages: Option<Vec<InMessage>>,
    prompt: Option<String>,
    tools: Option<Vec<InTool>>,
    tool_choice: Option<StrOrObject<InNamedTool>>,
    response_format: Option<InResponseFormat>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InMessage {
    role: Option<String>,
    content: Option<Content>,
    tool_calls: Option<Vec<InToolCall>>,
    tool_call_id: Option<String>,
}

/// A message's content: text, parts, or (tool results) an object.
enum Content {
    Text(String),
    Parts(Vec<InPart>),
    Object(Map<String, Value>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Content, E> {
                Ok(Content::Text(s.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Content, A::Error> {
                Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Content::Parts)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Content, A::Error> {
                Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Content::Object)
            }
        }
        d.deserialize_any(V)
    }
}

impl Content {
    /// The text of it (an object is its JSON).
    fn text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(parts) => parts.iter().filter_map(|p| p.text.as_deref()).collect(),
            Content::Object(o) => Value::Object(o.clone()).to_string(),
        }
    }
}

/// A content part. Framework: `{type:"url", url}`, `{type:"file", data,
/// mimeType}`; legacy: `{type:"image_url", imageUrl:{url}}`.
#[derive(Deserialize)]
struct InPart {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    url: Option<String>,
    #[serde(rename = "imageUrl", alias = "image_url")]
    image_url: Option<InUrl>,
    data: Option<String>,
    #[serde(rename = "mimeType")]
    mime_type: Option<String>,
}

#[derive(Deserialize)]
struct InUrl {
    url: Option<String>,
}

#[derive(Deserialize)]
struct InToolCall {
    id: Option<String>,
    function: Option<InFunctionCall>,
}

#[derive(Deserialize)]
struct InFunctionCall {
    name: Option<String>,
    /// The framework sends an object, the legacy API JSON text.
    arguments: Option<Value>,
}

#[derive(Deserialize)]
struct InTool {
    function: Option<InFunction>,
}

#[derive(Deserialize)]
struct InFunction {
    name: Option<String>,
    description: Option<String>,
    parameters: Option<Value>,
}

#[derive(Deserialize)]
struct InNamedTool {
    function: Option<InFunctionName>,
}

#[derive(Deserialize)]
struct InFunctionName {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InResponseFormat {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(alias = "json_schema")]
    json_schema: Option<InJsonSchema>,
}

#[derive(Deserialize)]
struct InJsonSchema {
    name: Option<String>,
    schema: Option<Value>,
    strict: Option<bool>,
}

/// The first of `candidates` that is a non-empty string.
fn model_of<'a>(candidates: impl IntoIterator<Item = Option<&'a Value>>) -> Option<&'a str> {
    candidates
        .into_iter()
        .flatten()
        .find_map(|v| v.as_str().filter(|s| !s.trim().is_empty()))
}

/// `POST /api/v2/chat`: `{input, options, model?}`. The model is `body.model`,
/// else `input.model`, else `input.modelOptions.model`.
pub fn parse_framework(bytes: &[u8], default_model: Option<&str>) -> Result<Chat, ApiError> {
    let body: FrameworkBody = parse_body(bytes)?;
    let input = body
        .input
        .ok_or_else(|| ApiError::invalid_field("input", "is required"))?;
    let options = input.model_options.unwrap_or_default();
    let model = model_of([body.model.as_ref(), input.model.as_ref(), options.model.as_ref()])
        .or(default_model)
        .ok_or_else(|| ApiError::invalid_field("input.modelOptions.model", "is required: name the model to call"))?
        .to_string();
    let mut chat = Chat {
        model,
        stream: body.options.and_then(|o| o.streaming).unwrap_or(false),
        temperature: options.temperature,
        top_p: options.top_p,
        max_tokens: super::output_budget("input.modelOptions.maxTokens", options.max_tokens.map(|p| p.0))?,
        parallel_tool_calls: options.parallel_tool_calls.as_ref().and_then(Value::as_bool),
        reasoning: options.reasoning_effort.map(|e| match e {
            Effort::Word(w) => Reasoning {
                effort: Some(w),
                budget_tokens: None,
            },
            Effort::Budget(n) => Reasoning {
                effort: None,
                budget_tokens: n.as_u64(),
            },
        }),
        ..Default::default()
    };
    let list = input.messages.as_deref();
    messages(&mut chat, list, "input.messages", true)?;
    tools(&mut chat, input.tools.as_deref(), input.tool_choice.as_ref(), "input.")?;
    chat.output = response_format(input.response_format, "input.responseFormat")?;
    Ok(chat)
}

/// `POST /api/v2/chat/completions`: the legacy camelCase schema (`messages` or `prompt`).
pub fn parse_legacy(bytes: &[u8], default_model: Option<&str>) -> Result<(Chat, bool), ApiError> {
    let body: LegacyBody = parse_body(bytes)?;
    let model = match &body.model {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        None => default_model
            .ok_or_else(|| ApiError::invalid_field("model", "is required"))?
            .to_string(),
        Some(_) => return Err(ApiError::invalid_field("model", "must be a non-empty string")),
    };
    let mut chat = Chat {
        model,
        temperature: body.temperature,
        top_p: body.top_p,
        max_tokens: super::output_budget("maxTokens", body.max_tokens.map(|p| p.0))?,
        ..Default::default()
    };
    match (body.messages.as_deref(), body.prompt) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "prompt",
                "send either `messages` or `prompt`, not both",
            ))
        }
        (Some(m), None) => messages(&mut chat, Some(m), "messages", false)?,
        (None, Some(p)) if !p.is_empty() => {
            chat.prompt.text_bytes += p.len() as u64;
            chat.prompt.messages = 1;
            chat.messages.push(Message {
                role: Role::User,
                parts: vec![Part::Text(p)],
            });
        }
        _ => return Err(ApiError::invalid_field("messages", "is required (or send a `prompt`)")),
    }
    tools(&mut chat, body.tools.as_deref(), body.tool_choice.as_ref(), "")?;
    chat.output = response_format(body.response_format, "responseFormat")?;
    Ok((chat, body.stream.unwrap_or(false)))
}

fn messages(chat: &mut Chat, list: Option<&[InMessage]>, path: &str, framework: bool) -> Result<(), ApiError> {
    let list = match list {
        Some([]) => return Err(ApiError::invalid_field(path, "must contain at least one message")),
        None => return Err(ApiError::invalid_field(path, "is required")),
        Some(l) => l,
    };
    let mut system = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        chat.prompt.messages += 1;
        match m.role.as_deref().unwrap_or("") {
            "system" => {
                let t = m.content.as_ref().map(Content::text).unwrap_or_default();
                chat.prompt.text_bytes += t.len() as u64;
                system.push(t);
            }
            "user" => {
                let parts = user_parts(m.content.as_ref(), &format!("{at}.content"), &mut chat.prompt)?;
                chat.messages.push(Message {
                    role: Role::User,
                    parts,
                });
            }
            // The framework calls the model's own turns `agent`.
            "agent" | "assistant" => {
                let message = assistant(m, &at, &mut chat.prompt)?;
                chat.messages.push(message);
            }
            "tool" => tool_result(chat, m, &at)?,
            other => {
                let roles = if framework {
                    "system, user, agent, tool"
                } else {
                    "system, user, assistant, tool"
                };
                return Err(ApiError::invalid_field(
                    &format!("{at}.role"),
                    format!("must be one of {roles} (got `{other}`)"),
                ));
            }
        }
    }
    if !system.is_empty() {
        chat.system = Some(system.join("\n\n"));
    }
    Ok(())
}

fn assistant(m: &InMessage, at: &str, prompt: &mut PromptSize) -> Result<Message, ApiError> {
    let mut parts = Vec::new();
    let t = m.content.as_ref().map(Content::text).unwrap_or_default();
    if !t.is_empty() {
        prompt.text_bytes += t.len() as u64;
        parts.push(Part::Text(t));
    }
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let f = call.function.as_ref();
        let name = f
            .and_then(|f| f.name.clone())
            .ok_or_else(|| ApiError::invalid_field(&format!("{at}.toolCalls[{j}].function.name"), "is required"))?;
        let arguments = match f.and_then(|f| f.arguments.as_ref()) {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => "{}".to_string(),
            Some(other) => other.to_string(),
        };
        prompt.text_bytes += (name.len() + arguments.len()) as u64;
        parts.push(Part::ToolCall {
            id: call.id.clone().unwrap_or_default(),
            name,
            arguments,
        });
    }
    Ok(Message {
        role: Role::Assistant,
        parts,
    })
}

fn tool_result(chat: &mut Chat, m: &InMessage, at: &str) -> Result<(), ApiError> {
    let id = m
        .tool_call_id
        .clone()
        .ok_or_else(|| ApiError::invalid_field(&format!("{at}.toolCallId"), "is required for tool messages"))?;
    let text = m.content.as_ref().map(Content::text).unwrap_or_default();
    chat.prompt.text_bytes += text.len() as u64;
    let part = Part::ToolResult {
        id,
        content: text,
        is_error: false,
    };
    crate::protocols::openai::push_tool_result(&mut chat.messages, part);
    Ok(())
}

fn user_parts(content: Option<&Content>, path: &str, prompt: &mut PromptSize) -> Result<Vec<Part>, ApiError> {
    match content {
        Some(Content::Text(s)) => {
            prompt.text_bytes += s.len() as u64;
            Ok(vec![Part::Text(s.clone())])
        }
        Some(Content::Parts(items)) => items
            .iter()
            .enumerate()
            .map(|(j, p)| user_part(p, &format!("{path}[{j}]"), prompt))
            .collect(),
        None => Ok(Vec::new()),
        Some(Content::Object(_)) => Err(ApiError::invalid_field(
            path,
            "must be a string or an array, not an object",
        )),
    }
}

fn user_part(p: &InPart, at: &str, prompt: &mut PromptSize) -> Result<Part, ApiError> {
    match p.kind.as_deref() {
        Some("text") => {
            let t = p.text.clone().unwrap_or_default();
            prompt.text_bytes += t.len() as u64;
            Ok(Part::Text(t))
        }
        Some("url" | "image_url") => {
            prompt.images += 1;
            let url = p
                .url
                .as_ref()
                .or_else(|| p.image_url.as_ref().and_then(|u| u.url.as_ref()))
                .ok_or_else(|| ApiError::invalid_field(&format!("{at}.url"), "is required"))?;
            Ok(Part::Image(Image::from_url(url)))
        }
        Some("file") => {
            prompt.images += 1;
            let data = p
                .data
                .clone()
                .ok_or_else(|| ApiError::invalid_field(&format!("{at}.data"), "is required"))?;
            Ok(Part::Image(Image::Base64 {
                media_type: p.mime_type.clone().unwrap_or_else(|| "image/png".into()),
                data,
            }))
        }
        Some(other) => Err(ApiError::invalid_field(
            &format!("{at}.type"),
            format!("`{other}` content is not supported"),
        )),
        None => Err(ApiError::invalid_field(&format!("{at}.type"), "is required")),
    }
}

fn tools(
    chat: &mut Chat,
    list: Option<&[InTool]>,
    choice: Option<&StrOrObject<InNamedTool>>,
    path: &str,
) -> Result<(), ApiError> {
    for (i, t) in list.into_iter().flatten().enumerate() {
        let f = t.function.as_ref();
        let name = f
            .and_then(|f| f.name.clone())
            .ok_or_else(|| ApiError::invalid_field(&format!("{path}tools[{i}].function.name"), "is required"))?;
        let parameters = f
            .and_then(|f| f.parameters.clone())
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        chat.prompt.text_bytes += name.len() as u64 + crate::protocols::openai::json_len(&parameters);
        chat.tools.push(Tool {
            name,
            description: f.and_then(|f| f.description.clone()),
            parameters,
        });
    }
    chat.tool_choice = match choice {
        None => None,
        Some(StrOrObject::Str(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            // The framework's `router` means: call exactly one of the tools.
            "required" | "router" => ToolChoice::Required,
            _ => {
                return Err(ApiError::invalid_field(
                    &format!("{path}toolChoice"),
                    "must be `auto`, `none`, `required`, `router` or a function",
                ))
            }
        }),
        Some(StrOrObject::Object(t)) => Some(ToolChoice::Tool(
            t.function
                .as_ref()
                .and_then(|f| f.name.clone())
                .ok_or_else(|| ApiError::invalid_field(&format!("{path}toolChoice.function.name"), "is required"))?,
        )),
    };
    Ok(())
}

fn response_format(rf: Option<InResponseFormat>, path: &str) -> Result<OutputFormat, ApiError> {
    let Some(rf) = rf else {
        return Ok(OutputFormat::Text);
    };
    Ok(match rf.kind.as_deref() {
        None | Some("text") => OutputFormat::Text,
        Some("json_object") => OutputFormat::Json,
        Some("json_schema") => {
            let js = rf
                .json_schema
                .ok_or_else(|| ApiError::invalid_field(&format!("{path}.jsonSchema"), "is required"))?;
            OutputFormat::JsonSchema {
                name: js.name.unwrap_or_else(|| "output".into()),
                schema: js.schema.unwrap_or_else(|| json!({})),
                strict: js.strict.unwrap_or(false),
            }
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                &format!("{path}.type"),
                "must be `text`, `json_object` or `json_schema`",
            ))
        }
    })
}

// ------------------------------------------------------------------ answers

/// The framework's usage object, with the call's credits (a number: the
/// framework's usage schema types `aigneHubCredits` as one).
fn usage(meta: &Meta, billed: &Billed) -> Value {
    let u = &billed.usage;
    let mut v = json!({
        "inputTokens": u.prompt_tokens(),
        "outputTokens": u.output_tokens,
        "aigneHubCredits": billed.credits.to_json_number(),
        "modelCallId": meta.call_id,
    });
    if u.cache_write_tokens > 0 {
        v["cacheCreationInputTokens"] = json!(u.cache_write_tokens);
    }
    if u.cache_read_tokens > 0 {
        v["cacheReadInputTokens"] = json!(u.cache_read_tokens);
    }
    // AIGNE clients want the prefix absent rather than empty.
    if !meta.credit_prefix.is_empty() {
        v["creditPrefix"] = json!(meta.credit_prefix);
    }
    v
}

fn framework_calls(calls: &[ToolCallOut]) -> Value {
    calls
        .iter()
        .map(|c| {
            let args: Value = serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
            json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": args}})
        })
        .collect()
}

fn legacy_calls(calls: &[ToolCallOut]) -> Value {
    calls
        .iter()
        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
        .collect()
}

/// A whole ChatModelOutput.
fn output(meta: &Meta, reply: &Reply, billed: &Billed, json_output: bool) -> Value {
    let mut v = json!({
        "text": reply.text,
        "model": meta.model,
        "modelWithProvider": meta.model_with_provider,
        "usage": usage(meta, billed),
    });
    if !reply.reasoning.is_empty() {
        v["thoughts"] = json!(reply.reasoning);
    }
    if !reply.tool_calls.is_empty() {
        v["toolCalls"] = framework_calls(&reply.tool_calls);
    }
    if json_output {
        if let Ok(parsed) = serde_json::from_str::<Value>(reply.text.trim()) {
            v["json"] = parsed;
        }
    }
    v
}

/// ModelResponseChunk SSE: text as it comes, then one JSON delta with the
/// tool calls, the parsed JSON output, usage, credits and the model.
struct FrameworkEncoder {
    meta: Meta,
    json_output: bool,
    reply: Reply,
}

impl Encode for FrameworkEncoder {
    fn delta(&mut self, d: &Delta, out: &mut BytesMut) {
        match d {
            Delta::Text(t) if !t.is_empty() => sse(out, None, &json!({"delta": {"text": {"text": t}}})),
            Delta::Reasoning(t) if !t.is_empty() => sse(out, None, &json!({"delta": {"text": {"thoughts": t}}})),
            _ => {}
        }
        let _ = self.reply.push(d.clone());
    }

    fn end(&mut self, billed: &Billed, out: &mut BytesMut) {
        let mut last = json!({
            "model": self.meta.model,
            "modelWithProvider": self.meta.model_with_provider,
            "usage": usage(&self.meta, billed),
        });
        if !self.reply.tool_calls.is_empty() {
            last["toolCalls"] = framework_calls(&self.reply.tool_calls);
        }
        if self.json_output {
            if let Ok(parsed) = serde_json::from_str::<Value>(self.reply.text.trim()) {
                last["json"] = parsed;
            }
        }
        sse(out, None, &json!({"delta": {"json": last}}));
    }

    fn error(&mut self, e: &ApiError, out: &mut BytesMut) {
        sse(out, Some("error"), &json!({"message": e.message}));
    }
}

/// Legacy SSE: `{"delta":{"role","content","toolCalls"}}` frames (tool calls
/// cumulative, arguments as JSON text), then `{"usage":{…}}`; no `[DONE]`.
struct LegacySseEncoder {
    calls: Vec<ToolCallOut>,
    started: bool,
}

impl Encode for LegacySseEncoder {
    fn delta(&mut self, d: &Delta, out: &mut BytesMut) {
        let content = match d {
            Delta::Text(t) => t.as_str(),
            Delta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => {
                // Decoders bound the index; a delta beyond it is dropped here too.
                let Ok(c) = tool_call_slot(&mut self.calls, *index) else {
                    return;
                };
                if let Some(id) = id {
                    c.id = id.clone();
                }
                if let Some(n) = name {
                    c.name = n.clone();
                }
                c.arguments.push_str(arguments);
                ""
            }
            _ => return,
        };
        let mut delta = json!({"content": content, "toolCalls": legacy_calls(&self.calls)});
        if !self.started {
            self.started = true;
            delta["role"] = json!("assistant");
        }
        sse(out, None, &json!({ "delta": delta }));
    }

    fn end(&mut self, billed: &Billed, out: &mut BytesMut) {
        let u = &billed.usage;
        sse(
            out,
            None,
            &json!({"usage": {"promptTokens": u.prompt_tokens(), "completionTokens": u.output_tokens, "totalTokens": u.total_tokens()}}),
        );
    }

    fn error(&mut self, e: &ApiError, out: &mut BytesMut) {
        sse(out, None, &e.body(Protocol::Aigne));
    }
}

/// Legacy raw text: the content only; a failure midway is written as `ERROR: <message>`.
struct TextEncoder;

impl Encode for TextEncoder {
    fn delta(&mut self, d: &Delta, out: &mut BytesMut) {
        if let Delta::Text(t) = d {
            out.extend_from_slice(t.as_bytes());
        }
    }

    fn end(&mut self, _: &Billed, _: &mut BytesMut) {}

    fn error(&mut self, e: &ApiError, out: &mut BytesMut) {
        out.extend_from_slice(format!("ERROR: {}", e.message).as_bytes());
    }
}

/// An error as the one SSE frame AIGNE Hub answers requests that accept
/// `text/event-stream` with (HTTP 200): `data: {"error": {…}}`.
pub fn sse_error(e: &ApiError) -> Response {
    let mut out = BytesMut::new();
    sse(&mut out, None, &e.body(Protocol::Aigne));
    let mut res = http::Response::new(crate::http::Body::Full(out.freeze()));
    res.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::Usage;

    #[test]
    fn framework_requests_take_the_model_from_any_of_three_places() {
        let m = |body: &str| parse_framework(body.as_bytes(), None).map(|c| c.model);
        let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
        assert_eq!(
            m(&format!(r#"{{"model":"a","input":{{"model":"b",{msgs}}}}}"#)).unwrap(),
            "a"
        );
        assert_eq!(m(&format!(r#"{{"input":{{"model":"b",{msgs}}}}}"#)).unwrap(), "b");
        assert_eq!(
            m(&format!(r#"{{"input":{{"modelOptions":{{"model":"c"}},{msgs}}}}}"#)).unwrap(),
            "c"
        );
        assert_eq!(
            m(&format!(r#"{{"input":{{{msgs}}}}}"#)).unwrap_err().param.as_deref(),
            Some("input.modelOptions.model")
        );
        let chat = parse_framework(
            br#"{"input":{"modelOptions":{"model":"x","temperature":0.2},"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"},{"role":"agent","content":"","toolCalls":[{"id":"t1","type":"function","function":{"name":"f","arguments":{"a":1}}}]},{"role":"tool","toolCallId":"t1","content":"{\"ok\":true}"}]},"options":{"streaming":true}}"#,
            None,
        )
        .unwrap();
        assert!(chat.stream);
        assert_eq!(chat.system.as_deref(), Some("be brief"));
        assert_eq!(chat.temperature, Some(0.2));
        assert!(matches!(&chat.messages[1].parts[0], Part::ToolCall { arguments, .. } if arguments == r#"{"a":1}"#));
        assert!(matches!(&chat.messages[2].parts[0], Part::ToolResult { id, .. } if id == "t1"));
    }

    #[test]
    fn legacy_requests_take_messages_or_a_prompt() {
        let (chat, stream) =
            parse_legacy(br#"{"model":"m","prompt":"hello","stream":true,"maxTokens":20}"#, None).unwrap();
        assert!(stream);
        assert_eq!(chat.max_tokens, Some(20));
        assert_eq!(chat.messages[0].parts, vec![Part::Text("hello".into())]);
        assert_eq!(
            parse_legacy(br#"{"model":"m"}"#, None).unwrap_err().param.as_deref(),
            Some("messages")
        );
        assert_eq!(
            parse_legacy(
                br#"{"model":"m","prompt":"a","messages":[{"role":"user","content":"b"}]}"#,
                None
            )
            .unwrap_err()
            .param
            .as_deref(),
            Some("prompt")
        );
    }

    #[test]
    fn framework_stream_ends_with_usage_credits_and_the_model() {
        let meta = Meta {
            call_id: "call_1".into(),
            model: "gpt".into(),
            model_with_provider: "openai/gpt".into(),
            created: 0,
            credit_prefix: String::new(),
        };
        let mut e = Shape::Framework.encoder(&Chat::default(), meta);
        let mut out = BytesMut::new();
        e.delta(&Delta::Text("Hi".into()), &mut out);
        e.end(
            &Billed {
                usage: Usage {
                    input_tokens: 3,
                    output_tokens: 1,
                    ..Default::default()
                },
                credits: crate::Credits::parse("0.25").unwrap(),
            },
            &mut out,
        );
        let text = String::from_utf8(out.to_vec()).unwrap();
        let frames: Vec<Value> = text
            .split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| serde_json::from_str(f.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        assert_eq!(frames[0], json!({"delta": {"text": {"text": "Hi"}}}));
        let last = &frames[1]["delta"]["json"];
        assert_eq!(last["usage"]["aigneHubCredits"], 0.25);
        assert_eq!(last["usage"]["inputTokens"], 3);
        assert!(
            last["usage"].get("creditPrefix").is_none(),
            "an empty prefix is omitted"
        );
        assert_eq!(last["modelWithProvider"], "openai/gpt");
        assert!(!text.contains("[DONE]"));
    }

    #[test]
    fn refusals_name_the_field() {
        let f = |body: &str| parse_framework(body.as_bytes(), None).unwrap_err();
        let e = f(
            r#"{"input":{"modelOptions":{"model":"m","reasoningEffort":true},"messages":[{"role":"user","content":"x"}]}}"#,
        );
        assert_eq!(e.param.as_deref(), Some("input.modelOptions.reasoningEffort"), "{e:?}");
        let e = f(r#"{"input":{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":1}]}]}}"#);
        assert_eq!(e.param.as_deref(), Some("input.messages[0].content[0].text"), "{e:?}");
        assert_eq!(
            e.message,
            "`input.messages[0].content[0].text` must be a string, not a number"
        );
        let e = f(r#"{"input":{"model":"m","messages":[{"role":"user","content":{"a":1}}]}}"#);
        assert_eq!(e.param.as_deref(), Some("input.messages[0].content"), "{e:?}");
        let e = f(r#"{"input":{"model":"m","messages":[{"role":"robot","content":"x"}]}}"#);
        assert!(e.message.contains("system, user, agent, tool (got `robot`)"), "{e:?}");
        assert_eq!(f(r#"{"input":1}"#).param.as_deref(), Some("input"));
        assert_eq!(
            f(r#"{"options":{"streaming":"y"},"input":{}}"#).param.as_deref(),
            Some("options.streaming")
        );
    }
}
