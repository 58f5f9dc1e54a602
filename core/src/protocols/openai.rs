//! OpenAI Chat Completions: request validation (types of every standard
//! parameter, nothing else touched), the prompt's size for holds, the body
//! sent upstream, and a light view of streamed chunks for metering.

use crate::chat::{
    text_of, Chat, Delta, Finish, Image, Message, OutputFormat, Part, Reasoning, Reply, Role, Tool, ToolChoice,
};
use crate::codec::{sse, Billed, Encode};
use crate::error::ApiError;
use crate::metering::estimate::PromptSize;
use crate::providers::openai_compat::{usage_json, WireUsage};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A validated chat request. The body is kept whole so that every parameter,
/// known or not, reaches the provider unchanged.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    /// Whether the caller asked for the usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    pub max_tokens: Option<u64>,
    /// Number of choices asked for.
    pub n: u64,
    pub prompt: PromptSize,
}

/// What a JSON value is, for error messages ("must be a string, not a number").
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expect(field: &str, v: &Value, ok: bool, wanted: &str) -> Result<(), ApiError> {
    if ok || v.is_null() {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            field,
            format!("must be {wanted}, not {}", kind_of(v)),
        ))
    }
}

fn positive_int(field: &str, v: &Value) -> Result<Option<u64>, ApiError> {
    if v.is_null() {
        return Ok(None);
    }
    match v.as_u64() {
        Some(n) if n >= 1 => Ok(Some(n)),
        _ => Err(ApiError::invalid_field(field, "must be a positive integer")),
    }
}

/// A request body that must be a JSON object.
pub(crate) fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(invalid_json()),
    }
}

pub fn invalid_json() -> ApiError {
    ApiError::bad_request(
        "We could not parse the JSON body of your request. The body must be a JSON object (see the API reference).",
    )
}

pub fn parse_chat(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let body = json_object(bytes)?;
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::invalid_field("model", "is required: name the model to call"))
        }
        Some(other) => {
            return Err(ApiError::invalid_field(
                "model",
                format!("must be a string, not {}", kind_of(other)),
            ))
        }
    };
    let mut prompt = PromptSize::default();
    match body.get("messages") {
        Some(Value::Array(msgs)) if !msgs.is_empty() => {
            for (i, m) in msgs.iter().enumerate() {
                measure_message(i, m, &mut prompt)?;
            }
        }
        Some(Value::Array(_)) => return Err(ApiError::invalid_field("messages", "must contain at least one message")),
        None | Some(Value::Null) => return Err(ApiError::invalid_field("messages", "is required")),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "messages",
                format!("must be an array, not {}", kind_of(other)),
            ))
        }
    }
    let null = Value::Null;
    let get = |k: &str| body.get(k).unwrap_or(&null);
    for (field, check, wanted) in [
        ("stream", get("stream").is_boolean(), "a boolean"),
        ("temperature", get("temperature").is_number(), "a number"),
        ("top_p", get("top_p").is_number(), "a number"),
        ("presence_penalty", get("presence_penalty").is_number(), "a number"),
        ("frequency_penalty", get("frequency_penalty").is_number(), "a number"),
        ("seed", get("seed").is_i64() || get("seed").is_u64(), "an integer"),
        (
            "stop",
            get("stop").is_string() || get("stop").is_array(),
            "a string or an array of strings",
        ),
        ("logit_bias", get("logit_bias").is_object(), "an object"),
        ("user", get("user").is_string(), "a string"),
        ("tools", get("tools").is_array(), "an array"),
        (
            "tool_choice",
            get("tool_choice").is_string() || get("tool_choice").is_object(),
            "a string or an object",
        ),
        (
            "parallel_tool_calls",
            get("parallel_tool_calls").is_boolean(),
            "a boolean",
        ),
        ("response_format", get("response_format").is_object(), "an object"),
        ("stream_options", get("stream_options").is_object(), "an object"),
        ("logprobs", get("logprobs").is_boolean(), "a boolean"),
        ("metadata", get("metadata").is_object(), "an object"),
    ] {
        expect(field, get(field), check, wanted)?;
    }
    if let Some(Value::Object(rf)) = body.get("response_format") {
        match rf.get("type").and_then(Value::as_str) {
            Some("text" | "json_object") => {}
            Some("json_schema") if rf.get("json_schema").is_some_and(Value::is_object) => {}
            Some("json_schema") => {
                return Err(ApiError::invalid_field(
                    "response_format.json_schema",
                    "is required when type is json_schema",
                ))
            }
            _ => {
                return Err(ApiError::invalid_field(
                    "response_format.type",
                    "must be one of `text`, `json_object`, `json_schema`",
                ))
            }
        }
    }
    let include_usage = match get("stream_options").get("include_usage") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::invalid_field(
                "stream_options.include_usage",
                format!("must be a boolean, not {}", kind_of(other)),
            ))
        }
    };
    // Either field, or the larger of both: the provider is sent that one budget.
    let max_tokens = super::output_budget(
        "max_completion_tokens",
        positive_int("max_completion_tokens", get("max_completion_tokens"))?,
    )?
    .max(super::output_budget(
        "max_tokens",
        positive_int("max_tokens", get("max_tokens"))?,
    )?);
    let n = positive_int("n", get("n"))?.unwrap_or(1);
    if n > 128 {
        return Err(ApiError::invalid_field("n", "must be at most 128"));
    }
    // Tool definitions (and the legacy `functions`) are prompt text too.
    for field in ["tools", "functions"] {
        if let Some(Value::Array(defs)) = body.get(field) {
            prompt.text_bytes += defs.iter().map(|t| t.to_string().len() as u64).sum::<u64>();
        }
    }
    if let Some(rf) = body.get("response_format") {
        prompt.text_bytes += rf.to_string().len() as u64;
    }
    let stream = get("stream").as_bool().unwrap_or(false);
    Ok(ChatRequest {
        body,
        model,
        stream,
        include_usage,
        max_tokens,
        n,
        prompt,
    })
}

