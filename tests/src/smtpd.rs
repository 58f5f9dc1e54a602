//! A real SMTP server for the mail tests: aiosmtpd 1.4.6 (`tests/smtpd/smtpd.py`,
//! a [`PyTool`]), recording each message it receives as a JSON line.

use crate::pytool::PyTool;
use serde_json::Value;

/// A running aiosmtpd (stopped when dropped).
pub struct Smtpd {
    tool: PyTool,
    pub port: u16,
}

impl Smtpd {
    /// Starts it on a free loopback port; `args` are smtpd.py's options.
    pub fn start(args: &[&str]) -> Smtpd {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let tool = PyTool::start("tests/smtpd/smtpd.py", "smtpd", &args);
        Smtpd { port: tool.port, tool }
    }

    /// The messages received so far, as smtpd.py records them.
    pub fn received(&self) -> Vec<Value> {
        self.tool.records()
    }

    pub fn only_message(&self) -> Value {
        let mut received = self.received();
        assert_eq!(received.len(), 1, "{received:?}");
        received.remove(0)
    }
}
