//! A bounded fuzz pass over every parser that reads untrusted bytes: the
//! OpenAI, Anthropic and AIGNE request parsers, the SSE parser, every
//! provider's stream decoder (Bedrock's binary event stream included) and the
//! whole-answer decoders, and what follows them (provider request bodies,
//! the caller's encoders, the cost). Inputs are random bytes, random JSON
//! (with overflow-sized numbers: tokens near u64::MAX, `n` and `max_tokens`
//! of 2^63, numbers beyond any integer type), well-formed provider answers
//! carrying such usage, and mutations (byte flips, truncations, splices) of
//! the corpus: `tests/fuzz-corpus/` and the provider fixtures.
//!
//! The properties: nothing panics; a decoder fed the same bytes whole or in
//! pieces of any size says the same (so does the SSE parser); every refusal
//! is a clear error: a caller's bad request is a 400 whose message names
//! the field (or says the body is not JSON), a provider's bad answer a 502
//! with a message; the cost of any usage at any rate is exact or saturates.
//! `FUZZ_CASES` sets the cases per property (default 4 000, a few seconds);
//! the pass prints how many inputs it ran.

use hub_core::chat::{Chat, Delta, Reply};
use hub_core::codec::{decode_all, Billed, Decode, Encode, Meta};
use hub_core::error::ApiError;
use hub_core::metering::money::{Credits, Rate};
use hub_core::metering::{LongContext, Rates, Usage};
use hub_core::protocols::{aigne, anthropic, openai};
use hub_core::providers::{anthropic as p_anthropic, bedrock, gemini, openai_compat};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

static RUNS: AtomicU64 = AtomicU64::new(0);

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
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

/// Numbers at the edges: where u64, i64, f64's exact integers and the
/// counts Hub adds up overflow.
const EDGES: &[u64] = &[
    0,
    1,
    u32::MAX as u64,
    1 << 53,
    (1 << 53) + 1,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

/// Numbers no integer type holds; spliced in as text (serde_json's values cannot).
const HUGE: &[&str] = &[
    "18446744073709551616",
    "-9223372036854775809",
    "1e400",
    "-1e400",
    "1e-400",
    "340282366920938463463374607431768211456",
];

/// A count: at an edge, or any u64.
fn count() -> impl Strategy<Value = u64> {
    prop_oneof![prop::sample::select(EDGES), any::<u64>(), 0u64..100_000]
}

/// Marks a spot where a number beyond every integer type goes.
fn huge_marker() -> impl Strategy<Value = Value> {
    (0..HUGE.len()).prop_map(|i| Value::String(format!("@@HUGE{i}@@")))
}

/// JSON text with the markers replaced by their numbers.
fn with_huge(v: &Value) -> Vec<u8> {
    let mut text = v.to_string();
    for (i, n) in HUGE.iter().enumerate() {
        text = text.replace(&format!("\"@@HUGE{i}@@\""), n);
    }
    text.into_bytes()
}

/// Random JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        count().prop_map(|n| json!(n)),
        huge_marker(),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z_ ]{0,12}".prop_map(Value::String),
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
            "message_start",
            "message_delta",
            "content_block_delta",
            "text_delta",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
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
                    "max_completion_tokens",
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
                    "temperature",
                    "choices",
                    "delta",
                    "message",
                    "usage",
                    "prompt_tokens",
                    "completion_tokens",
                    "input_tokens",
                    "output_tokens",
                    "cache_read_input_tokens",
                    "cache_creation_input_tokens",
                    "usageMetadata",
                    "promptTokenCount",
                    "candidatesTokenCount",
                    "thoughtsTokenCount",
                    "inputTokens",
                    "outputTokens",
                ])
                .prop_map(String::from),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
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