fn measure_message(i: usize, m: &Value, prompt: &mut PromptSize) -> Result<(), ApiError> {
    let field = |f: &str| format!("messages[{i}].{f}");
    let Value::Object(m) = m else {
        return Err(ApiError::invalid_field(
            &format!("messages[{i}]"),
            format!("must be an object, not {}", kind_of(m)),
        ));
    };
    match m.get("role") {
        Some(Value::String(r))
            if matches!(
                r.as_str(),
                "system" | "developer" | "user" | "assistant" | "tool" | "function"
            ) => {}
        Some(Value::String(r)) => {
            return Err(ApiError::invalid_field(
                &field("role"),
                format!("must be one of system, developer, user, assistant, tool (got `{r}`)"),
            ))
        }
        _ => {
            return Err(ApiError::invalid_field(
                &field("role"),
                "is required and must be a string",
            ))
        }
    }
    prompt.messages += 1;
    match m.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => prompt.text_bytes += s.len() as u64,
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let Value::Object(p) = part else {
                    return Err(ApiError::invalid_field(
                        &field(&format!("content[{j}]")),
                        "must be an object",
                    ));
                };
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => match p.get("text") {
                        Some(Value::String(t)) => prompt.text_bytes += t.len() as u64,
                        _ => {
                            return Err(ApiError::invalid_field(
                                &field(&format!("content[{j}].text")),
                                "must be a string",
                            ))
                        }
                    },
                    Some("image_url" | "input_image") => prompt.images += 1,
                    Some(_) => prompt.text_bytes += part.to_string().len() as u64,
                    None => {
                        return Err(ApiError::invalid_field(
                            &field(&format!("content[{j}].type")),
                            "is required",
                        ))
                    }
                }
            }
        }
        Some(other) => {
            return Err(ApiError::invalid_field(
                &field("content"),
                format!("must be a string or an array, not {}", kind_of(other)),
            ))
        }
    }
    if let Some(calls) = m.get("tool_calls") {
        prompt.text_bytes += calls.to_string().len() as u64;
    }
    if let Some(Value::String(name)) = m.get("name") {
        prompt.text_bytes += name.len() as u64;
    }
    Ok(())
}

