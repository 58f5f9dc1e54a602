//! Anthropic Messages as a provider: the request (`x-api-key`,
//! `anthropic-version`), its event stream and whole answers read into
//! deltas. Usage arrives in two parts (input and cache counts in
//! `message_start`, output in `message_delta`); `input_tokens` excludes cache
//! reads and writes, so each count is billed once at its own rate.

use crate::chat::{arguments_object, unsupported, Chat, Delta, Finish, Image, OutputFormat, Part, Role, ToolChoice};
use crate::codec::{Decode, SseDecode};
use crate::error::ApiError;
use crate::metering::Usage;
use serde::Deserialize;
use serde_json::{json, Map, Value};

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

/// A Messages body from the internal model.
pub fn body(chat: &Chat, model: &str, default_max_tokens: u64) -> Result<Value, ApiError> {
    if chat.output != OutputFormat::Text {
        return Err(unsupported("anthropic", "JSON output (`response_format`)"));
    }
    let mut messages: Vec<Value> = Vec::with_capacity(chat.messages.len());
    for m in &chat.messages {
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let mut content = Vec::with_capacity(m.parts.len());
        for p in &m.parts {
            content.push(match p {
                Part::Text(t) => json!({"type": "text", "text": t}),
                Part::Image(Image::Base64 { media_type, data }) => {
                    json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
                }
                Part::Image(Image::Url(url)) => json!({"type": "image", "source": {"type": "url", "url": url}}),
                Part::ToolCall { id, name, arguments } => {
                    json!({"type": "tool_use", "id": id, "name": name, "input": arguments_object(arguments)?})
                }
                Part::ToolResult { id, content, is_error } => {
                    json!({"type": "tool_result", "tool_use_id": id, "content": content, "is_error": is_error})
                }
                Part::Reasoning { text, signature } => match signature {
                    Some(sig) => json!({"type": "thinking", "thinking": text, "signature": sig}),
                    // Unsigned reasoning (from another provider) cannot be replayed.
                    None => continue,
                },
            });
        }
        if content.is_empty() {
            continue;
        }
        super::push_turn(&mut messages, role, content);
    }
    let mut b = Map::new();
    b.insert("model".into(), json!(model));
    b.insert("messages".into(), Value::Array(messages));
    b.insert(
        "max_tokens".into(),
        json!(chat.max_tokens.unwrap_or(default_max_tokens)),
    );
    if let Some(s) = &chat.system {
        b.insert("system".into(), json!(s));
    }
    if !chat.tools.is_empty() && chat.tool_choice != Some(ToolChoice::None) {
        let tools: Vec<Value> = chat
            .tools
            .iter()
            .map(|t| {
                let mut v = json!({"name": t.name, "input_schema": t.parameters});
                if let Some(d) = &t.description {
                    v["description"] = json!(d);
                }
                v
            })
            .collect();
        b.insert("tools".into(), Value::Array(tools));
    }
    let disable_parallel = chat.parallel_tool_calls == Some(false);
    let choice = match &chat.tool_choice {
        Some(ToolChoice::Auto) | None if disable_parallel && !chat.tools.is_empty() => Some(json!({"type": "auto"})),
        Some(ToolChoice::Auto) | None => None,
        Some(ToolChoice::None) => None,
        Some(ToolChoice::Required) => Some(json!({"type": "any"})),
        Some(ToolChoice::Tool(name)) => Some(json!({"type": "tool", "name": name})),
    };
    if let Some(mut c) = choice {
        if disable_parallel {
            c["disable_parallel_tool_use"] = json!(true);
        }
        b.insert("tool_choice".into(), c);
    }
    if let Some(t) = chat.temperature {
        b.insert("temperature".into(), json!(t));
    }
    if let Some(t) = chat.top_p {
        b.insert("top_p".into(), json!(t));
    }
    if !chat.stop.is_empty() {
        b.insert("stop_sequences".into(), json!(chat.stop));
    }
    if let Some(r) = &chat.reasoning {
        b.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": r.budget().max(1024)}),
        );
    }
    if chat.stream {
        b.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(b))
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
}

