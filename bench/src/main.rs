//! `hub-bench`: Hub's added latency and memory, measured against calling the
//! mock provider directly, in the same run, with an open-loop generator (each
//! request's latency counts from when it was *scheduled*, so a slow gateway
//! cannot hide its queueing: no coordinated omission).
//!
//! Usage: hub-bench --hub target/release/hub [--rate 500] [--seconds 10] [--runs 3] [--streams 200] [--chunks 20]

use futures_util::StreamExt;
use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{Api, HubServer, Launch};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Args {
    hub: PathBuf,
    rate: u64,
    seconds: u64,
    runs: usize,
    streams: usize,
    chunks: usize,
    billing: bool,
    pin: bool,
}

fn args() -> Args {
    let mut a = Args {
        hub: PathBuf::from("target/release/hub"),
        rate: 500,
        seconds: 10,
        runs: 3,
        streams: 200,
        chunks: 20,
        billing: true,
        pin: true,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--hub" => a.hub = PathBuf::from(v),
            "--rate" => a.rate = v.parse().expect("--rate"),
            "--seconds" => a.seconds = v.parse().expect("--seconds"),
            "--runs" => a.runs = v.parse().expect("--runs"),
            "--streams" => a.streams = v.parse().expect("--streams"),
            "--chunks" => a.chunks = v.parse().expect("--chunks"),
            "--billing" => a.billing = v != "off",
            "--pin" => a.pin = v != "off",
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

/// Picks one latency series out of a sample.
type Metric = fn(&Sample) -> &Vec<u64>;

#[derive(Default, Clone)]
struct Sample {
    /// Scheduled start to first body byte, µs.
    ttfb: Vec<u64>,
    /// Scheduled start to the end of the body, µs.
    total: Vec<u64>,
    /// How late each request left against its schedule, µs.
    lag: Vec<u64>,
    errors: usize,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

/// Sends `rate` requests a second for `seconds`, open loop.
async fn load(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: &serde_json::Value,
    rate: u64,
    seconds: u64,
) -> Sample {
    let n = rate * seconds;
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        let scheduled = start + period * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let req = client.post(url).bearer_auth(key).json(body);
        tasks.push(tokio::spawn(async move {
            // Timers fire on a 1 ms grid: count from the real send, and report how late sends were.
            let lag = scheduled.elapsed().as_micros() as u64;
            let scheduled = Instant::now();
            let resp = tokio::time::timeout(Duration::from_secs(10), req.send())
                .await
                .ok()?
                .ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let mut stream = resp.bytes_stream();
            let mut ttfb = None;
            while let Some(chunk) = stream.next().await {
                chunk.ok()?;
                ttfb.get_or_insert_with(|| scheduled.elapsed().as_micros() as u64);
            }
            Some((ttfb.unwrap_or(0), scheduled.elapsed().as_micros() as u64, lag))
        }));
    }
    let mut s = Sample::default();
    for t in tasks {
        match t.await.ok().flatten() {
            Some((ttfb, total, lag)) => {
                s.ttfb.push(ttfb);
                s.total.push(total);
                s.lag.push(lag);
            }
            None => s.errors += 1,
        }
    }
    s.lag.sort_unstable();
    s.ttfb.sort_unstable();
    s.total.sort_unstable();
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The mock provider on its own thread and runtime, apart from the load generator.
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = args();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mock = start_mock();
    let pieces: Vec<String> = (0..a.chunks).map(|i| format!("tok{i} ")).collect();
    mock.set(
        "bench",
        Behavior {
            pieces: pieces.clone(),
            prompt_tokens: 10,
            completion_tokens: a.chunks as u64,
            ..Default::default()
        },
    );
    mock.set(
        "slow",
        Behavior {
            pieces: (0..50).map(|_| "x ".to_string()).collect(),
            delay: Duration::from_millis(50),
            ..Default::default()
        },
    );
    let hub_bin = a.hub.clone();
    let mut hub = tokio::task::spawn_blocking(move || {
        HubServer::start(
            &hub_bin,
            Launch {
                env: vec![(
                    "HUB_LOG".into(),
                    std::env::var("BENCH_HUB_LOG").unwrap_or("warn".into()),
                )],
                ..Default::default()
            },
        )
    })
    .await
    .unwrap();
    if a.pin {
        // Hub on its own core; the generator and the mock provider on the other, so
        // the figures measure Hub's work, not three processes fighting over two cores.
        pin(hub.child.id(), "1");
        pin(std::process::id(), "0");
    }
    let api = Api::new(&hub.base);
    let provider = api.setup_provider("mock", &mock.base_url(), "sk-bench").await;
    api.add_model(&provider, "bench", json!({"input_rate": 0.15, "output_rate": 0.6}))
        .await;
    api.add_model(&provider, "slow", json!({"input_rate": 0.15, "output_rate": 0.6}))
        .await;
    let (_, key) = api.user_with_key("bench", "1000000").await;
    if !a.billing {
        api.admin(
            reqwest::Method::PATCH,
            "/api/admin/settings",
            Some(json!({"billing_enabled": false})),
        )
        .await;
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let direct_url = format!("{}/chat/completions", mock.base_url());
    let hub_url = format!("{}/v1/chat/completions", hub.base);

    println!(
        "machine: {cores} cores, {}; Hub {}",
        cpu_model(),
        if a.pin {
            "pinned to CPU 1, generator and mock provider to CPU 0"
        } else {
            "not pinned"
        }
    );
    println!(
        "rate {} req/s, {} s per run, {} runs (medians shown), {} chunks per stream, billing {}\n",
        a.rate,
        a.seconds,
        a.runs,
        a.chunks,
        if a.billing { "on" } else { "off" }
    );
    println!("| scenario | metric | direct p50 | direct p99 | via Hub p50 | via Hub p99 | overhead p50 | overhead p99 | errors |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for stream in [false, true] {
        let body = json!({"model": "bench", "messages": [{"role": "user", "content": "benchmark prompt"}], "stream": stream, "max_tokens": 64});
        // Warm both paths (connections, caches).
        load(&client, &direct_url, "sk-bench", &body, 200, 1).await;
        load(&client, &hub_url, &key, &body, 200, 1).await;
        let metrics: [(&str, Metric); 2] = [("total", |s| &s.total), ("first byte", |s| &s.ttfb)];
        let mut rows: Vec<[Vec<f64>; 4]> = vec![Default::default(), Default::default()];
        let mut errors = 0;
        for _ in 0..a.runs {
            let d = load(&client, &direct_url, "sk-bench", &body, a.rate, a.seconds).await;
            let h = load(&client, &hub_url, &key, &body, a.rate, a.seconds).await;
            errors += d.errors + h.errors;
            for (i, (_, get)) in metrics.iter().enumerate() {
                rows[i][0].push(pct(get(&d), 0.5));
                rows[i][1].push(pct(get(&d), 0.99));
                rows[i][2].push(pct(get(&h), 0.5));
                rows[i][3].push(pct(get(&h), 0.99));
            }
        }
        for (i, (name, _)) in metrics.iter().enumerate() {
            if !stream && i == 1 {
                continue;
            }
            let m: Vec<f64> = rows[i].iter().cloned().map(median).collect();
            println!(
                "| {} | {name} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {errors} |",
                if stream { "streaming" } else { "non-streaming" },
                m[0],
                m[1],
                m[2],
                m[3],
                m[2] - m[0],
                m[3] - m[1]
            );
        }
    }

    // Memory: `streams` concurrent slow streams (50 chunks, 50 ms apart).
    let pid = hub.child.id();
    let idle = rss_kb(pid);
    let body = json!({"model": "slow", "messages": [{"role": "user", "content": "hold on"}], "stream": true, "max_tokens": 64});
    let mut tasks = Vec::new();
    for _ in 0..a.streams {
        let (c, u, k, b) = (client.clone(), hub_url.clone(), key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let resp = c.post(u).bearer_auth(k).json(&b).send().await.ok()?;
            let ok = resp.status().is_success();
            let mut s = resp.bytes_stream();
            while s.next().await.is_some() {}
            Some(ok)
        }));
    }
    let mut peak = 0;
    let sampler = Instant::now();
    while !tasks.iter().all(|t| t.is_finished()) && sampler.elapsed() < Duration::from_secs(30) {
        peak = peak.max(rss_kb(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.ok().flatten() == Some(true) {
            ok += 1;
        }
    }
    println!("\n| memory | value |\n|---|---|");
    println!("| RSS after the latency runs | {:.1} MB |", idle as f64 / 1024.0);
    println!(
        "| peak RSS with {} concurrent streams ({ok} completed) | {:.1} MB |",
        a.streams,
        peak as f64 / 1024.0
    );
    hub.terminate(Duration::from_secs(10));
    mock.stop();
}

fn pin(pid: u32, cpus: &str) {
    let ok = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("warning: could not pin {pid} to CPU {cpus} (taskset missing?)");
    }
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