impl ChatRequest {
    /// The body for the provider: its own model id, and usage asked for in streams.
    /// The body for an OpenAI-compatible provider: the caller's, with the
    /// provider's model name and the output budget Hub holds and bills for in
    /// one field the provider honours, so it can never produce more than Hub
    /// accounted for: `max_completion_tokens` if the caller used it and the
    /// provider reads it, else `max_tokens`.
    pub fn upstream_body(&self, provider_model: &str, takes_max_completion_tokens: bool) -> Bytes {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(provider_model.to_string()));
        if let Some(budget) = self.max_tokens {
            let field = if takes_max_completion_tokens && body.contains_key("max_completion_tokens") {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            body.remove("max_tokens");
            body.remove("max_completion_tokens");
            body.insert(field.into(), Value::from(budget));
        }
        if self.stream {
            let opts = body
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(o) = opts {
                o.insert("include_usage".into(), Value::Bool(true));
            }
        }
        Bytes::from(serde_json::to_vec(&Value::Object(body)).unwrap_or_default())
    }
}

impl ChatRequest {
    /// The request in the internal model, for providers that do not speak OpenAI.
    /// What the internal model cannot carry is refused, naming the field.
    pub fn to_chat(&self) -> Result<Chat, ApiError> {
        let b = &self.body;
        for field in ["logprobs", "top_logprobs", "logit_bias", "audio", "prediction"] {
            if b.get(field).is_some_and(|v| !v.is_null() && v != &Value::Bool(false)) {
                return Err(unconvertible(field));
            }
        }
        if self.n > 1 {
            return Err(unconvertible("n"));
        }
        let mut chat = Chat {
            model: self.model.clone(),
            max_tokens: self.max_tokens,
            temperature: b.get("temperature").and_then(Value::as_f64),
            top_p: b.get("top_p").and_then(Value::as_f64),
            stream: self.stream,
            parallel_tool_calls: b.get("parallel_tool_calls").and_then(Value::as_bool),
            prompt: self.prompt,
            ..Default::default()
        };
        chat.stop = match b.get("stop") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        };
        if let Some(effort) = b.get("reasoning_effort").and_then(Value::as_str) {
            chat.reasoning = Some(Reasoning {
                effort: Some(effort.to_string()),
                budget_tokens: None,
            });
        }
        let mut system = Vec::new();
        let null = Value::Null;
        for (i, m) in b
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("");
            let content = m.get("content").unwrap_or(&null);
            match role {
                "system" | "developer" => system.push(text_of(content)),
                "user" => {
                    let parts = user_parts(i, content)?;
                    chat.messages.push(Message {
                        role: Role::User,
                        parts,
                    });
                }
                "assistant" => {
                    let mut parts = Vec::new();
                    let text = text_of(content);
                    if !text.is_empty() {
                        parts.push(Part::Text(text));
                    }
                    for (j, call) in m
                        .get("tool_calls")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        let field = format!("messages[{i}].tool_calls[{j}]");
                        let f = call
                            .get("function")
                            .ok_or_else(|| ApiError::invalid_field(&format!("{field}.function"), "is required"))?;
                        let name = f
                            .get("name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| ApiError::invalid_field(&format!("{field}.function.name"), "is required"))?;
                        parts.push(Part::ToolCall {
                            id: call.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                            name: name.to_string(),
                            arguments: f.get("arguments").and_then(Value::as_str).unwrap_or("{}").to_string(),
                        });
                    }
                    chat.messages.push(Message {
                        role: Role::Assistant,
                        parts,
                    });
                }
                "tool" => {
                    let id = m.get("tool_call_id").and_then(Value::as_str).ok_or_else(|| {
                        ApiError::invalid_field(&format!("messages[{i}].tool_call_id"), "is required for tool messages")
                    })?;
                    let part = Part::ToolResult {
                        id: id.to_string(),
                        content: text_of(content),
                        is_error: false,
                    };
                    // Consecutive tool results share one user turn.
                    match chat.messages.last_mut() {
                        Some(last)
                            if last.role == Role::User
                                && last.parts.iter().all(|p| matches!(p, Part::ToolResult { .. })) =>
                        {
                            last.parts.push(part)
                        }
                        _ => chat.messages.push(Message {
                            role: Role::User,
                            parts: vec![part],
                        }),
                    }
                }
                _ => {
                    return Err(ApiError::invalid_field(
                        &format!("messages[{i}].role"),
                        format!("`{role}` cannot be sent to this model's provider"),
                    ))
                }
            }
        }
        if !system.is_empty() {
            chat.system = Some(system.join("\n\n"));
        }
        for (i, t) in b
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if t.get("type").and_then(Value::as_str).unwrap_or("function") != "function" {
                return Err(ApiError::invalid_field(
                    &format!("tools[{i}].type"),
                    "only `function` tools can be sent to this model's provider",
                ));
            }
            let f = t
                .get("function")
                .ok_or_else(|| ApiError::invalid_field(&format!("tools[{i}].function"), "is required"))?;
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid_field(&format!("tools[{i}].function.name"), "is required"))?;
            chat.tools.push(Tool {
                name: name.to_string(),
                description: f.get("description").and_then(Value::as_str).map(str::to_owned),
                parameters: f
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            });
        }
        chat.tool_choice = match b.get("tool_choice") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(match s.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                _ => {
                    return Err(ApiError::invalid_field(
                        "tool_choice",
                        "must be `auto`, `none`, `required` or a function",
                    ))
                }
            }),
            Some(v) => Some(ToolChoice::Tool(
                v.pointer("/function/name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::invalid_field("tool_choice.function.name", "is required"))?
                    .to_string(),
            )),
        };
        chat.output = match b.get("response_format") {
            Some(rf) => match rf.get("type").and_then(Value::as_str) {
                Some("json_object") => OutputFormat::Json,
                Some("json_schema") => {
                    let js = &rf["json_schema"];
                    OutputFormat::JsonSchema {
                        name: js.get("name").and_then(Value::as_str).unwrap_or("output").to_string(),
                        schema: js.get("schema").cloned().unwrap_or_else(|| serde_json::json!({})),
                        strict: js.get("strict").and_then(Value::as_bool).unwrap_or(false),
                    }
                }
                _ => OutputFormat::Text,
            },
            None => OutputFormat::Text,
        };
        Ok(chat)
    }
}

