//! OpenAI-compatible providers (OpenAI, DeepSeek, xAI, OpenRouter, Ollama,
//! Doubao, Poe, custom URLs): the request (passed through from an OpenAI
//! caller, or built from the internal model), and their answers read into
//! deltas and usage.

use crate::chat::{tool_call_index, Chat, Delta, Finish, OutputFormat, Part, Role, ToolChoice};
use crate::codec::{Decode, SseDecode};
use crate::error::ApiError;
use crate::metering::Usage;
use serde::Deserialize;
use serde_json::{json, Map, Value};

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
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            images: 0,
        }
    }
}

/// An OpenAI Chat Completions body from the internal model.
pub fn chat_body(chat: &Chat, model: &str) -> Value {
    let mut messages = Vec::with_capacity(chat.messages.len() + 1);
    if let Some(system) = &chat.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for m in &chat.messages {
        match m.role {
            Role::Assistant => {
                let text: String = m
                    .parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::Text(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect();
                let calls: Vec<Value> = m
                    .parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::ToolCall { id, name, arguments } => Some(json!({
                            "id": id, "type": "function",
                            "function": {"name": name, "arguments": arguments}
                        })),
                        _ => None,
                    })
                    .collect();
                let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                messages.push(msg);
            }
            Role::User => {
                // Tool results become `tool` messages, in order; the rest one user message.
                let mut content = Vec::new();
                for p in &m.parts {
                    match p {
                        Part::ToolResult { id, content: c, .. } => {
                            messages.push(json!({"role": "tool", "tool_call_id": id, "content": c}))
                        }
                        Part::Text(t) => content.push(json!({"type": "text", "text": t})),
                        Part::Image(img) => {
                            content.push(json!({"type": "image_url", "image_url": {"url": img.to_url()}}))
                        }
                        Part::ToolCall { .. } | Part::Reasoning { .. } => {}
                    }
                }
                match content.as_slice() {
                    [] => {}
                    [one] if one["type"] == "text" => messages.push(json!({"role": "user", "content": one["text"]})),
                    _ => messages.push(json!({"role": "user", "content": content})),
                }
            }
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    if !chat.tools.is_empty() {
        let tools: Vec<Value> = chat
            .tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t.name, "parameters": t.parameters});
                if let Some(d) = &t.description {
                    f["description"] = json!(d);
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &chat.tool_choice {
        body.insert(
            "tool_choice".into(),
            match choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
            },
        );
    }
    if let Some(p) = chat.parallel_tool_calls {
        body.insert("parallel_tool_calls".into(), json!(p));
    }
    match &chat.output {
        OutputFormat::Text => {}
        OutputFormat::Json => {
            body.insert("response_format".into(), json!({"type": "json_object"}));
        }
        OutputFormat::JsonSchema { name, schema, strict } => {
            body.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}}),
            );
        }
    }
    if let Some(n) = chat.max_tokens {
        body.insert("max_tokens".into(), json!(n));
    }
    if let Some(t) = chat.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(t) = chat.top_p {
        body.insert("top_p".into(), json!(t));
    }
    if !chat.stop.is_empty() {
        body.insert("stop".into(), json!(chat.stop));
    }
    if let Some(r) = &chat.reasoning {
        body.insert("reasoning_effort".into(), json!(r.effort()));
    }
    if chat.stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(body)
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
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
        let msg = err.get("message").and_then(Value::as_str).unwrap_or("unknown error");
        return out.push(Delta::Error(ApiError::provider(format!(
            "The provider's stream failed: {msg}"
        ))));
    }
    // Only the first choice is carried through the internal model.
    for c in chunk.choices.into_iter().filter(|c| c.index == 0) {
        if let Some(d) = c.delta {
            if let Some(r) = d.reasoning_content.filter(|r| !r.is_empty()) {
                out.push(Delta::Reasoning(r));
            }
            if let Some(t) = d.content.filter(|t| !t.is_empty()) {
                out.push(Delta::Text(t));
            }
            for (pos, call) in d.tool_calls.into_iter().flatten().enumerate() {
                // The index is the provider's word: bounded before anything is sized by it.
                let index = match tool_call_index(call.index.unwrap_or(pos as u64)) {
                    Ok(i) => i,
                    Err(e) => return out.push(Delta::Error(e)),
                };
                let (name, arguments) = call.function.map(|f| (f.name, f.arguments)).unwrap_or_default();
                out.push(Delta::ToolCall {
                    index,
                    id: call.id,
                    name,
                    arguments: arguments.unwrap_or_default(),
                });
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
