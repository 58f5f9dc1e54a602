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

use crate::chat::{
    text_of, tool_call_slot, Chat, Delta, Image, Message, OutputFormat, Part, Reasoning, Reply, Role, Tool,
    ToolCallOut, ToolChoice,
};
use crate::codec::{sse, Billed, Encode, Meta};
use crate::error::{ApiError, Protocol};
use crate::http::{Response, StatusCode};
use crate::metering::estimate::PromptSize;
use crate::protocols::openai::{json_object, kind_of};
use bytes::BytesMut;
use serde_json::{json, Map, Value};

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
    pub fn endpoint(self) -> &'static str {
        match self {
            Shape::Framework => "aigne-chat",
            _ => "aigne-completions",
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

fn number(o: &Map<String, Value>, key: &str, path: &str) -> Result<Option<f64>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(ApiError::invalid_field(
            &format!("{path}{key}"),
            format!("must be a number, not {}", kind_of(other)),
        )),
    }
}

fn positive(o: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u64>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Ok(Some(n)),
            _ => Err(ApiError::invalid_field(
                &format!("{path}{key}"),
                "must be a positive integer",
            )),
        },
    }
}

/// `POST /api/v2/chat`: `{input, options, model?}`. The model is `body.model`,
/// else `input.model`, else `input.modelOptions.model`.
pub fn parse_framework(bytes: &[u8], default_model: Option<&str>) -> Result<Chat, ApiError> {
    let body = json_object(bytes)?;
    let input = match body.get("input") {
        Some(Value::Object(i)) => i,
        None | Some(Value::Null) => return Err(ApiError::invalid_field("input", "is required")),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "input",
                format!("must be an object, not {}", kind_of(other)),
            ))
        }
    };
    let null = Map::new();
    let options = match input.get("modelOptions") {
        Some(Value::Object(o)) => o,
        None | Some(Value::Null) => &null,
        Some(_) => return Err(ApiError::invalid_field("input.modelOptions", "must be an object")),
    };
    let model = [body.get("model"), input.get("model"), options.get("model")]
        .into_iter()
        .flatten()
        .find_map(|v| v.as_str().filter(|s| !s.trim().is_empty()))
        .or(default_model)
        .ok_or_else(|| ApiError::invalid_field("input.modelOptions.model", "is required: name the model to call"))?
        .to_string();
    let streaming = match body.get("options").and_then(|o| o.get("streaming")) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid_field("options.streaming", "must be a boolean")),
    };
    let mut chat = Chat {
        model,
        stream: streaming,
        temperature: number(options, "temperature", "input.modelOptions.")?,
        top_p: number(options, "topP", "input.modelOptions.")?,
        max_tokens: super::output_budget(
            "input.modelOptions.maxTokens",
            positive(options, "maxTokens", "input.modelOptions.")?,
        )?,
        parallel_tool_calls: options.get("parallelToolCalls").and_then(Value::as_bool),
        ..Default::default()
    };
    if let Some(effort) = options.get("reasoningEffort") {
        chat.reasoning = Some(match effort {
            Value::String(e) => Reasoning {
                effort: Some(e.clone()),
                budget_tokens: None,
            },
            Value::Number(n) => Reasoning {
                effort: None,
                budget_tokens: n.as_u64(),
            },
            _ => {
                return Err(ApiError::invalid_field(
                    "input.modelOptions.reasoningEffort",
                    "must be a string or a number",
                ))
            }
        });
    }
    messages(&mut chat, input.get("messages"), "input.messages", true)?;
    tools(&mut chat, input.get("tools"), input.get("toolChoice"), "input.")?;
    chat.output = response_format(input.get("responseFormat"), "input.responseFormat", "jsonSchema")?;
    Ok(chat)
}

