//! Amazon Bedrock Converse and ConverseStream: the request signed with SigV4
//! (aws-sigv4) or a Bedrock API key, and the binary AWS event stream decoded
//! with aws-smithy-eventstream. `inputTokens` excludes cache reads and
//! writes, as Anthropic's does.

use crate::chat::{arguments_object, unsupported, Chat, Delta, Finish, Image, OutputFormat, Part, Role, ToolChoice};
use crate::codec::Decode;
use crate::error::ApiError;
use crate::metering::Usage;
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use bytes::BytesMut;
use serde::Deserialize;
use serde_json::{json, Map, Value};

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

/// A Converse body from the internal model.
pub fn body(chat: &Chat) -> Result<Value, ApiError> {
    if chat.output != OutputFormat::Text {
        return Err(unsupported("bedrock", "JSON output (`response_format`)"));
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
                Part::Text(t) => json!({"text": t}),
                Part::Image(Image::Base64 { media_type, data }) => {
                    let format = image_format(media_type)
                        .ok_or_else(|| unsupported("bedrock", &format!("An image of type `{media_type}`")))?;
                    json!({"image": {"format": format, "source": {"bytes": data}}})
                }
                Part::Image(Image::Url(_)) => {
                    return Err(unsupported(
                        "bedrock",
                        "An image by URL (send it as a base64 data: URL)",
                    ))
                }
                Part::ToolCall { id, name, arguments } => {
                    json!({"toolUse": {"toolUseId": id, "name": name, "input": arguments_object(arguments)?}})
                }
                Part::ToolResult { id, content, is_error } => json!({"toolResult": {
                    "toolUseId": id, "content": [{"text": content}],
                    "status": if *is_error { "error" } else { "success" },
                }}),
                Part::Reasoning { text, signature } => match signature {
                    Some(sig) => json!({"reasoningContent": {"reasoningText": {"text": text, "signature": sig}}}),
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
    b.insert("messages".into(), Value::Array(messages));
    if let Some(s) = &chat.system {
        b.insert("system".into(), json!([{ "text": s }]));
    }
    let mut inference = Map::new();
    if let Some(n) = chat.max_tokens {
        inference.insert("maxTokens".into(), json!(n));
    }
    if let Some(t) = chat.temperature {
        inference.insert("temperature".into(), json!(t));
    }
    if let Some(t) = chat.top_p {
        inference.insert("topP".into(), json!(t));
    }
    if !chat.stop.is_empty() {
        inference.insert("stopSequences".into(), json!(chat.stop));
    }
    if !inference.is_empty() {
        b.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if !chat.tools.is_empty() && chat.tool_choice != Some(ToolChoice::None) {
        let tools: Vec<Value> = chat
            .tools
            .iter()
            .map(|t| {
                let mut spec = json!({"name": t.name, "inputSchema": {"json": t.parameters}});
                if let Some(d) = &t.description {
                    spec["description"] = json!(d);
                }
                json!({ "toolSpec": spec })
            })
            .collect();
        let mut config = json!({ "tools": tools });
        match &chat.tool_choice {
            Some(ToolChoice::Required) => config["toolChoice"] = json!({"any": {}}),
            Some(ToolChoice::Tool(name)) => config["toolChoice"] = json!({"tool": {"name": name}}),
            Some(ToolChoice::Auto) => config["toolChoice"] = json!({"auto": {}}),
            _ => {}
        }
        b.insert("toolConfig".into(), config);
    }
    if let Some(r) = &chat.reasoning {
        b.insert(
            "additionalModelRequestFields".into(),
            json!({"thinking": {"type": "enabled", "budget_tokens": r.budget().max(1024)}}),
        );
    }
    Ok(Value::Object(b))
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
}

impl WireUsage {
    pub fn to_usage(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_tokens: self.cache_read_input_tokens,
            cache_write_tokens: self.cache_write_input_tokens,
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
    fn on_event(&mut self, event_type: &str, payload: &Value, out: &mut Vec<Delta>) {
        let block = payload.get("contentBlockIndex").and_then(Value::as_u64).unwrap_or(0);
        match event_type {
            "contentBlockStart" => {
                if let Some(tool) = payload.pointer("/start/toolUse") {
                    let index = self.tools;
                    self.tools += 1;
                    self.tool_of_block.push((block, index));
                    out.push(Delta::ToolCall {
                        index,
                        id: tool.get("toolUseId").and_then(Value::as_str).map(str::to_owned),
                        name: tool.get("name").and_then(Value::as_str).map(str::to_owned),
                        arguments: String::new(),
                    });
                }
            }
            "contentBlockDelta" => {
                let d = &payload["delta"];
                if let Some(t) = d.get("text").and_then(Value::as_str) {
                    if !t.is_empty() {
                        out.push(Delta::Text(t.to_string()));
                    }
                } else if let Some(input) = d.pointer("/toolUse/input").and_then(Value::as_str) {
                    if let Some(&(_, index)) = self.tool_of_block.iter().find(|(b, _)| *b == block) {
                        out.push(Delta::ToolCall {
                            index,
                            id: None,
                            name: None,
                            arguments: input.to_string(),
                        });
                    }
                } else if let Some(r) = d.get("reasoningContent") {
                    if let Some(t) = r.get("text").and_then(Value::as_str) {
                        out.push(Delta::Reasoning(t.to_string()));
                    }
                    if let Some(s) = r.get("signature").and_then(Value::as_str) {
                        out.push(Delta::ReasoningSignature(s.to_string()));
                    }
                }
            }
            "messageStop" => {
                if let Some(r) = payload.get("stopReason").and_then(Value::as_str) {
                    out.push(Delta::Finish(finish_from(r)));
                }
            }
            "metadata" => {
                if let Some(u) = payload.get("usage").and_then(|u| WireUsage::deserialize(u).ok()) {
                    out.push(Delta::Usage(u.to_usage()));
                }
            }
            _ => {}
        }
    }

    fn fail(&mut self, msg: String, out: &mut Vec<Delta>) {
        self.failed = true;
        out.push(Delta::Error(ApiError::provider(msg)));
    }
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
            match self.frames.decode_frame(&mut self.buf) {
                // The decoder waits for a whole frame whatever length it
                // announces: bound what a frame may hold, as for SSE events.
                Ok(DecodedFrame::Incomplete) if self.buf.len() > crate::codec::MAX_EVENT_BYTES => {
                    self.failed = true;
                    out.push(Delta::Error(ApiError::provider(
                        "The provider sent a stream event larger than Hub accepts.",
                    )));
                    return;
                }
                Ok(DecodedFrame::Incomplete) => return,
                Ok(DecodedFrame::Complete(m)) => {
                    let payload: Value = serde_json::from_slice(m.payload()).unwrap_or(Value::Null);
                    match header_str(&m, ":message-type") {
                        Some("event") => {
                            let kind = header_str(&m, ":event-type").unwrap_or("").to_string();
                            self.on_event(&kind, &payload, out);
                        }
                        _ => {
                            let kind = header_str(&m, ":exception-type")
                                .or_else(|| header_str(&m, ":error-code"))
                                .unwrap_or("error")
                                .to_string();
                            let msg = payload
                                .get("message")
                                .or_else(|| payload.get("Message"))
                                .and_then(Value::as_str)
                                .or_else(|| header_str(&m, ":error-message"))
                                .unwrap_or("unknown error")
                                .to_string();
                            return self.fail(format!("The provider's stream failed ({kind}): {msg}"), out);
                        }
                    }
                }
                Err(e) => return self.fail(format!("The provider's event stream is malformed: {e}"), out),
            }
        }
    }

    fn end(&mut self, out: &mut Vec<Delta>) {
        if !self.failed && !self.buf.is_empty() {
            self.fail("The provider's event stream ended inside a frame.".into(), out);
        }
    }
}

/// A whole Converse answer into deltas.
pub fn decode_whole(body: &[u8]) -> Result<Vec<Delta>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::provider("The provider answered with something that is not JSON."))?;
    let mut out = Vec::new();
    let mut tools = 0;
    for block in v
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            out.push(Delta::Text(t.to_string()));
        } else if let Some(tool) = block.get("toolUse") {
            out.push(Delta::ToolCall {
                index: tools,
                id: tool.get("toolUseId").and_then(Value::as_str).map(str::to_owned),
                name: tool.get("name").and_then(Value::as_str).map(str::to_owned),
                arguments: tool.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
            });
            tools += 1;
        } else if let Some(r) = block.pointer("/reasoningContent/reasoningText") {
            out.push(Delta::Reasoning(r["text"].as_str().unwrap_or("").to_string()));
            if let Some(s) = r.get("signature").and_then(Value::as_str) {
                out.push(Delta::ReasoningSignature(s.to_string()));
            }
        }
    }
    if let Some(r) = v.get("stopReason").and_then(Value::as_str) {
        out.push(Delta::Finish(finish_from(r)));
    }
    if let Some(u) = v.get("usage").and_then(|u| WireUsage::deserialize(u).ok()) {
        out.push(Delta::Usage(u.to_usage()));
    }
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
