//! The real Codex CLI (`codex exec`, npm `@openai/codex` 0.169.0 from
//! tests/agents/codex, installed by scripts/install-test-tools) completing a
//! task through `hub serve`: once against an OpenAI-kind provider (the
//! Responses request and stream passed through) and once against an
//! Anthropic-kind one (converted both ways). Each run makes one tool call
//! round trip — the mock answers the first request with `exec_command`, the
//! second, which carries the command's output, with text — and is billed
//! to the nano-credit.
//!
//! Codex runs with a throwaway HOME, a proxy that goes nowhere for anything
//! but loopback, its update check off, in its own process group, stopped
//! after at most two minutes even if the test panics.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{cost_nanos, nanos, run_bounded, temp_dir, Api, HubServer, Launch};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const RATES: &str = r#"{"input_rate": 2, "output_rate": 8, "cache_read_rate": 0.5}"#;
const ANSWER: &str = "The command printed hi.";

fn codex_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/agents/codex/node_modules/.bin/codex");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/install-test-tools",
        bin.display()
    );
    bin
}

/// Runs `codex exec` against Hub with `model`; returns what it printed.
fn codex_exec(hub_base: &str, key: &str, model: &str) -> Result<String, String> {
    let home = temp_dir("codex");
    let codex_home = home.join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    let config = format!(
        r#"model = "{model}"
model_provider = "hub"
check_for_update_on_startup = false

[model_providers.hub]
name = "Hub"
base_url = "{hub_base}/v1"
env_key = "HUB_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"#
    );
    std::fs::write(codex_home.join("config.toml"), config).unwrap();
    let mut cmd = Command::new(codex_bin());
    cmd.args([
        "exec",
        "--skip-git-repo-check",
        "Run `echo hi` and tell me what it printed.",
    ])
    .current_dir(&home)
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("HOME", &home)
    .env("CODEX_HOME", &codex_home)
    .env("HUB_KEY", key)
    // Anything not on loopback goes to a proxy that is not there.
    .env("HTTPS_PROXY", "http://127.0.0.1:9")
    .env("HTTP_PROXY", "http://127.0.0.1:9")
    .env("ALL_PROXY", "http://127.0.0.1:9")
    .env("NO_PROXY", "127.0.0.1,localhost");
    let out = run_bounded(cmd, Duration::from_secs(120), "codex exec");
    let _ = std::fs::remove_dir_all(&home);
    out
}

/// A provider of `fields` on the mock serving `model` at RATES; the model's name as callers use it.
async fn provider(api: &Api, fields: Value, model: &str) -> String {
    let p = api.provider(fields.clone(), "sk-mock-secret-0001").await;
    api.add_model(&p, model, serde_json::from_str(RATES).unwrap()).await;
    format!("{}/{model}", fields["name"].as_str().unwrap())
}

/// The mock's tool round trip for `model`, with these token counts per answer.
fn round_trip(mock: &MockProvider, model: &str, prompt: u64, cached: u64, completion: u64) {
    mock.set(
        model,
        Behavior {
            pieces: vec![ANSWER.to_string()],
            cached_tokens: cached,
            until_tool_result: true,
            ..Behavior::default()
                .tokens(prompt, completion)
                .tool("exec_command", &["{\"cmd\":", "\"echo hi\"}"])
        },
    );
}

/// The requests the mock received for `path`, as JSON bodies.
fn bodies(mock: &MockProvider, path: &str) -> Vec<Value> {
    mock.received()
        .into_iter()
        .filter(|r| r.path.ends_with(path))
        .map(|r| r.body)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn codex_completes_a_tool_round_trip_through_hub_passed_through_and_converted() {
    let codex = codex_bin();
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let gpt = provider(
        &api,
        json!({"name": "oai", "kind": "openai", "base_url": mock.base_url()}),
        "gpt-mock",
    )
    .await;
    let claude = provider(
        &api,
        json!({"name": "claude", "kind": "anthropic", "base_url": mock.base_url()}),
        "claude-mock",
    )
    .await;
    round_trip(&mock, "gpt-mock", 9000, 8000, 40);
    round_trip(&mock, "claude-mock", 7000, 6000, 30);
    let (user, key) = api.user_with_key("coder", "10").await;
    assert!(codex.exists());

    // Passed through: OpenAI gets Codex's own requests.
    let base = hub.base.clone();
    let (k, m) = (key.clone(), gpt.clone());
    let out = tokio::task::spawn_blocking(move || codex_exec(&base, &k, &m))
        .await
        .unwrap();
    let out = out.unwrap_or_else(|e| panic!("{e}\n--- hub log ---\n{}", hub.logs()));
    assert!(out.contains(ANSWER), "{out}");
    let sent = bodies(&mock, "/responses");
    assert_eq!(sent.len(), 2, "one tool round trip");
    assert_eq!(sent[0]["model"], "gpt-mock");
    assert_eq!(sent[0]["store"], false);
    let tools = sent[0]["tools"].as_array().unwrap();
    assert!(
        tools.iter().any(|t| t["type"] == "namespace") && tools.iter().all(|t| t["type"] != "web_search"),
        "Codex's functions and namespaces reach OpenAI; the hosted web search Hub cannot bill does not: {tools:?}"
    );
    let output = sent[1]["input"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call_output")
        .expect("the command's output came back");
    assert_eq!(output["call_id"], "call_mock_0");
    assert!(output["output"].as_str().unwrap().contains("hi"), "{output}");
    // Each answer: 1000 input at 2, 8000 cached at 0.5, 40 output at 8 credits per million.
    let one = cost_nanos(&[(1000, "2"), (8000, "0.5"), (40, "8")]);
    let passed = api
        .wait_user(&user, "the passed-through run settled", |u| {
            nanos(&u["balance"]) == 10_000_000_000 - 2 * one && nanos(&u["held"]) == 0
        })
        .await;

    // Converted: Anthropic gets Messages requests, Codex gets Responses events.
    let base = hub.base.clone();
    let (k, m) = (key.clone(), claude.clone());
    let out = tokio::task::spawn_blocking(move || codex_exec(&base, &k, &m))
        .await
        .unwrap();
    let out = out.unwrap_or_else(|e| panic!("{e}\n--- hub log ---\n{}", hub.logs()));
    assert!(out.contains(ANSWER), "{out}");
    let sent = bodies(&mock, "/messages");
    assert_eq!(sent.len(), 2, "one tool round trip");
    assert_eq!(sent[0]["model"], "claude-mock");
    let tools: Vec<&str> = sent[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"exec_command"), "{tools:?}");
    assert!(
        tools.iter().any(|t| t.starts_with("multi_agent_v1__")),
        "namespaces flattened: {tools:?}"
    );
    let result = sent[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["type"] == "tool_result")
        .expect("the command's output came back as a tool result");
    assert_eq!(result["tool_use_id"], "toolu_0");
    // Each answer: 1000 uncached input at 2, 6000 read from the cache at 0.5, 30 output at 8.
    let two = cost_nanos(&[(1000, "2"), (6000, "0.5"), (30, "8")]);
    let u = api
        .wait_user(&user, "the converted run settled", |u| {
            nanos(&u["balance"]) == nanos(&passed["balance"]) - 2 * two && nanos(&u["held"]) == 0
        })
        .await;
    assert_eq!(api.ledger_sum(&user).await, nanos(&u["balance"]));
    let calls = api.calls(&format!("user={user}")).await;
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|c| c["endpoint"] == "responses" && c["status"] == "success" && c["estimated"] == false),
        "{calls:?}"
    );
}
