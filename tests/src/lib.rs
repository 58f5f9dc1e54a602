//! The black-box suite's toolkit: a mock provider, a launcher for Hub
//! processes on free loopback ports, the Hrana test server for remote libSQL,
//! and helpers that drive Hub through its public HTTP API only.

pub mod bins;
pub mod jobs;
pub mod lambda;
pub mod mock;
pub mod node;
pub mod oidc;
pub mod outbound;
pub mod pytool;
pub mod smtpd;
pub mod stripe;
pub mod suite;
pub mod telemetry;
pub mod webhooks;
pub mod worker;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_KEY: &str = "hub_e2e_admin_key_0123456789abcdef";

/// A running `hub serve`, stopped (SIGKILL) when dropped.
pub struct HubServer {
    pub base: String,
    pub child: Child,
    pub dir: PathBuf,
    pub log: PathBuf,
}

/// Options for starting a Hub process.
#[derive(Clone, Default)]
pub struct Launch {
    /// `--db` target; default a fresh file in the server's temp dir.
    pub db: Option<String>,
    pub env: Vec<(String, String)>,
    /// A program that runs `hub` (e.g. `taskset -c 1`), empty for none.
    pub wrap: Vec<String>,
}

/// The master key of test Hubs on a shared database (a remote database has
/// no key file beside it, and every instance must seal and hash alike).
pub const TEST_MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

impl Launch {
    /// A Hub on the remote libSQL database `hrana` serves.
    pub fn remote(hrana: &HranaServer) -> Launch {
        Launch {
            db: Some(hrana.url.clone()),
            env: vec![("HUB_MASTER_KEY".into(), TEST_MASTER_KEY.into())],
            ..Default::default()
        }
    }
}

/// A loopback port nothing listens on right now, and never handed out before
/// in this process: the port is free only until someone binds it, so two
/// servers started at once by tests in one binary must not be given the same
/// one (the kernel may offer a just-released port again).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Polls `probe` every 25 ms until it returns `Ok`, for at most `within`, and
/// returns its value; otherwise fails saying that `what` never happened and
/// what the last probe saw (its `Err`). For conditions Hub reaches in the
/// background (settlement, the call log, health records): waiting on the
/// condition itself, not on a guessed pause.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        let last = match probe().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Stops a child started as a process group leader, and everything it
/// started: SIGTERM, up to `grace` to exit, then SIGKILL.
pub fn stop_group(child: &mut Child, grace: Duration) {
    let group = format!("-{}", child.id());
    // Quiet: a group that is already gone is the common, good case.
    let kill = |signal: &str| {
        let _ = Command::new("kill")
            .args([signal, "--", &group])
            .stderr(Stdio::null())
            .status();
    };
    kill("-TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill("-KILL");
    let _ = child.wait();
}

/// A child started as a process group leader (`process_group(0)`), stopped
/// with its whole group when dropped: when the test is done with it, and
/// when the test panics.
pub struct ProcessGroup(pub Child);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        stop_group(&mut self.0, Duration::from_secs(5));
    }
}

/// Runs `cmd` to completion in its own process group, for at most `limit`;
/// returns its output (stdout and stderr together), or why it failed. `what`
/// names it in errors.
pub fn run_bounded(mut cmd: Command, limit: Duration, what: &str) -> Result<String, String> {
    let out_path = temp_dir("run").join("output.log");
    let log = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    // Its own process group, stopped whole by the guard however this returns
    // (done, timed out, or a panic): what the script started and left behind
    // (a server, a browser) goes with it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut group = ProcessGroup(cmd.spawn().map_err(|e| format!("{what}: cannot start: {e}"))?);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = group.0.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(group);
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(out_path.parent().unwrap());
    match status {
        Some(s) if s.success() => Ok(output),
        Some(s) => Err(format!("{what} failed ({s}):\n{output}")),
        None => Err(format!("{what} did not finish within {limit:?}:\n{output}")),
    }
}

/// The Debian package `faketime`'s library, wherever the architecture puts
/// it: preloaded into Hub (`LD_PRELOAD`) to move its clock.
pub fn libfaketime() -> String {
    std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists())
        .expect("libfaketime (Debian package faketime) is installed")
        .to_string_lossy()
        .into_owned()
}

