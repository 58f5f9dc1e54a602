//! A webhook endpoint for the notification tests (`tests/webhooks/receiver.py`,
//! from the repository's `.venv-tools`, see scripts/install-test-tools): each
//! delivery is verified by the Standard Webhooks reference library
//! (`standardwebhooks` 1.1.0) and recorded as a JSON line.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const STARTUP: Duration = Duration::from_secs(20);

/// A running receiver. Dropping it closes its stdin (it exits on its own),
/// and kills it if it has not exited a few seconds later.
pub struct Receiver {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    pub port: u16,
    out: PathBuf,
}

impl Receiver {
    /// Starts one on 127.0.0.1: on `port`, or on a free one.
    pub fn start(port: Option<u16>) -> Receiver {
        let root = crate::worker::repo_root();
        let python = root.join(".venv-tools/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/install-test-tools",
            python.display()
        );
        let out = crate::temp_dir("webhooks").join("received.jsonl");
        let mut cmd = Command::new(python);
        cmd.arg(root.join("tests/webhooks/receiver.py")).arg("--out").arg(&out);
        if let Some(p) = port {
            cmd.arg("--port").arg(p.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the webhook receiver");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        // Lines are read on a thread so every wait is bounded.
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut r = Receiver {
            child,
            stdin,
            lines,
            port: 0,
            out,
        };
        let line = r
            .lines
            .recv_timeout(STARTUP)
            .expect("the webhook receiver did not start in time");
        r.port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the webhook receiver did not start: {line:?}"));
        r
    }

    /// Where Hub should deliver.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("receiver stdin");
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .expect("write to the receiver");
        let ack = self
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the receiver's ok");
        assert_eq!(ack, "ok");
    }

    /// Verifies deliveries with this secret (`whsec_…`) from now on.
    pub fn set_secret(&mut self, secret: &str) {
        self.command(&format!("secret {secret}"));
    }

    /// Answers 500 to the next `n` verified deliveries.
    pub fn fail_next(&mut self, n: u32) {
        self.command(&format!("fail {n}"));
    }

    /// Answers 410 Gone from now on.
    pub fn gone(&mut self) {
        self.command("gone");
    }

    /// Every request so far, in order, as recorded.
    pub fn received(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The requests whose body is an event of this type.
    pub fn of_type(&self, kind: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| body_of(r)["type"] == kind)
            .collect()
    }
}

/// A recorded request's body, parsed.
pub fn body_of(record: &Value) -> Value {
    serde_json::from_str(record["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
