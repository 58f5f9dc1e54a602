//! The real Claude Code CLI (`claude -p`, pinned in tests/agents/claude-code)
//! through `hub serve` to an Anthropic-kind mock provider that caches
//! prompts as Anthropic documents: the provider receives the prompt-cache
//! breakpoints and beta flags exactly as Claude Code sends them (compared
//! with a run straight at the mock), and a second run reads the cached
//! prefix and is billed for it at the cache-read rate, to the nano-credit.
//!
//! Every process is bounded in time and stopped with its process group;
//! Claude Code runs with a throwaway HOME, non-essential traffic off, and a
//! dead loopback proxy for anything but Hub and the mock.

use hub_e2e::mock::{Behavior, MockProvider, Received};
use hub_e2e::{cost_nanos, nanos, Api, HubServer, Launch};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MODEL: &str = "claude-sonnet-4-5";

/// Credits per million tokens: Sonnet-like, a 1-hour write dearer than a 5-minute one.
const RATES: [(&str, &str); 5] = [
    ("input_rate", "3"),
    ("output_rate", "15"),
    ("cache_read_rate", "0.3"),
    ("cache_write_rate", "3.75"),
    ("cache_write_1h_rate", "6"),
];

fn claude_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/agents/claude-code")
}

/// A throwaway HOME (and project directory) for Claude Code, removed when dropped.
struct Home(PathBuf);

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `claude -p` in `home` against `base_url` with `key`; returns its output.
fn claude(home: &Path, base_url: &str, key: &str, prompt: &str) -> String {
    let dir = claude_dir();
    hub_e2e::node::ensure_installed(&dir).expect("install Claude Code (scripts/install-test-tools)");
    let mut cmd = Command::new(dir.join("node_modules/.bin/claude"));
    cmd.args(["-p", prompt, "--model", MODEL])
        .current_dir(home)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("ANTHROPIC_BASE_URL", base_url)
        .env("ANTHROPIC_API_KEY", key)
        .env("ANTHROPIC_MODEL", MODEL)
        .env("ANTHROPIC_DEFAULT_HAIKU_MODEL", MODEL)
        .env("ANTHROPIC_SMALL_FAST_MODEL", MODEL)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        // Anything but Hub and the mock goes to a port where nothing listens.
        .env("HTTPS_PROXY", format!("http://127.0.0.1:{}", hub_e2e::free_port()))
        .env("HTTP_PROXY", format!("http://127.0.0.1:{}", hub_e2e::free_port()))
        .env("NO_PROXY", "127.0.0.1,localhost");
    hub_e2e::run_bounded(cmd, Duration::from_secs(180), "claude -p").unwrap_or_else(|e| panic!("{e}"))
}

/// The main-loop requests of a run (those with tools), as the mock received them.
fn turns(received: &[Received]) -> Vec<Received> {
    received
        .iter()
        .filter(|r| r.path == "/v1/messages" && r.body["tools"].as_array().is_some_and(|t| !t.is_empty()))
        .cloned()
        .collect()
}