/// `POST /api/v2/chat/completions`: the legacy camelCase schema (`messages` or `prompt`).
pub fn parse_legacy(bytes: &[u8], default_model: Option<&str>) -> Result<(Chat, bool), ApiError> {
    let body = json_object(bytes)?;
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        None | Some(Value::Null) => default_model
            .ok_or_else(|| ApiError::invalid_field("model", "is required"))?
            .to_string(),
        Some(_) => return Err(ApiError::invalid_field("model", "must be a non-empty string")),
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid_field("stream", "must be a boolean")),
    };
    let mut chat = Chat {
        model,
        temperature: number(&body, "temperature", "")?,
        top_p: number(&body, "topP", "")?,
        max_tokens: super::output_budget("maxTokens", positive(&body, "maxTokens", "")?)?,
        ..Default::default()
    };
    match (body.get("messages"), body.get("prompt")) {
        (Some(m), None) if !m.is_null() => messages(&mut chat, Some(m), "messages", false)?,
        (None | Some(Value::Null), Some(Value::String(p))) if !p.is_empty() => {
            chat.prompt.text_bytes += p.len() as u64;
            chat.prompt.messages = 1;
            chat.messages.push(Message {
                role: Role::User,
                parts: vec![Part::Text(p.clone())],
            });
        }
        (Some(m), Some(p)) if !m.is_null() && !p.is_null() => {
            return Err(ApiError::invalid_field(
                "prompt",
                "send either `messages` or `prompt`, not both",
            ))
        }
        _ => return Err(ApiError::invalid_field("messages", "is required (or send a `prompt`)")),
    }
    tools(&mut chat, body.get("tools"), body.get("toolChoice"), "")?;
    chat.output = response_format(body.get("responseFormat"), "responseFormat", "jsonSchema")?;
    Ok((chat, stream))
}

