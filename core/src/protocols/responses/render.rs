//! A converted answer in the Responses protocol: the stream of events
//! ([`Encoder`], an [`Encode`]) and the whole Response object
//! ([`render_reply`]), built by the same code so that they agree.
//!
//! Events follow OpenAI's order: `response.created`, `response.in_progress`,
//! then per output item `output_item.added`, its parts and deltas, its
//! `.done` events and `output_item.done`, and one terminal event
//! (`response.completed`, `response.incomplete` or `response.failed`).
//! `sequence_number` counts every event from 0. Tool calls stay open until
//! the answer ends, so a provider that interleaves several calls' argument
//! pieces still gets each piece to the right item.
//!
//! The events sent per piece of text and the Response snapshots are typed
//! structs serialised straight into the output: building them as JSON trees
//! (and cloning the request's tools into every snapshot) made a converted
//! stream cost about a quarter more CPU than a chat stream. Their fields are in
//! alphabetical order, the order in which the other events' JSON objects
//! (sorted maps) come out, so every event reads the same.

use super::convert::{ToolNames, SIGNATURE_PREFIX};
use super::ResponsesRequest;
use crate::chat::{Delta, Finish, Reply};
use crate::codec::{sse, Billed, Encode, Meta};
use crate::error::ApiError;
use crate::metering::Usage;
use bytes::BytesMut;
use serde::{Serialize, Serializer};
use serde_json::{json, Value};

/// What a Response object repeats of its request.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    instructions: Value,
    tools: Value,
    tool_choice: Value,
    parallel_tool_calls: Value,
    metadata: Value,
    temperature: Value,
    top_p: Value,
    max_output_tokens: Value,
    store: Value,
}

impl Echo {
    pub fn of(req: &ResponsesRequest) -> Echo {
        let b = &req.body;
        let or = |v: Option<Value>, d: Value| v.unwrap_or(d);
        fn val<T: serde::Serialize>(v: &Option<T>) -> Value {
            serde_json::to_value(v).unwrap_or(Value::Null)
        }
        Echo {
            instructions: val(&b.instructions),
            tools: or(b.tools.as_ref().and_then(|t| serde_json::to_value(t).ok()), json!([])),
            tool_choice: or(
                b.tool_choice.as_ref().and_then(|t| serde_json::to_value(t).ok()),
                json!("auto"),
            ),
            parallel_tool_calls: json!(b.parallel_tool_calls.unwrap_or(true)),
            metadata: or(b.metadata.as_ref().map(|m| Value::Object(m.clone())), json!({})),
            temperature: val(&b.temperature),
            top_p: val(&b.top_p),
            max_output_tokens: json!(req.max_output_tokens),
            store: json!(b.store.unwrap_or(true)),
        }
    }
}

/// The reasoning or message item being written (tool calls are apart).
enum Open {
    Reasoning {
        at: Slot,
        text: String,
        signature: Option<String>,
    },
    Message {
        at: Slot,
        text: String,
    },
}

/// An output item's position and id.
#[derive(Clone)]
struct Slot {
    index: usize,
    id: String,
}

/// A tool call being written.
struct Call {
    at: Slot,
    call_id: String,
    name: String,
    arguments: String,
}

/// Writes a Responses event stream from deltas.
pub struct Encoder {
    id: String,
    model: String,
    created: i64,
    echo: Echo,
    names: ToolNames,
    seq: u64,
    started: bool,
    /// Finished items, by output index.
    output: Vec<Option<Value>>,
    open: Option<Open>,
    /// Tool calls by the provider's call index.
    calls: Vec<Option<Call>>,
    finish: Option<Finish>,
}

impl Encoder {
    pub fn new(meta: &Meta, echo: Echo, names: ToolNames) -> Encoder {
        Encoder {
            id: format!("resp_{}", meta.call_id),
            model: meta.model.clone(),
            created: meta.created,
            echo,
            names,
            seq: 0,
            started: false,
            output: Vec::new(),
            open: None,
            calls: Vec::new(),
            finish: None,
        }
    }

