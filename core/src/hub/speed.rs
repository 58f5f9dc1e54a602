//! How fast and how reliably each provider-model answers, as this instance
//! measured it: an exponentially weighted moving average (EWMA) of the time
//! to first byte and of the failure rate per model row (one provider's
//! model). Memory only: choosing by it reads no database. Latency routing
//! (`gateway::routing`) orders candidates by [`Speed::score_ms`].

use std::collections::HashMap;
use std::sync::Mutex;

/// Weight of the newest sample: about the last five calls dominate, so a
/// provider that slows down or starts failing loses traffic within a few
/// calls, and one that recovers regains it within a few successful probes.
const ALPHA: f64 = 0.3;

/// What a failure rate of 1 adds to a score, in milliseconds: a provider that
/// failed its last calls ranks behind any that answers within a second.
pub const FAILURE_PENALTY_MS: f64 = 1000.0;

/// One provider-model's averages.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ewma {
    /// Time to first byte of successful attempts, milliseconds (0 until one succeeded).
    pub ttfb_ms: f64,
    /// Share of recent attempts that failed, 0 to 1.
    pub failure_rate: f64,
    pub samples: u64,
}

/// Every provider-model's averages, and how often each group of candidates
/// was chosen from (for probing).
#[derive(Default)]
pub struct Speed {
    models: Mutex<HashMap<String, Ewma>>,
    picks: Mutex<HashMap<String, u64>>,
}

impl Speed {
    /// An attempt answered; its time to first byte.
    pub fn succeeded(&self, model_id: &str, ttfb_ms: f64) {
        self.update(model_id, |e| {
            e.ttfb_ms = if e.ttfb_ms == 0.0 {
                ttfb_ms
            } else {
                e.ttfb_ms + ALPHA * (ttfb_ms - e.ttfb_ms)
            };
            e.failure_rate *= 1.0 - ALPHA;
        });
    }

    /// An attempt failed at the provider (not for the caller's mistake).
    pub fn failed(&self, model_id: &str) {
        self.update(model_id, |e| e.failure_rate += ALPHA * (1.0 - e.failure_rate));
    }

    fn update(&self, model_id: &str, f: impl FnOnce(&mut Ewma)) {
        if let Ok(mut m) = self.models.lock() {
            let e = m.entry(model_id.to_string()).or_default();
            f(e);
            e.samples += 1;
        }
    }

    pub fn get(&self, model_id: &str) -> Option<Ewma> {
        self.models.lock().ok()?.get(model_id).copied()
    }

    /// Lower is better: the average time to first byte plus a penalty for
    /// failures. None: never measured (tried before any measured one, so a
    /// new provider gets its first samples).
    pub fn score_ms(&self, model_id: &str) -> Option<f64> {
        self.get(model_id)
            .map(|e| e.ttfb_ms + e.failure_rate * FAILURE_PENALTY_MS)
    }

    /// Counts a choice among a group of candidates; returns how many were made before.
    pub fn pick(&self, group: &str) -> u64 {
        let Ok(mut p) = self.picks.lock() else { return 0 };
        let n = p.entry(group.to_string()).or_insert(0);
        *n += 1;
        *n - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_outweigh_speed_and_recover() {
        let s = Speed::default();
        assert_eq!(s.score_ms("fast"), None);
        for _ in 0..5 {
            s.succeeded("fast", 10.0);
            s.succeeded("slow", 310.0);
        }
        assert!(s.score_ms("fast").unwrap() < s.score_ms("slow").unwrap());
        // Two failures put the fast one behind the slow one.
        s.failed("fast");
        s.failed("fast");
        assert!(s.score_ms("fast").unwrap() > s.score_ms("slow").unwrap());
        for _ in 0..10 {
            s.failed("fast");
        }
        // Four successful probes bring it back in front.
        for _ in 0..4 {
            s.succeeded("fast", 10.0);
        }
        assert!(
            s.score_ms("fast").unwrap() < s.score_ms("slow").unwrap(),
            "{:?}",
            s.get("fast")
        );
        assert_eq!(s.get("fast").unwrap().samples, 21);
    }

    #[test]
    fn ttfb_moves_toward_new_samples() {
        let s = Speed::default();
        s.succeeded("m", 100.0);
        assert_eq!(s.get("m").unwrap().ttfb_ms, 100.0);
        s.succeeded("m", 200.0);
        assert!((s.get("m").unwrap().ttfb_ms - 130.0).abs() < 1e-9);
        assert_eq!((s.pick("g"), s.pick("g"), s.pick("h")), (0, 1, 0));
    }
}
