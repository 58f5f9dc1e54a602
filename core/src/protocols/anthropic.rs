//! Anthropic Messages (`POST /v1/messages`) as callers speak it: the request
//! into the internal model, and deltas back into Anthropic's event stream or
//! a whole `message`.

use crate::chat::{text_of, Chat, Delta, Finish, Image, Message, Part, Reasoning, Reply, Role, Tool, ToolChoice};
use crate::codec::{sse, Billed, Encode};
use crate::error::{ApiError, Protocol};
use crate::metering::estimate::PromptSize;
use crate::metering::Usage;
use crate::protocols::openai::{json_object, kind_of};
use bytes::BytesMut;
use serde_json::{json, Map, Value};

fn wrong(field: &str, wanted: &str, v: &Value) -> ApiError {
    ApiError::invalid_field(field, format!("must be {wanted}, not {}", kind_of(v)))
}

fn str_field<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, ApiError> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(ApiError::invalid_field(&format!("{path}.{key}"), "is required")),
        Some(other) => Err(wrong(&format!("{path}.{key}"), "a string", other)),
    }
}

/// Parses and validates a Messages request.
pub fn parse(bytes: &[u8]) -> Result<Chat, ApiError> {
    let body = json_object(bytes)?;
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        Some(v @ (Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_))) => {
            return Err(wrong("model", "a string", v))
        }
        _ => return Err(ApiError::invalid_field("model", "is required: name the model to call")),
    };
    let max_tokens = match body.get("max_tokens") {
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => n,
            _ => return Err(ApiError::invalid_field("max_tokens", "must be a positive integer")),
        },
        None => return Err(ApiError::invalid_field("max_tokens", "is required")),
    };
    super::output_budget("max_tokens", Some(max_tokens))?;
    let mut prompt = PromptSize::default();
    let mut chat = Chat {
        model,
        max_tokens: Some(max_tokens),
        ..Default::default()
    };
    for (field, ok, wanted) in [
        ("stream", body.get("stream").is_none_or(Value::is_boolean), "a boolean"),
        (
            "temperature",
            body.get("temperature").is_none_or(Value::is_number),
            "a number",
        ),
        ("top_p", body.get("top_p").is_none_or(Value::is_number), "a number"),
        (
            "top_k",
            body.get("top_k").is_none_or(Value::is_u64),
            "a non-negative integer",
        ),
        (
            "stop_sequences",
            body.get("stop_sequences").is_none_or(Value::is_array),
            "an array of strings",
        ),
        ("tools", body.get("tools").is_none_or(Value::is_array), "an array"),
        (
            "tool_choice",
            body.get("tool_choice").is_none_or(Value::is_object),
            "an object",
        ),
        (
            "metadata",
            body.get("metadata").is_none_or(Value::is_object),
            "an object",
        ),
        (
            "thinking",
            body.get("thinking").is_none_or(Value::is_object),
            "an object",
        ),
    ] {
        if !ok {
            return Err(wrong(field, wanted, &body[field]));
        }
    }
    chat.stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    chat.temperature = body.get("temperature").and_then(Value::as_f64);
    chat.top_p = body.get("top_p").and_then(Value::as_f64);
    chat.stop = body
        .get("stop_sequences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    chat.system = match body.get("system") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v @ Value::Array(_)) => Some(text_of(v)),
        Some(other) => return Err(wrong("system", "a string or an array of text blocks", other)),
    };
    prompt.text_bytes += chat.system.as_ref().map_or(0, |s| s.len() as u64);
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(ApiError::invalid_field("messages", "must contain at least one message")),
        None | Some(Value::Null) => return Err(ApiError::invalid_field("messages", "is required")),
        Some(other) => return Err(wrong("messages", "an array", other)),
    };
    for (i, m) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let Value::Object(m) = m else {
            return Err(wrong(&path, "an object", m));
        };
        let role = match str_field(m, "role", &path)? {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::invalid_field(
                    &format!("{path}.role"),
                    format!("must be `user` or `assistant` (got `{other}`)"),
                ))
            }
        };
        prompt.messages += 1;
        let parts = match m.get("content") {
            Some(Value::String(s)) => {
                prompt.text_bytes += s.len() as u64;
                vec![Part::Text(s.clone())]
            }
            Some(Value::Array(blocks)) => blocks
                .iter()
                .enumerate()
                .map(|(j, b)| block(b, &format!("{path}.content[{j}]"), &mut prompt))
                .collect::<Result<Vec<_>, _>>()?,
            None | Some(Value::Null) => return Err(ApiError::invalid_field(&format!("{path}.content"), "is required")),
            Some(other) => return Err(wrong(&format!("{path}.content"), "a string or an array", other)),
        };
        chat.messages.push(Message { role, parts });
    }
    for (i, t) in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("tools[{i}]");
        let Value::Object(t) = t else {
            return Err(wrong(&path, "an object", t));
        };
        if let Some(kind) = t.get("type").and_then(Value::as_str).filter(|k| *k != "custom") {
            return Err(ApiError::invalid_field(
                &format!("{path}.type"),
                format!("server tool `{kind}` is not supported; only client tools with an input_schema are"),
            ));
        }
        let name = str_field(t, "name", &path)?;
        let schema = t.get("input_schema").filter(|s| s.is_object()).ok_or_else(|| {
            ApiError::invalid_field(&format!("{path}.input_schema"), "is required and must be an object")
        })?;
        prompt.text_bytes += (name.len() + schema.to_string().len()) as u64;
        chat.tools.push(Tool {
            name: name.to_string(),
            description: t.get("description").and_then(Value::as_str).map(str::to_owned),
            parameters: schema.clone(),
        });
    }
    if let Some(Value::Object(tc)) = body.get("tool_choice") {
        chat.tool_choice = Some(match tc.get("type").and_then(Value::as_str) {
            Some("auto") => ToolChoice::Auto,
            Some("any") => ToolChoice::Required,
            Some("none") => ToolChoice::None,
            Some("tool") => ToolChoice::Tool(str_field(tc, "name", "tool_choice")?.to_string()),
            _ => {
                return Err(ApiError::invalid_field(
                    "tool_choice.type",
                    "must be `auto`, `any`, `tool` or `none`",
                ))
            }
        });
        if tc.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
            chat.parallel_tool_calls = Some(false);
        }
    }
    if let Some(Value::Object(th)) = body.get("thinking") {
        if th.get("type").and_then(Value::as_str) == Some("enabled") {
            chat.reasoning = Some(Reasoning {
                effort: None,
                budget_tokens: th.get("budget_tokens").and_then(Value::as_u64),
            });
        }
    }
    chat.prompt = prompt;
    Ok(chat)
}

