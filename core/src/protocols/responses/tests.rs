use super::convert::SIGNATURE_PREFIX;
use super::*;
use crate::chat::{OutputFormat, Part, Role, ToolChoice};
use serde_json::json;

fn req(v: Value) -> Result<ResponsesRequest, ApiError> {
    parse(v.to_string().as_bytes())
}

fn codex_request() -> Value {
    json!({
        "model": "m", "stream": true,
        "input": [
            {"type": "message", "id": "msg_1", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "run echo hi"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "plan"}], "content": null,
             "encrypted_content": format!("{SIGNATURE_PREFIX}sig")},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "exec_command", "arguments": "{\"cmd\":\"echo hi\"}", "status": "completed"},
            {"type": "function_call", "call_id": "call_2", "name": "spawn", "namespace": "agents", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "hi\n"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "ok"}]},
        ],
        "tools": [
            {"type": "function", "name": "exec_command", "parameters": {"type": "object"}, "strict": false},
            {"type": "namespace", "name": "agents", "description": "d", "tools": [{"type": "function", "name": "spawn", "parameters": null}]},
            {"type": "web_search", "external_web_access": false},
        ],
        "tool_choice": "auto", "parallel_tool_calls": true, "reasoning": {"summary": "auto"},
        "store": false, "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k",
        "client_metadata": {"session_id": "s"},
    })
}

#[test]
fn codex_requests_convert_whole_history_flattened_namespaces_and_no_search() {
    let r = req(codex_request()).unwrap();
    assert!(r.stream);
    let (chat, names) = r.to_chat().unwrap();
    assert_eq!(chat.system.as_deref(), Some("Be brief."));
    assert_eq!(chat.messages.len(), 3, "{:?}", chat.messages);
    assert_eq!(chat.messages[0].role, Role::User);
    let assistant = &chat.messages[1];
    assert_eq!(assistant.role, Role::Assistant);
    assert_eq!(
        assistant.parts[0],
        Part::Reasoning {
            text: "plan".into(),
            signature: Some("sig".into())
        }
    );
    assert!(
        matches!(&assistant.parts[2], Part::ToolCall { name, id, .. } if name == "agents__spawn" && id == "call_2")
    );
    assert!(matches!(&chat.messages[2].parts[1], Part::ToolResult { content, .. } if content == "ok"));
    let tools: Vec<&str> = chat.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tools, ["exec_command", "agents__spawn"], "web_search dropped");
    assert_eq!(names.restore("agents__spawn"), Some(("agents", "spawn")));
    assert_eq!(chat.tool_choice, Some(ToolChoice::Auto));
    assert!(chat.reasoning.is_none(), "a summary alone asks for no reasoning");
    // Passed through: everything stays but the model, web search (dropped) and `store` (false).
    let up: Value = serde_json::from_slice(&r.upstream_body("gpt-x")).unwrap();
    assert_eq!(up["model"], "gpt-x");
    assert_eq!(up["store"], false);
    assert_eq!(up["client_metadata"]["session_id"], "s");
    let kinds: Vec<&str> = up["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"web_search"), "{kinds:?}");
    assert_eq!(up["input"][2]["content"], Value::Null);
}

#[test]
fn foreign_reasoning_is_carried_unsigned() {
    let mut v = codex_request();
    v["input"][2]["encrypted_content"] = json!("gAAAA-openai");
    let (chat, _) = req(v).unwrap().to_chat().unwrap();
    assert!(matches!(
        &chat.messages[1].parts[0],
        Part::Reasoning { signature: None, .. }
    ));
}

#[test]
fn server_state_is_refused_naming_the_field() {
    for (extra, field) in [
        (json!({"previous_response_id": "resp_1"}), "previous_response_id"),
        (json!({"conversation": "conv_1"}), "conversation"),
        (json!({"background": true}), "background"),
        (json!({"input": [{"type": "item_reference", "id": "x"}]}), "input[0]"),
    ] {
        let mut v = json!({"model": "m", "input": "hi"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        let e = req(v).unwrap_err();
        assert_eq!(e.param.as_deref(), Some(field), "{e:?}");
        assert!(e.message.contains("Hub keeps no responses"), "{}", e.message);
    }
    // Null means unset, and `store: true` is accepted.
    req(json!({"model": "m", "input": "hi", "previous_response_id": null, "store": true})).unwrap();
}

#[test]
fn bad_bodies_are_refused_naming_the_field() {
    let e = |v: Value| req(v).unwrap_err().param;
    assert_eq!(e(json!({"input": "hi"})).as_deref(), Some("model"));
    assert_eq!(e(json!({"model": "m"})).as_deref(), Some("input"));
    assert_eq!(e(json!({"model": "m", "input": 3})).as_deref(), Some("input"));
    assert_eq!(
        e(json!({"model": "m", "input": "x", "max_output_tokens": 0})).as_deref(),
        Some("max_output_tokens")
    );
    assert_eq!(
        e(json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}})).as_deref(),
        Some("text.format.name")
    );
    assert_eq!(
        e(json!({"model": "m", "input": [{"type": "message", "role": "robot", "content": "x"}]})).as_deref(),
        Some("input[0].role")
    );
}

