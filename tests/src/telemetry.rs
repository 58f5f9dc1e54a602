//! Telemetry checks with the reference implementations: an OTLP/HTTP
//! receiver decoding every export with `opentelemetry-proto`
//! (`tests/telemetry/otlp_receiver.py`, a [`PyTool`]), and Prometheus pages
//! parsed by `prometheus-client`'s parser (`tests/telemetry/prom_parse.py`).

use crate::pytool::PyTool;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// A running OTLP receiver (stopped when dropped).
pub struct OtlpReceiver {
    tool: PyTool,
    pub port: u16,
}

impl OtlpReceiver {
    pub fn start() -> OtlpReceiver {
        let tool = PyTool::start("tests/telemetry/otlp_receiver.py", "otlp", &[]);
        OtlpReceiver { port: tool.port, tool }
    }

    /// The base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers 503 to the next `n` exports.
    pub fn fail_next(&mut self, n: u32) {
        self.tool.command(&format!("fail {n}"));
    }

    /// Every export so far, as recorded.
    pub fn received(&self) -> Vec<Value> {
        self.tool.records()
    }

    /// Every span of the exports it accepted (200), in order.
    pub fn spans(&self) -> Vec<Value> {
        self.received()
            .iter()
            .filter(|r| r["status"] == 200)
            .filter_map(|r| r["spans"].as_array().cloned())
            .flatten()
            .collect()
    }

    /// Every metric of the exports it accepted (200), in order.
    pub fn metrics(&self) -> Vec<Value> {
        self.received()
            .iter()
            .filter(|r| r["status"] == 200)
            .filter_map(|r| r["metrics"].as_array().cloned())
            .flatten()
            .collect()
    }
}

/// One sample of a parsed Prometheus page.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A Prometheus page as the reference parser read it.
#[derive(Debug, Clone)]
pub struct Page {
    /// Family name → (type, samples).
    pub families: BTreeMap<String, (String, Vec<Sample>)>,
}

impl Page {
    /// The samples named `name` whose labels include every pair of `labels`.
    pub fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.families
            .values()
            .flat_map(|(_, s)| s)
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The sum of those samples (0 with none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name, labels).iter().map(|s| s.value).sum()
    }

    /// The type the page declared for a family.
    pub fn kind(&self, family: &str) -> Option<&str> {
        self.families.get(family).map(|(t, _)| t.as_str())
    }
}

/// Parses a page with `prometheus_client`'s text parser; panics with the
/// parser's complaint if it refuses the page.
pub fn parse_prometheus(text: &str) -> Page {
    let root = crate::worker::repo_root();
    let python = root.join(".venv-tools/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-test-tools",
        python.display()
    );
    let mut child = Command::new(python)
        .arg(root.join("tests/telemetry/prom_parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start prom_parse.py");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("write the page");
    let out = child.wait_with_output().expect("run prom_parse.py");
    assert!(
        out.status.success(),
        "the Prometheus parser refused the page: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Vec<Value> = serde_json::from_slice(&out.stdout).expect("parser output");
    let families = families
        .into_iter()
        .map(|f| {
            let samples = f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| Sample {
                    name: s["name"].as_str().unwrap().to_string(),
                    labels: s["labels"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect(),
                    value: s["value"].as_f64().unwrap_or(f64::NAN),
                })
                .collect();
            (
                f["name"].as_str().unwrap().to_string(),
                (f["type"].as_str().unwrap().to_string(), samples),
            )
        })
        .collect();
    Page { families }
}