/// A usage report in every provider's words, with counts at the edges.
fn usage_reports() -> impl Strategy<Value = Vec<u8>> {
    let n = || prop_oneof![count().prop_map(|n| json!(n)), huge_marker()];
    (0u8..8, n(), n(), n(), n(), n()).prop_map(|(shape, a, b, c, d, e)| {
        let value = match shape {
            0 => json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": a, "completion_tokens": b, "total_tokens": c,
                                  "prompt_tokens_details": {"cached_tokens": d}, "completion_tokens_details": {"reasoning_tokens": e}}}),
            1 => json!({"type": "message", "role": "assistant", "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                        "usage": {"input_tokens": a, "output_tokens": b, "cache_read_input_tokens": c, "cache_creation_input_tokens": d}}),
            2 => json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
                        "usageMetadata": {"promptTokenCount": a, "candidatesTokenCount": b, "cachedContentTokenCount": c,
                                          "thoughtsTokenCount": d, "toolUsePromptTokenCount": e}}),
            3 => json!({"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}}, "stopReason": "end_turn",
                        "usage": {"inputTokens": a, "outputTokens": b, "cacheReadInputTokens": c, "cacheWriteInputTokens": d}}),
            4 => return sse(&[(None, json!({"choices": [{"index": 0, "delta": {"content": "hi"}}]})),
                              (None, json!({"choices": [], "usage": {"prompt_tokens": a, "completion_tokens": b,
                                  "prompt_tokens_details": {"cached_tokens": c}}}))]),
            5 => return sse(&[(Some("message_start"), json!({"type": "message_start", "message": {"usage": {"input_tokens": a, "cache_read_input_tokens": c, "cache_creation_input_tokens": d, "output_tokens": 1}}})),
                              (Some("content_block_delta"), json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}})),
                              (Some("message_delta"), json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": b}}))]),
            6 => return sse(&[(None, json!({"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
                                  "usageMetadata": {"promptTokenCount": a, "candidatesTokenCount": b, "thoughtsTokenCount": d, "toolUsePromptTokenCount": e}}))]),
            _ => {
                let usage = json!({"usage": {"inputTokens": a, "outputTokens": b, "cacheReadInputTokens": c, "cacheWriteInputTokens": d}});
                let text = with_huge(&usage);
                // Numbers beyond u64 cannot go into a Bedrock frame as a Value; use the edges there.
                let payload: Value = serde_json::from_slice(&text).unwrap_or(json!({"usage": {"inputTokens": u64::MAX, "outputTokens": u64::MAX}}));
                let mut out = bedrock::frame("event", "contentBlockDelta", &json!({"contentBlockIndex": 0, "delta": {"text": "hi"}}));
                out.extend(bedrock::frame("event", "messageStop", &json!({"stopReason": "end_turn"})));
                out.extend(bedrock::frame("event", "metadata", &payload));
                return out;
            }
        };
        with_huge(&value)
    })
}

fn sse(events: &[(Option<&str>, Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in events {
        if let Some(n) = name {
            out.extend(format!("event: {n}\n").into_bytes());
        }
        out.extend(b"data: ");
        out.extend(with_huge(data));
        out.extend(b"\n\n");
    }
    out
}

/// Requests with counts at the edges, in each caller protocol.
fn edge_requests() -> impl Strategy<Value = Vec<u8>> {
    let n = || {
        prop_oneof![
            count().prop_map(|n| json!(n)),
            any::<i64>().prop_map(|n| json!(n)),
            huge_marker()
        ]
    };
    (0u8..3, n(), n(), any::<bool>()).prop_map(|(shape, max, k, stream)| {
        let messages = json!([{"role": "user", "content": "hi"}]);
        with_huge(&match shape {
            0 => json!({"model": "m", "messages": messages, "max_tokens": max, "n": k, "stream": stream}),
            1 => json!({"model": "m", "messages": messages, "max_tokens": max, "stream": stream}),
            _ => {
                json!({"model": "m", "input": {"messages": messages}, "options": {"modelOptions": {"maxTokens": max}}})
            }
        })
    })
}

fn inputs() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        json_value().prop_map(|v| with_huge(&v)),
        mutated(corpus()),
        usage_reports(),
        edge_requests(),
    ]
}

