//! OpenAI Responses (`POST /v1/responses`): the request, typed and checked
//! ([`parse`]); its conversion into the internal chat model for providers
//! that do not speak it ([`convert`]); the answer rendered as Responses
//! events or a Response object ([`render`]); and what Hub reads from a
//! provider's own Responses answer to bill it ([`tap`]).

pub mod convert;
pub mod render;
pub mod tap;

use super::{open_struct, output_budget, parse_body, Positive, StrOrList, StrOrObject};
use crate::error::ApiError;
use crate::metering::estimate::PromptSize;
use bytes::Bytes;
use serde_json::{Map, Number, Value};

open_struct! {
    /// A Responses request: the members Hub reads or checks, typed; every
    /// other member kept as it came, so that it reaches a provider that
    /// speaks Responses unchanged.
    pub struct ResponsesBody {
        model: String = "model",
        input: StrOrList<InItem> = "input",
        instructions: String = "instructions",
        stream: bool = "stream",
        tools: Vec<InTool> = "tools",
        tool_choice: StrOrObject<InToolChoice> = "tool_choice",
        parallel_tool_calls: bool = "parallel_tool_calls",
        text: InText = "text",
        max_output_tokens: Positive = "max_output_tokens",
        temperature: Number = "temperature",
        top_p: Number = "top_p",
        reasoning: InReasoning = "reasoning",
        store: bool = "store",
        include: Vec<String> = "include",
        prompt_cache_key: String = "prompt_cache_key",
        metadata: Map<String, Value> = "metadata",
        user: String = "user",
        previous_response_id: String = "previous_response_id",
        conversation: Value = "conversation",
        background: bool = "background",
    }
}

open_struct! {
    /// One item of `input`: a message, a function call or its output, or
    /// reasoning carried back.
    pub struct InItem {
        kind: String = "type",
        role: InRole = "role",
        content: StrOrList<InPart> = "content",
        id: String = "id",
        call_id: String = "call_id",
        name: String = "name",
        namespace: String = "namespace",
        arguments: String = "arguments",
        output: Value = "output",
        summary: Vec<InPart> = "summary",
        encrypted_content: String = "encrypted_content",
    }
}

/// Who speaks a message item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InRole {
    User,
    Assistant,
    System,
    Developer,
}

open_struct! {
    /// A content part (`input_text`, `input_image`, `output_text`, …) or a
    /// reasoning summary part (`summary_text`).
    pub struct InPart {
        kind: String = "type",
        text: String = "text",
        image_url: String = "image_url",
        file_id: String = "file_id",
        refusal: String = "refusal",
    }
}

open_struct! {
    /// A tool definition: a function (flat, unlike Chat Completions'), a
    /// namespace of functions, or a tool the provider hosts (`web_search`, …).
    pub struct InTool {
        kind: String = "type",
        name: String = "name",
        description: String = "description",
        parameters: Value = "parameters",
        strict: bool = "strict",
        tools: Vec<InTool> = "tools",
    }
}

open_struct! {
    /// `tool_choice` as an object: `{"type":"function","name":…}` or another kind.
    pub struct InToolChoice {
        kind: String = "type",
        name: String = "name",
    }
}

open_struct! {
    pub struct InText {
        format: InFormat = "format",
    }
}