/// Every `cache_control` in a body, by JSON path.
fn breakpoints(v: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                let at = format!("{path}/{k}");
                if k == "cache_control" {
                    out.push((at, child.clone()));
                } else {
                    breakpoints(child, &at, out);
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                breakpoints(child, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn breakpoints_of(r: &Received) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    breakpoints(&r.body, "", &mut out);
    out
}

/// What the mock's reported usage costs at [`RATES`], in nano-credits.
fn cost_of(usage: &Value) -> i128 {
    let n = |k: &str| usage[k].as_u64().unwrap_or(0);
    let one_hour = usage["cache_creation"]["ephemeral_1h_input_tokens"]
        .as_u64()
        .unwrap_or(0);
    cost_nanos(&[
        (n("input_tokens"), "3"),
        (n("output_tokens"), "15"),
        (n("cache_read_input_tokens"), "0.3"),
        (n("cache_creation_input_tokens") - one_hour, "3.75"),
        (one_hour, "6"),
    ])
}

async fn calls_settled(api: &Api, user: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let calls = api.calls(&format!("user={user}&limit=100")).await;
        if calls.len() >= n {
            return calls;
        }
        assert!(Instant::now() < deadline, "expected {n} calls, got {calls:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_caches_its_prompt_through_hub_and_is_billed_for_it_exactly() {
    let caching = Behavior {
        prompt_caching: true,
        ..Behavior::text(&["Hello", " from", " the mock."])
    };
    // One user in one project: the system prompt names the directory.
    let home = Home(hub_e2e::temp_dir("claude-home"));
    let run = |base: String, key: String, prompt: &'static str| {
        let home = home.0.clone();
        tokio::task::spawn_blocking(move || claude(&home, &base, &key, prompt))
    };
    // Straight at a provider: what Claude Code sends when nothing is in between.
    let direct = MockProvider::start().await;
    direct.set(MODEL, caching.clone());
    let base = direct.root_url();
    let out = run(base, "sk-ant-direct".into(), "Say hello").await.unwrap();
    assert!(out.contains("Hello from the mock."), "{out}");
    let sent_directly = turns(&direct.received());
    assert!(
        !sent_directly.is_empty(),
        "Claude Code sent no turn: {:?}",
        direct.received()
    );

    // Through Hub.
    let mock = MockProvider::start().await;
    mock.set(MODEL, caching);
    let hub = tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let provider = api
        .provider(
            json!({"name": "ant", "kind": "anthropic", "base_url": format!("{}/v1", mock.root_url())}),
            "sk-ant-hub",
        )
        .await;
    let mut rates = json!({});
    for (k, v) in RATES {
        rates[k] = json!(v);
    }
    api.add_model(&provider, MODEL, rates).await;
    let (user, key) = api.user_with_key("coder", "10").await;
    // Two sessions in a row: the second shares the first one's tools and system prompt.
    for (n, prompt) in ["Say hello", "Say hello again"].into_iter().enumerate() {
        let out = run(hub.base.clone(), key.clone(), prompt).await.unwrap();
        assert!(out.contains("Hello from the mock."), "run {n}: {out}");
    }

    let through_hub = turns(&mock.received());
    assert_eq!(through_hub.len(), 2 * sent_directly.len(), "{through_hub:?}");
    let (direct_turn, hub_turn) = (&sent_directly[0], &through_hub[0]);
    assert_eq!(hub_turn.header("anthropic-beta"), direct_turn.header("anthropic-beta"));
    assert!(hub_turn
        .header("anthropic-beta")
        .is_some_and(|b| b.contains("claude-code-")));
    assert_eq!(
        hub_turn.header("anthropic-version"),
        direct_turn.header("anthropic-version")
    );
    assert_eq!(
        hub_turn.header("x-api-key"),
        Some("sk-ant-hub"),
        "the provider's key, not the caller's"
    );
    assert_eq!(breakpoints_of(hub_turn), breakpoints_of(direct_turn));
    assert!(
        !breakpoints_of(hub_turn).is_empty(),
        "Claude Code marks cache breakpoints"
    );
    assert_eq!(
        hub_turn.body["system"], direct_turn.body["system"],
        "the system blocks as sent"
    );
    assert_eq!(hub_turn.body["tools"], direct_turn.body["tools"]);

    // Every call billed exactly from the usage the provider reported to it.
    let reported = mock.reported_usage();
    let calls = calls_settled(&api, &user, reported.len()).await;
    assert_eq!(calls.len(), reported.len(), "{calls:?}");
    let tokens = |u: &Value, keys: [&str; 4]| keys.map(|k| u[k].as_u64().unwrap_or(0));
    let mut unmatched = reported.clone();
    for call in &calls {
        let billed = tokens(
            call,
            [
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_write_tokens",
            ],
        );
        let at = unmatched
            .iter()
            .position(|u| {
                tokens(
                    u,
                    [
                        "input_tokens",
                        "output_tokens",
                        "cache_read_input_tokens",
                        "cache_creation_input_tokens",
                    ],
                ) == billed
            })
            .unwrap_or_else(|| panic!("no reported usage matches {call}: {unmatched:?}"));
        let usage = unmatched.remove(at);
        assert_eq!(nanos(&call["credits"]), cost_of(&usage), "{call} {usage}");
    }
    let total: i128 = reported.iter().map(cost_of).sum();
    let first_run = &reported[0];
    let second_run = &reported[reported.len() / 2];
    assert_eq!(
        first_run["cache_read_input_tokens"], 0,
        "nothing cached before the first run"
    );
    assert!(
        first_run["cache_creation_input_tokens"].as_u64().unwrap() > 0,
        "{first_run}"
    );
    let read = second_run["cache_read_input_tokens"].as_u64().unwrap();
    assert!(
        read >= hub_e2e::mock::MIN_CACHEABLE_TOKENS,
        "the second run reads the cached prefix: {second_run}"
    );
    assert!(cost_of(second_run) < cost_of(first_run), "{first_run} {second_run}");
    let read_calls = calls.iter().filter(|c| c["cache_read_tokens"].as_u64() == Some(read));
    assert!(read_calls.clone().count() >= 1);
    for c in read_calls {
        assert!(nanos(&c["cache_saved"]) > 0, "caching saved credits: {c}");
    }
    let u = api.wait_user(&user, "settled", |u| nanos(&u["held"]) == 0).await;
    assert_eq!(nanos(&u["balance"]), 10_000_000_000 - total, "{u}");
}
