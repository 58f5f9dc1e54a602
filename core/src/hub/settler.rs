//! The settlements this process is committing: its journal and what is
//! being retried (`gateway::settle` does the committing).

use crate::ports::Journal;
use std::collections::HashSet;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

/// The settlements this process is committing.
#[derive(Default)]
pub struct Settler {
    pub(crate) journal: std::sync::OnceLock<Arc<dyn Journal>>,
    /// Journal records some task is retrying right now (replays skip them).
    pub(crate) in_memory: Mutex<HashSet<u64>>,
    /// Settlements left to the journal because too many were in memory.
    pub(crate) spilled: AtomicUsize,
    pub(crate) retrying: AtomicUsize,
}

impl Settler {
    pub(crate) fn claim(&self, seq: u64) -> bool {
        self.in_memory.lock().map(|mut s| s.insert(seq)).unwrap_or(false)
    }

    pub(crate) fn release(&self, seq: u64) {
        if let Ok(mut s) = self.in_memory.lock() {
            s.remove(&seq);
        }
    }
}