fn block(b: &Value, path: &str, prompt: &mut PromptSize) -> Result<Part, ApiError> {
    let Value::Object(o) = b else {
        return Err(wrong(path, "an object", b));
    };
    let kind = str_field(o, "type", path)?;
    Ok(match kind {
        "text" => {
            let t = str_field(o, "text", path)?;
            prompt.text_bytes += t.len() as u64;
            Part::Text(t.to_string())
        }
        "image" => {
            prompt.images += 1;
            let src = o
                .get("source")
                .and_then(Value::as_object)
                .ok_or_else(|| ApiError::invalid_field(&format!("{path}.source"), "is required"))?;
            let spath = format!("{path}.source");
            match str_field(src, "type", &spath)? {
                "base64" => Part::Image(Image::Base64 {
                    media_type: str_field(src, "media_type", &spath)?.to_string(),
                    data: str_field(src, "data", &spath)?.to_string(),
                }),
                "url" => Part::Image(Image::Url(str_field(src, "url", &spath)?.to_string())),
                other => {
                    return Err(ApiError::invalid_field(
                        &format!("{spath}.type"),
                        format!("`{other}` image sources are not supported"),
                    ))
                }
            }
        }
        "tool_use" => {
            let input = o.get("input").cloned().unwrap_or_else(|| json!({}));
            let arguments = input.to_string();
            prompt.text_bytes += arguments.len() as u64;
            Part::ToolCall {
                id: str_field(o, "id", path)?.to_string(),
                name: str_field(o, "name", path)?.to_string(),
                arguments,
            }
        }
        "tool_result" => {
            let content = text_of(o.get("content").unwrap_or(&Value::Null));
            prompt.text_bytes += content.len() as u64;
            Part::ToolResult {
                id: str_field(o, "tool_use_id", path)?.to_string(),
                content,
                is_error: o.get("is_error").and_then(Value::as_bool).unwrap_or(false),
            }
        }
        "thinking" => Part::Reasoning {
            text: str_field(o, "thinking", path)?.to_string(),
            signature: o.get("signature").and_then(Value::as_str).map(str::to_owned),
        },
        other => {
            return Err(ApiError::invalid_field(
                &format!("{path}.type"),
                format!("`{other}` content blocks are not supported"),
            ))
        }
    })
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
