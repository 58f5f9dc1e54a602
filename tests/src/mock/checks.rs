//! What the mock refuses, as the real providers do: an unknown endpoint or
//! method, a missing or wrong credential (SigV4 signatures are verified), a
//! body without what the protocol requires. A refusal is the provider's own
//! error shape with a message naming the problem, so a test that expected an
//! answer fails saying what Hub sent wrong.

use super::sigv4;
use super::Proto;
use serde_json::Value;
use std::collections::HashMap;

/// The provider endpoints the mock serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    OpenAiModels,
    OpenAiChat,
    /// OpenAI's Responses API.
    OpenAiResponses,
    OpenAiEmbeddings,
    OpenAiImages,
    AnthropicModels,
    AnthropicMessages,
    GeminiModels,
    GeminiGenerate {
        model: String,
        stream: bool,
    },
    GeminiEmbed {
        model: String,
    },
    BedrockModels,
    BedrockConverse {
        model: String,
        stream: bool,
    },
    /// Ideogram's JSON `/generate` (models V_1 … V_2A_TURBO).
    IdeogramLegacy,
    /// Ideogram 3's multipart `/v1/ideogram-v3/generate`.
    IdeogramV3,
    /// `/v2/image/generate/{model}`.
    IdeogramV2 {
        model: String,
    },
}

impl Endpoint {
    pub fn proto(&self) -> Proto {
        match self {
            Endpoint::AnthropicModels | Endpoint::AnthropicMessages => Proto::Anthropic,
            Endpoint::GeminiModels | Endpoint::GeminiGenerate { .. } | Endpoint::GeminiEmbed { .. } => Proto::Gemini,
            Endpoint::BedrockModels | Endpoint::BedrockConverse { .. } => Proto::Bedrock,
            _ => Proto::OpenAi,
        }
    }

    fn is_listing(&self) -> bool {
        matches!(
            self,
            Endpoint::OpenAiModels | Endpoint::AnthropicModels | Endpoint::GeminiModels | Endpoint::BedrockModels
        )
    }

    /// Recognises the endpoint by path (and, for the `/models` listings the
    /// protocols share, by the credential header).
    pub fn of(path: &str, headers: &HashMap<String, String>, query: &[(String, String)]) -> Option<Endpoint> {
        let last = path.rsplit('/').next().unwrap_or("");
        if let Some((model, op)) = last.split_once(':') {
            let model = model.to_string();
            return match op {
                "generateContent" => Some(Endpoint::GeminiGenerate { model, stream: false }),
                "streamGenerateContent" => Some(Endpoint::GeminiGenerate { model, stream: true }),
                "batchEmbedContents" => Some(Endpoint::GeminiEmbed { model }),
                _ => None,
            };
        }
        if path.ends_with("/converse") || path.ends_with("/converse-stream") {
            let model = super::percent_decode(path.split('/').rev().nth(1).unwrap_or(""));
            return Some(Endpoint::BedrockConverse {
                model,
                stream: path.ends_with("-stream"),
            });
        }
        if let Some((_, model)) = path.split_once("/image/generate/") {
            return Some(Endpoint::IdeogramV2 {
                model: model.to_string(),
            });
        }
        Some(match path {
            p if p.ends_with("/foundation-models") => Endpoint::BedrockModels,
            p if p.ends_with("/models") => {
                if headers.contains_key("x-api-key") || headers.contains_key("anthropic-version") {
                    Endpoint::AnthropicModels
                } else if headers.contains_key("x-goog-api-key") || query.iter().any(|(k, _)| k == "key") {
                    Endpoint::GeminiModels
                } else {
                    Endpoint::OpenAiModels
                }
            }
            p if p.ends_with("/messages") => Endpoint::AnthropicMessages,
            p if p.ends_with("/chat/completions") => Endpoint::OpenAiChat,
            p if p.ends_with("/responses") => Endpoint::OpenAiResponses,
            p if p.ends_with("/embeddings") => Endpoint::OpenAiEmbeddings,
            p if p.ends_with("/images/generations") => Endpoint::OpenAiImages,
            p if p.ends_with("/ideogram-v3/generate") => Endpoint::IdeogramV3,
            "/generate" => Endpoint::IdeogramLegacy,
            _ => return None,
        })
    }
}

