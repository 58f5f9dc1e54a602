//! Admission and the hold: a call reserves its key's limits and its worst
//! case in credit before any provider is asked, and gives back what it did
//! not use however it ends.

use crate::auth::{Caller, KeyLimits};
use crate::error::ApiError;
use crate::http::{HeaderName, HeaderValue};
use crate::metering::lease::LeaseId;
use crate::metering::money::Credits;
use crate::metering::HeldIn;
use crate::metering::Usage;
use crate::store::{CallLog, KeyUse};
use crate::Hub;
use std::sync::atomic::Ordering::Relaxed;

/// Admits a call under its key's limits (rpm, tpm, daily and monthly spend),
/// reserving `usage_bound` tokens and `amount` credits; 429 naming the limit,
/// with `retry-after`. Returns what the key used in the last minute (None
/// for a key without limits).
///
/// The reservation lasts `ttl_ms` (the call's hold lifetime) if the call
/// never settles.
pub(crate) async fn admit_key(
    hub: &Hub,
    caller: &Caller,
    call_id: &str,
    usage_bound: &Usage,
    amount: Credits,
    ttl_ms: i64,
) -> Result<Option<KeyUse>, ApiError> {
    if !caller.budgeted() {
        return Ok(None);
    }
    let tokens = i64::try_from(usage_bound.input_tokens.saturating_add(usage_bound.output_tokens)).unwrap_or(i64::MAX);
    let now = hub.now_ms();
    let store = hub.store();
    if let Some(used) = store
        .admit_key_call(call_id, caller, tokens, amount.nanos(), now, now.saturating_add(ttl_ms))
        .await?
    {
        return Ok(Some(used));
    }
    let reached = store.key_limit_reached(caller, tokens, amount.nanos(), now).await?;
    if let Some((limit, _)) = reached {
        crate::notify::budget_reached(hub, caller, limit);
    }
    let which = reached.map_or("a limit", |(l, _)| l.describe());
    let wait_ms = reached.and_then(|(_, w)| w);
    Err(
        ApiError::rate_limited(format!("This API key has reached {which}; try again later."))
            .with_retry_after_ms(wait_ms.unwrap_or(1000)),
    )
}

/// The window of requests-per-minute and tokens-per-minute limits.
const MINUTE_MS: i64 = 60_000;

/// OpenAI's rate-limit headers for a key's per-minute limits, after a call
/// was admitted: the limit, what is left of it, and when it is whole again
/// (once the call just admitted, the newest, leaves the one-minute window).
pub(crate) fn rate_limit_headers(limits: &KeyLimits, used: &KeyUse) -> Vec<(HeaderName, HeaderValue)> {
    let reset = crate::time::go_duration(MINUTE_MS);
    let mut out = Vec::new();
    for (kind, limit, used) in [
        ("requests", limits.rpm, used.requests),
        ("tokens", limits.tpm, used.tokens),
    ] {
        let Some(limit) = limit else { continue };
        for (what, value) in [
            ("limit", limit.to_string()),
            ("remaining", (limit - used).max(0).to_string()),
            ("reset", reset.clone()),
        ] {
            if let (Ok(n), Ok(v)) = (
                HeaderName::try_from(format!("x-ratelimit-{what}-{kind}")),
                HeaderValue::try_from(value),
            ) {
                out.push((n, v));
            }
        }
    }
    out
}

/// Releases a call's hold and logs its failed attempts unless a relay took
/// the call over: on failure of every provider, and when the request is
/// dropped mid-flight.
pub(crate) struct HoldGuard {
    hub: Hub,
    call_id: String,
    user: String,
    hold: Option<(Credits, HeldIn)>,
    /// A key-limits reservation to give back if no relay takes the call.
    key_limited: bool,
    failed: Vec<CallLog>,
    /// Dropped while paused, it releases nothing ([`HoldGuard::pause`]).
    paused: bool,
    /// Whether the hold placed is counted in the open-holds gauge.
    counted: bool,
    /// Whether a wallet is placing the hold right now (see `hold_from_lease`).
    wallet_pending: bool,
    /// The call's trace while no relay has taken the call.
    pub trace: Option<crate::telemetry::trace::CallTrace>,
}

impl HoldGuard {
    pub fn new(hub: &Hub, call_id: &str, caller: &Caller) -> Self {
        HoldGuard {
            hub: hub.clone(),
            call_id: call_id.to_string(),
            user: caller.user_id.clone(),
            hold: None,
            key_limited: caller.budgeted(),
            failed: Vec::new(),
            paused: false,
            counted: false,
            wallet_pending: false,
            trace: None,
        }
    }