/// A caller's bad request: a 400 whose message names the field it is about
/// (or says the body is not JSON).
fn assert_clear_request_error(e: &ApiError, input: &[u8]) {
    let shown = String::from_utf8_lossy(input);
    assert_eq!(e.status.as_u16(), 400, "{e:?} for {shown}");
    assert!(!e.message.trim().is_empty(), "empty message for {shown}");
    let names_something = e.message.contains('`') || e.message.contains("JSON");
    assert!(names_something, "`{}` names no field, for {shown}", e.message);
    if let Some(p) = &e.param {
        let root = p.split(['.', '[']).next().unwrap_or(p);
        assert!(e.message.contains(root), "`{}` does not name {p}", e.message);
    }
}

/// A provider's bad answer: a 502 with a message.
fn assert_clear_provider_error(e: &ApiError, input: &[u8]) {
    assert_eq!(e.status.as_u16(), 502, "{e:?} for {}", String::from_utf8_lossy(input));
    assert!(!e.message.trim().is_empty(), "{e:?}");
}

fn request_parsers(bytes: &[u8]) -> Vec<Chat> {
    let mut chats = Vec::new();
    let mut take = |r: Result<Chat, ApiError>| match r {
        Ok(c) => chats.push(c),
        Err(e) => assert_clear_request_error(&e, bytes),
    };
    match openai::parse_chat(bytes) {
        Ok(r) => take(r.to_chat()),
        Err(e) => assert_clear_request_error(&e, bytes),
    }
    take(anthropic::parse(bytes));
    take(aigne::parse_framework(bytes, None));
    take(aigne::parse_legacy(bytes, Some("m")).map(|(c, _)| c));
    chats
}

/// A parsed request, as every provider protocol's body (a refusal is a 400 naming what).
fn provider_bodies(chat: &Chat) {
    // A body is built, and serialises, or is refused with a 400.
    fn refusal<B: serde::Serialize>(r: Result<B, ApiError>) {
        match r {
            Ok(body) => drop(serde_json::to_vec(&body).unwrap()),
            Err(e) => {
                assert_eq!(e.status.as_u16(), 400, "{e:?}");
                assert!(!e.message.is_empty());
            }
        }
    }
    refusal(p_anthropic::body(chat, "m", 1024));
    refusal(gemini::body(chat));
    refusal(bedrock::body(chat));
    refusal(Ok(openai_compat::chat_body(chat, "m")));
}

fn sse_parser(bytes: &[u8], size: usize) {
    let mut whole = hub_core::sse::SseParser::new();
    let expected = whole.push(bytes);
    let mut p = hub_core::sse::SseParser::new();
    let mut events = Vec::new();
    for piece in bytes.chunks(size) {
        events.extend(p.push(piece));
    }
    assert_eq!(events, expected, "SSE split every {size} bytes");
    assert_eq!(p.pending(), whole.pending(), "SSE split every {size} bytes");
}

fn decoders() -> Vec<Box<dyn Fn() -> Box<dyn Decode>>> {
    vec![
        Box::new(|| Box::new(openai_compat::decoder())),
        Box::new(|| Box::new(p_anthropic::decoder())),
        Box::new(|| Box::new(gemini::decoder("f"))),
        Box::new(|| Box::new(bedrock::StreamDecoder::default())),
    ]
}

/// Every stream decoder, whole and split: the same deltas, clear errors.
fn stream_decoders(bytes: &[u8], size: usize) -> Vec<Vec<Delta>> {
    let mut all = Vec::new();
    for (i, make) in decoders().iter().enumerate() {
        let whole = decode_all(make(), bytes);
        let mut d = make();
        let mut out = Vec::new();
        for piece in bytes.chunks(size) {
            d.feed(piece, &mut out);
        }
        d.end(&mut out);
        assert_eq!(out, whole, "decoder {i} split every {size} bytes");
        for d in &whole {
            if let Delta::Error(e) = d {
                assert_clear_provider_error(e, bytes);
            }
        }
        all.push(whole);
    }
    all
}