/// A request as the mock received it.
pub(crate) struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    /// The query string as sent (SigV4 signs it).
    pub raw_query: Option<&'a str>,
    pub headers: &'a HashMap<String, String>,
    pub body: &'a Value,
    pub raw: &'a [u8],
}

/// Why the mock refuses a request: the status and message a real provider
/// would answer with, and Bedrock's `x-amzn-errortype`.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: u16,
    pub message: String,
    pub aws_type: Option<&'static str>,
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal {
        status: 400,
        message: message.into(),
        aws_type: Some("ValidationException"),
    }
}

fn unauthenticated(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
        aws_type: None,
    }
}

type Checked = Result<(), Refusal>;

/// Everything the endpoint requires of a request.
pub(crate) fn check(e: &Endpoint, req: &Incoming, aws_keys: &HashMap<String, String>) -> Checked {
    let want = if e.is_listing() { "GET" } else { "POST" };
    if req.method != want {
        return Err(Refusal {
            status: 405,
            message: format!("{} {} is not allowed: this endpoint takes {want}", req.method, req.path),
            aws_type: None,
        });
    }
    credential(e, req, aws_keys)?;
    if !e.is_listing() && *e != Endpoint::IdeogramV3 {
        json_body(req)?;
    }
    match e {
        Endpoint::OpenAiChat => openai_chat(req.body),
        Endpoint::OpenAiResponses => openai_responses(req.body),
        Endpoint::OpenAiEmbeddings => openai_embeddings(req.body),
        Endpoint::OpenAiImages => openai_images(req.body),
        Endpoint::AnthropicMessages => anthropic_messages(req.body),
        Endpoint::GeminiGenerate { stream, .. } => gemini_generate(req, *stream),
        Endpoint::GeminiEmbed { model } => gemini_embed(req.body, model),
        Endpoint::BedrockConverse { .. } => bedrock_converse(req.body),
        Endpoint::IdeogramLegacy => ideogram_legacy(req.body),
        Endpoint::IdeogramV3 => ideogram_v3(req),
        Endpoint::IdeogramV2 { .. } => text_field(req.body, "prompt"),
        _ => Ok(()),
    }
}

fn header<'a>(req: &'a Incoming, name: &str) -> Option<&'a str> {
    req.headers
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
}

/// The credential, where and as each protocol wants it.
fn credential(e: &Endpoint, req: &Incoming, aws_keys: &HashMap<String, String>) -> Checked {
    match e.proto() {
        Proto::Anthropic => {
            if header(req, "x-api-key").is_none() {
                return Err(unauthenticated(401, "x-api-key header is required"));
            }
            match header(req, "anthropic-version") {
                None => Err(bad("anthropic-version: header is required")),
                Some("2023-06-01") => Ok(()),
                Some(v) => Err(bad(format!("anthropic-version: unknown version `{v}`"))),
            }
        }
        Proto::Gemini => {
            let keyed = header(req, "x-goog-api-key").is_some() || req.query.iter().any(|(k, v)| k == "key" && !v.is_empty());
            if keyed {
                Ok(())
            } else {
                Err(unauthenticated(
                    403,
                    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
                ))
            }
        }
        Proto::Bedrock => match header(req, "authorization") {
            None => Err(Refusal {
                status: 403,
                message: "Missing Authentication Token".into(),
                aws_type: Some("MissingAuthenticationTokenException"),
            }),
            Some(a) if a.starts_with("Bearer ") => Ok(()),
            Some(a) if a.starts_with("AWS4-HMAC-SHA256 ") => sigv4::verify(req, aws_keys),
            Some(_) => Err(Refusal {
                status: 403,
                message: "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters".into(),
                aws_type: Some("IncompleteSignatureException"),
            }),
        },
        Proto::OpenAi if matches!(e, Endpoint::IdeogramLegacy | Endpoint::IdeogramV3 | Endpoint::IdeogramV2 { .. }) => {
            header(req, "api-key")
                .map(drop)
                .ok_or_else(|| unauthenticated(401, "Api-Key header is required"))
        }
        Proto::OpenAi => match header(req, "authorization").and_then(|a| a.strip_prefix("Bearer ")) {
            Some(key) if !key.trim().is_empty() => Ok(()),
            _ => Err(unauthenticated(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )),
        },
    }
}

