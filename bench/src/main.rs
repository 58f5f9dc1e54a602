//! `hub-bench`: the latency, CPU and memory a gateway adds, measured against
//! calling the mock provider directly, in the same run, for Hub (embedded and
//! remote libSQL), LiteLLM's proxy and Portkey's gateway. The load is open
//! loop: each request is sent on its schedule whatever the earlier ones are
//! doing, so a slow gateway cannot hide its queueing (no coordinated
//! omission). Each run of each target is paired with a run of the direct
//! baseline at the same rate, and medians over repeated runs are reported.
//!
//! ```text
//! hub-bench [--hub target/release/hub] [--targets hub,hub-remote,hub-multi,hub-cache,litellm,portkey]
//!           [--rates 100,500,1000,2000] [--seconds 5] [--runs 3] [--chunks 50] [--db-latency-ms 20]
//!           [--latency-ms 0] [--cadence-ms 0] [--streams 200] [--pin on|off] [--out bench/out]
//!           [--apis chat,responses,responses-converted,messages]
//! ```
//!
//! `--apis` picks the inbound protocols measured: chat completions (the
//! default, and the only one the peers are run on), the Responses API passed
//! through to an OpenAI provider or converted to chat completions for an
//! OpenAI-compatible one, and Anthropic Messages passed through. Each is
//! paired with a direct call of what the provider itself is asked.
//!
//! LiteLLM and Portkey are installed by `bench/peers/install.sh` into
//! throwaway environments; the harness starts and stops them itself. The
//! `worker` (wrangler dev) and `lambda` (cargo-lambda's emulator, one function
//! process) targets run the same scenarios at the low rates those local
//! emulators serve.
//!
//! The `hub-multi` target is three `hub serve` processes on one remote
//! libSQL database (the Hrana test server, each of its answers delayed by
//! `--db-latency-ms` as a remote primary's round trip would be), the load
//! spread round-robin over them; `hub-multi-nolease` is the same with
//! `HUB_CREDIT_LEASES=off`. For every target on the Hrana test server
//! (`hub-remote` too, which runs it without delay) the database requests
//! and write transactions per call are reported, from the server's counters.
//!
//! The `hub-cache` target is Hub with its response cache on: every request
//! of a scenario is identical, so all but the first are cache hits.
//!
//! `--buckets N` gives the caller N more grants that expire (a day apart,
//! soonest first), so every settlement debits expiring credit buckets the way
//! a customer holding bought or redeemed credit with expiry does.

use futures_util::StreamExt;
use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{HranaServer, HranaStats, HubServer, Launch};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: hub-bench [--hub target/release/hub] [--targets hub,hub-remote,hub-multi,hub-multi-nolease,hub-cache,litellm,portkey|worker,lambda]
                 [--rates 100,500,1000,2000] [--seconds 5] [--runs 3] [--chunks 50] [--db-latency-ms 20]
                 [--latency-ms 0] [--cadence-ms 0] [--streams 200] [--pin on|off] [--out bench/out]
                 [--scenarios non-streaming,streaming] [--profile DIR] [--baseline OTHER_HUB_BINARY]
                 [--apis chat,responses,responses-converted,messages] [--buckets 0]";

struct Args {
    hub: PathBuf,
    /// Another Hub binary, run as the `hub-baseline` target (a before/after in one run).
    baseline: Option<PathBuf>,
    targets: Vec<String>,
    rates: Vec<u64>,
    seconds: u64,
    runs: usize,
    chunks: usize,
    latency_ms: u64,
    cadence_ms: u64,
    streams: usize,
    pin: bool,
    out: PathBuf,
    /// Which scenarios run: non-streaming (false) and/or streaming (true).
    scenarios: Vec<bool>,
    /// Which inbound protocols are measured.
    apis: Vec<Api>,
    /// Where to write a CPU profile (perf) of each gateway run, if anywhere.
    profile: Option<PathBuf>,
    /// How many expiring grants the caller holds beside its plain credit.
    buckets: u32,
    /// The round trip added to every request to the shared database of the
    /// `hub-multi` targets.
    db_latency_ms: u64,
}