fn whole_decoders(bytes: &[u8]) -> Vec<Vec<Delta>> {
    let mut all = Vec::new();
    for r in [
        openai_compat::decode_whole(bytes),
        p_anthropic::decode_whole(bytes),
        gemini::decode_whole(bytes, "f"),
        bedrock::decode_whole(bytes),
    ] {
        match r {
            Ok(d) => all.push(d),
            Err(e) => assert_clear_provider_error(&e, bytes),
        }
    }
    if let Err(e) = gemini::embed_vectors(bytes) {
        assert_clear_provider_error(&e, bytes);
    }
    if let Err(e) = hub_core::providers::ideogram::to_openai(bytes, 0) {
        assert_clear_provider_error(&e, bytes);
    }
    all
}

/// Rates at the edges: none, typical, or the largest a rate can be.
fn edge_rates() -> impl Strategy<Value = Rates> {
    prop::sample::select(vec![0, 150_000_000, i64::MAX]).prop_map(|n| {
        let r = Rate::from_nanos(n);
        Rates {
            input: r,
            output: r,
            cache_read: Some(r),
            cache_write: None,
            cache_write_1h: None,
            image: r,
            audio: r,
            video: r,
            long_context: None,
        }
    })
}

/// What a caller would receive for these deltas, in every protocol, billed
/// at `rates`.
fn encoders(deltas: &[Delta], rates: Rates) {
    let Ok(reply) = Reply::from_deltas(deltas.to_vec()) else {
        return;
    };
    let usage = reply.usage.unwrap_or_default();
    let billed = Billed {
        usage,
        credits: rates.cost(&usage),
    };
    let meta = Meta {
        call_id: "c".into(),
        model: "m".into(),
        model_with_provider: "p/m".into(),
        created: 0,
        credit_prefix: String::new(),
    };
    let chat = Chat::default();
    let mut encoders: Vec<Box<dyn Encode>> = vec![
        Box::new(openai::Encoder::new("c", "m", 0, true)),
        Box::new(anthropic::Encoder::new("c", "m")),
    ];
    for shape in [
        aigne::Shape::Framework,
        aigne::Shape::LegacySse,
        aigne::Shape::LegacyText,
    ] {
        encoders.push(shape.encoder(&chat, meta.clone()));
        let _ = shape.render(&chat, &meta, &reply, &billed);
    }
    let mut out = bytes::BytesMut::new();
    for e in &mut encoders {
        for d in deltas {
            e.delta(d, &mut out);
        }
        e.end(&billed, &mut out);
    }
    let _ = openai::render_reply("c", "m", 0, &reply);
    let _ = anthropic::render_reply("c", "m", &reply);
    let _ = anthropic::usage_json(&usage);
    let _ = openai_compat::usage_json(&usage);
}

/// Every parser and decoder on one input (streams also split in pieces of
/// `size` bytes), and what comes after them.
fn exercise(bytes: &[u8], size: usize, rates: Rates) {
    RUNS.fetch_add(1, Ordering::Relaxed);
    for chat in request_parsers(bytes) {
        provider_bodies(&chat);
    }
    sse_parser(bytes, size);
    let mut answers = stream_decoders(bytes, size);
    answers.extend(whole_decoders(bytes));
    answers.retain(|d| !d.is_empty());
    answers.dedup();
    for deltas in &answers {
        encoders(deltas, rates);
    }
}

/// Where a stream is split: mostly small pieces, where boundaries fall inside
/// every token (a line end, a frame header, a UTF-8 character).
fn split() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 1usize..8, 1 => 8usize..200]
}

#[test]
fn every_parser_agrees_with_itself_and_refuses_clearly() {
    runner()
        .run(&(inputs(), split(), edge_rates()), |(bytes, size, rates)| {
            exercise(&bytes, size, rates);
            Ok(())
        })
        .unwrap();
    // The corpus itself, unmutated, too, split every byte.
    for entry in corpus() {
        exercise(&entry, 1, Rates::default());
    }
    println!("fuzz: {} inputs through every parser", RUNS.load(Ordering::Relaxed));
}

