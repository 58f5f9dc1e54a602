//! The settlements this process is committing: its journal and what is
//! being retried (`gateway::settle` does the committing).

use crate::metering::lease::LeaseCharge;
use crate::ports::Journal;
use std::collections::{HashMap, HashSet};
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
    /// What spilled settlements charge leases, by journal record: their
    /// holders are told once the replay commits them.
    pub(crate) spilled_charges: Mutex<HashMap<u64, LeaseCharge>>,
    pub(crate) retrying: AtomicUsize,
}

impl Settler {
    pub(crate) fn claim(&self, seq: u64) -> bool {
        self.in_memory.lock().map(|mut s| s.insert(seq)).unwrap_or(false)
    }

    pub(crate) fn spill_charge(&self, seq: u64, charge: LeaseCharge) {
        if let Ok(mut m) = self.spilled_charges.lock() {
            m.insert(seq, charge);
        }
    }

    pub(crate) fn spilled_charge(&self, seq: u64) -> Option<LeaseCharge> {
        self.spilled_charges.lock().ok()?.remove(&seq)
    }

    pub(crate) fn release(&self, seq: u64) {
        if let Ok(mut s) = self.in_memory.lock() {
            s.remove(&seq);
        }
    }
}