/// A fresh directory for one test. Tests in one binary run on parallel threads
/// and can read the same clock value, so a process-wide counter makes the name
/// unique and `create_dir` refuses to hand out a directory twice.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hub-e2e-{tag}-{}", unique()));
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A name part no other call makes, in this process or another one:
/// `<pid>-<sequence>-<nanoseconds>`. The clock alone is not enough (parallel
/// tests read the same value), nor the process id alone.
pub fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let seq = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{seq}-{nanos}", std::process::id())
}

impl HubServer {
    /// Starts `bin serve` on a free port and waits until it answers.
    pub fn start(bin: &Path, launch: Launch) -> HubServer {
        Self::start_in(bin, launch, temp_dir("hub"))
    }

    /// Starts a server on an existing directory (to restart on the same database).
    pub fn start_in(bin: &Path, launch: Launch, dir: PathBuf) -> HubServer {
        let db = launch
            .db
            .clone()
            .unwrap_or_else(|| dir.join("hub.db").display().to_string());
        // Servers may share a directory (a restart, two on one database).
        let log = dir.join(format!("hub-{}.log", unique()));
        let mut cmd = match launch.wrap.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--db", &db])
            .env("HUB_ADMIN_KEY", ADMIN_KEY)
            .env("HUB_LOG", "info")
            .env_remove("HUB_DATABASE_URL")
            .env_remove("HUB_MASTER_KEY")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start hub");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("hub listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "hub did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        HubServer { base, child, dir, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait (bounded) for the process to exit.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/tools/hrana_server.py` on a free port, for the remote libSQL path.
pub struct HranaServer {
    pub url: String,
    /// The SQLite file it serves.
    pub db: PathBuf,
    child: Child,
}

/// The Hrana test server's counters since it started (`GET /stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HranaStats {
    /// HTTP requests (POSTs): round trips to the database.
    pub requests: u64,
    /// Commits that changed rows: transactions, and statements run outside one.
    pub write_transactions: u64,
    /// Statements executed, `BEGIN` and `COMMIT` included.
    pub statements: u64,
}

impl std::ops::Sub for HranaStats {
    type Output = HranaStats;
    fn sub(self, before: HranaStats) -> HranaStats {
        HranaStats {
            requests: self.requests - before.requests,
            write_transactions: self.write_transactions - before.write_transactions,
            statements: self.statements - before.statements,
        }
    }
}

impl HranaServer {
    pub fn start(script: &Path, dir: &Path) -> HranaServer {
        Self::start_with(script, dir, 0)
    }

    /// A server that answers every request `delay_ms` later, as a remote
    /// primary that far away would.
    pub fn start_with(script: &Path, dir: &Path, delay_ms: u64) -> HranaServer {
        let port = free_port();
        let child = Command::new("python3")
            .arg(script)
            .arg(dir.join("remote.db"))
            .arg(format!("127.0.0.1:{port}"))
            .env("HRANA_DELAY_MS", delay_ms.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Hrana test server");
        // In its guard before waiting, so a server that never answers is stopped too.
        let server = HranaServer {
            url: format!("http://127.0.0.1:{port}"),
            db: dir.join("remote.db"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the Hrana test server did not listen within 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Its counters now (a blocking HTTP/1.0 GET on loopback).
    pub fn stats(&self) -> HranaStats {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://");
        let mut conn = std::net::TcpStream::connect(addr).expect("connect to the Hrana test server");
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        conn.write_all(format!("GET /stats HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).expect("read /stats");
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("/stats: {e}: {answer}"));
        let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("/stats lacks {k}: {v}"));
        HranaStats {
            requests: n("requests"),
            write_transactions: n("write_transactions"),
            statements: n("statements"),
        }
    }
}

impl Drop for HranaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs SQL on a SQLite database file with Python's sqlite3 (beside the
/// process using it: it waits for locks): a script of statements, or one
/// query whose rows come back as a JSON array of arrays.
pub fn sqlite(db: &Path, sql: &str) -> Value {
    let script = "import json, sqlite3, sys\n\
                  c = sqlite3.connect(sys.argv[1], timeout=30)\n\
                  q = sys.argv[2].lstrip().upper().startswith('SELECT')\n\
                  rows = c.execute(sys.argv[2]).fetchall() if q else c.executescript(sys.argv[2]).fetchall()\n\
                  c.commit()\n\
                  print(json.dumps(rows))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(sql)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "sqlite {}: {}",
        db.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The Hrana-over-HTTP test server (Python, standard library only) kept in `tests/tools`.
pub fn hrana_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/hrana_server.py")
}

/// A thin client for Hub's HTTP API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_string(),
            http: reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap(),
        }
    }

    /// An admin call that must succeed; returns its JSON.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method.clone(), path, ADMIN_KEY, body).await;
        assert!(status < 300, "{method} {path} -> {status}: {v}");
        v
    }

