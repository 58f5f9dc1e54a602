//! Google Gemini (`generateContent`, `streamGenerateContent?alt=sse`,
//! `batchEmbedContents`), keyed by `x-goog-api-key`. `promptTokenCount`
//! includes cached tokens and `candidatesTokenCount` excludes thinking, so
//! input is prompt minus cached, and output is candidates plus thoughts.

use crate::chat::{arguments_object, unsupported, Chat, Delta, Finish, Image, OutputFormat, Part, Role, ToolChoice};
use crate::codec::{Decode, SseDecode};
use crate::error::ApiError;
use crate::metering::Usage;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub fn headers(secret: Option<&str>) -> Vec<(String, String)> {
    let mut h = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(s) = secret {
        h.push(("x-goog-api-key".to_string(), s.to_string()));
    }
    h
}

pub fn chat_url(base_url: &str, model: &str, stream: bool) -> String {
    let base = base_url.trim_end_matches('/');
    if stream {
        format!("{base}/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("{base}/models/{model}:generateContent")
    }
}

/// A `generateContent` body from the internal model.
pub fn body(chat: &Chat) -> Result<Value, ApiError> {
    // Gemini names the function in a result; the call's id finds it.
    let mut names: HashMap<&str, &str> = HashMap::new();
    for m in &chat.messages {
        for p in &m.parts {
            if let Part::ToolCall { id, name, .. } = p {
                names.insert(id, name);
            }
        }
    }
    let mut contents: Vec<Value> = Vec::with_capacity(chat.messages.len());
    for m in &chat.messages {
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        let mut parts = Vec::with_capacity(m.parts.len());
        for p in &m.parts {
            parts.push(match p {
                Part::Text(t) => json!({"text": t}),
                Part::Image(Image::Base64 { media_type, data }) => {
                    json!({"inlineData": {"mimeType": media_type, "data": data}})
                }
                Part::Image(Image::Url(_)) => {
                    return Err(unsupported("gemini", "An image by URL (send it as a base64 data: URL)"))
                }
                Part::ToolCall { name, arguments, .. } => {
                    json!({"functionCall": {"name": name, "args": arguments_object(arguments)?}})
                }
                Part::ToolResult { id, content, .. } => {
                    let name = names.get(id.as_str()).copied().unwrap_or(id.as_str());
                    let response = match serde_json::from_str::<Value>(content) {
                        Ok(v @ Value::Object(_)) => v,
                        _ => json!({"result": content}),
                    };
                    json!({"functionResponse": {"name": name, "response": response}})
                }
                Part::Reasoning { .. } => continue,
            });
        }
        if !parts.is_empty() {
            contents.push(json!({"role": role, "parts": parts}));
        }
    }
    let mut b = Map::new();
    b.insert("contents".into(), Value::Array(contents));
    if let Some(s) = &chat.system {
        b.insert("systemInstruction".into(), json!({"parts": [{"text": s}]}));
    }
    if !chat.tools.is_empty() {
        let decls: Vec<Value> = chat
            .tools
            .iter()
            .map(|t| {
                let mut d = json!({"name": t.name, "parametersJsonSchema": t.parameters});
                if let Some(desc) = &t.description {
                    d["description"] = json!(desc);
                }
                d
            })
            .collect();
        b.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    if let Some(choice) = &chat.tool_choice {
        let cfg = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        b.insert("toolConfig".into(), json!({"functionCallingConfig": cfg}));
    }
    let mut g = Map::new();
    if let Some(n) = chat.max_tokens {
        g.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(t) = chat.temperature {
        g.insert("temperature".into(), json!(t));
    }
    if let Some(t) = chat.top_p {
        g.insert("topP".into(), json!(t));
    }
    if !chat.stop.is_empty() {
        g.insert("stopSequences".into(), json!(chat.stop));
    }
    match &chat.output {
        OutputFormat::Text => {}
        OutputFormat::Json => {
            g.insert("responseMimeType".into(), json!("application/json"));
        }
        OutputFormat::JsonSchema { schema, .. } => {
            g.insert("responseMimeType".into(), json!("application/json"));
            g.insert("responseJsonSchema".into(), schema.clone());
        }
    }
    if let Some(r) = &chat.reasoning {
        g.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": r.budget(), "includeThoughts": true}),
        );
    }
    if !g.is_empty() {
        b.insert("generationConfig".into(), Value::Object(g));
    }
    Ok(Value::Object(b))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireUsage {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub cached_content_token_count: u64,
    #[serde(default)]
    pub thoughts_token_count: u64,
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
}

impl WireUsage {
    pub fn to_usage(&self) -> Usage {
        let cached = self.cached_content_token_count.min(self.prompt_token_count);
        Usage {
            // Counts are the provider's to report; sums saturate rather than wrap.
            input_tokens: (self.prompt_token_count - cached).saturating_add(self.tool_use_prompt_token_count),
            output_tokens: self.candidates_token_count.saturating_add(self.thoughts_token_count),
            cache_read_tokens: cached,
            reasoning_tokens: self.thoughts_token_count,
            ..Default::default()
        }
    }
}

pub fn finish_from(reason: &str) -> Option<Finish> {
    match reason {
        "" | "FINISH_REASON_UNSPECIFIED" => None,
        "STOP" => Some(Finish::Stop),
        "MAX_TOKENS" => Some(Finish::Length),
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            Some(Finish::ContentFilter)
        }
        _ => Some(Finish::Stop),
    }
}

/// Per-stream state: tool calls get ids (Gemini gives none) and indexes.
struct StreamState {
    id_prefix: String,
    tools: usize,
}

impl StreamState {
    /// Deltas of one `GenerateContentResponse` (a stream chunk or a whole answer).
    fn on_response(&mut self, v: &Value, out: &mut Vec<Delta>) {
        if let Some(err) = v.get("error") {
            let msg = err.get("message").and_then(Value::as_str).unwrap_or("unknown error");
            return out.push(Delta::Error(ApiError::provider(format!(
                "The provider's stream failed: {msg}"
            ))));
        }
        let candidate = v.pointer("/candidates/0");
        for part in candidate
            .and_then(|c| c.pointer("/content/parts"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                if t.is_empty() {
                    continue;
                }
                if part.get("thought") == Some(&Value::Bool(true)) {
                    out.push(Delta::Reasoning(t.to_string()));
                } else {
                    out.push(Delta::Text(t.to_string()));
                }
            } else if let Some(call) = part.get("functionCall") {
                let index = self.tools;
                self.tools += 1;
                let id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("call_{}_{index}", self.id_prefix));
                out.push(Delta::ToolCall {
                    index,
                    id: Some(id),
                    name: call.get("name").and_then(Value::as_str).map(str::to_owned),
                    arguments: call.get("args").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                });
            }
        }
        let reason = candidate
            .and_then(|c| c.get("finishReason"))
            .and_then(Value::as_str)
            .and_then(finish_from);
        if let Some(f) = reason {
            out.push(Delta::Finish(if f == Finish::Stop && self.tools > 0 {
                Finish::ToolCalls
            } else {
                f
            }));
        } else if v.pointer("/promptFeedback/blockReason").is_some() {
            out.push(Delta::Finish(Finish::ContentFilter));
        }
        if let Some(u) = v.get("usageMetadata").and_then(|u| WireUsage::deserialize(u).ok()) {
            out.push(Delta::Usage(u.to_usage()));
        }
    }
}

/// Reads a `streamGenerateContent?alt=sse` stream; `id_prefix` makes tool-call ids unique.
pub fn decoder(id_prefix: &str) -> impl Decode {
    let mut state = StreamState {
        id_prefix: id_prefix.to_string(),
        tools: 0,
    };
    SseDecode::new(
        move |_, data: &str, out: &mut Vec<Delta>| match serde_json::from_str::<Value>(data) {
            Ok(v) => state.on_response(&v, out),
            Err(_) => out.push(Delta::Error(ApiError::provider(
                "The provider sent a malformed stream chunk.",
            ))),
        },
    )
}

pub fn decode_whole(body: &[u8], id_prefix: &str) -> Result<Vec<Delta>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::provider("The provider answered with something that is not JSON."))?;
    let mut state = StreamState {
        id_prefix: id_prefix.to_string(),
        tools: 0,
    };
    let mut out = Vec::new();
    state.on_response(&v, &mut out);
    Ok(out)
}