    /// Holds `amount` for the call (402 when the free balance cannot cover
    /// it): in the credit book (an embedded database), from a lease (a
    /// shared database, when `leasable`: a call whose hold ends with it) in
    /// the user's wallet (the Worker) or this instance's book, else in a
    /// hold row of its own. A hold row is released even
    /// if the request is dropped while its write is in flight, so the guard
    /// is armed before it (releasing a hold that was never placed changes
    /// nothing); the others are taken without a write, so they are armed
    /// once taken.
    pub async fn place(
        &mut self,
        settings: &crate::config::Settings,
        amount: Credits,
        ttl_ms: i64,
        leasable: bool,
    ) -> Result<(), ApiError> {
        let hub = self.hub.clone();
        let placed = if let Some(book) = hub.book() {
            hub.open_in_book(&self.user).await?;
            let ok = book.try_hold(&self.user, amount, hub.now_ms());
            if ok {
                self.hold = Some((amount, HeldIn::Book));
            }
            ok
        } else if let Some(lease) = match leasable {
            true => self.hold_from_lease(&hub, amount, ttl_ms).await?,
            false => None,
        } {
            self.hold = Some((amount, HeldIn::Lease(lease)));
            true
        } else {
            self.hold = Some((amount, HeldIn::Row));
            let now = hub.now_ms();
            let store = hub.store();
            let mut ok = store.place_hold(&self.call_id, &self.user, amount, now, ttl_ms).await?;
            // Credit still held by calls or leases past their expiry (a dead
            // instance's) is the user's again, swept or not.
            if !ok && store.expire_user_holds(&self.user, now).await? > 0 {
                ok = store.place_hold(&self.call_id, &self.user, amount, now, ttl_ms).await?;
            }
            if !ok {
                self.hold = None;
            }
            ok
        };
        if !placed {
            return Err(hub.not_enough(settings, Some(amount)));
        }
        self.counted = true;
        hub.telemetry().metrics.holds_open.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Holds from the user's lease (None: the call holds a row). A wallet
    /// that did not answer may still have placed the hold: it is told to
    /// drop it (a no-op if it placed none).
    async fn hold_from_lease(&mut self, hub: &Hub, amount: Credits, ttl_ms: i64) -> Result<Option<LeaseId>, ApiError> {
        // Dropped while waiting (the client left), the guard cancels it too.
        self.wallet_pending = true;
        let held = hub.hold_from_lease(&self.user, &self.call_id, amount, ttl_ms).await;
        self.wallet_pending = false;
        held.map_err(|e| {
            hub.cancel_in_wallet(&self.user, &self.call_id);
            e.into()
        })
    }

    /// Where the hold placed lives (None: no hold was placed).
    pub fn held_in(&self) -> Option<HeldIn> {
        self.hold.as_ref().map(|(_, at)| at.clone())
    }

    /// Keeps a failed attempt's log row, written with the release or the settlement.
    pub fn failed(&mut self, log: CallLog) {
        self.failed.push(log);
    }

    /// While a started job is recorded: a request dropped then (the client
    /// left) must not release a hold the job's row may already own. Left
    /// open, the hold is settled by the job if its row was written, else
    /// released at its expiry (or, on the embedded database, at restart).
    pub fn pause(&mut self) {
        self.paused = true;
    }

    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// The failed attempts so far.
    pub fn failed_attempts(&self) -> &[CallLog] {
        &self.failed
    }

    /// Hands the call to its meter; returns the failed attempts to log with it.
    pub fn disarm(&mut self) -> Vec<CallLog> {
        self.hold = None;
        self.key_limited = false;
        // The meter closes the hold, and counts it closed.
        self.counted = false;
        std::mem::take(&mut self.failed)
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        // A paused hold is the video job's now: no longer this call's to count.
        if std::mem::take(&mut self.counted) {
            self.hub.telemetry().metrics.holds_open.fetch_sub(1, Relaxed);
        }
        if std::mem::take(&mut self.wallet_pending) {
            self.hub.cancel_in_wallet(&self.user, &self.call_id);
        }
        if self.paused {
            return;
        }
        let hold = self.hold.take();
        let failed = std::mem::take(&mut self.failed);
        if !failed.is_empty() {
            let logs: Vec<&CallLog> = failed.iter().collect();
            self.hub.call_ended(self.trace.take(), &logs);
        }
        let mut stmts: Vec<crate::ports::Stmt> = failed.iter().map(crate::store::call_log_stmt).collect();
        let now = self.hub.now_ms();
        match hold {
            Some((amount, HeldIn::Book)) => {
                if let Some(book) = self.hub.book() {
                    book.settle(&self.user, amount, Credits::ZERO);
                }
            }
            Some((_, HeldIn::Lease(lease))) => {
                // Nothing charged: nothing to wait for.
                let _ = self
                    .hub
                    .lease_call_ended(&self.user, lease, &self.call_id, Credits::ZERO);
            }
            Some((_, HeldIn::Row)) => stmts.push(crate::store::Store::release_hold_stmt(&self.call_id, now)),
            None => {}
        }
        let key_limited = std::mem::take(&mut self.key_limited);
        // Nothing was used: the key's limits get the reservation back (the request still counts).
        if key_limited {
            stmts.push(crate::store::Store::key_call_stmt(&self.call_id, 0, 0));
        }
        if !stmts.is_empty() {
            // Retried until committed, like a settlement: a hold left open would
            // lock the user's credit until it expires.
            self.hub.commit_settlement(&self.call_id, stmts);
        }
    }
}