fn args() -> Args {
    let mut a = Args {
        hub: PathBuf::from("target/release/hub"),
        baseline: None,
        targets: ["hub", "hub-remote", "litellm", "portkey"].map(String::from).to_vec(),
        rates: vec![100, 500, 1000, 2000],
        seconds: 5,
        runs: 3,
        chunks: 50,
        latency_ms: 0,
        cadence_ms: 0,
        streams: 200,
        pin: true,
        out: PathBuf::from("bench/out"),
        scenarios: vec![false, true],
        apis: vec![Api::Chat],
        profile: None,
        buckets: 0,
        db_latency_ms: 20,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let list = |v: &str| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    };
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--hub" => a.hub = PathBuf::from(v),
            "--baseline" => a.baseline = Some(PathBuf::from(v)),
            "--targets" => a.targets = list(&v),
            "--rates" => a.rates = list(&v).iter().map(|r| r.parse().expect("--rates")).collect(),
            "--seconds" => a.seconds = v.parse().expect("--seconds"),
            "--runs" => a.runs = v.parse().expect("--runs"),
            "--chunks" => a.chunks = v.parse().expect("--chunks"),
            "--latency-ms" => a.latency_ms = v.parse().expect("--latency-ms"),
            "--cadence-ms" => a.cadence_ms = v.parse().expect("--cadence-ms"),
            "--streams" => a.streams = v.parse().expect("--streams"),
            "--pin" => a.pin = v != "off",
            "--out" => a.out = PathBuf::from(v),
            "--profile" => a.profile = Some(PathBuf::from(v)),
            "--buckets" => a.buckets = v.parse().expect("--buckets"),
            "--db-latency-ms" => a.db_latency_ms = v.parse().expect("--db-latency-ms"),
            "--scenarios" => {
                a.scenarios = list(&v)
                    .iter()
                    .map(|s| match s.as_str() {
                        "non-streaming" => false,
                        "streaming" => true,
                        other => {
                            eprintln!("hub-bench: unknown scenario {other} (non-streaming, streaming)");
                            std::process::exit(2);
                        }
                    })
                    .collect()
            }
            "--apis" => {
                a.apis = list(&v)
                    .iter()
                    .map(|s| {
                        Api::ALL.into_iter().find(|api| api.name() == s).unwrap_or_else(|| {
                            eprintln!("hub-bench: unknown api {s} (chat, responses, responses-converted, messages)");
                            std::process::exit(2);
                        })
                    })
                    .collect()
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                eprintln!("hub-bench: unknown argument {other}\n{USAGE}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    a
}

// ---------------------------------------------------------------- protocols

/// An inbound protocol measured, with the provider call it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Api {
    /// `/v1/chat/completions` to an OpenAI provider.
    Chat,
    /// `/v1/responses` passed through to an OpenAI provider's `/responses`.
    Responses,
    /// `/v1/responses` converted to chat completions for an OpenAI-compatible provider.
    ResponsesConverted,
    /// Anthropic `/v1/messages` passed through to an Anthropic provider.
    Messages,
}

/// The model Hub serves through its OpenAI-compatible (chat-only) provider.
const COMPAT_MODEL: &str = "bench-compat";
/// The model Hub serves through its Anthropic provider.
const CLAUDE_MODEL: &str = "bench-claude";
const ANTHROPIC_VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

impl Api {
    const ALL: [Api; 4] = [Api::Chat, Api::Responses, Api::ResponsesConverted, Api::Messages];

    fn name(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Responses => "responses",
            Api::ResponsesConverted => "responses-converted",
            Api::Messages => "messages",
        }
    }

    /// Hub's path for it.
    fn path(self) -> &'static str {
        match self {
            Api::Chat => "/v1/chat/completions",
            Api::Responses | Api::ResponsesConverted => "/v1/responses",
            Api::Messages => "/v1/messages",
        }
    }

    /// The model a Hub target is asked for (peers serve `mock-model` on chat only).
    fn model(self) -> &'static str {
        match self {
            Api::Chat | Api::Responses => "bench",
            Api::ResponsesConverted => COMPAT_MODEL,
            Api::Messages => CLAUDE_MODEL,
        }
    }

    /// The request a caller sends in this protocol.
    fn body(self, model: &str, stream: bool) -> Value {
        let prompt = "benchmark prompt";
        match self {
            Api::Chat => {
                json!({"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream, "max_tokens": 64})
            }
            Api::Responses | Api::ResponsesConverted => {
                json!({"model": model, "input": prompt, "stream": stream, "max_output_tokens": 64})
            }
            Api::Messages => {
                json!({"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream, "max_tokens": 64})
            }
        }
    }

    /// Headers the protocol needs besides the caller's key.
    fn headers(self) -> Vec<(String, String)> {
        match self {
            Api::Messages => vec![(ANTHROPIC_VERSION.0.into(), ANTHROPIC_VERSION.1.into())],
            _ => Vec::new(),
        }
    }

    /// The baseline: what the provider itself is asked, called directly (URL, headers, body).
    fn direct(self, mock: &MockProvider, stream: bool) -> (String, Vec<(String, String)>, Value) {
        let bearer = vec![("authorization".to_string(), "Bearer sk-bench".to_string())];
        let chat = |model: &str| {
            let mut body = Api::Chat.body(model, stream);
            if stream {
                body["stream_options"] = json!({"include_usage": true});
            }
            body
        };
        match self {
            Api::Chat => (format!("{}/chat/completions", mock.base_url()), bearer, chat("bench")),
            Api::Responses => (
                format!("{}/responses", mock.base_url()),
                bearer,
                self.body("bench", stream),
            ),
            Api::ResponsesConverted => (
                format!("{}/chat/completions", mock.base_url()),
                bearer,
                chat(COMPAT_MODEL),
            ),
            Api::Messages => {
                let mut headers = self.headers();
                headers.push(("x-api-key".into(), "sk-bench".into()));
                (
                    format!("{}/v1/messages", mock.root_url()),
                    headers,
                    self.body(CLAUDE_MODEL, stream),
                )
            }
        }
    }
}

/// One measured scenario: a protocol, streamed or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Scenario {
    api: Api,
    stream: bool,
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = if self.stream { "streaming" } else { "non-streaming" };
        match self.api {
            Api::Chat => write!(f, "{mode}"),
            api => write!(f, "{} {mode}", api.name()),
        }
    }
}

// ---------------------------------------------------------------- profiles

/// `perf record` (where the CPU goes, by thread and function) and `perf stat`
/// (system calls, context switches) on a gateway's processes during one run.
struct Profiler {
    record: Option<Child>,
    stat: Option<Child>,
    data: PathBuf,
    report: PathBuf,
    stat_out: PathBuf,
}

impl Profiler {
    fn start(dir: &std::path::Path, tag: &str, roots: &[u32], seconds: u64) -> Profiler {
        std::fs::create_dir_all(dir).expect("profile directory");
        let pids = group_pids(roots)
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let data = dir.join(format!("{tag}.perf.data"));
        let stat_out = dir.join(format!("{tag}.stat.txt"));
        let secs = seconds.to_string();
        let spawn = |args: &[&str]| {
            Command::new("perf")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| eprintln!("warning: perf not available ({e}); no profile"))
                .ok()
        };
        let record = spawn(&[
            "record",
            "-F",
            "1999",
            "-p",
            &pids,
            "-o",
            data.to_str().unwrap(),
            "--",
            "sleep",
            &secs,
        ]);
        let stat = spawn(&[
            "stat",
            "-e",
            "task-clock,context-switches,raw_syscalls:sys_enter",
            "-p",
            &pids,
            "-o",
            stat_out.to_str().unwrap(),
            "--",
            "sleep",
            &secs,
        ]);
        Profiler {
            record,
            stat,
            data,
            report: dir.join(format!("{tag}.txt")),
            stat_out,
        }
    }

    /// Waits for perf and writes `<tag>.txt`: the counters per request, the
    /// CPU by thread, and the hottest functions.
    fn finish(self, requests: f64) {
        for mut child in [self.record, self.stat].into_iter().flatten() {
            let _ = child.wait();
        }
        let mut text = String::new();
        let stat = std::fs::read_to_string(&self.stat_out).unwrap_or_default();
        text.push_str(&format!("per request ({requests} requests):\n"));
        for line in stat.lines() {
            let mut words = line.split_whitespace();
            let (Some(value), Some(event)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(v) = value.replace(',', "").parse::<f64>() else {
                continue;
            };
            let event = if event == "msec" { "task-clock (ms)" } else { event };
            text.push_str(&format!("  {event}: {:.3}\n", v / requests));
        }
        for sort in ["comm", "comm,dso,sym"] {
            let out = Command::new("perf")
                .args([
                    "report",
                    "--no-children",
                    "-q",
                    "--percent-limit",
                    "0.7",
                    "--sort",
                    sort,
                    "-i",
                ])
                .arg(&self.data)
                .stderr(Stdio::null())
                .output();
            if let Ok(out) = out {
                text.push_str(&format!("\nCPU samples by {sort}:\n"));
                text.push_str(&String::from_utf8_lossy(&out.stdout));
            }
        }
        let _ = std::fs::write(&self.report, text);
        eprintln!("profile: {}", self.report.display());
    }
}

// ---------------------------------------------------------------- processes

/// A gateway under test and how to call it.
struct Target {
    name: String,
    /// Where the gateway listens (its paths are the protocols' own); the load
    /// is spread round-robin over several instances.
    bases: Vec<String>,
    headers: Vec<(String, String)>,
    /// The model asked for chat completions.
    model: String,
    /// A peer gateway: measured on chat completions only.
    peer: bool,
    /// The gateway's processes (each with its descendants: for CPU and memory).
    roots: Vec<u32>,
    /// What stops the gateway when the target is dropped.
    _guard: Box<dyn std::any::Any>,
    /// The Hrana test server under a gateway on remote libSQL (stopped after it).
    db: Option<HranaServer>,
}

struct PeerProcess(Child);

impl Target {
    /// The first instance's address for `api`.
    fn url(&self, api: Api) -> String {
        format!("{}{}", self.bases[0], api.path())
    }

    /// Every instance's address for `api`.
    fn urls(&self, api: Api) -> Vec<String> {
        self.bases.iter().map(|b| format!("{b}{}", api.path())).collect()
    }

    /// The shared database's counters, for a gateway on the Hrana test server.
    fn db_stats(&self) -> Option<HranaStats> {
        self.db.as_ref().map(HranaServer::stats)
    }

    /// Whether this target is measured on `api`.
    fn serves(&self, api: Api) -> bool {
        api == Api::Chat || !self.peer
    }

    fn model(&self, api: Api) -> &str {
        if self.peer {
            &self.model
        } else {
            api.model()
        }
    }
}

/// Sets a fresh Hub up behind the mock: an OpenAI provider (chat completions
/// and Responses passed through), an OpenAI-compatible one (Responses
/// converted) and an Anthropic one, each with its bench models, and a
/// caller's key (returned), holding `buckets` expiring grants beside its
/// plain credit.
async fn provision(base: &str, mock: &MockProvider, buckets: u32) -> String {
    let api = hub_e2e::Api::new(base);
    let rates = json!({"input_rate": 0.15, "output_rate": 0.6});
    let openai = api.setup_provider("mock", &mock.base_url(), "sk-bench").await;
    for model in ["bench", "slow"] {
        api.add_model(&openai, model, rates.clone()).await;
    }
    let compat = api
        .provider(
            json!({"name": "compat", "kind": "openai-compatible", "base_url": mock.base_url()}),
            "sk-bench",
        )
        .await;
    api.add_model(&compat, COMPAT_MODEL, rates.clone()).await;
    let claude = api
        .provider(
            json!({"name": "claude", "kind": "anthropic", "base_url": mock.base_url()}),
            "sk-bench",
        )
        .await;
    api.add_model(&claude, CLAUDE_MODEL, rates).await;
    let (user, key) = api.user_with_key("bench", "1000000").await;
    grant_buckets(&api, &user, buckets).await;
    key
}

/// `n` grants of 1000 credits expiring one day apart, from tomorrow.
async fn grant_buckets(api: &hub_e2e::Api, user: &str, n: u32) {
    const DAY_MS: u64 = 86_400_000;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for day in 1..=u64::from(n) {
        let grant = json!({"amount": "1000", "reason": "bench bucket", "expires_at": now_ms + day * DAY_MS});
        api.admin(
            reqwest::Method::POST,
            &format!("/api/admin/users/{user}/grants"),
            Some(grant),
        )
        .await;
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        hub_e2e::stop_group(&mut self.0, Duration::from_secs(10));
    }
}

/// Processes and all their descendants.
fn group_pids(roots: &[u32]) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // Fields after the command name (which may hold spaces): state ppid …
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if let Some(ppid) = f.get(1).and_then(|g| g.parse::<u32>().ok()) {
                    parent_of.push((pid, ppid));
                }
            }
        }
    }
    let mut tree = roots.to_vec();
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// Waits (up to 20 s) until a gateway is idle: a backlog left by an overloaded
/// run must not slow the next measurement.
async fn wait_idle(roots: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let before = group_cpu_ms(roots);
        tokio::time::sleep(Duration::from_millis(500)).await;
        if group_cpu_ms(roots) - before < 50.0 {
            return;
        }
    }
}

