//! Google Gemini (`generateContent`, `streamGenerateContent?alt=sse`,
//! `batchEmbedContents`), keyed by `x-goog-api-key`. `promptTokenCount`
//! includes cached tokens and `candidatesTokenCount` excludes thinking, so
//! input is prompt minus cached, and output is candidates plus thoughts.

use crate::chat::{
    arguments_object, tool_call_index, unsupported, Chat, Delta, Finish, Image, OutputFormat, Part, Role, ToolChoice,
};
use crate::codec::{Decode, SseDecode};
use crate::error::ApiError;
use crate::metering::Usage;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
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

/// A `generateContent` body, built from the internal model.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Body<'a> {
    contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Declarations<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    generation_config: GenerationConfig<'a>,
}

#[derive(Debug, Serialize)]
struct Content<'a> {
    role: &'static str,
    parts: Vec<OutPart<'a>>,
}

/// A part Hub sends: an object with one key naming its kind.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum OutPart<'a> {
    Text(&'a str),
    InlineData {
        #[serde(rename = "mimeType")]
        mime_type: &'a str,
        data: &'a str,
    },
    FunctionCall {
        name: &'a str,
        args: Value,
    },
    FunctionResponse {
        name: &'a str,
        response: Value,
    },
}

#[derive(Debug, Serialize)]
struct SystemInstruction<'a> {
    parts: [TextPart<'a>; 1],
}

#[derive(Debug, Serialize)]
struct TextPart<'a> {
    text: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Declarations<'a> {
    function_declarations: Vec<Declaration<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Declaration<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters_json_schema: &'a Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    function_calling_config: FunctionCallingConfig<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_function_names: Option<[&'a str; 1]>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_output_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
            && self.response_mime_type.is_none()
            && self.thinking_config.is_none()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    thinking_budget: u64,
    include_thoughts: bool,
}

/// A `generateContent` body from the internal model.
pub fn body(chat: &Chat) -> Result<Body<'_>, ApiError> {
    // Gemini names the function in a result; the call's id finds it.
    let mut names: HashMap<&str, &str> = HashMap::new();
    for p in chat.messages.iter().flat_map(|m| &m.parts) {
        if let Part::ToolCall { id, name, .. } = p {
            names.insert(id, name);
        }
    }
    let mut contents = Vec::with_capacity(chat.messages.len());
    for m in &chat.messages {
        let mut parts = Vec::with_capacity(m.parts.len());
        for p in &m.parts {
            parts.extend(part(p, &names)?);
        }
        if !parts.is_empty() {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "model",
            };
            contents.push(Content { role, parts });
        }
    }
    Ok(Body {
        contents,
        system_instruction: chat.system.as_deref().map(|text| SystemInstruction {
            parts: [TextPart { text }],
        }),
        tools: declarations(chat).into_iter().collect(),
        tool_config: chat.tool_choice.as_ref().map(tool_config),
        generation_config: generation_config(chat),
    })
}

/// One part for Gemini; `None` for reasoning, which Gemini does not take back.
fn part<'a>(p: &'a Part, names: &HashMap<&str, &'a str>) -> Result<Option<OutPart<'a>>, ApiError> {
    Ok(Some(match p {
        Part::Text(t) => OutPart::Text(t),
        Part::Image(Image::Base64 { media_type, data }) => OutPart::InlineData {
            mime_type: media_type,
            data,
        },
        Part::Image(Image::Url(_)) => {
            return Err(unsupported("gemini", "An image by URL (send it as a base64 data: URL)"))
        }
        Part::ToolCall { name, arguments, .. } => OutPart::FunctionCall {
            name,
            args: arguments_object(arguments)?,
        },
        Part::ToolResult { id, content, .. } => OutPart::FunctionResponse {
            name: names.get(id.as_str()).copied().unwrap_or(id.as_str()),
            response: match serde_json::from_str::<Value>(content) {
                Ok(v @ Value::Object(_)) => v,
                _ => json!({ "result": content }),
            },
        },
        Part::Reasoning { .. } => return Ok(None),
    }))
}

fn declarations(chat: &Chat) -> Option<Declarations<'_>> {
    if chat.tools.is_empty() {
        return None;
    }
    let function_declarations = chat
        .tools
        .iter()
        .map(|t| Declaration {
            name: &t.name,
            description: t.description.as_deref(),
            parameters_json_schema: &t.parameters,
        })
        .collect();
    Some(Declarations { function_declarations })
}

fn tool_config(choice: &ToolChoice) -> ToolConfig<'_> {
    let (mode, allowed_function_names) = match choice {
        ToolChoice::Auto => ("AUTO", None),
        ToolChoice::None => ("NONE", None),
        ToolChoice::Required => ("ANY", None),
        ToolChoice::Tool(name) => ("ANY", Some([name.as_str()])),
    };
    ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names,
        },
    }
}

