//! Outbound safety under test: provider URLs that lead to cloud metadata
//! services, and providers that redirect. These tests make Hub really try,
//! so they run in a private network namespace (`unshare -rnm`): only `lo`,
//! with the metadata addresses added to it and a [`MetadataTrap`] listening
//! there, and a hosts file naming them. Nothing can leave the machine, and
//! any connection Hub makes to a "metadata service" is recorded.
//!
//! A test calls [`private_network`] first: outside the namespace it runs
//! itself again inside one (and returns `None`: the parent's work is done);
//! inside, it sets the namespace up and returns the guard.

use crate::mock::MockProvider;
use crate::{Api, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Set in the re-executed test process, inside the namespace.
const INSIDE: &str = "HUB_E2E_PRIVATE_NETWORK";

/// Addresses given to `lo` inside the namespace, so that "metadata services" answer there.
const ALIASES: &[&str] = &[
    "169.254.169.254/32",
    "169.254.170.2/32",
    "100.100.100.200/32",
    "fd00:ec2::254/128",
    "64:ff9b::a9fe:a9fe/128",
    "::a9fe:a9fe/128",
];

/// The namespace's hosts file: names that resolve to metadata addresses,
/// only to them, among others, or in IPv4-mapped form.
const HOSTS: &str = "127.0.0.1 localhost\n\
::1 localhost ip6-localhost\n\
169.254.169.254 metadata.test\n\
127.0.0.1 mixed.test\n\
169.254.169.254 mixed.test\n\
::ffff:169.254.169.254 mapped.test\n";

/// The process is inside its private network namespace, set up.
pub struct PrivateNetwork(());

fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether this process is the test re-executed in its namespace.
pub fn inside() -> bool {
    std::env::var_os(INSIDE).is_some()
}

/// Runs the calling test (`test`, its name as `cargo test` lists it) in a
/// private network namespace; see the module documentation. `env` is passed
/// to the re-executed test.
pub fn private_network(test: &str, env: &[(&str, String)]) -> Option<PrivateNetwork> {
    if inside() {
        return Some(enter());
    }
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = Command::new("unshare");
    cmd.arg("-rnm")
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .spawn()
        .expect("unshare (util-linux) runs this test in a private network namespace");
    let mut child = Reaped(child);
    let mut stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "{test} did not finish in its namespace");
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = reader.join().unwrap();
    print!("{text}");
    assert!(
        status.success(),
        "{test} failed in its private network namespace ({status}); if unshare itself failed, \
         this machine does not allow user namespaces (`unshare -rn`)"
    );
    assert!(
        text.contains("1 passed"),
        "{test} did not run in the namespace:\n{text}"
    );
    None
}

/// A child process group, killed if the waiting test panics.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            crate::stop_group(&mut self.0, Duration::from_secs(2));
        }
    }
}

fn enter() -> PrivateNetwork {
    // Refuse to go on anywhere but in a namespace of our own: these tests
    // make Hub connect to metadata addresses.
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip (iproute2)");
    let links = String::from_utf8_lossy(&links.stdout).to_string();
    assert_eq!(
        links.lines().count(),
        1,
        "not in a private network namespace (interfaces: {links})"
    );
    assert!(links.contains(": lo:"), "{links}");
    sh("ip", &["link", "set", "lo", "up"]);
    for a in ALIASES {
        sh("ip", &["addr", "add", a, "dev", "lo"]);
    }
    let hosts = crate::temp_dir("hosts").join("hosts");
    std::fs::write(&hosts, HOSTS).unwrap();
    sh("mount", &["--bind", &hosts.display().to_string(), "/etc/hosts"]);
    PrivateNetwork(())
}

/// One connection a "metadata service" received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The address it was made to.
    pub to: SocketAddr,
    /// The request line and headers.
    pub head: String,
}

/// What the trap answers: credentials, as a metadata service would. If any
/// of it reaches an admin or a caller, the test sees it.
pub const METADATA_SECRET: &str = "ASIA-METADATA-SECRET-0001";