    /// One event of those sent once per item, numbered.
    fn event(&mut self, kind: &str, mut data: Value, out: &mut BytesMut) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(next(&mut self.seq));
        sse(out, Some(kind), &data);
    }

    /// An output item added or done.
    fn item_event(&mut self, kind: &'static str, output_index: usize, item: &Value, out: &mut BytesMut) {
        let sequence_number = next(&mut self.seq);
        let event = ItemEvent {
            item,
            output_index,
            sequence_number,
            kind,
        };
        sse(out, Some(kind), &event);
    }

    /// An event carrying the Response as it stands.
    fn lifecycle(&mut self, kind: &'static str, stage: Stage, out: &mut BytesMut) {
        let sequence_number = next(&mut self.seq);
        let event = LifecycleEvent {
            response: self.snapshot(stage),
            sequence_number,
            kind,
        };
        sse(out, Some(kind), &event);
    }

    fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        self.lifecycle("response.created", Stage::InProgress, out);
        self.lifecycle("response.in_progress", Stage::InProgress, out);
    }

    /// The Response object as it stands, borrowing the encoder's parts.
    fn snapshot<'a>(&'a self, stage: Stage<'a>) -> Snapshot<'a> {
        let e = &self.echo;
        let (status, error, incomplete_details, usage) = match stage {
            Stage::InProgress => ("in_progress", None, None, None),
            Stage::Completed(u) => ("completed", None, None, Some(usage_json(u))),
            Stage::Incomplete(u, reason) => ("incomplete", None, Some(Incomplete { reason }), Some(usage_json(u))),
            Stage::Failed(message) => {
                let error = Failure {
                    code: "server_error",
                    message,
                };
                ("failed", Some(error), None, None)
            }
        };
        Snapshot {
            created_at: self.created,
            error,
            id: &self.id,
            incomplete_details,
            instructions: &e.instructions,
            max_output_tokens: &e.max_output_tokens,
            metadata: &e.metadata,
            model: &self.model,
            object: "response",
            output: Items(&self.output),
            parallel_tool_calls: &e.parallel_tool_calls,
            previous_response_id: (),
            status,
            store: &e.store,
            temperature: &e.temperature,
            text: TextConfig {
                format: TextFormat { kind: "text" },
            },
            tool_choice: &e.tool_choice,
            tools: &e.tools,
            top_p: &e.top_p,
            truncation: "disabled",
            usage,
        }
    }

    /// A new output item's position and id (`msg_…`, `rs_…`, `fc_…`).
    fn slot(&mut self, prefix: &str) -> Slot {
        let index = self.output.len();
        self.output.push(None);
        Slot {
            index,
            id: format!("{prefix}_{}_{index}", self.id.trim_start_matches("resp_")),
        }
    }

    fn text(&mut self, t: &str, out: &mut BytesMut) {
        if !matches!(self.open, Some(Open::Message { .. })) {
            self.close_open(out);
            let at = self.slot("msg");
            let item =
                json!({"id": at.id, "type": "message", "status": "in_progress", "role": "assistant", "content": []});
            self.item_event("response.output_item.added", at.index, &item, out);
            let part = output_text("");
            let added = json!({"item_id": at.id, "output_index": at.index, "content_index": 0, "part": part});
            self.event("response.content_part.added", added, out);
            self.open = Some(Open::Message {
                at,
                text: String::new(),
            });
        }
        let Some(Open::Message { at, text }) = &mut self.open else {
            return;
        };
        text.push_str(t);
        let kind = "response.output_text.delta";
        let delta = DeltaEvent {
            content_index: Some(0),
            delta: t,
            item_id: &at.id,
            logprobs: Some([]),
            output_index: at.index,
            sequence_number: next(&mut self.seq),
            summary_index: None,
            kind,
        };
        sse(out, Some(kind), &delta);
    }

    fn reasoning(&mut self, t: &str, out: &mut BytesMut) {
        if !matches!(self.open, Some(Open::Reasoning { .. })) {
            self.close_open(out);
            let at = self.slot("rs");
            let item = json!({"id": at.id, "type": "reasoning", "summary": []});
            self.item_event("response.output_item.added", at.index, &item, out);
            let added =
                json!({"item_id": at.id, "output_index": at.index, "summary_index": 0, "part": summary_text("")});
            self.event("response.reasoning_summary_part.added", added, out);
            self.open = Some(Open::Reasoning {
                at,
                text: String::new(),
                signature: None,
            });
        }
        let Some(Open::Reasoning { at, text, .. }) = &mut self.open else {
            return;
        };
        text.push_str(t);
        let kind = "response.reasoning_summary_text.delta";
        let delta = DeltaEvent {
            content_index: None,
            delta: t,
            item_id: &at.id,
            logprobs: None,
            output_index: at.index,
            sequence_number: next(&mut self.seq),
            summary_index: Some(0),
            kind,
        };
        sse(out, Some(kind), &delta);
    }

    fn signature(&mut self, s: &str) {
        if let Some(Open::Reasoning { signature, .. }) = &mut self.open {
            *signature = Some(s.to_string());
        }
    }

    /// Ends the message or reasoning item being written.
    fn close_open(&mut self, out: &mut BytesMut) {
        match self.open.take() {
            Some(Open::Message { at, text }) => self.close_message(at, text, out),
            Some(Open::Reasoning { at, text, signature }) => self.close_reasoning(at, text, signature, out),
            None => {}
        }
    }

    fn close_message(&mut self, at: Slot, text: String, out: &mut BytesMut) {
        let (id, index) = (&at.id, at.index);
        let done = json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []});
        self.event("response.output_text.done", done, out);
        let part = output_text(&text);
        let done = json!({"item_id": id, "output_index": index, "content_index": 0, "part": part});
        self.event("response.content_part.done", done, out);
        let item = json!({"id": id, "type": "message", "status": "completed", "role": "assistant", "content": [part]});
        self.finish_item(index, item, out);
    }

    fn close_reasoning(&mut self, at: Slot, text: String, signature: Option<String>, out: &mut BytesMut) {
        let (id, index) = (&at.id, at.index);
        let done = json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text});
        self.event("response.reasoning_summary_text.done", done, out);
        let part = summary_text(&text);
        let done = json!({"item_id": id, "output_index": index, "summary_index": 0, "part": part});
        self.event("response.reasoning_summary_part.done", done, out);
        let mut item = json!({"id": id, "type": "reasoning", "summary": [part]});
        if let Some(s) = signature {
            // Carried back by the client, it becomes the provider's signature again.
            item["encrypted_content"] = json!(format!("{SIGNATURE_PREFIX}{s}"));
        }
        self.finish_item(index, item, out);
    }

    fn finish_item(&mut self, index: usize, item: Value, out: &mut BytesMut) {
        self.item_event("response.output_item.done", index, &item, out);
        self.output[index] = Some(item);
    }

    fn tool_call(&mut self, index: usize, id: Option<&str>, name: Option<&str>, arguments: &str, out: &mut BytesMut) {
        if self.calls.get(index).is_none_or(Option::is_none) {
            self.open_call(index, id, name, out);
        }
        let Some(Some(call)) = self.calls.get_mut(index) else {
            return;
        };
        if arguments.is_empty() {
            return;
        }
        call.arguments.push_str(arguments);
        let kind = "response.function_call_arguments.delta";
        let delta = DeltaEvent {
            content_index: None,
            delta: arguments,
            item_id: &call.at.id,
            logprobs: None,
            output_index: call.at.index,
            sequence_number: next(&mut self.seq),
            summary_index: None,
            kind,
        };
        sse(out, Some(kind), &delta);
    }

    fn open_call(&mut self, index: usize, id: Option<&str>, name: Option<&str>, out: &mut BytesMut) {
        self.close_open(out);
        let at = self.slot("fc");
        let call = Call {
            call_id: id.map_or_else(|| format!("call_{}", at.id), str::to_string),
            name: name.unwrap_or_default().to_string(),
            arguments: String::new(),
            at,
        };
        let item = self.call_item(&call, "in_progress");
        self.item_event("response.output_item.added", call.at.index, &item, out);
        if self.calls.len() <= index {
            self.calls.resize_with(index + 1, || None);
        }
        self.calls[index] = Some(call);
    }

    /// A function call item, its namespace restored if Hub flattened it.
    fn call_item(&self, call: &Call, status: &str) -> Value {
        let mut item = json!({"id": call.at.id, "type": "function_call", "status": status,
            "call_id": call.call_id, "name": call.name, "arguments": call.arguments});
        if let Some((ns, name)) = self.names.restore(&call.name) {
            item["name"] = json!(name);
            item["namespace"] = json!(ns);
        }
        item
    }

    fn close_calls(&mut self, out: &mut BytesMut) {
        for call in std::mem::take(&mut self.calls).into_iter().flatten() {
            let item = self.call_item(&call, "completed");
            let done = json!({"item_id": call.at.id, "output_index": call.at.index,
                "name": item["name"], "arguments": call.arguments});
            self.event("response.function_call_arguments.done", done, out);
            self.finish_item(call.at.index, item, out);
        }
    }

    /// Closes every item and writes the terminal event for how the answer ended.
    fn conclude(&mut self, usage: &Usage, out: &mut BytesMut) {
        self.start(out);
        self.close_open(out);
        self.close_calls(out);
        let (kind, stage) = self.ending(usage);
        self.lifecycle(kind, stage, out);
    }

    /// The terminal event for how the answer ended, and the Response's stage.
    fn ending<'u>(&self, usage: &'u Usage) -> (&'static str, Stage<'u>) {
        match self.finish {
            Some(Finish::Length) => ("response.incomplete", Stage::Incomplete(usage, "max_output_tokens")),
            Some(Finish::ContentFilter) => ("response.incomplete", Stage::Incomplete(usage, "content_filter")),
            _ => ("response.completed", Stage::Completed(usage)),
        }
    }
}