/// CPU time (user + system) of processes and their descendants, in milliseconds.
fn group_cpu_ms(roots: &[u32]) -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    group_pids(roots)
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let rest = stat.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) * 1000.0 / tick)
        })
        .sum()
}

/// Resident memory of processes and their descendants, in MB.
fn group_rss_mb(roots: &[u32]) -> f64 {
    pids_rss_mb(&group_pids(roots))
}

/// Resident memory of some processes, in MB (cheap: no scan of /proc).
fn pids_rss_mb(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .sum::<f64>()
        / 1024.0
}

fn pin(pid: u32, cpus: &str) {
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("warning: could not pin {pid} to CPU {cpus} (taskset missing?)");
    }
}

async fn wait_http(url: &str, limit: Duration) -> bool {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(r) = client.get(url).timeout(Duration::from_secs(2)).send().await {
            if r.status().is_success() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn start_hub(a: &Args, mock: &MockProvider, remote: bool) -> Target {
    start_hub_from(
        a,
        mock,
        remote,
        a.hub.clone(),
        if remote { "hub-remote" } else { "hub" },
    )
    .await
}

/// Hub with its response cache on: every request of a scenario is the same,
/// so all but the first are answered from the cache (the `hub` target in the
/// same run is the same Hub asking the provider every time).
async fn start_hub_cached(a: &Args, mock: &MockProvider) -> Target {
    let t = start_hub_from(a, mock, false, a.hub.clone(), "hub-cache").await;
    let resp = reqwest::Client::new()
        .patch(format!("{}/api/admin/settings", t.bases[0]))
        .bearer_auth(hub_e2e::ADMIN_KEY)
        .json(&json!({"response_cache_enabled": true}))
        .send()
        .await
        .expect("settings");
    assert!(resp.status().is_success(), "the response cache could not be turned on");
    t
}

/// How every Hub of the bench is started; on `db`, a remote database, if given.
fn hub_launch(pinned: bool, db: Option<&HranaServer>) -> Launch {
    let mut launch = Launch {
        env: vec![
            (
                "HUB_LOG".into(),
                std::env::var("BENCH_HUB_LOG").unwrap_or("warn".into()),
            ),
            // Every connection of the load comes from one address.
            ("HUB_MAX_CONNECTIONS_PER_IP".into(), "0".into()),
        ],
        ..Default::default()
    };
    if pinned {
        // Pinned before it starts, Hub sizes its worker threads to the one core it has.
        launch.wrap = ["taskset", "-c", "1"].map(String::from).to_vec();
    }
    if let Some(h) = db {
        launch.db = Some(h.url.clone());
        // Every instance on a shared database seals and hashes alike.
        launch
            .env
            .push(("HUB_MASTER_KEY".into(), hub_e2e::worker::MASTER_KEY.into()));
    }
    launch
}

/// A Hrana test server answering `delay_ms` late, started off the runtime.
async fn start_hrana(tag: &'static str, delay_ms: u64) -> HranaServer {
    tokio::task::spawn_blocking(move || {
        HranaServer::start_with(&hub_e2e::hrana_script(), &hub_e2e::temp_dir(tag), delay_ms)
    })
    .await
    .unwrap()
}

/// Starts Hub from `bin` with `launch`, off the runtime.
async fn start_hub_process(bin: &std::path::Path, launch: Launch) -> HubServer {
    let bin = bin.to_path_buf();
    tokio::task::spawn_blocking(move || HubServer::start(&bin, launch))
        .await
        .unwrap()
}

/// Hub from `bin`, reported as `name` (another build of Hub, for `--baseline`).
async fn start_hub_from(a: &Args, mock: &MockProvider, remote: bool, bin: PathBuf, name: &str) -> Target {
    let hrana = if remote {
        Some(start_hrana("bench-hrana", 0).await)
    } else {
        None
    };
    let hub = start_hub_process(&bin, hub_launch(a.pin, hrana.as_ref())).await;
    let key = provision(&hub.base, mock, a.buckets).await;
    let pid = hub.child.id();
    if a.pin {
        pin(pid, "1");
    }
    Target {
        name: name.into(),
        bases: vec![hub.base.clone()],
        headers: vec![("authorization".into(), format!("Bearer {key}"))],
        model: "bench".into(),
        peer: false,
        roots: vec![pid],
        _guard: Box::new(hub),
        db: hrana,
    }
}

/// Instances of `hub serve` in the `hub-multi` targets.
const MULTI_INSTANCES: usize = 3;

/// Three Hubs on one remote database that answers `--db-latency-ms` late,
/// sharing CPU 1 when pinned (one core for the gateway, as for the others);
/// with `leases` off, `HUB_CREDIT_LEASES=off` in their environment.
async fn start_hub_multi(a: &Args, mock: &MockProvider, name: &str, leases: bool) -> Target {
    let hrana = start_hrana("bench-multi", a.db_latency_ms).await;
    let mut launch = hub_launch(a.pin, Some(&hrana));
    if !leases {
        launch.env.push(("HUB_CREDIT_LEASES".into(), "off".into()));
    }
    // The others start once the first is provisioned, so their configuration
    // is loaded with the bench's providers and models already in it.
    let first = start_hub_process(&a.hub, launch.clone()).await;
    let key = provision(&first.base, mock, a.buckets).await;
    let mut hubs = vec![first];
    for _ in 1..MULTI_INSTANCES {
        hubs.push(start_hub_process(&a.hub, launch.clone()).await);
    }
    let roots: Vec<u32> = hubs.iter().map(|h| h.child.id()).collect();
    if a.pin {
        for pid in &roots {
            pin(*pid, "1");
        }
    }
    eprintln!(
        "{name}: {MULTI_INSTANCES} instances on one database answering {} ms late",
        a.db_latency_ms
    );
    Target {
        name: name.into(),
        bases: hubs.iter().map(|h| h.base.clone()).collect(),
        headers: vec![("authorization".into(), format!("Bearer {key}"))],
        model: "bench".into(),
        peer: false,
        roots,
        _guard: Box::new(hubs),
        db: Some(hrana),
    }
}

/// Hub as a Worker under `wrangler dev`, or as a Lambda function under the
/// emulator (one function process: one invocation at a time).
async fn start_serverless(a: &Args, mock: &MockProvider, name: &str) -> Target {
    let launched = Instant::now();
    let lambda_bin = a.hub.with_file_name("hub-lambda");
    let (base, pgid, guard, db) = if name == "worker" {
        let w = tokio::task::spawn_blocking(|| hub_e2e::worker::WorkerServer::start(&[]))
            .await
            .unwrap();
        (w.base.clone(), w.pid(), Box::new(w) as Box<dyn std::any::Any>, None)
    } else {
        let h = start_hrana("bench-lambda", 0).await;
        let url = h.url.clone();
        let l = tokio::task::spawn_blocking(move || hub_e2e::lambda::LambdaServer::start(&lambda_bin, &url, 1))
            .await
            .unwrap();
        (
            l.base.clone(),
            l.function_pid(),
            Box::new(l) as Box<dyn std::any::Any>,
            Some(h),
        )
    };
    eprintln!(
        "{name}: ready in {:.1} s (cold start, including the first request)",
        launched.elapsed().as_secs_f64()
    );
    let key = provision(&base, mock, a.buckets).await;
    if a.pin {
        for pid in group_pids(&[pgid]) {
            pin(pid, "1");
        }
    }
    Target {
        name: name.into(),
        bases: vec![base],
        headers: vec![("authorization".into(), format!("Bearer {key}"))],
        model: "bench".into(),
        peer: false,
        roots: vec![pgid],
        _guard: guard,
        db,
    }
}

async fn start_peer(a: &Args, mock: &MockProvider, name: &str) -> Option<Target> {
    let script = hub_e2e::worker::repo_root().join(format!("bench/peers/{name}.sh"));
    let port = hub_e2e::free_port();
    let mut cmd = if a.pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "1"]).arg(&script);
        c
    } else {
        Command::new(&script)
    };
    // One worker per core given to the gateway.
    cmd.arg(port.to_string())
        .arg(mock.base_url())
        .env("LITELLM_NUM_WORKERS", if a.pin { "1" } else { "2" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: cannot start ({e}); install it with bench/peers/install.sh");
            return None;
        }
    };
    let proc = PeerProcess(child);
    let pgid = proc.0.id();
    let (ready, headers) = match name {
        "litellm" => (
            format!("http://127.0.0.1:{port}/health/liveliness"),
            vec![("authorization".to_string(), "Bearer sk-bench".to_string())],
        ),
        _ => (
            format!("http://127.0.0.1:{port}/"),
            vec![
                ("authorization".to_string(), "Bearer dummy".to_string()),
                ("x-portkey-provider".to_string(), "openai".to_string()),
                ("x-portkey-custom-host".to_string(), mock.base_url()),
            ],
        ),
    };
    let started = Instant::now();
    if !wait_http(&ready, Duration::from_secs(180)).await {
        eprintln!("{name}: not ready after 180 s; skipped (is it installed? bench/peers/install.sh)");
        return None;
    }
    eprintln!("{name}: ready in {:.1} s", started.elapsed().as_secs_f64());
    Some(Target {
        name: name.into(),
        bases: vec![format!("http://127.0.0.1:{port}")],
        headers,
        model: "mock-model".into(),
        peer: true,
        roots: vec![pgid],
        _guard: Box::new(proc),
        db: None,
    })
}