/// The exact cost, or the largest amount when it is beyond what credits hold.
fn reference_cost(rates: &Rates, u: &Usage) -> Credits {
    let write_1h = u.cache_write_1h_tokens.min(u.cache_write_tokens);
    let terms = [
        (u.input_tokens, rates.input),
        (u.output_tokens, rates.output),
        (u.cache_read_tokens, rates.cache_read.unwrap_or(rates.input)),
        (
            u.cache_write_tokens - write_1h,
            rates.cache_write.unwrap_or(rates.input),
        ),
        (
            write_1h,
            rates.cache_write_1h.or(rates.cache_write).unwrap_or(rates.input),
        ),
    ];
    let mut numerator: i128 = 0;
    for (tokens, rate) in terms {
        let Some(sum) = i128::from(tokens)
            .checked_mul(i128::from(rate.nanos()))
            .and_then(|t| numerator.checked_add(t))
        else {
            return Credits::MAX;
        };
        numerator = sum;
    }
    let tokens = numerator.checked_add(500_000).map(|n| n.div_euclid(1_000_000));
    let images = i128::from(u.images) * i128::from(rates.image.nanos());
    // Every amount Hub keeps is within ±Credits::MAX; a cost beyond it is that.
    let total = tokens.and_then(|t| t.checked_add(images)).unwrap_or(i128::MAX);
    Credits::from_nanos(total.min(i128::from(Credits::MAX.nanos())) as i64)
}

#[test]
fn a_long_prompt_is_billed_wholly_at_its_tier() {
    let strategy = (
        count(),
        count(),
        count(),
        0u64..1_000_000,
        0i64..10_000_000_000,
        0i64..10_000_000_000,
    );
    runner()
        .run(&strategy, |(input, cached, output, threshold, flat, tier)| {
            let r = Rate::from_nanos;
            let rates = Rates {
                input: r(flat),
                output: r(flat),
                long_context: Some(LongContext {
                    threshold,
                    input: r(tier),
                    output: r(tier),
                    cache_read: None,
                    cache_write: None,
                }),
                ..Default::default()
            };
            let usage = Usage {
                input_tokens: input,
                cache_read_tokens: cached,
                output_tokens: output,
                ..Default::default()
            };
            let at = if usage.prompt_tokens() > threshold { tier } else { flat };
            let expected = Rates {
                input: r(at),
                output: r(at),
                ..Default::default()
            };
            prop_assert_eq!(rates.for_usage(&usage).cost(&usage), reference_cost(&expected, &usage));
            Ok(())
        })
        .unwrap();
}

#[test]
fn cost_is_exact_or_saturates_at_any_size() {
    let rate = || prop_oneof![Just(0i64), Just(i64::MAX), Just(1), 0i64..10_000_000_000, 0..=i64::MAX];
    let usage = (count(), count(), count(), count(), count(), count(), count());
    let strategy = (usage, rate(), rate(), rate(), rate(), rate(), rate(), any::<bool>());
    runner()
        .run(
            &strategy,
            |((a, b, c, d, e, f, g), ri, ro, rc, rw, rw1h, rimg, fallback)| {
                let rates = Rates {
                    input: Rate::from_nanos(ri),
                    output: Rate::from_nanos(ro),
                    cache_read: (!fallback).then(|| Rate::from_nanos(rc)),
                    cache_write: (!fallback).then(|| Rate::from_nanos(rw)),
                    cache_write_1h: (!fallback).then(|| Rate::from_nanos(rw1h)),
                    image: Rate::from_nanos(rimg),
                    ..Default::default()
                };
                let usage = Usage {
                    input_tokens: a,
                    output_tokens: b,
                    cache_read_tokens: c,
                    cache_write_tokens: d,
                    cache_write_1h_tokens: g,
                    reasoning_tokens: e,
                    images: f,
                    ..Default::default()
                };
                let cost = rates.cost(&usage);
                prop_assert_eq!(cost, reference_cost(&rates, &usage));
                prop_assert!(!cost.is_negative());
                Ok(())
            },
        )
        .unwrap();
}