impl Encode for Encoder {
    fn delta(&mut self, d: &Delta, out: &mut BytesMut) {
        self.start(out);
        match d {
            Delta::Text(t) => self.text(t, out),
            Delta::Reasoning(t) => self.reasoning(t, out),
            Delta::ReasoningSignature(s) => self.signature(s),
            Delta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => self.tool_call(*index, id.as_deref(), name.as_deref(), arguments, out),
            Delta::Finish(f) => self.finish = Some(*f),
            Delta::Usage(_) | Delta::Error(_) => {}
        }
    }

    fn end(&mut self, billed: &Billed, out: &mut BytesMut) {
        self.conclude(&billed.usage, out);
    }

    /// A failure after the first byte: `response.failed` with a code Codex
    /// retries (`server_error`); the relay closes the stream after it.
    fn error(&mut self, e: &ApiError, out: &mut BytesMut) {
        self.start(out);
        self.lifecycle("response.failed", Stage::Failed(&e.message), out);
    }
}

/// The next `sequence_number`.
fn next(seq: &mut u64) -> u64 {
    let n = *seq;
    *seq += 1;
    n
}

/// How the Response stands in a lifecycle event.
enum Stage<'a> {
    InProgress,
    Completed(&'a Usage),
    /// Ended early, for this reason.
    Incomplete(&'a Usage, &'static str),
    /// Failed midway, with this message.
    Failed(&'a str),
}

/// A piece of output text, reasoning summary or tool-call arguments: the
/// events a stream is mostly made of.
#[derive(Serialize)]
struct DeltaEvent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<u8>,
    delta: &'a str,
    item_id: &'a str,
    /// `[]` on output text.
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<[u8; 0]>,
    output_index: usize,
    sequence_number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<u8>,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// `response.output_item.added` / `.done`.
#[derive(Serialize)]
struct ItemEvent<'a> {
    item: &'a Value,
    output_index: usize,
    sequence_number: u64,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// `response.created`, `.in_progress` and the terminal events.
#[derive(Serialize)]
struct LifecycleEvent<'a> {
    response: Snapshot<'a>,
    sequence_number: u64,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// A Response object, borrowed from the encoder and its request's echo.
#[derive(Serialize)]
struct Snapshot<'a> {
    created_at: i64,
    error: Option<Failure<'a>>,
    id: &'a str,
    incomplete_details: Option<Incomplete>,
    instructions: &'a Value,
    max_output_tokens: &'a Value,
    metadata: &'a Value,
    model: &'a str,
    object: &'static str,
    output: Items<'a>,
    parallel_tool_calls: &'a Value,
    /// Always `null`: Hub keeps no responses to continue from.
    previous_response_id: (),
    status: &'static str,
    store: &'a Value,
    temperature: &'a Value,
    text: TextConfig,
    tool_choice: &'a Value,
    tools: &'a Value,
    top_p: &'a Value,
    truncation: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Value>,
}

