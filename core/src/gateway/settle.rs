//! Committing finished calls durably. A call's writes (usage, ledger entry,
//! hold, key limits, call log) are never dropped: where the runtime keeps a
//! journal they are appended to it before the caller receives the call's
//! last byte, so a crash cannot lose them; then they are written in the
//! background and retried, with backoff, until the database takes them.

use crate::metering::lease::LeaseCharge;
use crate::ports::{Journal, Stmt};
use crate::Hub;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Settlements retried in memory at once; beyond this, during a long
/// database outage, they wait in the journal only (bounded memory).
const MAX_IN_MEMORY: usize = 10_000;
/// The longest wait between two attempts at a settlement.
const MAX_BACKOFF_MS: u64 = 5_000;

impl Hub {
    /// Gives this Hub a journal (before `start`, which replays it).
    pub fn set_journal(&self, journal: Arc<dyn Journal>) {
        let _ = self.settler().journal.set(journal);
    }

    /// Commits a finished call's writes; see the module documentation.
    /// Returns once they are journaled (or at once without a journal).
    pub(crate) fn commit_settlement(&self, call_id: &str, stmts: Vec<Stmt>) {
        self.commit_settlement_charging(call_id, stmts, None);
    }

    /// Commits a finished call's writes that charge a credit lease, telling
    /// the lease's holder (this instance's book, or the user's wallet) once
    /// they commit: a lease is returned only when its charges are in.
    pub(crate) fn commit_settlement_charging(&self, call_id: &str, stmts: Vec<Stmt>, lease: Option<LeaseCharge>) {
        let settler = &self.settler();
        let seq = settler.journal.get().and_then(|j| {
            let record = serde_json::to_vec(&stmts).unwrap_or_default();
            j.append(&record)
                .map_err(|e| {
                    tracing::error!(
                        call_id,
                        "could not journal a settlement, committing from memory only: {e}"
                    )
                })
                .ok()
        });
        if let Some(seq) = seq {
            if settler.retrying.load(Ordering::Acquire) >= MAX_IN_MEMORY {
                // Its lease stays busy until the replay commits it.
                if let Some(charge) = lease {
                    settler.spill_charge(seq, charge);
                }
                settler.spilled.fetch_add(1, Ordering::AcqRel);
                return;
            }
            settler.claim(seq);
        }
        settler.retrying.fetch_add(1, Ordering::AcqRel);
        let hub = self.clone();
        let call_id = call_id.to_string();
        self.background().spawn(Box::pin(async move {
            hub.commit_until_done(&call_id, seq, stmts).await;
            if let Some(charge) = lease {
                hub.lease_charge_committed(charge).await;
            }
            hub.settler().retrying.fetch_sub(1, Ordering::AcqRel);
        }));
    }

    /// Writes a settlement, retrying with backoff until the database takes it.
    async fn commit_until_done(&self, call_id: &str, seq: Option<u64>, stmts: Vec<Stmt>) {
        let mut wait_ms = 50;
        let metrics = &self.telemetry().metrics;
        for attempt in 1u64.. {
            let started = self.clock().monotonic_us();
            let result = self.store().commit(stmts.clone()).await;
            metrics
                .commits
                .observe_us(self.clock().monotonic_us().saturating_sub(started));
            match result {
                Ok(()) => break,
                Err(e) => {
                    metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                    if attempt == 1 || attempt.is_power_of_two() {
                        tracing::warn!(call_id, attempt, "settlement not committed yet, retrying: {e}");
                    }
                    self.background().sleep(wait_ms).await;
                    wait_ms = (wait_ms * 2).min(MAX_BACKOFF_MS);
                }
            }
        }
        if let (Some(seq), Some(journal)) = (seq, self.settler().journal.get()) {
            journal.done(seq);
            self.settler().release(seq);
        }
    }

    /// Commits what the journal holds that nobody is retrying: at start-up,
    /// everything a previous process left (before the credit book reads the
    /// balances), and later whatever was spilled during an outage. Returns how
    /// many settlements it committed.
    pub async fn replay_journal(&self) -> Result<usize, crate::ports::DbError> {
        let settler = &self.settler();
        let Some(journal) = settler.journal.get() else {
            return Ok(0);
        };
        let pending = journal
            .pending()
            .map_err(|e| crate::ports::DbError::Other(e.to_string()))?;
        let mut committed = 0;
        for (seq, record) in pending {
            if !settler.claim(seq) {
                continue;
            }
            let result = match serde_json::from_slice::<Vec<Stmt>>(&record) {
                Ok(stmts) => self.store().commit(stmts).await,
                Err(e) => {
                    // Not a record Hub wrote whole (cut by a crash mid-write): its
                    // call never sent its last byte, so it was never billed either.
                    tracing::error!(seq, "unreadable settlement in the journal, skipped: {e}");
                    Ok(())
                }
            };
            settler.release(seq);
            result?;
            journal.done(seq);
            committed += 1;
            if let Some(charge) = settler.spilled_charge(seq) {
                self.lease_charge_committed(charge).await;
            }
        }
        if committed > 0 {
            let left = settler.spilled.load(Ordering::Acquire).saturating_sub(committed);
            settler.spilled.store(left, Ordering::Release);
        }
        Ok(committed)
    }

    /// Whether settlements wait in the journal for `replay_journal`.
    pub fn journal_has_spilled(&self) -> bool {
        self.settler().spilled.load(Ordering::Acquire) > 0
    }
}
