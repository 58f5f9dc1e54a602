//! A real SMTP server for the mail tests: aiosmtpd 1.4.6 (`tests/smtpd/smtpd.py`,
//! from the repository's `.venv-tools`, see scripts/install-test-tools),
//! recording each message it receives as a JSON line.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const STARTUP: Duration = Duration::from_secs(20);

/// A running aiosmtpd. Dropping it closes its stdin (it exits on its own),
/// and kills it if it has not exited a few seconds later.
pub struct Smtpd {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
    out: PathBuf,
}

impl Smtpd {
    /// Starts it on a free loopback port; `args` are smtpd.py's options.
    pub fn start(args: &[&str]) -> Smtpd {
        let root = crate::worker::repo_root();
        let python = root.join(".venv-tools/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/install-test-tools",
            python.display()
        );
        let out = crate::temp_dir("smtpd").join("received.jsonl");
        let mut child = Command::new(python)
            .arg(root.join("tests/smtpd/smtpd.py"))
            .arg("--out")
            .arg(&out)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        // Read `ready PORT` on a thread so the wait is bounded even if the
        // server neither prints nor exits.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut server = Smtpd {
            child,
            stdin,
            port: 0,
            out,
        };
        let line = rx.recv_timeout(STARTUP).expect("aiosmtpd did not start in time");
        server.port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("aiosmtpd did not start: {line:?}"));
        server
    }

    /// The messages received so far, as smtpd.py records them.
    pub fn received(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    pub fn only_message(&self) -> Value {
        let mut received = self.received();
        assert_eq!(received.len(), 1, "{received:?}");
        received.remove(0)
    }
}

impl Drop for Smtpd {
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
