//! Amazon Bedrock Converse and ConverseStream: the request signed with SigV4
//! (aws-sigv4) or a Bedrock API key, and the binary AWS event stream decoded
//! with aws-smithy-eventstream. `inputTokens` excludes cache reads and
//! writes, as Anthropic's does.

use super::turns::{push_turn, Turn};
use crate::chat::{
    arguments_object, tool_call_index, unsupported, CacheTtl, Chat, Delta, Finish, Image, OutputFormat, Part,
    ToolChoice,
};
use crate::codec::Decode;
use crate::error::ApiError;
use crate::metering::Usage;
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const DEFAULT_REGION: &str = "us-east-1";

/// The runtime endpoint for a region, unless the operator set a base URL.
pub fn endpoint(base_url: &str, region: &str) -> String {
    if base_url.is_empty() {
        format!("https://bedrock-runtime.{region}.amazonaws.com")
    } else {
        base_url.trim_end_matches('/').to_string()
    }
}

/// Path-segment encoding of a model id (`anthropic.claude-3-5-sonnet-20240620-v1:0`).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn chat_url(endpoint: &str, model: &str, stream: bool) -> String {
    let op = if stream { "converse-stream" } else { "converse" };
    format!("{endpoint}/model/{}/{op}", encode_segment(model))
}

/// How a Bedrock credential is written: `ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]`
/// (or the same as JSON) for SigV4, anything else is a Bedrock API key.
enum Secret {
    Keys {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    },
    ApiKey(String),
}

fn parse_secret(secret: &str) -> Secret {
    if let Ok(v) = serde_json::from_str::<Value>(secret) {
        let get = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        if let (Some(a), Some(s)) = (get("access_key_id"), get("secret_access_key")) {
            return Secret::Keys {
                access_key_id: a,
                secret_access_key: s,
                session_token: get("session_token"),
            };
        }
    }
    let mut it = secret.splitn(3, ':');
    match (it.next(), it.next(), it.next()) {
        (Some(a), Some(s), token) if !a.is_empty() && !s.is_empty() => Secret::Keys {
            access_key_id: a.to_string(),
            secret_access_key: s.to_string(),
            session_token: token.map(str::to_owned),
        },
        _ => Secret::ApiKey(secret.to_string()),
    }
}

/// Headers for a request: SigV4 over method, URL, headers and body, or a bearer API key.
pub fn sign(
    method: &str,
    url: &str,
    body: &[u8],
    secret: &str,
    region: &str,
    service: &str,
    now_ms: i64,
) -> Result<Vec<(String, String)>, ApiError> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    let (access_key_id, secret_access_key, session_token) = match parse_secret(secret) {
        Secret::ApiKey(key) => {
            headers.push(("authorization".to_string(), format!("Bearer {key}")));
            return Ok(headers);
        }
        Secret::Keys {
            access_key_id,
            secret_access_key,
            session_token,
        } => (access_key_id, secret_access_key, session_token),
    };
    let identity =
        aws_credential_types::Credentials::new(access_key_id, secret_access_key, session_token, None, "hub").into();
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms.max(0) as u64);
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| ApiError::internal(format!("Cannot sign the Bedrock request: {e}")))?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| ApiError::internal(format!("Cannot sign the Bedrock request: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| ApiError::internal(format!("Cannot sign the Bedrock request: {e}")))?
        .into_parts();
    for (name, value) in instructions.headers() {
        headers.push((name.to_string(), value.to_string()));
    }
    Ok(headers)
}

fn image_format(media_type: &str) -> Option<&'static str> {
    match media_type {
        "image/png" => Some("png"),
        "image/jpeg" | "image/jpg" => Some("jpeg"),
        "image/gif" => Some("gif"),
        "image/webp" => Some("webp"),
        _ => None,
    }
}