fn messages(chat: &mut Chat, list: Option<&Value>, path: &str, framework: bool) -> Result<(), ApiError> {
    let list = match list {
        Some(Value::Array(l)) if !l.is_empty() => l,
        Some(Value::Array(_)) => return Err(ApiError::invalid_field(path, "must contain at least one message")),
        None | Some(Value::Null) => return Err(ApiError::invalid_field(path, "is required")),
        Some(other) => {
            return Err(ApiError::invalid_field(
                path,
                format!("must be an array, not {}", kind_of(other)),
            ))
        }
    };
    let mut system = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Value::Object(m) = m else {
            return Err(ApiError::invalid_field(&at, "must be an object"));
        };
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = m.get("content").unwrap_or(&Value::Null);
        chat.prompt.messages += 1;
        match role {
            "system" => {
                let t = text_of(content);
                chat.prompt.text_bytes += t.len() as u64;
                system.push(t);
            }
            "user" => {
                let parts = user_parts(content, &format!("{at}.content"), &mut chat.prompt)?;
                chat.messages.push(Message {
                    role: Role::User,
                    parts,
                });
            }
            // The framework calls the model's own turns `agent`.
            "agent" | "assistant" => {
                let mut parts = Vec::new();
                let t = text_of(content);
                if !t.is_empty() {
                    chat.prompt.text_bytes += t.len() as u64;
                    parts.push(Part::Text(t));
                }
                for (j, call) in m
                    .get("toolCalls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let f = &call["function"];
                    let name = f["name"].as_str().ok_or_else(|| {
                        ApiError::invalid_field(&format!("{at}.toolCalls[{j}].function.name"), "is required")
                    })?;
                    // The framework sends arguments as an object, the legacy API as JSON text.
                    let arguments = match &f["arguments"] {
                        Value::String(s) => s.clone(),
                        Value::Null => "{}".to_string(),
                        other => other.to_string(),
                    };
                    chat.prompt.text_bytes += (name.len() + arguments.len()) as u64;
                    parts.push(Part::ToolCall {
                        id: call["id"].as_str().unwrap_or_default().to_string(),
                        name: name.to_string(),
                        arguments,
                    });
                }
                chat.messages.push(Message {
                    role: Role::Assistant,
                    parts,
                });
            }
            "tool" => {
                let id = m.get("toolCallId").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::invalid_field(&format!("{at}.toolCallId"), "is required for tool messages")
                })?;
                let text = match content {
                    Value::Object(_) => content.to_string(),
                    other => text_of(other),
                };
                chat.prompt.text_bytes += text.len() as u64;
                let part = Part::ToolResult {
                    id: id.to_string(),
                    content: text,
                    is_error: false,
                };
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

fn user_parts(content: &Value, path: &str, prompt: &mut PromptSize) -> Result<Vec<Part>, ApiError> {
    match content {
        Value::String(s) => {
            prompt.text_bytes += s.len() as u64;
            Ok(vec![Part::Text(s.clone())])
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let at = format!("{path}[{j}]");
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = p["text"].as_str().unwrap_or_default();
                        prompt.text_bytes += t.len() as u64;
                        Ok(Part::Text(t.to_string()))
                    }
                    // Framework: {type:"url", url} and {type:"file", data, mimeType}; legacy: {type:"image_url", imageUrl:{url}}.
                    Some("url") | Some("image_url") => {
                        prompt.images += 1;
                        let url = p
                            .get("url")
                            .or_else(|| p.pointer("/imageUrl/url"))
                            .or_else(|| p.pointer("/image_url/url"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| ApiError::invalid_field(&format!("{at}.url"), "is required"))?;
                        Ok(Part::Image(Image::from_url(url)))
                    }
                    Some("file") => {
                        prompt.images += 1;
                        let data = p["data"]
                            .as_str()
                            .ok_or_else(|| ApiError::invalid_field(&format!("{at}.data"), "is required"))?;
                        Ok(Part::Image(Image::Base64 {
                            media_type: p["mimeType"].as_str().unwrap_or("image/png").to_string(),
                            data: data.to_string(),
                        }))
                    }
                    Some(other) => Err(ApiError::invalid_field(
                        &format!("{at}.type"),
                        format!("`{other}` content is not supported"),
                    )),
                    None => Err(ApiError::invalid_field(&format!("{at}.type"), "is required")),
                }
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        other => Err(ApiError::invalid_field(
            path,
            format!("must be a string or an array, not {}", kind_of(other)),
        )),
    }
}

fn tools(chat: &mut Chat, list: Option<&Value>, choice: Option<&Value>, path: &str) -> Result<(), ApiError> {
    for (i, t) in list.and_then(Value::as_array).into_iter().flatten().enumerate() {
        let f = &t["function"];
        let name = f["name"]
            .as_str()
            .ok_or_else(|| ApiError::invalid_field(&format!("{path}tools[{i}].function.name"), "is required"))?;
        let parameters = f
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        chat.prompt.text_bytes += (name.len() + parameters.to_string().len()) as u64;
        chat.tools.push(Tool {
            name: name.to_string(),
            description: f["description"].as_str().map(str::to_owned),
            parameters,
        });
    }
    chat.tool_choice = match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
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
        Some(v) => Some(ToolChoice::Tool(
            v.pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid_field(&format!("{path}toolChoice.function.name"), "is required"))?
                .to_string(),
        )),
    };
    Ok(())
}

fn response_format(v: Option<&Value>, path: &str, schema_key: &str) -> Result<OutputFormat, ApiError> {
    let Some(Value::Object(rf)) = v else {
        return Ok(OutputFormat::Text);
    };
    Ok(match rf.get("type").and_then(Value::as_str) {
        None | Some("text") => OutputFormat::Text,
        Some("json_object") => OutputFormat::Json,
        Some("json_schema") => {
            let js = rf
                .get(schema_key)
                .or_else(|| rf.get("json_schema"))
                .ok_or_else(|| ApiError::invalid_field(&format!("{path}.{schema_key}"), "is required"))?;
            OutputFormat::JsonSchema {
                name: js["name"].as_str().unwrap_or("output").to_string(),
                schema: js.get("schema").cloned().unwrap_or_else(|| json!({})),
                strict: js["strict"].as_bool().unwrap_or(false),
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
}
