//! Hub as a Cloudflare Worker under `wrangler dev --local`: built once per
//! test process with worker-build, D1 migrated once into a template state
//! directory, then one `wrangler dev` per test on free ports with its own copy
//! of that state, stopped (its whole process group) when dropped.

use crate::ADMIN_KEY;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A fixed test master key (32 bytes, base64).
pub const MASTER_KEY: &str = "dGVzdC1tYXN0ZXIta2V5LWZvci13b3JrZXJzLXRlc3Q=";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn tool(name: &str) -> PathBuf {
    repo_root().join("node_modules/.bin").join(name)
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: cannot run: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn offline_env(cmd: &mut Command) -> &mut Command {
    let home = std::env::var("HOME").unwrap_or_default();
    cmd.env("WASM_BINDGEN_BIN", format!("{home}/.cargo/bin/wasm-bindgen"))
        .env("WASM_OPT_BIN", tool("wasm-opt"))
        .env("ESBUILD_BIN", tool("esbuild"))
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env_remove("CLOUDFLARE_API_TOKEN")
        .env_remove("CLOUDFLARE_ACCOUNT_ID")
}

/// Names the prepared template to a test re-executed in another process
/// (see [`crate::outbound::private_network`]), so it is not built twice.
const TEMPLATE_ENV: &str = "HUB_E2E_WORKER_TEMPLATE";

/// Builds the Worker and its template state now; returns what a re-executed
/// test needs to use them.
pub fn prepared_env() -> Vec<(&'static str, String)> {
    let template = prepared().as_ref().unwrap_or_else(|e| panic!("{e}"));
    vec![(TEMPLATE_ENV, template.display().to_string())]
}

/// Builds the Worker (once per process) and migrates a template D1 state.
fn prepared() -> &'static Result<PathBuf, String> {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    READY.get_or_init(|| {
        if let Some(template) = std::env::var_os(TEMPLATE_ENV) {
            return Ok(PathBuf::from(template));
        }
        let root = repo_root();
        if !tool("wrangler").exists() {
            return Err(format!(
                "{} is missing: run `npm ci` at the repository root",
                tool("wrangler").display()
            ));
        }
        run(
            offline_env(
                Command::new("worker-build")
                    .arg("--release")
                    .current_dir(root.join("functions/worker")),
            ),
            "worker-build --release (install it with `cargo install worker-build --version 0.8.7 --locked`)",
        )?;
        let template = crate::temp_dir("d1-template");
        run(
            offline_env(
                Command::new(tool("wrangler"))
                    .args([
                        "d1",
                        "migrations",
                        "apply",
                        "DB",
                        "--local",
                        "-c",
                        "wrangler.test.toml",
                        "--persist-to",
                    ])
                    .arg(&template)
                    .current_dir(&root),
            ),
            "wrangler d1 migrations apply",
        )?;
        Ok(template)
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A running `wrangler dev --local` serving the Hub Worker.
pub struct WorkerServer {
    pub base: String,
    child: Child,
    pub log: PathBuf,
    /// The local D1 state, to start another server on (see [`WorkerServer::start_on`]).
    pub state: PathBuf,
}

impl WorkerServer {
    pub fn start(vars: &[(&str, &str)]) -> WorkerServer {
        let template = prepared().as_ref().unwrap_or_else(|e| panic!("{e}"));
        let state = crate::temp_dir("worker").join("state");
        copy_dir(template, &state);
        Self::start_on(&state, vars)
    }

    /// Starts a server on an existing state (the database of an earlier one).
    pub fn start_on(state: &Path, vars: &[(&str, &str)]) -> WorkerServer {
        let state = state.to_path_buf();
        let dir = state.parent().unwrap().to_path_buf();
        let (port, inspector) = (crate::free_port(), crate::free_port());
        let log = dir.join(format!("wrangler-{port}.log"));
        let mut cmd = Command::new(tool("wrangler"));
        cmd.args([
            "dev",
            "--local",
            "--ip",
            "127.0.0.1",
            "-c",
            "wrangler.test.toml",
            "--show-interactive-dev-session=false",
            // GET /__scheduled runs the Cron Trigger's handler.
            "--test-scheduled",
        ])
        .args(["--port", &port.to_string(), "--inspector-port", &inspector.to_string()])
        .arg("--persist-to")
        .arg(&state)
        .args(["--var", &format!("HUB_ADMIN_KEY:{ADMIN_KEY}")])
        .args(["--var", &format!("HUB_MASTER_KEY:{MASTER_KEY}")]);
        for (k, v) in vars {
            cmd.args(["--var", &format!("{k}:{v}")]);
        }
        offline_env(&mut cmd)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(std::fs::File::options().append(true).open(&log).unwrap()));
        // Its own process group, so stopping it stops workerd too.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("start wrangler dev");
        let server = WorkerServer {
            base: format!("http://127.0.0.1:{port}"),
            child,
            log,
            state,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && ureq_get(&format!("{}/healthz", server.base)).is_some_and(|s| s == 200);
            if ready {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "wrangler dev did not start:\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// wrangler's process id (its process group holds workerd), for CPU and memory.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Runs SQL on a Worker's local D1 state with `wrangler d1 execute --local`
/// (with no server running on it); returns the rows of its last statement as
/// a JSON array of arrays, in the order of `columns`.
pub fn d1_execute(state: &Path, sql: &str, columns: &[&str]) -> Result<serde_json::Value, String> {
    // Bounded: `timeout` stops wrangler (and it its workerd) after a minute.
    let mut cmd = Command::new("timeout");
    cmd.arg("60")
        .arg(tool("wrangler"))
        .args([
            "d1",
            "execute",
            "DB",
            "--local",
            "--json",
            "-c",
            "wrangler.test.toml",
            "--command",
            sql,
        ])
        .arg("--persist-to")
        .arg(state)
        .current_dir(repo_root());
    let out = offline_env(&mut cmd)
        .output()
        .map_err(|e| format!("wrangler d1 execute: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrangler d1 execute failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let results: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    let rows = results
        .as_array()
        .and_then(|r| r.last())
        .and_then(|r| r["results"].as_array())
        .ok_or_else(|| format!("no results in {text}"))?;
    Ok(rows
        .iter()
        .map(|row| columns.iter().map(|c| row[*c].clone()).collect::<serde_json::Value>())
        .collect())
}

/// The SQLite file of a Worker's local D1 database (to audit it directly).
pub fn d1_file(state: &Path) -> PathBuf {
    let dir = state.join("v3/d1/miniflare-D1DatabaseObject");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sqlite") && !p.ends_with("metadata.sqlite"))
        .collect();
    assert_eq!(files.len(), 1, "one D1 database file in {}: {files:?}", dir.display());
    files.remove(0)
}

/// A blocking GET's status, for readiness checks (no async runtime needed).
fn ureq_get(url: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let addr = url.strip_prefix("http://")?;
    let (host, path) = addr.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = [0u8; 32];
    let n = s.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.split(' ').nth(1)?.parse().ok()
}

impl Drop for WorkerServer {
    fn drop(&mut self) {
        crate::stop_group(&mut self.child, Duration::from_secs(5));
    }
}