#[test]
fn what_only_responses_providers_do_is_refused_on_conversion() {
    let convert = |extra: Value| {
        let mut v = json!({"model": "m", "input": "hi"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        req(v).unwrap().to_chat().map(|_| ()).unwrap_err().param
    };
    assert_eq!(
        convert(json!({"tools": [{"type": "file_search"}]})).as_deref(),
        Some("tools[0].type")
    );
    assert_eq!(
        convert(json!({"tools": [{"type": "custom", "name": "x"}]})).as_deref(),
        Some("tools[0].type")
    );
    assert_eq!(
        convert(json!({"include": ["message.output_text.logprobs"]})).as_deref(),
        Some("include[0]")
    );
    assert_eq!(
        convert(json!({"tool_choice": {"type": "web_search"}})).as_deref(),
        Some("tool_choice.type")
    );
    assert_eq!(convert(json!({"top_logprobs": 2})).as_deref(), Some("top_logprobs"));
    assert_eq!(
        convert(json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]})).as_deref(),
        Some("input[0].content[0].type")
    );
}

#[test]
fn parameters_map_onto_the_chat_model() {
    let r = req(json!({
        "model": "m", "input": "hi", "instructions": "sys", "max_output_tokens": 77, "temperature": 0.5,
        "reasoning": {"effort": "high"}, "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}, "strict": true}},
    }))
    .unwrap();
    let (chat, _) = r.to_chat().unwrap();
    assert_eq!(chat.system.as_deref(), Some("sys"));
    assert_eq!(chat.max_tokens, Some(77));
    assert_eq!(chat.temperature, Some(0.5));
    assert_eq!(chat.reasoning.unwrap().effort.as_deref(), Some("high"));
    assert_eq!(chat.tool_choice, Some(ToolChoice::Tool("f".into())));
    assert!(matches!(chat.output, OutputFormat::JsonSchema { strict: true, .. }));
    assert_eq!(chat.messages[0].parts, vec![Part::Text("hi".into())]);
    assert_eq!(
        r.prompt.text_bytes as usize,
        "hi".len() + "sys".len() + json_len_of_text(&r)
    );
}

fn json_len_of_text(r: &ResponsesRequest) -> usize {
    super::super::openai::json_len(r.body.text.as_ref().unwrap()) as usize
}

#[test]
fn responses_usage_bills_each_token_once() {
    let u: tap::WireUsage = serde_json::from_value(json!({
        "input_tokens": 100, "input_tokens_details": {"cached_tokens": 40},
        "output_tokens": 25, "output_tokens_details": {"reasoning_tokens": 10}, "total_tokens": 125
    }))
    .unwrap();
    let u = u.to_usage();
    assert_eq!(
        (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens),
        (60, 40, 25, 10)
    );
}

/// The events written from typed structs (deltas, items, snapshots) keep the
/// key order of those built as JSON maps (sorted), so a converted stream reads
/// the same whichever way an event is made; and every event is numbered.
#[test]
fn converted_stream_events_have_sorted_keys_and_consecutive_numbers() {
    use crate::chat::{Delta, Finish};
    use crate::codec::{Billed, Encode, Meta};
    let r = req(codex_request()).unwrap();
    let (_, names) = r.to_chat().unwrap();
    let meta = Meta {
        call_id: "c1".into(),
        model: "m".into(),
        ..Default::default()
    };
    let call = |index, name: Option<&str>, arguments: &str| Delta::ToolCall {
        index,
        id: name.map(|_| format!("call_{index}")),
        name: name.map(str::to_string),
        arguments: arguments.into(),
    };
    let deltas = [
        Delta::Reasoning("plan".into()),
        Delta::ReasoningSignature("sig".into()),
        Delta::Text("hi \"there\"".into()),
        call(0, Some("exec_command"), "{\"cmd\":"),
        call(1, Some("agents__spawn"), "{}"),
        call(0, None, "\"ls\"}"),
        Delta::Finish(Finish::Length),
    ];
    for fails in [false, true] {
        let mut enc = render::Encoder::new(&meta, render::Echo::of(&r), names.clone());
        let mut out = bytes::BytesMut::new();
        for d in &deltas {
            enc.delta(d, &mut out);
        }
        match fails {
            false => enc.end(&Billed::default(), &mut out),
            true => enc.error(&ApiError::provider("gone"), &mut out),
        }
        let text = std::str::from_utf8(&out).unwrap();
        let datas: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
        assert!(datas.len() > 15, "{text}");
        for (n, data) in datas.iter().enumerate() {
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(serde_json::to_string(&v).unwrap(), *data, "keys out of order");
            assert_eq!(v["sequence_number"], n, "{data}");
        }
    }
}