/// A listener on port 80 of every address of the namespace (so of every
/// metadata alias) that records each connection and answers with "credentials".
pub struct MetadataTrap {
    hits: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl MetadataTrap {
    pub async fn start(_net: &PrivateNetwork) -> MetadataTrap {
        let hits = Arc::new(Mutex::new(Vec::new()));
        // One dual-stack listener: IPv4 connections arrive as mapped addresses.
        let listener = tokio::net::TcpListener::bind("[::]:80")
            .await
            .expect("bind [::]:80 in the namespace");
        let recorded = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let to = stream.local_addr().unwrap();
                let hits = recorded.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                        .await
                        .map_or(0, |r| r.unwrap_or(0));
                    let head = String::from_utf8_lossy(&buf[..n]).to_string();
                    hits.lock().unwrap().push(Hit { to, head });
                    let body = json!({"data": [{"id": METADATA_SECRET}], "AccessKeyId": METADATA_SECRET}).to_string();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        MetadataTrap { hits, task }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.hits.lock().unwrap().clear();
    }

    /// Fails, listing them, if anything reached a metadata address.
    pub fn assert_untouched(&self, what: &str) {
        let hits = self.hits();
        assert!(hits.is_empty(), "{what}: the metadata service was reached: {hits:#?}");
    }
}

impl Drop for MetadataTrap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How Hub must treat a spelling of a provider URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A forbidden address in some spelling: refused when saved and before
    /// sending; with HUB_ALLOW_LINK_LOCAL=1 it reaches the trap (`reachable`).
    Address { reachable: bool },
    /// Misleading whatever it points at: refused when saved, even when allowed.
    Misleading,
    /// A name: saved (its addresses are unknown then), refused when resolved.
    Name,
}

/// Provider URL spellings that lead to metadata services.
pub fn spellings() -> Vec<(&'static str, Expect)> {
    use Expect::*;
    let reachable = Address { reachable: true };
    vec![
        ("http://169.254.169.254/latest/meta-data/", reachable),
        ("HTTP://169.254.169.254:80/v1", reachable),
        ("http://169.254.169.254./v1", reachable),
        ("http://0xa9.0xfe.0xa9.0xfe/v1", reachable),
        ("http://0xa9fea9fe/v1", reachable),
        ("http://2852039166/v1", reachable),
        ("http://169.254.43518/v1", reachable),
        ("http://169.16689662/v1", reachable),
        ("http://0251.254.169.254/v1", reachable),
        ("http://0251.0376.0251.0376/v1", reachable),
        ("http://%31%36%39.254.169.254/v1", reachable),
        ("http://169%2E254%2E169%2E254/v1", reachable),
        ("http://169\u{3002}254\u{3002}169\u{3002}254/v1", reachable),
        ("http://169\u{ff0e}254\u{ff0e}169\u{ff0e}254/v1", reachable),
        ("http://\u{ff11}\u{ff16}\u{ff19}.254.169.254/v1", reachable),
        ("http://[::ffff:169.254.169.254]/v1", reachable),
        ("http://[::ffff:a9fe:a9fe]/v1", reachable),
        ("http://[::169.254.169.254]/v1", reachable),
        ("http://[64:ff9b::a9fe:a9fe]/v1", reachable),
        ("http://169.254.170.2/v2/credentials", reachable),
        ("http://100.100.100.200/latest/meta-data", reachable),
        ("http://[fd00:ec2::254]/latest/meta-data", reachable),
        ("http://0.0.0.0/v1", reachable),
        ("http://0/v1", reachable),
        ("http://[fe80::1]/v1", Address { reachable: false }),
        ("http://169.254.169.254\\@example.com/v1", Misleading),
        ("http://example.com\\@169.254.169.254/v1", Misleading),
        ("http://example.com@169.254.169.254/v1", Misleading),
        ("http://user:pass@127.0.0.1:9/v1", Misleading),
        ("http://169.254.1\t69.254/v1", Misleading),
        ("http://metadata.test/v1", Name),
        ("http://mixed.test/v1", Name),
        ("http://mapped.test/v1", Name),
    ]
}