open_struct! {
    /// `text.format`: `text`, `json_object`, or a flat `json_schema`.
    pub struct InFormat {
        kind: FormatKind = "type",
        name: String = "name",
        schema: Value = "schema",
        strict: bool = "strict",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatKind {
    Text,
    JsonObject,
    JsonSchema,
}

open_struct! {
    pub struct InReasoning {
        effort: String = "effort",
        summary: String = "summary",
    }
}

/// A checked Responses request.
#[derive(Debug, Clone)]
pub struct ResponsesRequest {
    /// Boxed: the typed body is large, and requests travel by value.
    pub body: Box<ResponsesBody>,
    pub model: String,
    pub stream: bool,
    pub max_output_tokens: Option<u64>,
    pub prompt: PromptSize,
}

/// Parses and checks a Responses request; refuses, naming the field, what
/// needs responses kept on a server (Hub keeps none).
pub fn parse(bytes: &[u8]) -> Result<ResponsesRequest, ApiError> {
    let body: ResponsesBody = parse_body(bytes)?;
    let model = match &body.model {
        Some(m) if !m.trim().is_empty() => m.clone(),
        _ => return Err(ApiError::invalid_field("model", "is required: name the model to call")),
    };
    refuse_server_state(&body)?;
    let prompt = measure(&body)?;
    let max_output_tokens = output_budget("max_output_tokens", body.max_output_tokens.map(|p| p.0))?;
    if let Some(f) = body.text.as_ref().and_then(|t| t.format.as_ref()) {
        check_format(f)?;
    }
    Ok(ResponsesRequest {
        model,
        stream: body.stream.unwrap_or(false),
        max_output_tokens,
        prompt,
        body: Box::new(body),
    })
}

/// Hub keeps no responses: what refers to a stored one is refused.
fn refuse_server_state(body: &ResponsesBody) -> Result<(), ApiError> {
    let stateless = "is not supported: Hub keeps no responses. Send the whole conversation in `input` (with `store: false`), as Codex does.";
    if body.previous_response_id.is_some() {
        return Err(ApiError::invalid_field("previous_response_id", stateless));
    }
    if body.conversation.as_ref().is_some_and(|c| !c.is_null()) {
        return Err(ApiError::invalid_field("conversation", stateless));
    }
    if body.background == Some(true) {
        return Err(ApiError::invalid_field("background", stateless));
    }
    for (i, item) in items(body).iter().enumerate() {
        if item.kind.as_deref() == Some("item_reference") {
            return Err(ApiError::invalid_field(&format!("input[{i}]"), stateless));
        }
    }
    Ok(())
}

/// The input items (none when `input` is a plain string).
pub(crate) fn items(body: &ResponsesBody) -> &[InItem] {
    match &body.input {
        Some(StrOrList::List(items)) => items,
        _ => &[],
    }
}

/// The prompt's size, for the hold: every text the model reads.
fn measure(body: &ResponsesBody) -> Result<PromptSize, ApiError> {
    let mut prompt = PromptSize::default();
    match &body.input {
        None => return Err(ApiError::invalid_field("input", "is required")),
        Some(StrOrList::Str(s)) => {
            prompt.messages = 1;
            prompt.text_bytes = s.len() as u64;
        }
        Some(StrOrList::List(items)) => {
            for item in items {
                prompt.messages += 1;
                measure_item(item, &mut prompt);
            }
        }
    }
    prompt.text_bytes += body.instructions.as_ref().map_or(0, |s| s.len() as u64);
    prompt.text_bytes += body.tools.iter().flatten().map(super::openai::json_len).sum::<u64>();
    prompt.text_bytes += body.text.as_ref().map_or(0, super::openai::json_len);
    Ok(prompt)
}

fn measure_item(item: &InItem, prompt: &mut PromptSize) {
    for part in parts_of(item.content.as_ref()) {
        match part.kind.as_deref() {
            Some("input_image") => prompt.images += 1,
            _ => prompt.text_bytes += super::openai::json_len(part),
        }
    }
    if let Some(StrOrList::Str(s)) = &item.content {
        prompt.text_bytes += s.len() as u64;
    }
    for text in [&item.name, &item.arguments, &item.encrypted_content] {
        prompt.text_bytes += text.as_ref().map_or(0, |s| s.len() as u64);
    }
    prompt.text_bytes += item.output.as_ref().map_or(0, super::openai::json_len);
    prompt.text_bytes += item.summary.as_ref().map_or(0, super::openai::json_len);
}

/// A content's parts (none for plain text).
pub(crate) fn parts_of(content: Option<&StrOrList<InPart>>) -> &[InPart] {
    match content {
        Some(StrOrList::List(parts)) => parts,
        _ => &[],
    }
}

fn check_format(f: &InFormat) -> Result<(), ApiError> {
    match f.kind {
        None => Err(ApiError::invalid_field(
            "text.format.type",
            "must be one of `text`, `json_object`, `json_schema`",
        )),
        Some(FormatKind::JsonSchema) if f.name.is_none() => Err(ApiError::invalid_field(
            "text.format.name",
            "is required when type is json_schema",
        )),
        Some(FormatKind::JsonSchema) if f.schema.is_none() => Err(ApiError::invalid_field(
            "text.format.schema",
            "is required when type is json_schema",
        )),
        Some(_) => Ok(()),
    }
}

/// Hosted tools dropped, not refused, for every provider: the model answers
/// without searching (Codex declares web search in every request).
pub(crate) const DROPPED_TOOLS: &[&str] = &["web_search", "web_search_preview"];

/// Tools a Responses provider may be sent: the caller's own functions. Hosted
/// tools run, and are charged, in the operator's provider account, per call,
/// beyond the tokens Hub meters; several reach the account's stored files.
const PASSTHROUGH_TOOLS: &[&str] = &["function", "namespace", "custom"];

impl ResponsesRequest {
    /// Refuses what a provider that speaks Responses would do at the
    /// operator's expense or with the operator's data, beyond the tokens Hub
    /// bills: hosted tools (web search is dropped instead, see
    /// `upstream_body`), stored files and stored prompts by id.
    pub fn check_passthrough(&self) -> Result<(), ApiError> {
        let body = &self.body;
        for (i, tool) in body.tools.iter().flatten().enumerate() {
            let kind = tool.kind.as_deref().unwrap_or("function");
            if !PASSTHROUGH_TOOLS.contains(&kind) && !DROPPED_TOOLS.contains(&kind) {
                return Err(ApiError::invalid_field(
                    &format!("tools[{i}].type"),
                    format!("`{kind}` is not supported: Hub cannot bill hosted tools. Use function tools."),
                ));
            }
        }
        if body.extra.get("prompt").is_some_and(|p| !p.is_null()) {
            return Err(ApiError::invalid_field(
                "prompt",
                "is not supported: stored prompts belong to the provider account. Send `instructions` and `input`.",
            ));
        }
        for (i, item) in items(body).iter().enumerate() {
            if refers_to_file(item) {
                return Err(ApiError::invalid_field(
                    &format!("input[{i}]"),
                    "refers to a stored file (`file_id`), which is not supported: send the file's content.",
                ));
            }
        }
        Ok(())
    }

    /// The body for a provider that speaks Responses: the caller's, as it
    /// came, but for the provider's model name, hosted web search dropped
    /// (as for every provider: Codex sends it with every request) and
    /// `store: false` (Hub keeps no responses and serves none by id, so
    /// nothing is left in the provider account).
    pub fn upstream_body(&self, provider_model: &str) -> Bytes {
        let mut body = self.body.clone();
        body.model = Some(provider_model.to_string());
        body.store = Some(false);
        if let Some(tools) = body.tools.as_mut() {
            tools.retain(|t| !t.kind.as_deref().is_some_and(|k| DROPPED_TOOLS.contains(&k)));
        }
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }
}

/// Whether an input item names a stored file: a part's `file_id`, or one in
/// a tool result or a member Hub does not read (walked without re-serialising
/// the item: Codex sends its whole history every turn).
fn refers_to_file(item: &InItem) -> bool {
    parts_of(item.content.as_ref()).iter().any(|p| p.file_id.is_some())
        || item.output.as_ref().is_some_and(mentions_file_id)
        || item.extra.values().any(mentions_file_id)
}

/// Whether a JSON value has a `file_id` member anywhere.
fn mentions_file_id(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| (k == "file_id" && !v.is_null()) || mentions_file_id(v)),
        Value::Array(a) => a.iter().any(mentions_file_id),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