fn unconvertible(field: &str) -> ApiError {
    ApiError::invalid_field(
        field,
        "is only supported by OpenAI-compatible providers; this model is served by another kind",
    )
}

fn user_parts(i: usize, content: &Value) -> Result<Vec<Part>, ApiError> {
    match content {
        Value::String(s) => Ok(vec![Part::Text(s.clone())]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(j, p)| match p.get("type").and_then(Value::as_str) {
                Some("text") => Ok(Part::Text(
                    p.get("text").and_then(Value::as_str).unwrap_or_default().to_string(),
                )),
                Some("image_url") => {
                    let url = p
                        .pointer("/image_url/url")
                        .or_else(|| p.get("image_url"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            ApiError::invalid_field(&format!("messages[{i}].content[{j}].image_url.url"), "is required")
                        })?;
                    Ok(Part::Image(Image::from_url(url)))
                }
                Some(other) => Err(ApiError::invalid_field(
                    &format!("messages[{i}].content[{j}].type"),
                    format!("`{other}` parts cannot be sent to this model's provider"),
                )),
                None => Err(ApiError::invalid_field(
                    &format!("messages[{i}].content[{j}].type"),
                    "is required",
                )),
            })
            .collect(),
        _ => Ok(Vec::new()),
    }
}

/// Writes an OpenAI `chat.completion.chunk` stream from deltas.
pub struct Encoder {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    started: bool,
    finished: bool,
    saw_tool_call: bool,
}

impl Encoder {
    pub fn new(id: &str, model: &str, created: i64, include_usage: bool) -> Self {
        Encoder {
            id: format!("chatcmpl-{id}"),
            model: model.to_string(),
            created,
            include_usage,
            started: false,
            finished: false,
            saw_tool_call: false,
        }
    }

    fn chunk(&mut self, delta: Value, finish: Option<&str>, out: &mut BytesMut) {
        let mut delta = delta;
        if !self.started {
            self.started = true;
            delta["role"] = Value::String("assistant".into());
        }
        let data = serde_json::json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        sse(out, None, &data);
    }
}

