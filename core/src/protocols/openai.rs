//! OpenAI Chat Completions: request validation (types of every standard
//! parameter, nothing else touched), the prompt's size for holds, the body
//! sent upstream, and a light view of streamed chunks for metering.

use crate::chat::{Chat, Delta, Finish, Image, Message, OutputFormat, Part, Reasoning, Reply, Role, Tool, ToolChoice};
use crate::codec::{sse, Billed, Encode};
use crate::error::ApiError;
use crate::metering::estimate::PromptSize;
use crate::providers::openai_compat::{usage_json, WireUsage};
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;

use super::{invalid_json, open_struct, parse_body, Positive, StrOrList, StrOrObject};

open_struct! {
    /// A Chat Completions request: the members Hub reads or checks, typed;
    /// every other member kept as it came, so that it reaches an
    /// OpenAI-compatible provider unchanged.
    pub struct ChatBody {
        model: String = "model",
        messages: Vec<InMessage> = "messages",
        stream: bool = "stream",
        temperature: Number = "temperature",
        top_p: Number = "top_p",
        presence_penalty: Number = "presence_penalty",
        frequency_penalty: Number = "frequency_penalty",
        seed: Number = "seed",
        stop: StrOrList<String> = "stop",
        logit_bias: Map<String, Value> = "logit_bias",
        user: String = "user",
        tools: Vec<InTool> = "tools",
        tool_choice: StrOrObject<InNamedTool> = "tool_choice",
        parallel_tool_calls: bool = "parallel_tool_calls",
        response_format: InResponseFormat = "response_format",
        stream_options: InStreamOptions = "stream_options",
        logprobs: bool = "logprobs",
        metadata: Map<String, Value> = "metadata",
        max_tokens: Positive = "max_tokens",
        max_completion_tokens: Positive = "max_completion_tokens",
        n: Positive = "n",
        reasoning_effort: String = "reasoning_effort",
        /// Legacy function definitions, counted as prompt text only.
        functions: Vec<Value> = "functions",
    }
}

open_struct! {
    /// One message of `messages`.
    pub struct InMessage {
        role: InRole = "role",
        content: StrOrList<InPart> = "content",
        name: String = "name",
        tool_calls: Vec<InToolCall> = "tool_calls",
        tool_call_id: String = "tool_call_id",
    }
}

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InRole {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

open_struct! {
    /// One part of a message's content.
    pub struct InPart {
        kind: PartKind = "type",
        text: String = "text",
        /// `{"url": …}` (or, from some clients, the URL itself).
        image_url: StrOrObject<InUrl> = "image_url",
    }
}

/// A content part's `type`: the ones Hub reads, or another passed through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum PartKind {
    Text,
    ImageUrl,
    InputImage,
    Other(String),
}

impl From<String> for PartKind {
    fn from(s: String) -> Self {
        match s.as_str() {
            "text" => PartKind::Text,
            "image_url" => PartKind::ImageUrl,
            "input_image" => PartKind::InputImage,
            _ => PartKind::Other(s),
        }
    }
}

impl From<PartKind> for String {
    fn from(k: PartKind) -> String {
        match k {
            PartKind::Text => "text".into(),
            PartKind::ImageUrl => "image_url".into(),
            PartKind::InputImage => "input_image".into(),
            PartKind::Other(s) => s,
        }
    }
}

open_struct! {
    pub struct InUrl {
        url: String = "url",
    }
}

open_struct! {
    /// A tool call in an assistant message.
    pub struct InToolCall {
        id: String = "id",
        function: InFunctionCall = "function",
    }
}

open_struct! {
    pub struct InFunctionCall {
        name: String = "name",
        arguments: String = "arguments",
    }
}

open_struct! {
    /// A tool definition (`tools[i]`).
    pub struct InTool {
        kind: String = "type",
        function: InFunction = "function",
    }
}

open_struct! {
    pub struct InFunction {
        name: String = "name",
        description: String = "description",
        parameters: Value = "parameters",
    }
}

open_struct! {
    /// `tool_choice` naming a function.
    pub struct InNamedTool {
        function: InFunctionName = "function",
    }
}

open_struct! {
    pub struct InFunctionName {
        name: String = "name",
    }
}

