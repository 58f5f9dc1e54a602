//! Traces: one span per call, a child span per attempt, W3C trace context in
//! and out, encoded as OTLP `trace.v1.Span`s into a bounded queue that an
//! exporter drains. The call path only encodes and queues (a full queue
//! drops the span and counts it); sending is never awaited by a call.

use super::proto::{attributes, Msg, Value};
use crate::kinds::CallStatus;
use crate::ports::{Rng, RngError};
use crate::store::CallLog;
use std::sync::Mutex;

/// A W3C `traceparent`: the caller's trace and span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceParent {
    /// Reads `00-<trace id>-<span id>-<flags>` (a later version's longer value
    /// is read by the same first fields); None when malformed or all-zero.
    pub fn parse(value: &str) -> Option<TraceParent> {
        let value = value.trim();
        let mut parts = value.split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id: [u8; 16] = hex(trace)?.try_into().ok()?;
        let span_id: [u8; 8] = hex(span)?.try_into().ok()?;
        let flags: [u8; 1] = hex(flags)?.try_into().ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            sampled: flags[0] & 1 == 1,
        })
    }

    /// The header value naming `span_id` in this trace.
    pub fn header(trace_id: &[u8; 16], span_id: &[u8; 8]) -> String {
        format!("00-{}-{}-01", to_hex(trace_id), to_hex(span_id))
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One attempt's span, open while the attempt runs.
#[derive(Debug, Clone)]
pub struct AttemptSpan {
    pub span_id: [u8; 8],
    /// Microseconds after the call's start.
    pub start_offset_us: u64,
    /// `gen_ai.system`: the provider's kind (`openai`, `anthropic`, ...).
    pub system: &'static str,
    /// The model the provider was asked for.
    pub response_model: String,
}

/// A call being traced.
#[derive(Debug, Clone)]
pub struct CallTrace {
    pub trace_id: [u8; 16],
    /// The caller's span, when it sent a `traceparent`.
    pub parent: Option<[u8; 8]>,
    pub span_id: [u8; 8],
    /// Wall clock at the call's start, in nanoseconds since the epoch.
    pub start_ns: u64,
    /// Monotonic clock at the call's start.
    pub start_us: u64,
    pub attempts: Vec<AttemptSpan>,
    /// The request body and the answer, when content capture is on (cut to its cap).
    pub prompt: Option<String>,
    pub completion: Option<String>,
    /// How the model ended its answer, when Hub read it (whole answers).
    pub finish_reasons: Vec<String>,
    /// The most bytes of prompt and answer captured (0: none).
    pub capture: usize,
}

impl CallTrace {
    /// A trace for a call starting now: continuing the caller's, else a new one.
    pub fn start(
        rng: &dyn Rng,
        parent: Option<TraceParent>,
        now_ms: i64,
        start_us: u64,
        capture: usize,
    ) -> Result<CallTrace, RngError> {
        let trace_id = match parent {
            Some(p) => p.trace_id,
            None => random(rng)?,
        };
        Ok(CallTrace {
            trace_id,
            parent: parent.map(|p| p.span_id),
            span_id: random(rng)?,
            start_ns: (now_ms.max(0) as u64) * 1_000_000,
            start_us,
            attempts: Vec::new(),
            prompt: None,
            completion: None,
            finish_reasons: Vec::new(),
            capture,
        })
    }

    /// Opens an attempt's span; returns the `traceparent` to send the provider.
    pub fn begin_attempt(
        &mut self,
        rng: &dyn Rng,
        now_us: u64,
        system: &'static str,
        response_model: &str,
    ) -> Option<String> {
        let span_id = random(rng).ok()?;
        self.attempts.push(AttemptSpan {
            span_id,
            start_offset_us: now_us.saturating_sub(self.start_us),
            system,
            response_model: response_model.to_string(),
        });
        Some(TraceParent::header(&self.trace_id, &span_id))
    }

    /// Keeps up to the cap of `text` as the prompt.
    pub fn capture_prompt(&mut self, body: &[u8]) {
        if self.capture > 0 {
            self.prompt = Some(cut(body, self.capture));
        }
    }

    /// Adds answer bytes, up to the cap.
    pub fn capture_completion(&mut self, bytes: &[u8]) {
        if self.capture == 0 {
            return;
        }
        let have = self.completion.get_or_insert_with(String::new);
        let room = self.capture.saturating_sub(have.len());
        if room > 0 {
            have.push_str(&cut(bytes, room));
        }
    }

    /// The call's span and its attempts' (`logs` oldest first, paired with
    /// the attempt spans in order), encoded; `end_us` the monotonic clock now.
    pub fn spans(&self, logs: &[&CallLog], end_us: u64) -> Vec<Vec<u8>> {
        let Some(last) = logs.last() else {
            return Vec::new();
        };
        let end_ns = self.start_ns + end_us.saturating_sub(self.start_us) * 1000;
        let operation = operation(last.endpoint);
        let mut out = Vec::with_capacity(logs.len() + 1);
        let final_attempt = self.attempts.last();
        let mut call_attrs = gen_ai_attrs(operation, last, final_attempt);
        call_attrs.extend(hub_attrs(last));
        call_attrs.push(("hub.attempts", Value::Int(logs.len() as i64)));
        if !self.finish_reasons.is_empty() {
            call_attrs.push((
                "gen_ai.response.finish_reasons",
                Value::Strs(self.finish_reasons.clone()),
            ));
        }
        let mut call = span(
            &self.trace_id,
            &self.span_id,
            self.parent.as_ref(),
            &format!("{operation} {}", last.model),
            2,
            (self.start_ns, end_ns),
            &call_attrs,
            last,
        );
        let mut event = |name: &str, key: &str, text: &Option<String>| {
            if let Some(t) = text {
                let mut e = Msg::new();
                e.fixed64(1, end_ns).str(2, name);
                attributes(&mut e, 3, &[(key, t.clone().into())]);
                call.msg(11, &e);
            }
        };
        event("gen_ai.content.prompt", "gen_ai.prompt", &self.prompt);
        event("gen_ai.content.completion", "gen_ai.completion", &self.completion);
        out.push(call.into_bytes());
        for (log, at) in logs.iter().zip(&self.attempts) {
            let start = self.start_ns + at.start_offset_us * 1000;
            let end = (self.start_ns + (log.duration_ms.max(0) as u64) * 1_000_000).max(start);
            let end = if std::ptr::eq(*log, *last) {
                end_ns.max(start)
            } else {
                end
            };
            let mut attrs = gen_ai_attrs(operation, log, Some(at));
            attrs.extend(hub_attrs(log));
            attrs.push(("hub.attempt", Value::Int(log.attempt)));
            if let Some(c) = &log.credential_id {
                attrs.push(("hub.credential.id", c.clone().into()));
            }
            let name = format!("{operation} {}", at.response_model);
            out.push(
                span(
                    &self.trace_id,
                    &at.span_id,
                    Some(&self.span_id),
                    &name,
                    3,
                    (start, end),
                    &attrs,
                    log,
                )
                .into_bytes(),
            );
        }
        out
    }
}

/// The finish reasons of a whole chat answer passed on as the provider sent
/// it: OpenAI's `choices[].finish_reason`, Anthropic's `stop_reason`. Other
/// answers (images, audio, video: large, and without one) are not read.
pub fn finish_reasons(endpoint: crate::kinds::Endpoint, body: &[u8]) -> Vec<String> {
    if operation(endpoint) != "chat" {
        return Vec::new();
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        choices: Vec<Choice>,
        stop_reason: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Choice {
        finish_reason: Option<String>,
    }
    match serde_json::from_slice::<Answer>(body) {
        Ok(a) => a
            .choices
            .into_iter()
            .filter_map(|c| c.finish_reason)
            .chain(a.stop_reason)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The `gen_ai.operation.name` of an endpoint.
fn operation(e: crate::kinds::Endpoint) -> &'static str {
    use crate::kinds::Endpoint::*;
    match e {
        Chat | Messages | Responses | AigneChat | AigneCompletions => "chat",
        Embeddings => "embeddings",
        Images => "image_generation",
        Transcriptions => "transcription",
        Translations => "translation",
        _ => e.as_str(),
    }
}

fn gen_ai_attrs(operation: &str, log: &CallLog, at: Option<&AttemptSpan>) -> Vec<(&'static str, Value)> {
    let mut a = vec![
        ("gen_ai.operation.name", operation.into()),
        ("gen_ai.request.model", log.model.clone().into()),
        ("gen_ai.usage.input_tokens", log.usage.input_tokens.into()),
        ("gen_ai.usage.output_tokens", log.usage.output_tokens.into()),
    ];
    if let Some(at) = at {
        a.push(("gen_ai.system", at.system.into()));
        a.push(("gen_ai.response.model", at.response_model.clone().into()));
    }
    a
}

fn hub_attrs(log: &CallLog) -> Vec<(&'static str, Value)> {
    let mut a = vec![
        ("hub.call.id", log.call_id.clone().into()),
        ("hub.endpoint", log.endpoint.as_str().into()),
        ("hub.status", log.status.as_str().into()),
        ("hub.stream", log.stream.into()),
        ("hub.credits", log.credits.to_string().into()),
        ("hub.cache.read_tokens", log.usage.cache_read_tokens.into()),
        ("hub.cache.write_tokens", log.usage.cache_write_tokens.into()),
    ];
    for (k, v) in [
        ("hub.user.id", &log.user_id),
        ("hub.key.id", &log.key_id),
        ("hub.provider", &log.provider),
        ("hub.request.id", &log.request_id),
    ] {
        if let Some(v) = v {
            a.push((k, v.clone().into()));
        }
    }
    if let Some(s) = log.http_status {
        a.push(("http.response.status_code", Value::Int(s)));
    }
    if let Some(e) = &log.error {
        a.push(("error.type", e.chars().take(200).collect::<String>().into()));
    }
    a
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace_id: &[u8; 16],
    span_id: &[u8; 8],
    parent: Option<&[u8; 8]>,
    name: &str,
    kind: u64,
    (start_ns, end_ns): (u64, u64),
    attrs: &[(&str, Value)],
    log: &CallLog,
) -> Msg {
    let mut s = Msg::new();
    s.bytes(1, trace_id).bytes(2, span_id);
    if let Some(p) = parent {
        s.bytes(4, p);
    }
    s.str(5, name).uint(6, kind).fixed64(7, start_ns).fixed64(8, end_ns);
    attributes(&mut s, 9, attrs);
    let mut status = Msg::new();
    match log.status {
        CallStatus::Success => status.uint(3, 1),
        _ => status.str(2, log.error.as_deref().unwrap_or("")).uint(3, 2),
    };
    s.msg(15, &status);
    s
}

fn random<const N: usize>(rng: &dyn Rng) -> Result<[u8; N], RngError> {
    let mut b = [0u8; N];
    rng.fill(&mut b)?;
    Ok(b)
}

/// At most `max` bytes of `bytes` as text, cut at a character boundary.
fn cut(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Most spans waiting for export; more are dropped (and counted).
pub const MAX_QUEUED_SPANS: usize = 4096;

/// Encoded spans waiting for the exporter.
#[derive(Default)]
pub struct SpanQueue {
    spans: Mutex<Vec<Vec<u8>>>,
}

impl SpanQueue {
    /// Queues spans; returns how many were dropped for want of room.
    pub fn push(&self, spans: Vec<Vec<u8>>) -> usize {
        let Ok(mut q) = self.spans.lock() else {
            return spans.len();
        };
        let room = MAX_QUEUED_SPANS.saturating_sub(q.len());
        let dropped = spans.len().saturating_sub(room);
        q.extend(spans.into_iter().take(room));
        dropped
    }

    /// Everything queued, emptying the queue.
    pub fn take(&self) -> Vec<Vec<u8>> {
        self.spans
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.lock().map(|q| q.is_empty()).unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_read_and_written() {
        let p = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(to_hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(to_hex(&p.span_id), "00f067aa0ba902b7");
        assert!(p.sampled);
        assert_eq!(
            TraceParent::header(&p.trace_id, &p.span_id),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        let later = TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what").unwrap();
        assert!(!later.sampled);
    }

    #[test]
    fn captured_text_stops_at_the_cap_on_a_character_boundary() {
        assert_eq!(cut("héllo".as_bytes(), 2), "h");
        assert_eq!(cut(b"hello", 10), "hello");
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let q = SpanQueue::default();
        assert_eq!(q.push(vec![vec![1]; MAX_QUEUED_SPANS - 1]), 0);
        assert_eq!(q.push(vec![vec![2]; 3]), 2);
        assert_eq!(q.take().len(), MAX_QUEUED_SPANS);
        assert!(q.is_empty());
    }
}