/// A `batchEmbedContents` body for texts.
pub fn embed_body(model: &str, texts: &[String], dimensions: Option<u64>) -> Value {
    let requests: Vec<Value> = texts
        .iter()
        .map(|t| {
            let mut r = json!({"model": format!("models/{model}"), "content": {"parts": [{"text": t}]}});
            if let Some(d) = dimensions {
                r["outputDimensionality"] = json!(d);
            }
            r
        })
        .collect();
    json!({ "requests": requests })
}

/// The vectors of a `batchEmbedContents` answer.
pub fn embed_vectors(body: &[u8]) -> Result<Vec<Value>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::provider("The provider answered with something that is not JSON."))?;
    let list = v
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::provider("The provider's answer has no embeddings."))?;
    Ok(list
        .iter()
        .map(|e| e.get("values").cloned().unwrap_or(Value::Null))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_and_thinking_tokens_are_counted_once() {
        let u: WireUsage = serde_json::from_str(
            r#"{"promptTokenCount":100,"candidatesTokenCount":20,"cachedContentTokenCount":60,"thoughtsTokenCount":7,"totalTokenCount":127}"#,
        )
        .unwrap();
        let u = u.to_usage();
        assert_eq!(
            (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens),
            (40, 60, 27, 7)
        );
    }

    #[test]
    fn function_calls_get_ids_and_finish_as_tool_calls() {
        let body = br#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"weather","args":{"city":"Paris"}}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":3}}"#;
        let r = crate::chat::Reply::from_deltas(decode_whole(body, "abc").unwrap()).unwrap();
        assert_eq!(r.tool_calls[0].id, "call_abc_0");
        assert_eq!(r.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
        assert_eq!(r.finish, Some(Finish::ToolCalls));
    }
}