open_struct! {
    pub struct InResponseFormat {
        kind: ResponseKind = "type",
        json_schema: InJsonSchema = "json_schema",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseKind {
    Text,
    JsonObject,
    JsonSchema,
}

open_struct! {
    pub struct InJsonSchema {
        name: String = "name",
        schema: Value = "schema",
        strict: bool = "strict",
    }
}

open_struct! {
    pub struct InStreamOptions {
        include_usage: bool = "include_usage",
    }
}

/// A validated chat request. The body is kept whole so that every parameter,
/// known or not, reaches the provider unchanged.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// Boxed: the typed body is large, and requests travel by value.
    pub body: Box<ChatBody>,
    pub model: String,
    pub stream: bool,
    /// Whether the caller asked for the usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    pub max_tokens: Option<u64>,
    /// Number of choices asked for.
    pub n: u64,
    pub prompt: PromptSize,
}

/// A request body that must be a JSON object.
pub(crate) fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(invalid_json()),
    }
}

/// Bytes `v` takes as JSON, for sizing the prompt (writes nothing).
pub(crate) fn json_len(v: &impl Serialize) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// Parses and checks a Chat Completions request: one typed pass over the
/// body (the hot path of an OpenAI caller to an OpenAI provider), then
/// checks of what types cannot say.
pub fn parse_chat(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let body: ChatBody = parse_body(bytes)?;
    let model = match &body.model {
        Some(m) if !m.trim().is_empty() => m.clone(),
        _ => return Err(ApiError::invalid_field("model", "is required: name the model to call")),
    };
    let mut prompt = PromptSize::default();
    match body.messages.as_deref() {
        None => return Err(ApiError::invalid_field("messages", "is required")),
        Some([]) => return Err(ApiError::invalid_field("messages", "must contain at least one message")),
        Some(msgs) => {
            for (i, m) in msgs.iter().enumerate() {
                measure_message(i, m, &mut prompt)?;
            }
        }
    }
    check_body(&body)?;
    // Either field, or the larger of both: the provider is sent that one budget.
    let budget = |field, v: Option<Positive>| super::output_budget(field, v.map(|p| p.0));
    let max_tokens =
        budget("max_completion_tokens", body.max_completion_tokens)?.max(budget("max_tokens", body.max_tokens)?);
    let n = body.n.map_or(1, |p| p.0);
    if n > 128 {
        return Err(ApiError::invalid_field("n", "must be at most 128"));
    }
    // Tool definitions (and the legacy `functions`) are prompt text too.
    prompt.text_bytes += body.tools.iter().flatten().map(json_len).sum::<u64>();
    prompt.text_bytes += body.functions.iter().flatten().map(json_len).sum::<u64>();
    prompt.text_bytes += body.response_format.as_ref().map_or(0, json_len);
    Ok(ChatRequest {
        model,
        stream: body.stream.unwrap_or(false),
        include_usage: body
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        max_tokens,
        n,
        prompt,
        body: Box::new(body),
    })
}

