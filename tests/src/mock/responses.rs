//! OpenAI's Responses API on the mock (`POST …/responses`): whole Response
//! objects and event streams in OpenAI's shapes, with usage as OpenAI
//! reports it (cached tokens inside `input_tokens`).

use super::{sse, Behavior};
use bytes::Bytes;
use serde_json::{json, Value};

fn usage(b: &Behavior) -> Value {
    json!({
        "input_tokens": b.prompt_tokens,
        "input_tokens_details": {"cached_tokens": b.cached_tokens},
        "output_tokens": b.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": b.prompt_tokens + b.completion_tokens,
    })
}

/// The output items of an answer: a message with the text (if any), then each tool call.
fn items(b: &Behavior) -> Vec<Value> {
    let mut out = Vec::new();
    let text = b.pieces.concat();
    if !text.is_empty() || b.tool_calls.is_empty() {
        out.push(
            json!({"id": "msg_mock", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}),
        );
    }
    for (i, (name, args)) in b.tool_calls.iter().enumerate() {
        out.push(
            json!({"id": format!("fc_mock_{i}"), "type": "function_call", "status": "completed",
            "call_id": format!("call_mock_{i}"), "name": name, "arguments": args.concat()}),
        );
    }
    out
}

fn response(model: &str, status: &str, output: Vec<Value>, usage: Option<Value>) -> Value {
    let mut r = json!({"id": "resp_mock", "object": "response", "created_at": 1, "status": status,
        "error": null, "incomplete_details": null, "instructions": null, "model": model, "output": output,
        "parallel_tool_calls": true, "temperature": 1.0, "tool_choice": "auto", "tools": [], "top_p": 1.0,
        "metadata": {}});
    if let Some(u) = usage {
        r["usage"] = u;
    }
    r
}

/// A whole answer.
pub(super) fn whole(model: &str, b: &Behavior) -> Value {
    response(model, "completed", items(b), b.usage.then(|| usage(b)))
}

/// A streamed answer, one event per frame, numbered from 0.
pub(super) fn frames(model: &str, b: &Behavior) -> Vec<Bytes> {
    let mut events: Vec<Value> = vec![
        json!({"type": "response.created", "response": response(model, "in_progress", vec![], None)}),
        json!({"type": "response.in_progress", "response": response(model, "in_progress", vec![], None)}),
    ];
    for (index, item) in items(b).into_iter().enumerate() {
        item_events(b, index, item, &mut events);
    }
    let done = response(model, "completed", items(b), b.usage.then(|| usage(b)));
    events.push(json!({"type": "response.completed", "response": done}));
    events
        .into_iter()
        .enumerate()
        .map(|(seq, mut ev)| {
            ev["sequence_number"] = json!(seq);
            let kind = ev["type"].as_str().unwrap_or_default().to_string();
            sse(Some(&kind), &ev)
        })
        .collect()
}

/// One output item's events: added, its deltas, done.
fn item_events(b: &Behavior, index: usize, item: Value, events: &mut Vec<Value>) {
    let id = item["id"].clone();
    let mut added = item.clone();
    added["status"] = json!("in_progress");
    if item["type"] == "message" {
        added["content"] = json!([]);
        events.push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
        for p in &b.pieces {
            events.push(
                json!({"type": "response.output_text.delta", "item_id": id, "output_index": index,
                "content_index": 0, "delta": p, "logprobs": []}),
            );
        }
    } else {
        added["arguments"] = json!("");
        events.push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
        let call = index - usize::from(events.iter().any(|e| e["item"]["type"] == "message"));
        for a in b.tool_calls.get(call).map(|c| &c.1[..]).unwrap_or_default() {
            events.push(json!({"type": "response.function_call_arguments.delta", "item_id": id,
                "output_index": index, "delta": a}));
        }
    }
    events.push(json!({"type": "response.output_item.done", "output_index": index, "item": item}));
}

/// Whether a request (in any protocol) carries a tool's result: a
/// `function_call_output` item, a `tool` message, a `tool_result` block, a
/// Gemini `functionResponse` or a Bedrock `toolResult`.
pub(super) fn has_tool_result(v: &Value) -> bool {
    match v {
        Value::Object(o) => {
            o.get("type")
                .is_some_and(|t| t == "function_call_output" || t == "tool_result")
                || o.get("role").is_some_and(|r| r == "tool")
                || o.contains_key("functionResponse")
                || o.contains_key("toolResult")
                || o.values().any(has_tool_result)
        }
        Value::Array(a) => a.iter().any(has_tool_result),
        _ => false,
    }
}
