//! The core's clock, randomness and background ports on tokio.

use hub_core::ports::{Background, BoxFuture, Clock, Rng, RngError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

pub struct SystemClock {
    base: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock { base: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn monotonic_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }
}

pub struct OsRng;

impl Rng for OsRng {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RngError> {
        getrandom::fill(buf).map_err(|e| RngError(format!("the operating system's generator failed: {e}")))
    }
}

/// Spawns background work and can wait until all of it has finished
/// (so a shutdown never drops a settlement).
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<(AtomicUsize, Notify)>,
    /// Where work goes when it is spawned from outside any runtime.
    fallback: tokio::runtime::Handle,
}

impl Tracker {
    /// A tracker whose work runs on the caller's runtime, or on `fallback`.
    pub fn new(fallback: tokio::runtime::Handle) -> Self {
        Tracker {
            inner: Arc::default(),
            fallback,
        }
    }

    pub async fn wait_idle(&self) {
        loop {
            let notified = self.inner.1.notified();
            if self.inner.0.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Background for Tracker {
    fn spawn(&self, work: BoxFuture) {
        self.inner.0.fetch_add(1, Ordering::AcqRel);
        let inner = self.inner.clone();
        let handle = tokio::runtime::Handle::try_current().unwrap_or_else(|_| self.fallback.clone());
        handle.spawn(async move {
            work.await;
            if inner.0.fetch_sub(1, Ordering::AcqRel) == 1 {
                inner.1.notify_waiters();
            }
        });
    }

    fn sleep(&self, ms: u64) -> BoxFuture {
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(ms)))
    }
}