fn generation_config(chat: &Chat) -> GenerationConfig<'_> {
    let (response_mime_type, response_json_schema) = match &chat.output {
        OutputFormat::Text => (None, None),
        OutputFormat::Json => (Some("application/json"), None),
        OutputFormat::JsonSchema { schema, .. } => (Some("application/json"), Some(schema)),
    };
    GenerationConfig {
        max_output_tokens: chat.max_tokens,
        temperature: chat.temperature,
        top_p: chat.top_p,
        stop_sequences: &chat.stop,
        response_mime_type,
        response_json_schema,
        thinking_config: chat.reasoning.as_ref().map(|r| ThinkingConfig {
            thinking_budget: r.budget(),
            include_thoughts: true,
        }),
    }
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

/// One `GenerateContentResponse` (a stream chunk or a whole answer), as far as Hub reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<WireUsage>,
    #[serde(default)]
    error: Option<super::openai_compat::WireError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<WirePart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart {
    #[serde(default)]
    text: Option<String>,
    /// Whether `text` is the model's reasoning.
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    function_call: Option<FunctionCall>,
}

#[derive(Deserialize)]
struct FunctionCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

/// Per-stream state: tool calls get ids (Gemini gives none) and indexes.
struct StreamState {
    id_prefix: String,
    tools: usize,
}

impl StreamState {
    fn new(id_prefix: &str) -> Self {
        StreamState {
            id_prefix: id_prefix.to_string(),
            tools: 0,
        }
    }

    /// Deltas of one response.
    fn on_response(&mut self, v: WireResponse, out: &mut Vec<Delta>) {
        if let Some(err) = v.error {
            return out.push(Delta::Error(ApiError::provider(format!(
                "The provider's stream failed: {}",
                err.message()
            ))));
        }
        let candidate = v.candidates.into_iter().next();
        let (parts, reason) = match candidate {
            Some(c) => (c.content.map(|c| c.parts).unwrap_or_default(), c.finish_reason),
            None => (Vec::new(), None),
        };
        for part in parts {
            if let Err(e) = self.on_part(part, out) {
                return out.push(Delta::Error(e));
            }
        }
        if let Some(f) = reason.as_deref().and_then(finish_from) {
            out.push(Delta::Finish(if f == Finish::Stop && self.tools > 0 {
                Finish::ToolCalls
            } else {
                f
            }));
        } else if v.prompt_feedback.is_some_and(|p| p.block_reason.is_some()) {
            out.push(Delta::Finish(Finish::ContentFilter));
        }
        out.extend(v.usage_metadata.map(|u| Delta::Usage(u.to_usage())));
    }

    fn on_part(&mut self, part: WirePart, out: &mut Vec<Delta>) -> Result<(), ApiError> {
        if let Some(t) = part.text {
            if !t.is_empty() {
                out.push(if part.thought {
                    Delta::Reasoning(t)
                } else {
                    Delta::Text(t)
                });
            }
        } else if let Some(call) = part.function_call {
            let index = tool_call_index(self.tools as u64)?;
            self.tools += 1;
            let id = call.id.unwrap_or_else(|| format!("call_{}_{index}", self.id_prefix));
            out.push(Delta::ToolCall {
                index,
                id: Some(id),
                name: call.name,
                arguments: call.args.map_or_else(|| "{}".into(), |v| v.to_string()),
            });
        }
        Ok(())
    }
}

/// Reads a `streamGenerateContent?alt=sse` stream; `id_prefix` makes tool-call ids unique.
pub fn decoder(id_prefix: &str) -> impl Decode {
    let mut state = StreamState::new(id_prefix);
    SseDecode::new(
        move |_, data: &str, out: &mut Vec<Delta>| match serde_json::from_str::<WireResponse>(data) {
            Ok(v) => state.on_response(v, out),
            Err(_) => out.push(Delta::Error(ApiError::provider(
                "The provider sent a malformed stream chunk.",
            ))),
        },
    )
}

pub fn decode_whole(body: &[u8], id_prefix: &str) -> Result<Vec<Delta>, ApiError> {
    let v: WireResponse = serde_json::from_slice(body).map_err(|_| {
        ApiError::provider("The provider answered with something that is not a generateContent answer.")
    })?;
    let mut out = Vec::new();
    StreamState::new(id_prefix).on_response(v, &mut out);
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

    #[test]
    fn thoughts_text_and_blocked_prompts() {
        let body = br#"{"candidates":[{"content":{"parts":[{"text":"hmm","thought":true},{"text":"Hi"},{"inlineData":{}}]}}],"promptFeedback":{"blockReason":"SAFETY"}}"#;
        assert_eq!(
            decode_whole(body, "p").unwrap(),
            vec![
                Delta::Reasoning("hmm".into()),
                Delta::Text("Hi".into()),
                Delta::Finish(Finish::ContentFilter)
            ]
        );
        let err = br#"{"error":{"code":429,"message":"quota"}}"#;
        assert!(matches!(decode_whole(err, "p").unwrap().as_slice(), [Delta::Error(e)] if e.message.contains("quota")));
    }
}