/// A Converse body, built from the internal model.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Body<'a> {
    messages: Vec<Turn<Block<'a>>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<SystemBlock<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inference_config: Option<InferenceConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_model_request_fields: Option<AdditionalFields>,
}

/// A content block Hub sends: an object with one key naming its kind.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum Block<'a> {
    Text(&'a str),
    Image {
        format: &'static str,
        source: ImageBytes<'a>,
    },
    ToolUse(ToolUse<'a>),
    ToolResult(ToolResult<'a>),
    ReasoningContent {
        #[serde(rename = "reasoningText")]
        reasoning_text: ReasoningText<'a>,
    },
    CachePoint(CachePoint),
}

/// A prompt-cache breakpoint: the prompt up to here is cached.
#[derive(Debug, Serialize)]
struct CachePoint {
    r#type: &'static str,
    /// Absent: Bedrock's default, five minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<&'static str>,
}

impl CachePoint {
    fn new(ttl: CacheTtl) -> CachePoint {
        CachePoint {
            r#type: "default",
            ttl: (ttl == CacheTtl::OneHour).then_some("1h"),
        }
    }
}

/// A block of the system prompt.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum SystemBlock<'a> {
    Text(SystemText<'a>),
    Cache {
        #[serde(rename = "cachePoint")]
        cache_point: CachePoint,
    },
}

#[derive(Debug, Serialize)]
struct ImageBytes<'a> {
    bytes: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolUse<'a> {
    tool_use_id: &'a str,
    name: &'a str,
    input: Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolResult<'a> {
    tool_use_id: &'a str,
    content: [SystemText<'a>; 1],
    status: &'static str,
}

#[derive(Debug, Serialize)]
struct ReasoningText<'a> {
    text: &'a str,
    signature: &'a str,
}

#[derive(Debug, Serialize)]
struct SystemText<'a> {
    text: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    tools: Vec<ToolEntry<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<OutToolChoice<'a>>,
}

/// One entry of `toolConfig.tools`: a tool, or a cache breakpoint after the tools before it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum ToolEntry<'a> {
    ToolSpec(ToolSpec<'a>),
    CachePoint(CachePoint),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolSpec<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: JsonSchema<'a>,
}

#[derive(Debug, Serialize)]
struct JsonSchema<'a> {
    json: &'a Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum OutToolChoice<'a> {
    Auto {},
    Any {},
    Tool { name: &'a str },
}

#[derive(Debug, Serialize)]
struct AdditionalFields {
    thinking: Thinking,
}

#[derive(Debug, Serialize)]
struct Thinking {
    r#type: &'static str,
    budget_tokens: u64,
}

/// A Converse body from the internal model.
pub fn body(chat: &Chat) -> Result<Body<'_>, ApiError> {
    if chat.output != OutputFormat::Text {
        return Err(unsupported("bedrock", "JSON output (`response_format`)"));
    }
    let mut messages = Vec::with_capacity(chat.messages.len());
    for (i, m) in chat.messages.iter().enumerate() {
        let mut content = Vec::with_capacity(m.parts.len());
        for (j, p) in m.parts.iter().enumerate() {
            content.extend(block(p)?);
            // Anthropic's `cache_control` on a block: Bedrock's breakpoint follows it.
            content.extend(
                chat.cache
                    .after_part(i, j)
                    .map(|ttl| Block::CachePoint(CachePoint::new(ttl))),
            );
        }
        if !content.is_empty() {
            push_turn(&mut messages, m.role, content);
        }
    }
    let inference = InferenceConfig {
        max_tokens: chat.max_tokens,
        temperature: chat.temperature,
        top_p: chat.top_p,
        stop_sequences: &chat.stop,
    };
    let has_inference = inference.max_tokens.is_some()
        || inference.temperature.is_some()
        || inference.top_p.is_some()
        || !inference.stop_sequences.is_empty();
    Ok(Body {
        messages,
        system: system(chat),
        inference_config: has_inference.then_some(inference),
        tool_config: tool_config(chat),
        additional_model_request_fields: chat.reasoning.as_ref().map(|r| AdditionalFields {
            thinking: Thinking {
                r#type: "enabled",
                budget_tokens: r.budget().max(1024),
            },
        }),
    })
}