#[derive(Serialize)]
struct Failure<'a> {
    code: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct Incomplete {
    reason: &'static str,
}

#[derive(Serialize)]
struct TextConfig {
    format: TextFormat,
}

#[derive(Serialize)]
struct TextFormat {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The finished output items, in order (slots still being written are left out).
struct Items<'a>(&'a [Option<Value>]);

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().flatten())
    }
}

/// A whole answer as a Response object: the events' final snapshot.
pub fn render_reply(meta: &Meta, echo: Echo, names: ToolNames, reply: &Reply, usage: &Usage) -> Value {
    let mut enc = Encoder::new(meta, echo, names);
    let mut sink = BytesMut::new();
    for d in reply_deltas(reply) {
        enc.delta(&d, &mut sink);
    }
    enc.conclude(usage, &mut sink);
    let (_, stage) = enc.ending(usage);
    // Serialising Hub's own structs into a Value cannot fail.
    serde_json::to_value(enc.snapshot(stage)).unwrap_or_default()
}

/// A reply as the deltas a stream of it would have carried.
fn reply_deltas(r: &Reply) -> Vec<Delta> {
    let mut deltas = Vec::new();
    if !r.reasoning.is_empty() {
        deltas.push(Delta::Reasoning(r.reasoning.clone()));
        deltas.extend(r.reasoning_signature.clone().map(Delta::ReasoningSignature));
    }
    if !r.text.is_empty() || r.tool_calls.is_empty() {
        deltas.push(Delta::Text(r.text.clone()));
    }
    for (index, c) in r.tool_calls.iter().enumerate() {
        deltas.push(Delta::ToolCall {
            index,
            id: Some(c.id.clone()),
            name: Some(c.name.clone()),
            arguments: c.arguments.clone(),
        });
    }
    deltas.push(Delta::Finish(r.finish_reason()));
    deltas
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn summary_text(text: &str) -> Value {
    json!({"type": "summary_text", "text": text})
}

/// Usage as Responses reports it: cached tokens inside `input_tokens`,
/// reasoning tokens inside `output_tokens`.
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens(),
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens, "cache_write_tokens": u.cache_write_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens(),
    })
}