pub fn finish_word(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ToolCalls => "tool_calls",
        Finish::ContentFilter => "content_filter",
    }
}

impl Encode for Encoder {
    fn delta(&mut self, d: &Delta, out: &mut BytesMut) {
        match d {
            Delta::Text(t) => self.chunk(serde_json::json!({"content": t}), None, out),
            Delta::Reasoning(t) => self.chunk(serde_json::json!({"reasoning_content": t}), None, out),
            Delta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => {
                self.saw_tool_call = true;
                let mut call = serde_json::json!({"index": index, "function": {"arguments": arguments}});
                if let Some(id) = id {
                    call["id"] = Value::String(id.clone());
                    call["type"] = Value::String("function".into());
                }
                if let Some(name) = name {
                    call["function"]["name"] = Value::String(name.clone());
                }
                self.chunk(serde_json::json!({"tool_calls": [call]}), None, out)
            }
            Delta::Finish(f) if !self.finished => {
                self.finished = true;
                self.chunk(serde_json::json!({}), Some(finish_word(*f)), out)
            }
            _ => {}
        }
    }

    fn end(&mut self, billed: &Billed, out: &mut BytesMut) {
        if !self.finished {
            let f = if self.saw_tool_call {
                Finish::ToolCalls
            } else {
                Finish::Stop
            };
            self.delta(&Delta::Finish(f), out);
        }
        if self.include_usage {
            let data = serde_json::json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage_json(&billed.usage),
            });
            sse(out, None, &data);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn error(&mut self, e: &ApiError, out: &mut BytesMut) {
        out.extend_from_slice(&stream_error_event(e));
    }
}

/// A whole `chat.completion` from a reply.
pub fn render_reply(id: &str, model: &str, created: i64, r: &Reply) -> Value {
    let mut message = serde_json::json!({
        "role": "assistant",
        "content": if r.text.is_empty() && !r.tool_calls.is_empty() { Value::Null } else { Value::String(r.text.clone()) },
    });
    if !r.reasoning.is_empty() {
        message["reasoning_content"] = Value::String(r.reasoning.clone());
    }
    if !r.tool_calls.is_empty() {
        message["tool_calls"] = r
            .tool_calls
            .iter()
            .map(|c| serde_json::json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    let mut v = serde_json::json!({
        "id": format!("chatcmpl-{id}"), "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_word(r.finish_reason())}],
    });
    if let Some(u) = &r.usage {
        v["usage"] = usage_json(u);
    }
    v
}

/// Just enough of a streamed chunk (or a whole response) to meter it.
#[derive(Debug, Deserialize)]
pub struct ChunkView<'a> {
    #[serde(default, borrow)]
    pub choices: Vec<ChoiceView<'a>>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
pub struct ChoiceView<'a> {
    #[serde(default, borrow, alias = "message")]
    pub delta: Option<DeltaView<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct DeltaView<'a> {
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<ToolCallView<'a>>>,
}

#[derive(Debug, Deserialize)]
pub struct ToolCallView<'a> {
    #[serde(default, borrow)]
    pub function: Option<FunctionView<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct FunctionView<'a> {
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

impl ChunkView<'_> {
    /// Bytes of generated text (content, reasoning, tool calls) in this chunk.
    pub fn output_bytes(&self) -> u64 {
        let mut n = 0;
        for c in &self.choices {
            let Some(d) = &c.delta else { continue };
            n += d.content.as_ref().map_or(0, |s| s.len());
            n += d.reasoning_content.as_ref().map_or(0, |s| s.len());
            for t in d.tool_calls.iter().flatten() {
                if let Some(f) = &t.function {
                    n += f.name.as_ref().map_or(0, |s| s.len()) + f.arguments.as_ref().map_or(0, |s| s.len());
                }
            }
        }
        n as u64
    }

    /// A chunk that carries only usage (what `include_usage` adds at the end).
    pub fn is_usage_only(&self) -> bool {
        self.choices.is_empty() && self.usage.is_some()
    }
}