impl WireUsage {
    /// Folds a later report into this one: fields present replace, absent ones stay.
    fn merge(&mut self, later: &WireUsage) {
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

/// Per-stream state: which content block is which tool call, and usage so far.
#[derive(Default)]
struct StreamState {
    tool_of_block: Vec<(u64, usize)>,
    tools: usize,
    usage: WireUsage,
}

impl StreamState {
    fn on_event(&mut self, data: &str, out: &mut Vec<Delta>) {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return out.push(Delta::Error(ApiError::provider(
                "The provider sent a malformed stream event.",
            )));
        };
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                if let Some(u) = v.pointer("/message/usage").and_then(|u| WireUsage::deserialize(u).ok()) {
                    self.usage.merge(&u);
                    out.push(Delta::Usage(self.usage.to_usage()));
                }
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = &v["content_block"];
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let tool = self.tools;
                        self.tools += 1;
                        self.tool_of_block.push((index, tool));
                        out.push(Delta::ToolCall {
                            index: tool,
                            id: block.get("id").and_then(Value::as_str).map(str::to_owned),
                            name: block.get("name").and_then(Value::as_str).map(str::to_owned),
                            arguments: String::new(),
                        });
                    }
                    Some("text") => {
                        if let Some(t) = block.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                            out.push(Delta::Text(t.to_string()));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = &v["delta"];
                let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => out.push(Delta::Text(s("text"))),
                    Some("thinking_delta") => out.push(Delta::Reasoning(s("thinking"))),
                    Some("signature_delta") => out.push(Delta::ReasoningSignature(s("signature"))),
                    Some("input_json_delta") => {
                        if let Some(&(_, tool)) = self.tool_of_block.iter().find(|(b, _)| *b == index) {
                            out.push(Delta::ToolCall {
                                index: tool,
                                id: None,
                                name: None,
                                arguments: s("partial_json"),
                            });
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.push(Delta::Finish(finish_from(r)));
                }
                if let Some(u) = v.get("usage").and_then(|u| WireUsage::deserialize(u).ok()) {
                    self.usage.merge(&u);
                    out.push(Delta::Usage(self.usage.to_usage()));
                }
            }
            "error" => {
                let msg = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error");
                let kind = v.pointer("/error/type").and_then(Value::as_str).unwrap_or("api_error");
                out.push(Delta::Error(ApiError::provider(format!(
                    "The provider's stream failed ({kind}): {msg}"
                ))));
            }
            _ => {}
        }
    }
}

pub fn decoder() -> impl Decode {
    let mut state = StreamState::default();
    SseDecode::new(move |_, data: &str, out: &mut Vec<Delta>| state.on_event(data, out))
}

/// A whole `message` into deltas.
pub fn decode_whole(body: &[u8]) -> Result<Vec<Delta>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::provider("The provider answered with something that is not JSON."))?;
    let mut out = Vec::new();
    let mut tools = 0;
    for block in v.get("content").and_then(Value::as_array).into_iter().flatten() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => out.push(Delta::Text(block["text"].as_str().unwrap_or("").to_string())),
            Some("thinking") => {
                out.push(Delta::Reasoning(block["thinking"].as_str().unwrap_or("").to_string()));
                if let Some(sig) = block.get("signature").and_then(Value::as_str) {
                    out.push(Delta::ReasoningSignature(sig.to_string()));
                }
            }
            Some("tool_use") => {
                out.push(Delta::ToolCall {
                    index: tools,
                    id: block.get("id").and_then(Value::as_str).map(str::to_owned),
                    name: block.get("name").and_then(Value::as_str).map(str::to_owned),
                    arguments: block.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                });
                tools += 1;
            }
            _ => {}
        }
    }
    if let Some(r) = v.get("stop_reason").and_then(Value::as_str) {
        out.push(Delta::Finish(finish_from(r)));
    }
    if let Some(u) = v.get("usage").and_then(|u| WireUsage::deserialize(u).ok()) {
        out.push(Delta::Usage(u.to_usage()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_all;

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
}