/// One part as a content block; `None` for what cannot be replayed.
fn block(p: &Part) -> Result<Option<Block<'_>>, ApiError> {
    Ok(Some(match p {
        Part::Text(t) => Block::Text(t),
        Part::Image(Image::Base64 { media_type, data }) => Block::Image {
            format: image_format(media_type)
                .ok_or_else(|| unsupported("bedrock", &format!("An image of type `{media_type}`")))?,
            source: ImageBytes { bytes: data },
        },
        Part::Image(Image::Url(_)) => {
            return Err(unsupported(
                "bedrock",
                "An image by URL (send it as a base64 data: URL)",
            ))
        }
        Part::ToolCall { id, name, arguments } => Block::ToolUse(ToolUse {
            tool_use_id: id,
            name,
            input: arguments_object(arguments)?,
        }),
        Part::ToolResult { id, content, is_error } => Block::ToolResult(ToolResult {
            tool_use_id: id,
            content: [SystemText { text: content }],
            status: if *is_error { "error" } else { "success" },
        }),
        Part::Reasoning { text, signature } => match signature {
            Some(signature) => Block::ReasoningContent {
                reasoning_text: ReasoningText { text, signature },
            },
            None => return Ok(None),
        },
    }))
}

/// The system prompt, with a cache breakpoint after it if the caller marked it.
fn system(chat: &Chat) -> Vec<SystemBlock<'_>> {
    let Some(text) = chat.system.as_deref() else {
        return Vec::new();
    };
    let mut blocks = vec![SystemBlock::Text(SystemText { text })];
    blocks.extend(chat.cache.system.map(|ttl| SystemBlock::Cache {
        cache_point: CachePoint::new(ttl),
    }));
    blocks
}

fn tool_config(chat: &Chat) -> Option<ToolConfig<'_>> {
    if chat.tools.is_empty() || chat.tool_choice == Some(ToolChoice::None) {
        return None;
    }
    let mut tools = Vec::with_capacity(chat.tools.len());
    for (i, t) in chat.tools.iter().enumerate() {
        tools.push(ToolEntry::ToolSpec(ToolSpec {
            name: &t.name,
            description: t.description.as_deref(),
            input_schema: JsonSchema { json: &t.parameters },
        }));
        tools.extend(
            chat.cache
                .after_tool(i)
                .map(|ttl| ToolEntry::CachePoint(CachePoint::new(ttl))),
        );
    }
    let tool_choice = match &chat.tool_choice {
        Some(ToolChoice::Required) => Some(OutToolChoice::Any {}),
        Some(ToolChoice::Tool(name)) => Some(OutToolChoice::Tool { name }),
        Some(ToolChoice::Auto) => Some(OutToolChoice::Auto {}),
        _ => None,
    };
    Some(ToolConfig { tools, tool_choice })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub cache_write_input_tokens: u64,
    /// The cache writes by lifetime (`[{"ttl": "1h", "inputTokens": N}, …]`).
    #[serde(default)]
    pub cache_details: Vec<CacheDetail>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheDetail {
    #[serde(default)]
    pub ttl: String,
    #[serde(default)]
    pub input_tokens: u64,
}

impl WireUsage {
    pub fn to_usage(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_tokens: self.cache_read_input_tokens,
            cache_write_tokens: self.cache_write_input_tokens,
            cache_write_1h_tokens: self
                .cache_details
                .iter()
                .filter(|d| d.ttl == "1h")
                .fold(0u64, |sum, d| sum.saturating_add(d.input_tokens)),
            ..Default::default()
        }
    }
}