// ---------------------------------------------------------------- load

#[derive(Default, Clone)]
struct Sample {
    /// Send to first body byte, µs.
    ttfb: Vec<u64>,
    /// Send to the end of the body, µs.
    total: Vec<u64>,
    errors: usize,
    first_error: Option<String>,
    cpu_ms: f64,
    peak_rss_mb: f64,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

/// Sends `rate` requests a second for `seconds`, open loop, round-robin over
/// `urls`; samples the CPU and memory of the processes under `roots` meanwhile.
async fn load(
    client: &reqwest::Client,
    urls: &[String],
    headers: &[(String, String)],
    body: &Value,
    rate: u64,
    seconds: u64,
    roots: Option<&[u32]>,
) -> Sample {
    let n = rate * seconds;
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let start = Instant::now() + Duration::from_millis(50);
    let cpu_before = roots.map(group_cpu_ms).unwrap_or(0.0);
    // Peak memory in kB, sampled every 250 ms while the run lasts.
    let peak_kb = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    // The process list is read once: scanning /proc during the run would steal
    // the load generator's CPU and show up as latency.
    let sampler = roots.map(|g| {
        let peak = peak_kb.clone();
        let pids = group_pids(g);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(
                    (pids_rss_mb(&pids) * 1024.0) as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    });
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        tokio::time::sleep_until((start + period * i as u32).into()).await;
        let mut req = client.post(&urls[i as usize % urls.len()]).json(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let resp = tokio::time::timeout(Duration::from_secs(10), req.send())
                .await
                .ok()?
                .ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let mut stream = resp.bytes_stream();
            let mut ttfb = None;
            let mut bytes = 0;
            while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .ok()?
            {
                bytes += chunk.ok()?.len();
                ttfb.get_or_insert_with(|| sent.elapsed().as_micros() as u64);
            }
            (bytes > 0).then(|| (ttfb.unwrap_or(0), sent.elapsed().as_micros() as u64))
        }));
    }
    let mut s = Sample::default();
    for t in tasks {
        match t.await.ok().flatten() {
            Some((ttfb, total)) => {
                s.ttfb.push(ttfb);
                s.total.push(total);
            }
            None => s.errors += 1,
        }
    }
    if let (Some(g), Some(sampler)) = (roots, sampler) {
        sampler.abort();
        s.cpu_ms = group_cpu_ms(g) - cpu_before;
        let last = (group_rss_mb(g) * 1024.0) as u64;
        s.peak_rss_mb = peak_kb.load(std::sync::atomic::Ordering::Relaxed).max(last) as f64 / 1024.0;
    }
    s.ttfb.sort_unstable();
    s.total.sort_unstable();
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Per-run overheads (target minus its paired direct run) and costs.
#[derive(Default, Clone)]
struct Cell {
    total: [Vec<f64>; 3],
    ttfb: [Vec<f64>; 3],
    direct_total: [Vec<f64>; 3],
    errors: usize,
    requests: usize,
    cpu_ms_per_req: Vec<f64>,
    peak_rss_mb: f64,
    first_error: Option<String>,
    /// Per call, on a Hrana test server: requests to it, and its write transactions.
    db_requests_per_call: Vec<f64>,
    db_writes_per_call: Vec<f64>,
}

