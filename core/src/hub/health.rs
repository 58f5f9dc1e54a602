//! Credential health as this instance sees it: which credentials cool down
//! after a 429, which the provider rejected, and when each is re-checked.
//! Failover (`gateway::failover`) decides; this only remembers.

use std::collections::HashMap;
use std::sync::Mutex;

/// The longest cooldown a `retry-after` can ask for.
pub(crate) const MAX_COOLDOWN_MS: i64 = 600_000;
/// The longest wait between two re-checks of a disabled credential.
const MAX_RECHECK_MS: i64 = 3_600_000;

/// Credential health shared by every call of this instance.
#[derive(Default)]
pub struct Health {
    /// Credential id → until when it is cooling down after a 429.
    cooldown: Mutex<HashMap<String, i64>>,
    /// Credentials this instance saw rejected → when. The database learns it
    /// too; a later change of the row (an admin's re-enable) lifts it.
    disabled: Mutex<HashMap<String, i64>>,
    /// Disabled credential id → (failed re-checks, next re-check time).
    rechecks: Mutex<HashMap<String, (u32, i64)>>,
}

impl Health {
    pub fn cooling(&self, credential: &str, now_ms: i64) -> bool {
        self.cooldown
            .lock()
            .map(|m| m.get(credential).is_some_and(|&t| t > now_ms))
            .unwrap_or(false)
    }

    pub fn is_disabled(&self, credential: &str) -> bool {
        self.disabled
            .lock()
            .map(|s| s.contains_key(credential))
            .unwrap_or(false)
    }

    /// Follows the database after a configuration load: a credential the
    /// database lists as usable whose row changed after this instance disabled
    /// it was re-enabled (by an admin, or another instance's re-check).
    /// `credentials` are the database's usable ones, with when their row last changed.
    pub(crate) fn sync<'a>(&self, credentials: impl Iterator<Item = (&'a str, i64)>) {
        let lifted: Vec<String> = match self.disabled.lock() {
            Ok(disabled) if !disabled.is_empty() => credentials
                .filter(|(id, updated_at)| disabled.get(*id).is_some_and(|&at| *updated_at > at))
                .map(|(id, _)| id.to_string())
                .collect(),
            _ => return,
        };
        for id in lifted {
            tracing::info!(credential = %id, "credential re-enabled in the database: back in rotation");
            self.enable(&id);
        }
    }

    pub(crate) fn cool(&self, credential: &str, until_ms: i64) {
        if let Ok(mut m) = self.cooldown.lock() {
            m.retain(|_, t| *t > until_ms - MAX_COOLDOWN_MS);
            m.insert(credential.to_string(), until_ms);
        }
    }

    pub(crate) fn disable(&self, credential: &str, now_ms: i64) {
        if let Ok(mut s) = self.disabled.lock() {
            s.insert(credential.to_string(), now_ms);
        }
    }

    pub(crate) fn enable(&self, credential: &str) {
        if let Ok(mut s) = self.disabled.lock() {
            s.remove(credential);
        }
        if let Ok(mut r) = self.rechecks.lock() {
            r.remove(credential);
        }
    }

    /// Whether a disabled credential is due a re-check.
    pub(crate) fn due(&self, credential: &str, now_ms: i64) -> bool {
        self.rechecks
            .lock()
            .map(|r| r.get(credential).is_none_or(|&(_, at)| at <= now_ms))
            .unwrap_or(false)
    }

    /// Schedules the next re-check after a failed one: base × 2^failures, at most an hour.
    pub(crate) fn backoff(&self, credential: &str, now_ms: i64, base_ms: i64) {
        if let Ok(mut r) = self.rechecks.lock() {
            let e = r.entry(credential.to_string()).or_insert((0, now_ms));
            e.0 = e.0.saturating_add(1);
            let wait = base_ms.saturating_mul(1i64 << e.0.min(20)).min(MAX_RECHECK_MS);
            e.1 = now_ms + wait;
        }
    }
}
