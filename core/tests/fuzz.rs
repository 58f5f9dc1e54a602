//! A bounded fuzz pass over every parser that reads untrusted bytes: the
//! OpenAI, Anthropic and AIGNE request parsers, the SSE parser, every
//! provider's stream decoder (Bedrock's binary event stream included) and the
//! whole-answer decoders. Inputs are random bytes, random JSON, and mutations
//! (byte flips, truncations, splices) of the corpus: `tests/fuzz-corpus/` and
//! the provider fixtures. The property is that nothing panics and every parse
//! ends in a value or a clear error. `FUZZ_CASES` sets the cases per target
//! (default 10 000); the pass prints how many inputs it ran.

use hub_core::codec::{decode_all, Decode};
use hub_core::protocols::{aigne, anthropic, openai};
use hub_core::providers::{anthropic as p_anthropic, bedrock, gemini, openai_compat};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

static RUNS: AtomicU64 = AtomicU64::new(0);

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn corpus() -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut out = Vec::new();
    for dir in [
        "fuzz-corpus",
        "fixtures/openai",
        "fixtures/anthropic",
        "fixtures/gemini",
        "fixtures/bedrock",
    ] {
        for entry in std::fs::read_dir(root.join(dir)).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.extension()
                .is_some_and(|e| matches!(e.to_str(), Some("json" | "sse" | "bin" | "jsonl")))
            {
                out.push(std::fs::read(&p).unwrap());
            }
        }
    }
    assert!(out.len() > 20, "corpus too small: {}", out.len());
    out
}

/// Random JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        "[a-z_ ]{0,12}".prop_map(serde_json::Value::String),
        prop::sample::select(vec![
            "user",
            "assistant",
            "system",
            "tool",
            "agent",
            "text",
            "image_url",
            "tool_use",
            "tool_result",
            "function",
            "auto",
            "any",
            "json_schema",
            "base64",
            "url",
            "file",
        ])
        .prop_map(|s| serde_json::Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "model",
                    "messages",
                    "role",
                    "content",
                    "type",
                    "text",
                    "input",
                    "options",
                    "streaming",
                    "stream",
                    "tools",
                    "tool_calls",
                    "toolCalls",
                    "function",
                    "name",
                    "arguments",
                    "max_tokens",
                    "maxTokens",
                    "prompt",
                    "image_url",
                    "url",
                    "source",
                    "data",
                    "system",
                    "tool_choice",
                    "toolChoice",
                    "response_format",
                    "responseFormat",
                    "modelOptions",
                    "id",
                    "tool_use_id",
                    "toolCallId",
                    "n",
                ])
                .prop_map(String::from),
                inner,
                0..6,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A corpus entry, mutated.
fn mutated(corpus: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(corpus),
        prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 0..8),
    )
        .prop_map(|(mut bytes, edits)| {
            for (at, byte, kind) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at % bytes.len();
                match kind {
                    0 => bytes[i] = byte,
                    1 => bytes.truncate(i),
                    2 => bytes.insert(i, byte),
                    _ => {
                        let tail = bytes[i..].to_vec();
                        bytes.extend_from_slice(&tail[..tail.len().min(64)]);
                    }
                }
            }
            bytes
        })
}

fn inputs() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        mutated(corpus()),
    ]
}

/// Every parser and decoder on one input, fed whole and in small pieces.
fn exercise(bytes: &[u8]) {
    RUNS.fetch_add(1, Ordering::Relaxed);
    let _ = openai::parse_chat(bytes).map(|r| r.to_chat());
    let _ = anthropic::parse(bytes);
    let _ = aigne::parse_framework(bytes, None);
    let _ = aigne::parse_legacy(bytes, Some("m"));
    let mut sse = hub_core::sse::SseParser::new();
    for piece in bytes.chunks(7) {
        let _ = sse.push(piece);
    }
    let decoders: Vec<Box<dyn Fn() -> Box<dyn Decode>>> = vec![
        Box::new(|| Box::new(openai_compat::decoder())),
        Box::new(|| Box::new(p_anthropic::decoder())),
        Box::new(|| Box::new(gemini::decoder("f"))),
        Box::new(|| Box::new(bedrock::StreamDecoder::default())),
    ];
    for make in &decoders {
        let _ = decode_all(make(), bytes);
        let mut d = make();
        let mut out = Vec::new();
        for piece in bytes.chunks(5) {
            d.feed(piece, &mut out);
        }
        d.end(&mut out);
    }
    let _ = openai_compat::decode_whole(bytes);
    let _ = p_anthropic::decode_whole(bytes);
    let _ = gemini::decode_whole(bytes, "f");
    let _ = bedrock::decode_whole(bytes);
    let _ = gemini::embed_vectors(bytes);
    let _ = hub_core::providers::ideogram::to_openai(bytes, 0);
}

#[test]
fn no_parser_panics_on_any_input() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&inputs(), |bytes| {
            exercise(&bytes);
            Ok(())
        })
        .unwrap();
    // The corpus itself, unmutated, too.
    for entry in corpus() {
        exercise(&entry);
    }
    println!("fuzz: {} inputs through every parser", RUNS.load(Ordering::Relaxed));
}