const PCTS: [f64; 3] = [0.5, 0.95, 0.99];

impl Cell {
    fn add(&mut self, direct: &Sample, via: &Sample, requests: usize) {
        for (i, p) in PCTS.iter().enumerate() {
            self.total[i].push(pct(&via.total, *p) - pct(&direct.total, *p));
            self.ttfb[i].push(pct(&via.ttfb, *p) - pct(&direct.ttfb, *p));
            self.direct_total[i].push(pct(&direct.total, *p));
        }
        self.errors += via.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&via.first_error);
        }
        self.requests += requests;
        if requests > 0 {
            self.cpu_ms_per_req.push(via.cpu_ms / requests as f64);
        }
        self.peak_rss_mb = self.peak_rss_mb.max(via.peak_rss_mb);
    }

    /// A run's database use, from the server's counters before and after it.
    fn add_db(&mut self, used: HranaStats, requests: usize) {
        self.db_requests_per_call.push(used.requests as f64 / requests as f64);
        self.db_writes_per_call
            .push(used.write_transactions as f64 / requests as f64);
    }

    /// Median database requests / write transactions per call, or "—".
    fn db_per_call(&self) -> String {
        if self.db_requests_per_call.is_empty() {
            return "—".into();
        }
        format!(
            "{:.2} / {:.2}",
            median(self.db_requests_per_call.clone()),
            median(self.db_writes_per_call.clone())
        )
    }

    fn total(&self, i: usize) -> f64 {
        median(self.total[i].clone())
    }

    fn ttfb(&self, i: usize) -> f64 {
        median(self.ttfb[i].clone())
    }

    /// What a caller notices most: the whole answer's added p99, or for a
    /// stream the first chunk's (a relay that gathers bursts can make the
    /// rest of a stream cheaper to receive than the direct one).
    fn headline(&self, stream: bool) -> f64 {
        if stream {
            self.ttfb(2)
        } else {
            self.total(2)
        }
    }
}