    /// Waits until OpenID Connect sign-in is offered by every instance behind
    /// `base`: each instance of a multi-instance runtime trusts its cached
    /// configuration for the cache TTL, so a setting saved through one is seen
    /// by the others a few seconds later. Eight answers in a row saying so,
    /// within 15 s.
    pub async fn wait_oidc_everywhere(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut in_a_row = 0;
        while in_a_row < 8 {
            assert!(
                Instant::now() < deadline,
                "OpenID Connect sign-in not offered everywhere after 15 s"
            );
            let methods: Value = self
                .http
                .get(format!("{}/auth/methods", self.base))
                .send()
                .await
                .expect("request to hub")
                .json()
                .await
                .expect("GET /auth/methods answers JSON");
            in_a_row = if methods["oidc"] == true { in_a_row + 1 } else { 0 };
            if in_a_row == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request to hub");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A one-message, non-streamed chat call to `model`.
    pub async fn chat(&self, key: &str, model: &str) -> (u16, Value) {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        self.call(reqwest::Method::POST, "/v1/chat/completions", key, Some(body))
            .await
    }

    /// Provider (pointing at the mock), credential, and a chat model with rates.
    pub async fn setup_provider(&self, name: &str, base_url: &str, secret: &str) -> String {
        let p = self
            .admin(
                reqwest::Method::POST,
                "/api/admin/providers",
                Some(json!({"name": name, "kind": "openai", "base_url": base_url})),
            )
            .await;
        let id = p["id"].as_str().unwrap().to_string();
        self.admin(
            reqwest::Method::POST,
            &format!("/api/admin/providers/{id}/credentials"),
            Some(json!({"name": "main", "secret": secret})),
        )
        .await;
        id
    }

    /// A provider of any kind (fields as the admin API takes them) with one credential.
    pub async fn provider(&self, fields: Value, secret: &str) -> String {
        let p = self
            .admin(reqwest::Method::POST, "/api/admin/providers", Some(fields))
            .await;
        let id = p["id"]
            .as_str()
            .unwrap_or_else(|| panic!("provider not created: {p}"))
            .to_string();
        self.admin(
            reqwest::Method::POST,
            &format!("/api/admin/providers/{id}/credentials"),
            Some(json!({"name": "main", "secret": secret})),
        )
        .await;
        id
    }

    pub async fn add_model(&self, provider_id: &str, model: &str, rates: Value) -> Value {
        let mut body = json!({"provider_id": provider_id, "model": model});
        for (k, v) in rates.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.admin(reqwest::Method::POST, "/api/admin/models", Some(body)).await
    }

    /// A user with `credits` granted, and a key; returns (user id, key).
    pub async fn user_with_key(&self, name: &str, credits: &str) -> (String, String) {
        let u = self
            .admin(reqwest::Method::POST, "/api/admin/users", Some(json!({"name": name})))
            .await;
        let id = u["id"].as_str().unwrap().to_string();
        if credits != "0" {
            let amount: Value = serde_json::from_str(credits).unwrap();
            self.admin(
                reqwest::Method::POST,
                &format!("/api/admin/users/{id}/grants"),
                Some(json!({"amount": amount, "reason": "test"})),
            )
            .await;
        }
        let k = self
            .admin(
                reqwest::Method::POST,
                &format!("/api/admin/users/{id}/keys"),
                Some(json!({"label": "test"})),
            )
            .await;
        (id, k["key"].as_str().unwrap().to_string())
    }

    pub async fn user(&self, id: &str) -> Value {
        self.admin(reqwest::Method::GET, &format!("/api/admin/users/{id}"), None)
            .await
    }

    /// Polls until `check` holds for the user (settlement runs in the background).
    pub async fn wait_user(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let u = self.user(id).await;
            if check(&u) {
                return u;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {u}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn ledger_sum(&self, id: &str) -> i128 {
        let l = self
            .admin(
                reqwest::Method::GET,
                &format!("/api/admin/users/{id}/ledger?limit=500"),
                None,
            )
            .await;
        l["data"].as_array().unwrap().iter().map(|e| nanos(&e["amount"])).sum()
    }

    pub async fn calls(&self, query: &str) -> Vec<Value> {
        let v = self
            .admin(reqwest::Method::GET, &format!("/api/admin/calls?{query}"), None)
            .await;
        v["data"].as_array().unwrap().clone()
    }
}

/// An amount of money Hub answered with, as integer nano-credits. Hub sends
/// money as exact decimal strings: a JSON number here fails the test.
pub fn nanos(v: &Value) -> i128 {
    assert!(v.is_string(), "money must be a decimal string, got {v}");
    hub_core::Credits::from_json(v)
        .unwrap_or_else(|e| panic!("not a credit amount ({e}): {v}"))
        .nanos() as i128
}

/// A JSON number of credits (AIGNE's `aigneHubCredits`, which its published
/// schema types as a number), as integer nano-credits.
pub fn nanos_of_number(v: &Value) -> i128 {
    assert!(v.is_number(), "expected a JSON number of credits, got {v}");
    hub_core::Credits::from_json(v)
        .unwrap_or_else(|e| panic!("not a credit amount ({e}): {v}"))
        .nanos() as i128
}

/// Cost in nano-credits of `tokens` at `rate` credits per million, rounded half up (Hub's formula).
pub fn cost_nanos(parts: &[(u64, &str)]) -> i128 {
    let numerator: i128 = parts
        .iter()
        .map(|(tokens, rate)| *tokens as i128 * nanos(&Value::String(rate.to_string())))
        .sum();
    (numerator + 500_000).div_euclid(1_000_000)
}

/// What `tools/audit_db.py` found in a database file: its own recomputation
/// of every call's cost and every balance, independent of Hub's code.
#[derive(Debug)]
pub struct Audit {
    /// Disagreements; empty when every figure checks out.
    pub problems: Vec<String>,
    /// Call id → its cost in nano-credits, recomputed from tokens × rates.
    pub calls: std::collections::HashMap<String, i128>,
    /// User id → balance in nano-credits (as stored).
    pub balances: std::collections::HashMap<String, i128>,
    pub open_holds: i64,
}

/// Audits a database once settlements stop landing (two audits 200 ms apart
/// agree), within 15 s.
pub fn audit_db_settled(db: &Path) -> Audit {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = audit_db(db);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let next = audit_db(db);
        if next.calls == last.calls && next.balances == last.balances {
            return next;
        }
        assert!(Instant::now() < deadline, "settlements kept landing for 15 s");
        last = next;
    }
}

/// Audits a Hub database file with Python's sqlite3 (see `tools/audit_db.py`).
pub fn audit_db(db: &Path) -> Audit {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/audit_db.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(db)
        .output()
        .expect("run audit_db.py");
    assert!(
        out.status.success(),
        "audit_db.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("audit output");
    let int = |v: &Value| {
        v.as_i64()
            .map(i128::from)
            .unwrap_or_else(|| panic!("not an integer: {v}"))
    };
    Audit {
        problems: v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect(),
        calls: v["calls"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, c)| (k.clone(), int(c)))
            .collect(),
        balances: v["users"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, u)| (k.clone(), int(&u["balance"])))
            .collect(),
        open_holds: v["open_holds"].as_i64().unwrap(),
    }
}
