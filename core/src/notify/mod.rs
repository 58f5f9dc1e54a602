//! Notifications: events about money and credentials, delivered as signed
//! webhooks to operator endpoints (Standard Webhooks) and as mail to the
//! customer.
//!
//! - Events are rows written in the same transaction as the change that
//!   causes them: the schema's triggers (`infra/migrations/0009`) write the
//!   balance crossings, grants, purchases, refunds, failed payments and
//!   credential health changes, so every writer (settlements, journal
//!   replays, refunds, expiry) is covered without code of its own and nothing
//!   is announced for a change that did not commit. Hub writes the others
//!   itself: a key's budget reached ([`budget_reached`]) and test events.
//! - Deliveries fan out from an event in the same transaction (one per
//!   subscribed webhook, one mail when the customer gets one), and
//!   [`deliver`]'s job sends them, with retries and a log of every attempt.
//! - [`webhooks`]: `/api/admin/webhooks`; [`prefs`]: `/api/me/notifications`.

pub mod deliver;
pub(crate) mod mail;
pub(crate) mod payload;
pub mod prefs;
pub mod sign;
pub mod webhooks;

use crate::auth::Caller;
use crate::hub::Hub;
use crate::kinds::{named, KeyLimit};
use crate::store::NewEvent;
use serde_json::json;

named!(
    /// What an event announces (the webhook payload's `type`).
    EventType {
        /// The balance went below the user's threshold (once per crossing).
        BalanceLow = "balance.low",
        /// The balance went to zero or below.
        BalanceExhausted = "balance.exhausted",
        /// Credits granted by an admin, a redemption code or Hub itself.
        CreditsGranted = "credits.granted",
        /// A paid checkout's credits.
        CreditsPurchased = "credits.purchased",
        /// A refund took credits back.
        PaymentRefunded = "payment.refunded",
        /// An asynchronous payment failed after the checkout.
        PaymentFailed = "payment.failed",
        /// A provider rejected a credential: it is out of rotation.
        CredentialDisabled = "credential.disabled",
        /// A disabled credential works again (a re-check, or an admin).
        CredentialEnabled = "credential.enabled",
        /// A key's limit refused a call (once per key, limit and window).
        /// Team budgets, when they come, add `team.budget_reached` here,
        /// raised the same way (see [`budget_reached`]).
        KeyBudgetReached = "key.budget_reached",
        /// A model sells some rate below its cost (a price sync, or an admin's forced rate).
        ModelBelowCost = "model.below_cost",
        /// Sent by `POST /api/admin/webhooks/{id}/test`, to that webhook only.
        WebhookTest = "webhook.test",
    }
);

/// Announces that a key's limit refused a call: once per key, limit and
/// window (the event's dedupe key, checked by the database; this instance
/// also remembers the last window it announced, so a key hammering its limit
/// costs no write per refused call). Written in the background: the refusal
/// is not delayed.
pub(crate) fn budget_reached(hub: &Hub, caller: &Caller, limit: KeyLimit) {
    let now = hub.now_ms();
    let team = caller.team.as_ref().map(|t| t.id.clone());
    let window = match caller.team.as_ref().and_then(|t| t.budget_now(now)) {
        Some((_, period_start, _)) if limit == KeyLimit::TeamBudget => period_start,
        _ => limit.window_start(now),
    };
    let memo = format!("{}:{}", caller.key_id, limit.as_str());
    if !hub.first_notice(&memo, window) {
        return;
    }
    let (hub2, key, user) = (hub.clone(), caller.key_id.clone(), caller.user_id.clone());
    hub.background().spawn(Box::pin(async move {
        let id = hub2.new_id("msg");
        let event = NewEvent {
            id: &id,
            kind: EventType::KeyBudgetReached.as_str(),
            user_id: Some(&user),
            subject: Some(&key),
            detail: json!({"limit": limit.as_str(), "window_start": crate::time::iso8601(window), "team_id": team}),
            dedupe: Some(format!("key.budget_reached:{key}:{}:{window}", limit.as_str())),
            now_ms: now,
        };
        match hub2.store().record_event(&event).await {
            Ok(true) => hub2.deliver_soon(),
            Ok(false) => {}
            Err(e) => tracing::warn!(key = %key, "could not record a key.budget_reached event: {e}"),
        }
    }));
}

/// The event types a subscription may name, for errors.
pub fn subscribable() -> impl Iterator<Item = EventType> {
    EventType::ALL.iter().copied().filter(|t| *t != EventType::WebhookTest)
}