fn ms(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "—".into()
    }
}

// ---------------------------------------------------------------- chart

/// p99 overhead of chat completions by rate, one line per target, log
/// scale; one panel each for streaming and not.
fn chart(results: &Results, targets: &[String], rates: &[u64]) -> String {
    let (w, h, pad) = (420.0, 300.0, 55.0);
    let colors = ["#2563eb", "#0891b2", "#dc2626", "#d97706", "#7c3aed"];
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        w * 2.0 + 20.0,
        h + 40.0
    );
    svg.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    let (lo, hi) = (0.01f64.log10(), 10_000f64.log10());
    for (panel, stream) in [false, true].iter().enumerate() {
        let x0 = panel as f64 * (w + 20.0);
        let title = if *stream {
            "streaming, first chunk"
        } else {
            "non-streaming"
        };
        svg.push_str(&format!(
            r#"<text x="{}" y="16" font-size="13" font-weight="bold">p99 added latency, {title} (ms, log)</text>"#,
            x0 + pad
        ));
        let px = |i: usize| x0 + pad + (w - pad - 10.0) * (i as f64 + 0.5) / rates.len() as f64;
        let py = |v: f64| {
            let v = v.clamp(0.01, 10_000.0).log10();
            30.0 + (h - 60.0) * (1.0 - (v - lo) / (hi - lo))
        };
        for tick in [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10_000.0] {
            let y = py(tick);
            svg.push_str(&format!(
                r##"<line x1="{}" x2="{}" y1="{y}" y2="{y}" stroke="#e5e7eb"/><text x="{}" y="{}" text-anchor="end">{tick}</text>"##,
                x0 + pad,
                x0 + w - 10.0,
                x0 + pad - 4.0,
                y + 4.0
            ));
        }
        for (i, r) in rates.iter().enumerate() {
            svg.push_str(&format!(
                r#"<text x="{}" y="{}" text-anchor="middle">{r}/s</text>"#,
                px(i),
                h - 12.0
            ));
        }
        for (t, name) in targets.iter().enumerate() {
            let color = colors[t % colors.len()];
            let mut points = Vec::new();
            for (i, r) in rates.iter().enumerate() {
                let scenario = Scenario {
                    api: Api::Chat,
                    stream: *stream,
                };
                if let Some(c) = results.get(&(name.clone(), scenario, *r)) {
                    let v = c.headline(*stream);
                    if v.is_finite() && c.errors == 0 {
                        points.push((px(i), py(v.max(0.01))));
                    }
                }
            }
            let path: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            svg.push_str(&format!(
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            ));
            for (x, y) in &points {
                svg.push_str(&format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{color}"/>"#));
            }
            svg.push_str(&format!(
                r#"<rect x="{}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{name}</text>"#,
                x0 + pad + 10.0 + t as f64 * 90.0,
                h + 8.0,
                x0 + pad + 24.0 + t as f64 * 90.0,
                h + 17.0
            ));
        }
    }
    svg.push_str("</svg>\n");
    svg
}