/// What the types leave open: `seed` an integer, `response_format` complete.
fn check_body(body: &ChatBody) -> Result<(), ApiError> {
    if body.seed.as_ref().is_some_and(|s| !(s.is_i64() || s.is_u64())) {
        return Err(ApiError::invalid_field("seed", "must be an integer, not a number"));
    }
    if let Some(rf) = &body.response_format {
        match rf.kind {
            None => {
                return Err(ApiError::invalid_field(
                    "response_format.type",
                    "must be one of `text`, `json_object`, `json_schema`",
                ))
            }
            Some(ResponseKind::JsonSchema) if rf.json_schema.is_none() => {
                return Err(ApiError::invalid_field(
                    "response_format.json_schema",
                    "is required when type is json_schema",
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn measure_message(i: usize, m: &InMessage, prompt: &mut PromptSize) -> Result<(), ApiError> {
    if m.role.is_none() {
        return Err(ApiError::invalid_field(&format!("messages[{i}].role"), "is required"));
    }
    prompt.messages += 1;
    match &m.content {
        None => {}
        Some(StrOrList::Str(s)) => prompt.text_bytes += s.len() as u64,
        Some(StrOrList::List(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                prompt_of_part(part, prompt).map_err(|(field, why)| {
                    ApiError::invalid_field(&format!("messages[{i}].content[{j}].{field}"), why)
                })?;
            }
        }
    }
    prompt.text_bytes += m.tool_calls.as_ref().map_or(0, json_len);
    prompt.text_bytes += m.name.as_ref().map_or(0, |n| n.len() as u64);
    Ok(())
}

/// A content part's share of the prompt, or which member of it is wrong.
fn prompt_of_part(part: &InPart, prompt: &mut PromptSize) -> Result<(), (&'static str, &'static str)> {
    match &part.kind {
        Some(PartKind::Text) => match &part.text {
            Some(t) => prompt.text_bytes += t.len() as u64,
            None => return Err(("text", "must be a string")),
        },
        Some(PartKind::ImageUrl | PartKind::InputImage) => prompt.images += 1,
        Some(PartKind::Other(_)) => prompt.text_bytes += json_len(part),
        None => return Err(("type", "is required")),
    }
    Ok(())
}

impl ChatRequest {
    /// The body for an OpenAI-compatible provider: the caller's, with the
    /// provider's model name and the output budget Hub holds and bills for in
    /// one field the provider honours, so it can never produce more than Hub
    /// accounted for: `max_completion_tokens` if the caller used it and the
    /// provider reads it, else `max_tokens`; in streams, usage asked for.
    pub fn upstream_body(&self, provider_model: &str, takes_max_completion_tokens: bool) -> Bytes {
        let mut body = self.body.clone();
        body.model = Some(provider_model.to_string());
        if let Some(budget) = self.max_tokens {
            let completion = takes_max_completion_tokens && body.max_completion_tokens.is_some();
            body.max_tokens = (!completion).then_some(Positive(budget));
            body.max_completion_tokens = completion.then_some(Positive(budget));
        }
        if self.stream {
            body.stream_options.get_or_insert_with(Default::default).include_usage = Some(true);
        }
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }
}

impl ChatRequest {
    /// The request in the internal model, for providers that do not speak OpenAI.
    /// What the internal model cannot carry is refused, naming the field.
    pub fn to_chat(&self) -> Result<Chat, ApiError> {
        let b = &self.body;
        self.check_convertible()?;
        let mut chat = Chat {
            model: self.model.clone(),
            max_tokens: self.max_tokens,
            temperature: b.temperature.as_ref().and_then(Number::as_f64),
            top_p: b.top_p.as_ref().and_then(Number::as_f64),
            stream: self.stream,
            parallel_tool_calls: b.parallel_tool_calls,
            prompt: self.prompt,
            stop: match &b.stop {
                Some(StrOrList::Str(s)) => vec![s.clone()],
                Some(StrOrList::List(l)) => l.clone(),
                None => Vec::new(),
            },
            reasoning: b.reasoning_effort.as_ref().map(|effort| Reasoning {
                effort: Some(effort.clone()),
                budget_tokens: None,
            }),
            ..Default::default()
        };
        let mut system = Vec::new();
        for (i, m) in b.messages.iter().flatten().enumerate() {
            add_message(&mut chat, &mut system, i, m)?;
        }
        if !system.is_empty() {
            chat.system = Some(system.join("\n\n"));
        }
        for (i, t) in b.tools.iter().flatten().enumerate() {
            chat.tools.push(tool_of(i, t)?);
        }
        chat.tool_choice = b.tool_choice.as_ref().map(tool_choice_of).transpose()?;
        chat.output = output_of(b.response_format.as_ref());
        Ok(chat)
    }

    /// Parameters only OpenAI-compatible providers take, and `n` above 1.
    fn check_convertible(&self) -> Result<(), ApiError> {
        let b = &self.body;
        let set = |v: Option<&Value>| v.is_some_and(|v| !v.is_null() && v != &Value::Bool(false));
        if b.logprobs == Some(true) {
            return Err(unconvertible("logprobs"));
        }
        if set(b.extra.get("top_logprobs")) {
            return Err(unconvertible("top_logprobs"));
        }
        if b.logit_bias.is_some() {
            return Err(unconvertible("logit_bias"));
        }
        for field in ["audio", "prediction"] {
            if set(b.extra.get(field)) {
                return Err(unconvertible(field));
            }
        }
        if self.n > 1 {
            return Err(unconvertible("n"));
        }
        Ok(())
    }
}

/// Text of a message's content (parts' texts joined).
fn content_text(content: Option<&StrOrList<InPart>>) -> String {
    match content {
        Some(StrOrList::Str(s)) => s.clone(),
        Some(StrOrList::List(parts)) => parts.iter().filter_map(|p| p.text.as_deref()).collect(),
        None => String::new(),
    }
}

/// One message into the internal model (system text gathered apart).
fn add_message(chat: &mut Chat, system: &mut Vec<String>, i: usize, m: &InMessage) -> Result<(), ApiError> {
    match m.role {
        Some(InRole::System | InRole::Developer) => system.push(content_text(m.content.as_ref())),
        Some(InRole::User) => chat.messages.push(Message {
            role: Role::User,
            parts: user_parts(i, m.content.as_ref())?,
        }),
        Some(InRole::Assistant) => chat.messages.push(assistant_message(i, m)?),
        Some(InRole::Tool) => {
            let id = m.tool_call_id.as_ref().ok_or_else(|| {
                ApiError::invalid_field(&format!("messages[{i}].tool_call_id"), "is required for tool messages")
            })?;
            push_tool_result(
                &mut chat.messages,
                Part::ToolResult {
                    id: id.clone(),
                    content: content_text(m.content.as_ref()),
                    is_error: false,
                },
            );
        }
        Some(InRole::Function) | None => {
            return Err(ApiError::invalid_field(
                &format!("messages[{i}].role"),
                "`function` cannot be sent to this model's provider",
            ))
        }
    }
    Ok(())
}

fn assistant_message(i: usize, m: &InMessage) -> Result<Message, ApiError> {
    let mut parts = Vec::new();
    let text = content_text(m.content.as_ref());
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let field = format!("messages[{i}].tool_calls[{j}].function");
        let f = call
            .function
            .as_ref()
            .ok_or_else(|| ApiError::invalid_field(&field, "is required"))?;
        let name = f
            .name
            .as_ref()
            .ok_or_else(|| ApiError::invalid_field(&format!("{field}.name"), "is required"))?;
        parts.push(Part::ToolCall {
            id: call.id.clone().unwrap_or_default(),
            name: name.clone(),
            arguments: f.arguments.clone().unwrap_or_else(|| "{}".into()),
        });
    }
    Ok(Message {
        role: Role::Assistant,
        parts,
    })
}

/// Consecutive tool results share one user turn.
pub(crate) fn push_tool_result(messages: &mut Vec<Message>, part: Part) {
    match messages.last_mut() {
        Some(last) if last.role == Role::User && last.parts.iter().all(|p| matches!(p, Part::ToolResult { .. })) => {
            last.parts.push(part)
        }
        _ => messages.push(Message {
            role: Role::User,
            parts: vec![part],
        }),
    }
}

fn tool_of(i: usize, t: &InTool) -> Result<Tool, ApiError> {
    if t.kind.as_deref().unwrap_or("function") != "function" {
        return Err(ApiError::invalid_field(
            &format!("tools[{i}].type"),
            "only `function` tools can be sent to this model's provider",
        ));
    }
    let f = t
        .function
        .as_ref()
        .ok_or_else(|| ApiError::invalid_field(&format!("tools[{i}].function"), "is required"))?;
    let name = f
        .name
        .as_ref()
        .ok_or_else(|| ApiError::invalid_field(&format!("tools[{i}].function.name"), "is required"))?;
    Ok(Tool {
        name: name.clone(),
        description: f.description.clone(),
        parameters: f
            .parameters
            .clone()
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
    })
}

fn tool_choice_of(choice: &StrOrObject<InNamedTool>) -> Result<ToolChoice, ApiError> {
    Ok(match choice {
        StrOrObject::Str(s) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => {
                return Err(ApiError::invalid_field(
                    "tool_choice",
                    "must be `auto`, `none`, `required` or a function",
                ))
            }
        },
        StrOrObject::Object(t) => ToolChoice::Tool(
            t.function
                .as_ref()
                .and_then(|f| f.name.clone())
                .ok_or_else(|| ApiError::invalid_field("tool_choice.function.name", "is required"))?,
        ),
    })
}

fn output_of(rf: Option<&InResponseFormat>) -> OutputFormat {
    match rf.and_then(|rf| rf.kind.map(|k| (k, rf))) {
        Some((ResponseKind::JsonObject, _)) => OutputFormat::Json,
        Some((ResponseKind::JsonSchema, rf)) => {
            let js = rf.json_schema.clone().unwrap_or_default();
            OutputFormat::JsonSchema {
                name: js.name.unwrap_or_else(|| "output".into()),
                schema: js.schema.unwrap_or_else(|| serde_json::json!({})),
                strict: js.strict.unwrap_or(false),
            }
        }
        _ => OutputFormat::Text,
    }
}

fn unconvertible(field: &str) -> ApiError {
    ApiError::invalid_field(
        field,
        "is only supported by OpenAI-compatible providers; this model is served by another kind",
    )
}

fn user_parts(i: usize, content: Option<&StrOrList<InPart>>) -> Result<Vec<Part>, ApiError> {
    let parts = match content {
        Some(StrOrList::Str(s)) => return Ok(vec![Part::Text(s.clone())]),
        Some(StrOrList::List(parts)) => parts,
        None => return Ok(Vec::new()),
    };
    let at = |j: usize, f: &str| format!("messages[{i}].content[{j}].{f}");
    parts
        .iter()
        .enumerate()
        .map(|(j, p)| match &p.kind {
            Some(PartKind::Text) => Ok(Part::Text(p.text.clone().unwrap_or_default())),
            Some(PartKind::ImageUrl) => {
                let url = match &p.image_url {
                    Some(StrOrObject::Str(u)) => Some(u),
                    Some(StrOrObject::Object(o)) => o.url.as_ref(),
                    None => None,
                };
                let url = url.ok_or_else(|| ApiError::invalid_field(&at(j, "image_url.url"), "is required"))?;
                Ok(Part::Image(Image::from_url(url)))
            }
            Some(other) => Err(ApiError::invalid_field(
                &at(j, "type"),
                format!(
                    "`{}` parts cannot be sent to this model's provider",
                    String::from(other.clone())
                ),
            )),
            None => Err(ApiError::invalid_field(&at(j, "type"), "is required")),
        })
        .collect()
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
    #[serde(default, borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
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
    fn refusals_name_the_path_in_plain_words() {
        let body = |m: &str| format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x"}},{m}]}}"#);
        for (msg, param, words) in [
            (
                r#"{"role":"user","content":7}"#,
                "messages[1].content",
                "must be a string or an array, not a number",
            ),
            (
                r#"{"role":"user","content":[{"type":"text","text":["a"]}]}"#,
                "messages[1].content[0].text",
                "must be a string, not an array",
            ),
            (
                r#"{"role":"user","content":[{"text":"a"}]}"#,
                "messages[1].content[0].type",
                "is required",
            ),
            (
                r#"{"role":"robot"}"#,
                "messages[1].role",
                "must be one of system, developer, user, assistant, tool, function (got `robot`)",
            ),
            (r#"{"content":"x"}"#, "messages[1].role", "is required"),
            (r#""hi""#, "messages[1]", "must be an object, not a string"),
        ] {
            let e = err(&body(msg));
            assert_eq!(e.param.as_deref(), Some(param), "{msg}: {e:?}");
            assert_eq!(e.message, format!("`{param}` {words}"), "{msg}");
        }
        let with = |extra: &str| {
            err(&format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],{extra}}}"#
            ))
        };
        assert_eq!(
            with(r#""temperature":"hot""#).message,
            "`temperature` must be a number, not a string"
        );
        assert_eq!(
            with(r#""max_tokens":-1"#).message,
            "`max_tokens` must be a positive integer"
        );
        assert_eq!(with(r#""stop":[1]"#).param.as_deref(), Some("stop[0]"));
        assert_eq!(with(r#""seed":1.5"#).param.as_deref(), Some("seed"));
        assert_eq!(
            with(r#""response_format":{"type":"xml"}"#).param.as_deref(),
            Some("response_format.type")
        );
        assert!(err(r#"{"model":"m","messages":[]} x"#)
            .message
            .contains("could not parse"));
    }

    #[test]
    fn passthrough_keeps_what_hub_does_not_read_at_every_level() {
        let req = parse_chat(
            br#"{"model":"m","messages":[{"role":"user","cache":{"a":[1,2.5]},"content":[{"type":"input_audio","input_audio":{"data":"x"}},{"type":"image_url","image_url":{"url":"https://x","detail":"low"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"},"x-trace":1}]}],"seed":42,"temperature":1,"tool_choice":"auto","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"},"strict":true}}]}"#,
        )
        .unwrap();
        let up: Value = serde_json::from_slice(&req.upstream_body("p", true)).unwrap();
        assert_eq!(up["messages"][0]["cache"], serde_json::json!({"a": [1, 2.5]}));
        assert_eq!(up["messages"][0]["content"][0]["input_audio"]["data"], "x");
        assert_eq!(up["messages"][0]["content"][1]["image_url"]["detail"], "low");
        assert_eq!(up["messages"][1]["tool_calls"][0]["x-trace"], 1);
        assert_eq!(up["messages"][1]["tool_calls"][0]["type"], "function");
        assert_eq!(up["tools"][0]["function"]["strict"], true);
        assert_eq!((up["seed"].as_u64(), up["temperature"].as_u64()), (Some(42), Some(1)));
        assert_eq!(up["tool_choice"], "auto");
        assert_eq!(req.prompt.images, 1);
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