fn json_body(req: &Incoming) -> Checked {
    let ct = header(req, "content-type").unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(bad(format!("content-type must be application/json, not `{ct}`")));
    }
    if !req.body.is_object() {
        return Err(bad("the body must be a JSON object"));
    }
    Ok(())
}

fn text_field(body: &Value, field: &str) -> Checked {
    match body.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        Some(_) => Err(bad(format!("{field}: must be a non-empty string"))),
        None => Err(bad(format!("{field}: field required"))),
    }
}

/// Whether a value is a non-empty array.
fn has_items(v: Option<&Value>) -> bool {
    v.and_then(Value::as_array).is_some_and(|a| !a.is_empty())
}

fn array_field<'a>(body: &'a Value, field: &str) -> Result<&'a [Value], Refusal> {
    match body.get(field) {
        Some(Value::Array(a)) if !a.is_empty() => Ok(a),
        Some(_) => Err(bad(format!("{field}: must be a non-empty array"))),
        None => Err(bad(format!("{field}: field required"))),
    }
}

/// An optional count that must be a positive integer within `max` when given.
fn positive(body: &Value, pointer: &str, max: u64) -> Checked {
    match body.pointer(pointer) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= max => Ok(()),
            _ => Err(bad(format!("{pointer}: must be an integer from 1 to {max}, got {v}"))),
        },
    }
}

fn optional_bool(body: &Value, field: &str) -> Checked {
    match body.get(field) {
        None | Some(Value::Null) | Some(Value::Bool(_)) => Ok(()),
        Some(v) => Err(bad(format!("{field}: must be a boolean, got {v}"))),
    }
}

fn role_in(m: &Value, roles: &[&str], at: usize) -> Checked {
    match m.get("role").and_then(Value::as_str) {
        Some(r) if roles.contains(&r) => Ok(()),
        other => Err(bad(format!(
            "messages.{at}.role: must be one of {}, got {other:?}",
            roles.join(", ")
        ))),
    }
}

fn openai_chat(body: &Value) -> Checked {
    text_field(body, "model")?;
    for (i, m) in array_field(body, "messages")?.iter().enumerate() {
        role_in(m, &["system", "developer", "user", "assistant", "tool", "function"], i)?;
        if m["role"] == "tool" && !m["tool_call_id"].is_string() {
            return Err(bad(format!("messages.{i}.tool_call_id: required for tool messages")));
        }
    }
    optional_bool(body, "stream")?;
    if body.get("stream_options").is_some_and(|o| !o.is_null()) && body["stream"] != Value::Bool(true) {
        return Err(bad(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        ));
    }
    positive(body, "/max_tokens", 1 << 31)?;
    positive(body, "/max_completion_tokens", 1 << 31)?;
    positive(body, "/n", 128)
}

/// A Responses request: a model, an input, and every function call's output
/// answering a call made earlier in the input (as OpenAI checks).
fn openai_responses(body: &Value) -> Checked {
    text_field(body, "model")?;
    let items = match body.get("input") {
        Some(Value::String(s)) if !s.is_empty() => return optional_bool(body, "stream"),
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => return Err(bad("input: must be a non-empty string or array")),
    };
    let mut calls = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item["type"].as_str() {
            Some("function_call") => calls.push(&item["call_id"]),
            Some("function_call_output") if !calls.contains(&&item["call_id"]) => {
                return Err(bad(format!(
                    "input[{i}]: No tool call found for function call output with call_id {}.",
                    item["call_id"]
                )))
            }
            _ => {}
        }
    }
    optional_bool(body, "stream")
}

fn openai_embeddings(body: &Value) -> Checked {
    text_field(body, "model")?;
    match body.get("input") {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        Some(Value::Array(a)) if !a.is_empty() => Ok(()),
        _ => Err(bad("input: must be a non-empty string or array")),
    }
}

fn openai_images(body: &Value) -> Checked {
    text_field(body, "model")?;
    text_field(body, "prompt")?;
    positive(body, "/n", 10)
}

