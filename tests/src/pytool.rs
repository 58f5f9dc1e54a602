//! A Python test tool from the repository's `.venv-tools` (see
//! scripts/install-test-tools) run as a child process: it prints `ready PORT`
//! once listening on 127.0.0.1, records what it receives as JSON lines in
//! the file given by `--out`, may take commands on stdin (each answered
//! `ok`), and exits when its stdin closes. The SMTP server and the webhook
//! receiver are two of them.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const STARTUP: Duration = Duration::from_secs(20);

/// A running tool. Dropping it closes its stdin (it exits on its own), and
/// kills it if it has not exited a few seconds later.
pub struct PyTool {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    pub port: u16,
    out: PathBuf,
}

impl PyTool {
    /// Starts `script` (a path under the repository) with `args`; `what`
    /// names it in failures and in its temporary directory.
    pub fn start(script: &str, what: &str, args: &[String]) -> PyTool {
        let root = crate::worker::repo_root();
        let python = root.join(".venv-tools/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/install-test-tools",
            python.display()
        );
        let out = crate::temp_dir(what).join("received.jsonl");
        let mut child = Command::new(python)
            .arg(root.join(script))
            .arg("--out")
            .arg(&out)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let stdin = child.stdin.take();
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        let mut tool = PyTool {
            child,
            stdin,
            lines,
            port: 0,
            out,
        };
        let line = tool
            .lines
            .recv_timeout(STARTUP)
            .unwrap_or_else(|_| panic!("{what} did not start in time"));
        tool.port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("{what} did not start: {line:?}"));
        tool
    }

    /// Sends one command line and waits (bounded) for its `ok`.
    pub fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the tool's stdin");
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .expect("write to the tool");
        let ack = self.lines.recv_timeout(Duration::from_secs(10)).expect("the tool's ok");
        assert_eq!(ack, "ok");
    }

    /// Everything recorded so far, in order.
    pub fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

/// The child's output lines, read on a thread so every wait on them is bounded.
fn read_lines(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

impl Drop for PyTool {
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