// ---------------------------------------------------------------- main

fn start_mock() -> MockProvider {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            tx.send(MockProvider::start().await).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}

/// Cells of results by target, scenario and rate.
type Results = BTreeMap<(String, Scenario, u64), Cell>;

/// Runs one scenario on one target at each rate (stopping at the first rate
/// with errors), each run paired with a direct run at the same rate.
async fn measure(
    a: &Args,
    client: &reqwest::Client,
    mock: &MockProvider,
    t: &Target,
    scenario: Scenario,
    results: &mut Results,
) {
    let Scenario { api, stream } = scenario;
    let urls = t.urls(api);
    let body = api.body(t.model(api), stream);
    let mut headers = t.headers.clone();
    headers.extend(api.headers());
    let (direct_url, direct_headers, direct_body) = api.direct(mock, stream);
    // Warm connections and caches.
    load(client, &urls, &headers, &body, 20, 1, None).await;
    for &rate in &a.rates {
        let cell = results.entry((t.name.clone(), scenario, rate)).or_default();
        for _ in 0..a.runs {
            wait_idle(&t.roots).await;
            let d = load(
                client,
                std::slice::from_ref(&direct_url),
                &direct_headers,
                &direct_body,
                rate,
                a.seconds,
                None,
            )
            .await;
            let profiler = a.profile.as_ref().map(|dir| {
                let tag = format!("{}-{}-{rate}", t.name, scenario.to_string().replace(' ', "-"));
                Profiler::start(dir, &tag, &t.roots, a.seconds)
            });
            let db_before = t.db_stats();
            let v = load(client, &urls, &headers, &body, rate, a.seconds, Some(&t.roots)).await;
            if let Some(p) = profiler {
                p.finish((rate * a.seconds) as f64);
            }
            let calls = (rate * a.seconds) as usize;
            cell.add(&d, &v, calls);
            if let Some(before) = db_before {
                // Settlements are written after the answers: counted once the gateway is idle.
                wait_idle(&t.roots).await;
                if let Some(after) = t.db_stats() {
                    cell.add_db(after - before, calls);
                }
            }
        }
        eprintln!(
            "{}: {scenario} at {rate}/s: added p50 {} / p99 {} ms, first byte p99 {} ms, database requests / writes per call {}, {} errors{}",
            t.name,
            ms(cell.total(0)),
            ms(cell.total(2)),
            ms(cell.ttfb(2)),
            cell.db_per_call(),
            cell.errors,
            cell.first_error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
        );
        if cell.errors > 0 {
            break;
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = args();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mock = start_mock();
    let behavior = Behavior {
        pieces: (0..a.chunks).map(|i| format!("tok{i} ")).collect(),
        prompt_tokens: 10,
        completion_tokens: a.chunks as u64,
        header_delay: Duration::from_millis(a.latency_ms),
        delay: Duration::from_millis(a.cadence_ms),
        ..Default::default()
    };
    for model in ["bench", "mock-model", COMPAT_MODEL, CLAUDE_MODEL] {
        mock.set(model, behavior.clone());
    }
    mock.set("slow", mock_slow());
    if a.pin {
        // Each gateway gets CPU 1 to itself; the generator and the mock provider share CPU 0.
        pin(std::process::id(), "0");
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(8192)
        .tcp_nodelay(true)
        .build()
        .unwrap();
    println!(
        "machine: {cores} cores, {}; {}",
        cpu_model(),
        if a.pin {
            "each gateway pinned to CPU 1, load generator and mock provider on CPU 0"
        } else {
            "nothing pinned"
        }
    );
    println!(
        "open loop, {} s per run, {} runs per cell (medians), {} chunks per stream, provider latency {} ms, cadence {} ms; \
         one gateway running at a time; a rate is not tried once a lower one failed\n",
        a.seconds, a.runs, a.chunks, a.latency_ms, a.cadence_ms
    );

    let mut results: Results = BTreeMap::new();
    let mut names = Vec::new();
    let mut memory = Vec::new();
    for name in &a.targets {
        // One gateway at a time, so none slows another down.
        let t = match name.as_str() {
            "hub" => Some(start_hub(&a, &mock, false).await),
            "hub-remote" => Some(start_hub(&a, &mock, true).await),
            "hub-multi" => Some(start_hub_multi(&a, &mock, name, true).await),
            "hub-multi-nolease" => Some(start_hub_multi(&a, &mock, name, false).await),
            "hub-cache" => Some(start_hub_cached(&a, &mock).await),
            "hub-baseline" => {
                let bin = a
                    .baseline
                    .clone()
                    .expect("the hub-baseline target needs --baseline <another hub binary>");
                Some(start_hub_from(&a, &mock, false, bin, "hub-baseline").await)
            }
            "litellm" | "portkey" => start_peer(&a, &mock, name).await,
            "worker" | "lambda" => Some(start_serverless(&a, &mock, name).await),
            other => panic!("unknown target {other}"),
        };
        let Some(t) = t else { continue };
        names.push(t.name.clone());
        // Memory first, on the fresh process: a backlog from the top rates
        // leaves allocator pages behind that would be counted as idle.
        memory.push(memory_under_streams(&a, &mock, &client, &t, &behavior).await);
        let scenarios = a
            .apis
            .iter()
            .filter(|api| t.serves(**api))
            .flat_map(|&api| a.scenarios.iter().map(move |&stream| Scenario { api, stream }));
        for scenario in scenarios {
            measure(&a, &client, &mock, &t, scenario, &mut results).await;
        }
        wait_idle(&t.roots).await;
        drop(t);
    }

    println!("| scenario | rate | target | added p50 | added p95 | added p99 | added first byte p50 / p99 | direct p50 / p99 | errors | CPU per request | peak RSS | database requests / write transactions per call |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for ((name, scenario, rate), c) in &results {
        let first = if scenario.stream {
            format!("{} / {} ms", ms(c.ttfb(0)), ms(c.ttfb(2)))
        } else {
            "—".into()
        };
        println!(
            "| {scenario} | {rate}/s | {name} | {} ms | {} ms | {} ms | {first} | {} / {} ms | {}/{}{} | {:.3} ms | {:.0} MB | {} |",
            ms(c.total(0)),
            ms(c.total(1)),
            ms(c.total(2)),
            ms(median(c.direct_total[0].clone())),
            ms(median(c.direct_total[2].clone())),
            c.errors,
            c.requests,
            c.first_error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default(),
            median(c.cpu_ms_per_req.clone()),
            c.peak_rss_mb,
            c.db_per_call()
        );
    }

    println!("\n| scenario | target | highest rate without errors | p99 added latency (streams: to the first chunk) vs hub at each rate |");
    println!("|---|---|---|---|");
    let scenarios: std::collections::BTreeSet<Scenario> = results.keys().map(|(_, s, _)| *s).collect();
    for &scenario in &scenarios {
        for name in &names {
            let cell = |target: &str, r: u64| results.get(&(target.to_string(), scenario, r));
            if a.rates.iter().all(|r| cell(name, *r).is_none()) {
                continue;
            }
            let sustained = a
                .rates
                .iter()
                .filter(|r| cell(name, **r).is_some_and(|c| c.errors == 0))
                .max()
                .map_or("none".to_string(), |r| format!("{r}/s"));
            let stream = scenario.stream;
            let ratios: Vec<String> = a
                .rates
                .iter()
                .map(|r| match (cell(name, *r), cell("hub", *r)) {
                    (Some(m), _) if m.errors > 0 => format!("{r}/s: errors"),
                    (Some(m), Some(h)) if h.headline(stream) >= 0.01 => {
                        format!("{r}/s: {:.1}×", m.headline(stream) / h.headline(stream))
                    }
                    (Some(m), Some(_)) => format!("{r}/s: {} ms vs hub < 0.01 ms", ms(m.headline(stream))),
                    _ => format!("{r}/s: —"),
                })
                .collect();
            println!("| {scenario} | {name} | {sustained} | {} |", ratios.join(", "));
        }
    }

    println!(
        "\n| target | RSS idle | peak RSS with {} concurrent streams | streams completed |",
        a.streams
    );
    println!("|---|---|---|---|");
    for line in &memory {
        println!("{line}");
    }

    let _ = std::fs::create_dir_all(&a.out);
    let svg = chart(&results, &names, &a.rates);
    let path = a.out.join("overhead.svg");
    match std::fs::write(&path, svg) {
        Ok(()) => println!("\nchart: {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
    mock.stop();
}

/// Peak memory of a gateway while `streams` slow streams (50 chunks, 50 ms apart) are open.
async fn memory_under_streams(
    a: &Args,
    mock: &MockProvider,
    client: &reqwest::Client,
    t: &Target,
    normal: &Behavior,
) -> String {
    wait_idle(&t.roots).await;
    let idle = group_rss_mb(&t.roots);
    let model = if t.model == "bench" { "slow" } else { "mock-model" };
    if model == "mock-model" {
        mock.set("mock-model", mock_slow());
    }
    let body =
        json!({"model": model, "messages": [{"role": "user", "content": "hold on"}], "stream": true, "max_tokens": 64});
    let mut tasks = Vec::new();
    for _ in 0..a.streams {
        let (c, u, h, b) = (client.clone(), t.url(Api::Chat), t.headers.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut req = c.post(u).json(&b);
            for (k, v) in h {
                req = req.header(k, v);
            }
            let run = async {
                let resp = req.send().await.ok()?;
                let ok = resp.status().is_success();
                let mut s = resp.bytes_stream();
                while s.next().await.is_some() {}
                Some(ok)
            };
            tokio::time::timeout(Duration::from_secs(30), run).await.ok().flatten()
        }));
    }
    let mut peak = 0.0f64;
    let sampler = Instant::now();
    while !tasks.iter().all(|t| t.is_finished()) && sampler.elapsed() < Duration::from_secs(60) {
        peak = peak.max(group_rss_mb(&t.roots));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ok = 0;
    for task in tasks {
        if task.await.ok().flatten() == Some(true) {
            ok += 1;
        }
    }
    if model == "mock-model" {
        mock.set("mock-model", normal.clone());
    }
    format!("| {} | {idle:.0} MB | {peak:.0} MB | {ok} |", t.name)
}

fn mock_slow() -> Behavior {
    Behavior {
        pieces: (0..50).map(|_| "x ".to_string()).collect(),
        delay: Duration::from_millis(50),
        ..Default::default()
    }
}