/// The final `data:` event of an OpenAI stream that failed midway.
pub fn stream_error_event(err: &ApiError) -> Bytes {
    let body = err.body(crate::error::Protocol::OpenAi);
    Bytes::from(format!("data: {body}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> ApiError {
        parse_chat(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn validates_with_field_names() {
        assert!(err("{").message.contains("could not parse"));
        assert!(err("[]").message.contains("could not parse"));
        assert_eq!(
            err(r#"{"messages":[{"role":"user","content":"hi"}]}"#).param.as_deref(),
            Some("model")
        );
        assert_eq!(err(r#"{"model":1,"messages":[]}"#).param.as_deref(), Some("model"));
        assert_eq!(err(r#"{"model":"m","messages":[]}"#).param.as_deref(), Some("messages"));
        assert_eq!(
            err(r#"{"model":"m","messages":[{"role":"robot"}]}"#).param.as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            err(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#)
                .param
                .as_deref(),
            Some("temperature")
        );
        assert_eq!(
            err(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#)
                .param
                .as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            err(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#)
                .param
                .as_deref(),
            Some("stream")
        );
    }

    #[test]
    fn measures_prompt_and_keeps_unknown_fields() {
        let req = parse_chat(
            br#"{"model":"m","messages":[{"role":"system","content":"abcd"},{"role":"user","content":[{"type":"text","text":"xyz"},{"type":"image_url","image_url":{"url":"data:"}}]}],"stream":true,"max_tokens":50,"vendor_flag":{"x":1.10}}"#,
        )
        .unwrap();
        assert_eq!(req.prompt.text_bytes, 7);
        assert_eq!(req.prompt.messages, 2);
        assert_eq!(req.prompt.images, 1);
        assert_eq!(req.max_tokens, Some(50));
        assert!(req.stream && !req.include_usage);
        let up: Value = serde_json::from_slice(&req.upstream_body("gpt-x", true)).unwrap();
        assert_eq!(up["model"], "gpt-x");
        assert_eq!(up["stream_options"]["include_usage"], true);
        // Unknown parameters pass through.
        assert_eq!(up["vendor_flag"]["x"].as_f64(), Some(1.1));
    }

    #[test]
    fn the_provider_gets_the_one_budget_hub_bills_for() {
        let body = |b: &str| format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],{b}}}"#);
        let up = |b: &str, openai: bool| -> Value {
            let req = parse_chat(body(b).as_bytes()).unwrap();
            serde_json::from_slice(&req.upstream_body("p", openai)).unwrap()
        };
        // DeepSeek and others read only max_tokens: a max_completion_tokens of 1 must not slip by.
        let v = up(r#""max_completion_tokens":1"#, false);
        assert_eq!(
            (v["max_tokens"].as_u64(), v.get("max_completion_tokens")),
            (Some(1), None)
        );
        let v = up(r#""max_completion_tokens":1"#, true);
        assert_eq!(
            (v.get("max_tokens"), v["max_completion_tokens"].as_u64()),
            (None, Some(1))
        );
        // Both: the larger is held and sent, once.
        let req = parse_chat(body(r#""max_completion_tokens":1,"max_tokens":8000"#).as_bytes()).unwrap();
        assert_eq!(req.max_tokens, Some(8000));
        let v = up(r#""max_completion_tokens":1,"max_tokens":8000"#, false);
        assert_eq!(
            (v["max_tokens"].as_u64(), v.get("max_completion_tokens")),
            (Some(8000), None)
        );
        // Legacy function definitions are prompt text, as tools are.
        let req = parse_chat(body(r#""functions":[{"name":"f","parameters":{}}]"#).as_bytes()).unwrap();
        assert_eq!(
            req.prompt.text_bytes,
            1 + r#"{"name":"f","parameters":{}}"#.len() as u64
        );
    }

    #[test]
    fn chunk_view_counts_output() {
        let c: ChunkView = serde_json::from_str(
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":"héllo","tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]}}]}"#,
        )
        .unwrap();
        assert_eq!(c.output_bytes(), 6 + 7);
        assert!(!c.is_usage_only());
        let u: ChunkView =
            serde_json::from_str(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#).unwrap();
        assert!(u.is_usage_only());
    }
}