fn anthropic_messages(body: &Value) -> Checked {
    text_field(body, "model")?;
    if body.get("max_tokens").is_none() {
        return Err(bad("max_tokens: Field required"));
    }
    positive(body, "/max_tokens", 1 << 31)?;
    for (i, m) in array_field(body, "messages")?.iter().enumerate() {
        role_in(m, &["user", "assistant"], i)?;
        let content_ok = match &m["content"] {
            Value::String(s) => !s.is_empty(),
            Value::Array(blocks) => !blocks.is_empty() && blocks.iter().all(|b| b["type"].is_string()),
            _ => false,
        };
        if !content_ok {
            return Err(bad(format!(
                "messages.{i}.content: must be a non-empty string or a list of typed blocks"
            )));
        }
    }
    if let Some(s) = body.get("system") {
        if !(s.is_string() || s.is_array()) {
            return Err(bad("system: must be a string or a list of text blocks"));
        }
    }
    for (i, t) in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !t["name"].is_string() || !t["input_schema"].is_object() {
            return Err(bad(format!("tools.{i}: name and input_schema are required")));
        }
    }
    optional_bool(body, "stream")
}

fn gemini_generate(req: &Incoming, stream: bool) -> Checked {
    // Without `alt=sse`, Gemini streams one JSON array, not server-sent events.
    if stream && !req.query.iter().any(|(k, v)| k == "alt" && v == "sse") {
        return Err(bad(
            "streamGenerateContent without ?alt=sse answers a JSON array, not server-sent events",
        ));
    }
    for (i, c) in array_field(req.body, "contents")?.iter().enumerate() {
        if !has_items(c.get("parts")) {
            return Err(bad(format!("contents[{i}].parts: must not be empty")));
        }
        if let Some(r) = c.get("role") {
            if !matches!(r.as_str(), Some("user" | "model")) {
                return Err(bad(format!("contents[{i}].role: must be user or model, got {r}")));
            }
        }
    }
    positive(req.body, "/generationConfig/maxOutputTokens", 1 << 31)
}

fn gemini_embed(body: &Value, model: &str) -> Checked {
    for (i, r) in array_field(body, "requests")?.iter().enumerate() {
        if r["model"] != format!("models/{model}") {
            return Err(bad(format!(
                "requests[{i}].model: must be models/{model} (the model in the URL), got {}",
                r["model"]
            )));
        }
        if !has_items(r.pointer("/content/parts")) {
            return Err(bad(format!("requests[{i}].content.parts: must not be empty")));
        }
    }
    Ok(())
}

fn bedrock_converse(body: &Value) -> Checked {
    for (i, m) in array_field(body, "messages")?.iter().enumerate() {
        role_in(m, &["user", "assistant"], i)?;
        if !has_items(m.get("content")) {
            return Err(bad(format!("messages.{i}.content: must be a non-empty list")));
        }
    }
    positive(body, "/inferenceConfig/maxTokens", 1 << 31)
}

fn ideogram_legacy(body: &Value) -> Checked {
    let Some(r) = body.get("image_request").filter(|r| r.is_object()) else {
        return Err(bad("image_request: field required"));
    };
    text_field(r, "prompt")?;
    positive(r, "/num_images", 8)
}

fn ideogram_v3(req: &Incoming) -> Checked {
    let ct = header(req, "content-type").unwrap_or("");
    let Some(boundary) = ct
        .strip_prefix("multipart/form-data")
        .and_then(|r| r.split("boundary=").nth(1))
    else {
        return Err(bad(format!(
            "content-type must be multipart/form-data with a boundary, not `{ct}`"
        )));
    };
    let form = String::from_utf8_lossy(req.raw);
    if !form.ends_with(&format!("--{boundary}--\r\n")) {
        return Err(bad("the multipart body does not end with its closing boundary"));
    }
    let prompt = form
        .split("name=\"prompt\"\r\n\r\n")
        .nth(1)
        .and_then(|r| r.split("\r\n").next())
        .unwrap_or("");
    if prompt.is_empty() {
        return Err(bad("prompt: field required"));
    }
    Ok(())
}
