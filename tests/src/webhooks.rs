//! A webhook endpoint for the notification tests (`tests/webhooks/receiver.py`,
//! a [`PyTool`]): each delivery is verified by the Standard Webhooks
//! reference library (`standardwebhooks` 1.1.0) and recorded as a JSON line.

use crate::pytool::PyTool;
use serde_json::Value;

/// A running receiver (stopped when dropped).
pub struct Receiver {
    tool: PyTool,
    pub port: u16,
}

impl Receiver {
    /// Starts one on 127.0.0.1: on `port`, or on a free one.
    pub fn start(port: Option<u16>) -> Receiver {
        let args: Vec<String> = port.map(|p| vec!["--port".into(), p.to_string()]).unwrap_or_default();
        let tool = PyTool::start("tests/webhooks/receiver.py", "webhooks", &args);
        Receiver { port: tool.port, tool }
    }

    /// Where Hub should deliver.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    /// Verifies deliveries with this secret (`whsec_…`) from now on.
    pub fn set_secret(&mut self, secret: &str) {
        self.tool.command(&format!("secret {secret}"));
    }

    /// Answers 500 to the next `n` verified deliveries.
    pub fn fail_next(&mut self, n: u32) {
        self.tool.command(&format!("fail {n}"));
    }

    /// Answers 410 Gone from now on.
    pub fn gone(&mut self) {
        self.tool.command("gone");
    }

    /// Every request so far, in order, as recorded.
    pub fn received(&self) -> Vec<Value> {
        self.tool.records()
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