/// A provider that was saved pointing at one spelling.
pub struct Saved {
    pub url: &'static str,
    pub provider: String,
    pub credential: String,
    pub model: String,
}

fn provider_fields(i: usize, url: &str) -> Value {
    json!({"name": format!("ssrf{i}"), "kind": "openai", "base_url": url})
}

/// Every address and misleading spelling is refused when saved, naming the
/// field and what to do; names are saved. Returns the saved ones.
pub async fn save_spellings(api: &Api, rows: &[(&'static str, Expect)]) -> Vec<Saved> {
    const GOOD: &str = "http://127.0.0.1:9/v1";
    let good = api
        .admin(
            Method::POST,
            "/api/admin/providers",
            Some(json!({"name": "ssrf-good", "kind": "openai", "base_url": GOOD})),
        )
        .await;
    let good = format!("/api/admin/providers/{}", good["id"].as_str().unwrap());
    let mut saved = Vec::new();
    for (i, &(url, expect)) in rows.iter().enumerate() {
        if expect != Expect::Name {
            let (status, v) = api
                .call(Method::PATCH, &good, ADMIN_KEY, Some(json!({"base_url": url})))
                .await;
            assert_eq!(
                (status, v["error"]["param"].as_str()),
                (400, Some("base_url")),
                "{url:?}: {v}"
            );
        }
        let (status, v) = api
            .call(
                Method::POST,
                "/api/admin/providers",
                ADMIN_KEY,
                Some(provider_fields(i, url)),
            )
            .await;
        match expect {
            Expect::Name => {
                assert_eq!(status, 201, "{url:?}: {v}");
                saved.push(finish_saving(api, url, v, i).await);
            }
            _ => {
                assert_eq!(status, 400, "{url:?} was accepted: {v}");
                assert_eq!(v["error"]["param"], "base_url", "{url:?}: {v}");
                let msg = v["error"]["message"].as_str().unwrap_or_default();
                if matches!(expect, Expect::Address { .. }) {
                    assert!(msg.contains("HUB_ALLOW_LINK_LOCAL=1"), "{url:?}: {msg}");
                }
            }
        }
    }
    let unchanged = api.admin(Method::GET, &good, None).await;
    assert_eq!(unchanged["base_url"], GOOD, "{unchanged}");
    api.admin(Method::DELETE, &good, None).await;
    saved
}

/// Saves every address spelling while HUB_ALLOW_LINK_LOCAL=1 (misleading
/// ones stay refused).
pub async fn save_allowed(api: &Api, rows: &[(&'static str, Expect)]) -> Vec<Saved> {
    let mut saved = Vec::new();
    for (i, &(url, expect)) in rows.iter().enumerate() {
        let (status, v) = api
            .call(
                Method::POST,
                "/api/admin/providers",
                ADMIN_KEY,
                Some(provider_fields(i, url)),
            )
            .await;
        if expect == Expect::Misleading {
            assert_eq!(status, 400, "{url:?} is refused even when allowed: {v}");
            continue;
        }
        assert_eq!(status, 201, "{url:?}: {v}");
        saved.push(finish_saving(api, url, v, i).await);
    }
    saved
}

async fn finish_saving(api: &Api, url: &'static str, provider: Value, i: usize) -> Saved {
    let provider = provider["id"].as_str().unwrap().to_string();
    let c = api
        .admin(
            Method::POST,
            &format!("/api/admin/providers/{provider}/credentials"),
            Some(json!({"name": "main", "secret": format!("sk-ssrf-secret-{i:04}")})),
        )
        .await;
    let model = format!("ssrf{i}/m{i}");
    api.add_model(&provider, &format!("m{i}"), json!({"input_rate": 0, "output_rate": 0}))
        .await;
    Saved {
        url,
        provider,
        credential: c["id"].as_str().unwrap().to_string(),
        model,
    }
}

pub async fn test_credential(api: &Api, credential: &str) -> Value {
    api.admin(Method::POST, &format!("/api/admin/credentials/{credential}/test"), None)
        .await
}

/// Every saved spelling is refused by the credential test and by a model
/// call, with a message naming the address class and the switch; the trap
/// hears nothing and nothing it would answer reaches anyone.
pub async fn refused_before_connecting(api: &Api, saved: &[Saved], key: &str, trap: &MetadataTrap) {
    for s in saved {
        let t = test_credential(api, &s.credential).await;
        assert_eq!(t["ok"], false, "{:?}: {t}", s.url);
        let msg = t["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("refused") && msg.contains("HUB_ALLOW_LINK_LOCAL=1"),
            "{:?}: {msg}",
            s.url
        );
        let (status, v) = api.chat(key, &s.model).await;
        assert_eq!(status, 502, "{:?}: {v}", s.url);
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("HUB_ALLOW_LINK_LOCAL=1"), "{:?}: {msg}", s.url);
        assert!(!v.to_string().contains(METADATA_SECRET), "{v}");
        trap.assert_untouched(s.url);
    }
}

/// With HUB_ALLOW_LINK_LOCAL=1, each reachable spelling and each name really
/// leads to the trap: the table (and the namespace) test what they claim to.
pub async fn reach_the_trap(api: &Api, saved: &[Saved], trap: &MetadataTrap) {
    for s in saved {
        let expect = spellings().into_iter().find(|(u, _)| *u == s.url).map(|(_, e)| e);
        if !matches!(expect, Some(Expect::Address { reachable: true } | Expect::Name)) {
            continue;
        }
        let before = trap.hits().len();
        let t = test_credential(api, &s.credential).await;
        assert!(
            trap.hits().len() > before,
            "{:?} did not reach the metadata address even when allowed: {t}",
            s.url
        );
    }
    trap.clear();
}

/// A provider answering with a redirect, per status and target: the
/// credential test and calls report it as the provider's failure, and the
/// target hears nothing (so neither the credential nor its answer travels).
pub async fn redirects_are_not_followed(api: &Api, redirector: &MockProvider, targets: &[(&str, &dyn Fn() -> usize)]) {
    let openai = api
        .provider(
            json!({"name": "moved-openai", "kind": "openai", "base_url": redirector.base_url()}),
            "sk-redirected-openai-0001",
        )
        .await;
    let anthropic = api
        .provider(
            json!({"name": "moved-anthropic", "kind": "anthropic", "base_url": format!("{}/v1", redirector.root_url())}),
            "sk-ant-redirected-0001",
        )
        .await;
    api.add_model(&openai, "gpt-moved", json!({"input_rate": 0, "output_rate": 0}))
        .await;
    api.add_model(&anthropic, "claude-moved", json!({"input_rate": 0, "output_rate": 0}))
        .await;
    let (_, key) = api.user_with_key("redirected", "10").await;
    for (provider, model) in [
        (&openai, "moved-openai/gpt-moved"),
        (&anthropic, "moved-anthropic/claude-moved"),
    ] {
        let creds = api
            .admin(
                Method::GET,
                &format!("/api/admin/providers/{provider}/credentials"),
                None,
            )
            .await;
        let credential = creds["data"][0]["id"].as_str().unwrap().to_string();
        for status in [301u64, 302, 303, 307, 308] {
            for (target, received) in targets {
                redirector.redirect(status as u16, target);
                let label = format!("{model}: {status} to {target}");
                let t = test_credential(api, &credential).await;
                assert_eq!(
                    (t["ok"].as_bool(), t["status"].as_u64()),
                    (Some(false), Some(status)),
                    "{label}: {t}"
                );
                assert!(
                    t["message"].as_str().unwrap_or_default().contains("redirect"),
                    "{label}: {t}"
                );
                assert!(!t.to_string().contains(METADATA_SECRET), "{label}: {t}");
                let (code, v) = api.chat(&key, model).await;
                assert_eq!(code, 502, "{label}: {v}");
                let msg = v["error"]["message"].as_str().unwrap_or_default();
                assert!(msg.contains("redirect"), "{label}: {msg}");
                assert_eq!(received(), 0, "{label}: the redirect was followed");
            }
        }
    }
}