pub fn finish_from(reason: &str) -> Finish {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => Finish::Length,
        "tool_use" => Finish::ToolCalls,
        "guardrail_intervened" | "content_filtered" => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

/// The events of a ConverseStream that Hub reads, by `:event-type`.
enum Event {
    BlockStart(BlockStartEvent),
    BlockDelta(BlockDeltaEvent),
    MessageStop(MessageStopEvent),
    Metadata(MetadataEvent),
    /// `messageStart`, `contentBlockStop` and types yet to come.
    Other,
}

impl Event {
    fn parse(event_type: &str, payload: &[u8]) -> serde_json::Result<Event> {
        Ok(match event_type {
            "contentBlockStart" => Event::BlockStart(serde_json::from_slice(payload)?),
            "contentBlockDelta" => Event::BlockDelta(serde_json::from_slice(payload)?),
            "messageStop" => Event::MessageStop(serde_json::from_slice(payload)?),
            "metadata" => Event::Metadata(serde_json::from_slice(payload)?),
            _ => Event::Other,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStartEvent {
    #[serde(default)]
    content_block_index: u64,
    #[serde(default)]
    start: Option<BlockStart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart {
    #[serde(default)]
    tool_use: Option<ToolUseStart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart {
    #[serde(default)]
    tool_use_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDeltaEvent {
    #[serde(default)]
    content_block_index: u64,
    #[serde(default)]
    delta: Option<BlockDelta>,
}

/// A block delta carries one of these (checked in this order, as before).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ToolUseDelta>,
    #[serde(default)]
    reasoning_content: Option<ReasoningDelta>,
}

#[derive(Deserialize)]
struct ToolUseDelta {
    #[serde(default)]
    input: Option<String>,
}

#[derive(Deserialize)]
struct ReasoningDelta {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    signature: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStopEvent {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct MetadataEvent {
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// An exception frame's payload (AWS spells the key either way).
#[derive(Default, Deserialize)]
struct ExceptionPayload {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "Message")]
    message_upper: Option<String>,
}

/// Reads ConverseStream's binary event stream.
#[derive(Default)]
pub struct StreamDecoder {
    buf: BytesMut,
    frames: MessageFrameDecoder,
    /// Content block index → tool-call index.
    tool_of_block: Vec<(u64, usize)>,
    tools: usize,
    failed: bool,
}

impl StreamDecoder {
    fn on_event(&mut self, event: Event, out: &mut Vec<Delta>) -> Result<(), ApiError> {
        match event {
            Event::BlockStart(e) => {
                if let Some(tool) = e.start.and_then(|s| s.tool_use) {
                    let index = tool_call_index(self.tools as u64)?;
                    self.tools += 1;
                    self.tool_of_block.push((e.content_block_index, index));
                    out.push(Delta::ToolCall {
                        index,
                        id: tool.tool_use_id,
                        name: tool.name,
                        arguments: String::new(),
                    });
                }
            }
            Event::BlockDelta(e) => self.on_block_delta(e, out),
            Event::MessageStop(e) => out.extend(e.stop_reason.map(|r| Delta::Finish(finish_from(&r)))),
            Event::Metadata(e) => out.extend(e.usage.map(|u| Delta::Usage(u.to_usage()))),
            Event::Other => {}
        }
        Ok(())
    }

    fn on_block_delta(&mut self, e: BlockDeltaEvent, out: &mut Vec<Delta>) {
        let Some(d) = e.delta else { return };
        if let Some(t) = d.text {
            if !t.is_empty() {
                out.push(Delta::Text(t));
            }
        } else if let Some(input) = d.tool_use.and_then(|t| t.input) {
            let block = e.content_block_index;
            if let Some(&(_, index)) = self.tool_of_block.iter().find(|(b, _)| *b == block) {
                out.push(Delta::ToolCall {
                    index,
                    id: None,
                    name: None,
                    arguments: input,
                });
            }
        } else if let Some(r) = d.reasoning_content {
            out.extend(r.text.map(Delta::Reasoning));
            out.extend(r.signature.map(Delta::ReasoningSignature));
        }
    }

    /// One whole frame: an event, or an exception that ends the stream.
    fn on_frame(&mut self, m: &aws_smithy_types::event_stream::Message, out: &mut Vec<Delta>) -> Result<(), ApiError> {
        if header_str(m, ":message-type") != Some("event") {
            return Err(exception(m));
        }
        let kind = header_str(m, ":event-type").unwrap_or("");
        let event = Event::parse(kind, m.payload())
            .map_err(|_| ApiError::provider(format!("The provider sent a malformed `{kind}` event.")))?;
        self.on_event(event, out)
    }

    fn fail(&mut self, e: ApiError, out: &mut Vec<Delta>) {
        self.failed = true;
        out.push(Delta::Error(e));
    }
}

/// The error an exception frame stands for.
fn exception(m: &aws_smithy_types::event_stream::Message) -> ApiError {
    let kind = header_str(m, ":exception-type")
        .or_else(|| header_str(m, ":error-code"))
        .unwrap_or("error");
    let payload: ExceptionPayload = serde_json::from_slice(m.payload()).unwrap_or_default();
    let msg = payload
        .message
        .or(payload.message_upper)
        .or_else(|| header_str(m, ":error-message").map(str::to_owned))
        .unwrap_or_else(|| "unknown error".into());
    ApiError::provider(format!("The provider's stream failed ({kind}): {msg}"))
}

fn header_str<'a>(m: &'a aws_smithy_types::event_stream::Message, name: &str) -> Option<&'a str> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

impl Decode for StreamDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Delta>) {
        if self.failed {
            return;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            let step = match self.frames.decode_frame(&mut self.buf) {
                // The decoder waits for a whole frame whatever length it
                // announces: bound what a frame may hold, as for SSE events.
                Ok(DecodedFrame::Incomplete) if self.buf.len() > crate::codec::MAX_EVENT_BYTES => Err(
                    ApiError::provider("The provider sent a stream event larger than Hub accepts."),
                ),
                Ok(DecodedFrame::Incomplete) => return,
                Ok(DecodedFrame::Complete(m)) => self.on_frame(&m, out),
                Err(e) => Err(ApiError::provider(format!(
                    "The provider's event stream is malformed: {e}"
                ))),
            };
            if let Err(e) = step {
                return self.fail(e, out);
            }
        }
    }

    fn end(&mut self, out: &mut Vec<Delta>) {
        if !self.failed && !self.buf.is_empty() {
            self.fail(
                ApiError::provider("The provider's event stream ended inside a frame."),
                out,
            );
        }
    }
}

/// A whole Converse answer, as far as Hub reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WholeAnswer {
    #[serde(default)]
    output: Option<WholeOutput>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WholeOutput {
    #[serde(default)]
    message: Option<WholeMessage>,
}

#[derive(Deserialize)]
struct WholeMessage {
    #[serde(default)]
    content: Vec<WholeBlock>,
}

/// A content block carries one of these (checked in this order).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WholeBlock {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<WholeToolUse>,
    #[serde(default)]
    reasoning_content: Option<WholeReasoning>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WholeToolUse {
    #[serde(default)]
    tool_use_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WholeReasoning {
    #[serde(default)]
    reasoning_text: Option<ReasoningDelta>,
}

/// A whole Converse answer into deltas.
pub fn decode_whole(body: &[u8]) -> Result<Vec<Delta>, ApiError> {
    let v: WholeAnswer = serde_json::from_slice(body)
        .map_err(|_| ApiError::provider("The provider answered with something that is not a Converse answer."))?;
    let mut out = Vec::new();
    let mut tools = 0;
    for block in v.output.and_then(|o| o.message).map(|m| m.content).unwrap_or_default() {
        if let Some(t) = block.text {
            out.push(Delta::Text(t));
        } else if let Some(tool) = block.tool_use {
            out.push(Delta::ToolCall {
                index: tool_call_index(tools)?,
                id: tool.tool_use_id,
                name: tool.name,
                arguments: tool.input.map_or_else(|| "{}".into(), |v| v.to_string()),
            });
            tools += 1;
        } else if let Some(r) = block.reasoning_content.and_then(|r| r.reasoning_text) {
            out.push(Delta::Reasoning(r.text.unwrap_or_default()));
            out.extend(r.signature.map(Delta::ReasoningSignature));
        }
    }
    out.extend(v.stop_reason.map(|r| Delta::Finish(finish_from(&r))));
    out.extend(v.usage.map(|u| Delta::Usage(u.to_usage())));
    Ok(out)
}

/// One event-stream frame, as Bedrock sends them (for the mock provider and tests).
pub fn frame(message_type: &str, event_type: &str, payload: &Value) -> Vec<u8> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let type_header = if message_type == "exception" {
        ":exception-type"
    } else {
        ":event-type"
    };
    let m = Message::new(serde_json::to_vec(payload).unwrap_or_default())
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(message_type.to_string().into()),
        ))
        .add_header(Header::new(
            type_header,
            HeaderValue::String(event_type.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut out = Vec::new();
    let _ = aws_smithy_eventstream::frame::write_message_to(&m, &mut out);
    out
}

#[cfg(test)]
mod frame_limit_tests {
    use super::*;

    #[test]
    fn a_frame_that_never_ends_is_refused_once_it_is_too_large() {
        let mut d = StreamDecoder::default();
        let mut out = Vec::new();
        // A prelude announcing a 4 GiB frame, then megabytes of it.
        let mut prelude = vec![0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0];
        let crc = crc32(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        d.feed(&prelude, &mut out);
        let chunk = vec![0u8; 1024 * 1024];
        for _ in 0..9 {
            d.feed(&chunk, &mut out);
        }
        assert!(matches!(out.last(), Some(Delta::Error(_))), "{out:?}");
        assert!(d.buf.len() <= crate::codec::MAX_EVENT_BYTES + chunk.len());
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xedb8_8320 & (!(crc & 1)).wrapping_add(1));
            }
        }
        !crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_all;
    use serde_json::json;

    #[test]
    fn cache_control_becomes_cache_points_after_the_marked_blocks() {
        let chat = crate::protocols::anthropic::parse(
            json!({"model": "m", "max_tokens": 10,
                "system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
                "tools": [{"name": "f", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
                          {"name": "g", "input_schema": {"type": "object"}}],
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "doc", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "q"}]}]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let body = serde_json::to_value(body(&chat).unwrap()).unwrap();
        assert_eq!(
            body["system"],
            json!([{"text": "ab"}, {"cachePoint": {"type": "default", "ttl": "1h"}}])
        );
        assert_eq!(
            body["toolConfig"]["tools"],
            json!([{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}},
                   {"cachePoint": {"type": "default"}},
                   {"toolSpec": {"name": "g", "inputSchema": {"json": {"type": "object"}}}}])
        );
        assert_eq!(
            body["messages"][0]["content"],
            json!([{"text": "doc"}, {"cachePoint": {"type": "default"}}, {"text": "q"}])
        );
        // Automatic caching (a top-level `cache_control`) marks the end of the prompt.
        let auto = crate::protocols::anthropic::parse(
            br#"{"model":"m","max_tokens":1,"cache_control":{"type":"ephemeral"},"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        let body = serde_json::to_value(super::body(&auto).unwrap()).unwrap();
        assert_eq!(
            body["messages"][0]["content"],
            json!([{"text": "hi"}, {"cachePoint": {"type": "default"}}])
        );
    }

    #[test]
    fn cache_reads_and_writes_are_read_by_lifetime() {
        let u: WireUsage = serde_json::from_value(json!({"inputTokens": 12, "outputTokens": 4, "totalTokens": 6016,
            "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 5000,
            "cacheDetails": [{"ttl": "1h", "inputTokens": 3000}, {"ttl": "5m", "inputTokens": 2000}]}))
        .unwrap();
        let u = u.to_usage();
        assert_eq!(
            (
                u.input_tokens,
                u.cache_read_tokens,
                u.cache_write_tokens,
                u.cache_write_1h_tokens
            ),
            (12, 1000, 5000, 3000)
        );
    }

    #[test]
    fn decodes_frames_split_anywhere() {
        let mut stream = Vec::new();
        stream.extend(frame("event", "messageStart", &json!({"role": "assistant"})));
        stream.extend(frame(
            "event",
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
        ));
        stream.extend(frame(
            "event",
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": "lo"}}),
        ));
        stream.extend(frame(
            "event",
            "contentBlockStart",
            &json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}}),
        ));
        stream.extend(frame(
            "event",
            "contentBlockDelta",
            &json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"a\":1}"}}}),
        ));
        stream.extend(frame("event", "messageStop", &json!({"stopReason": "tool_use"})));
        stream.extend(frame(
            "event",
            "metadata",
            &json!({"usage": {"inputTokens": 9, "outputTokens": 4, "cacheReadInputTokens": 100}}),
        ));
        for split in [1, 7, 13, stream.len()] {
            let mut d = StreamDecoder::default();
            let mut out = Vec::new();
            for piece in stream.chunks(split) {
                d.feed(piece, &mut out);
            }
            d.end(&mut out);
            let r = crate::chat::Reply::from_deltas(out).unwrap();
            assert_eq!(r.text, "Hello");
            assert_eq!(r.tool_calls[0].arguments, "{\"a\":1}");
            let u = r.usage.unwrap();
            assert_eq!((u.input_tokens, u.cache_read_tokens, u.output_tokens), (9, 100, 4));
        }
    }

    #[test]
    fn an_exception_frame_ends_the_stream_with_an_error() {
        let mut stream = frame("event", "contentBlockDelta", &json!({"delta": {"text": "Hi"}}));
        stream.extend(frame(
            "exception",
            "throttlingException",
            &json!({"message": "Too many requests"}),
        ));
        let out = decode_all(StreamDecoder::default(), &stream);
        assert_eq!(out[0], Delta::Text("Hi".into()));
        match &out[1] {
            Delta::Error(e) => assert!(e.message.contains("throttlingException") && e.message.contains("Too many")),
            other => panic!("expected an error, got {other:?}"),
        }
        // A corrupted frame is an error too, never a panic.
        let mut bad = frame("event", "contentBlockDelta", &json!({"delta": {"text": "Hi"}}));
        bad[20] ^= 0xff;
        assert!(matches!(
            decode_all(StreamDecoder::default(), &bad).last(),
            Some(Delta::Error(_))
        ));
    }

    #[test]
    fn secrets_pick_sigv4_or_api_key() {
        let h = sign(
            "POST",
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse",
            b"{}",
            "AKID:SECRET",
            "us-east-1",
            "bedrock",
            1_700_000_000_000,
        )
        .unwrap();
        let auth = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/20231114/us-east-1/bedrock/aws4_request"),
            "{auth}"
        );
        assert!(h.iter().any(|(k, v)| k == "x-amz-date" && v == "20231114T221320Z"));
        let h = sign(
            "POST",
            "https://x/model/m/converse",
            b"{}",
            "bedrock-api-key-abc",
            "us-east-1",
            "bedrock",
            0,
        )
        .unwrap();
        assert!(h
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer bedrock-api-key-abc"));
        assert_eq!(
            chat_url("https://e", "anthropic.claude-3-5-sonnet-20240620-v1:0", true),
            "https://e/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
        );
    }
}
