//! `POST /api/payments/stripe/webhook`: Stripe's events about checkouts Hub
//! started. Nothing is read from a delivery before its signature verifies
//! (400 otherwise, and nothing changes). Then:
//!
//! - `checkout.session.completed` with `payment_status: paid`, and
//!   `checkout.session.async_payment_succeeded`: the credits recorded when
//!   the checkout started are granted, once per session whatever the number
//!   of deliveries or events (the ledger entry's unique reference and the
//!   payment's `open → paid` change are one batch). The event's own amounts
//!   are only compared with Hub's record (a mismatch grants nothing).
//! - `checkout.session.async_payment_failed` / `.expired`: the checkout is
//!   closed.
//! - `charge.refunded`: the refunded share of the credits is taken back.
//! - Anything else: 200, ignored.
//!
//! Every verified delivery is recorded with what Hub did (`payment_events`).

use super::checkout::open_secret;
use super::packs::ok;
use super::signature;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::hub::Hub;
use crate::kinds::{PaymentOutcome, PaymentStatus};
use crate::metering::money::Credits;
use crate::store::PaymentRow;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Value,
}

/// The Checkout Session fields Hub reads.
#[derive(Deserialize)]
struct SessionObject {
    id: String,
    payment_status: Option<String>,
    client_reference_id: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Map<String, Value>>,
    payment_intent: Option<Value>,
    amount_total: Option<i64>,
    currency: Option<String>,
}

/// The Charge fields Hub reads.
#[derive(Deserialize)]
struct ChargeObject {
    payment_intent: Option<Value>,
    amount_refunded: i64,
    currency: String,
}

/// What Hub did with a delivery.
struct Done {
    outcome: PaymentOutcome,
    payment_id: Option<String>,
    detail: Option<String>,
}

impl Done {
    fn new(outcome: PaymentOutcome, payment: Option<&PaymentRow>, detail: impl Into<Option<String>>) -> Done {
        Done {
            outcome,
            payment_id: payment.map(|p| p.id.clone()),
            detail: detail.into(),
        }
    }
}

/// An id that Stripe may send as a string or, expanded, as an object.
fn id_of(v: &Option<Value>) -> Option<&str> {
    match v {
        Some(Value::String(s)) => Some(s),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str),
        _ => None,
    }
}

fn object<T: serde::de::DeserializeOwned>(event: &Event) -> Result<T, ApiError> {
    serde_json::from_value(event.data.object.clone())
        .map_err(|e| ApiError::bad_request(format!("The {} event's object cannot be read: {e}", event.kind)))
}

/// `POST /api/payments/stripe/webhook`.
pub(crate) async fn stripe_webhook(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let snap = hub.snapshot().await?;
    let sealed = snap
        .settings
        .payments
        .stripe_webhook_secret
        .as_ref()
        .ok_or_else(|| ApiError::not_found("Stripe webhooks are not set up on this Hub (no webhook secret)."))?;
    let secret = open_secret(hub, sealed, "stripe_webhook_secret")?;
    let header = crate::http::header(req.headers(), "stripe-signature");
    signature::verify(header, req.body(), &secret, hub.now_ms().div_euclid(1000)).map_err(|e| {
        tracing::warn!("Stripe webhook refused: {e}");
        ApiError::bad_request(format!("The webhook was refused: {e}."))
    })?;
    let event: Event = serde_json::from_slice(req.body())
        .map_err(|e| ApiError::bad_request(format!("The webhook's body is not a Stripe event: {e}")))?;
    let done = act(hub, &event).await?;
    if matches!(
        done.outcome,
        PaymentOutcome::Granted | PaymentOutcome::Refunded | PaymentOutcome::Closed
    ) {
        // Its event (purchased, refunded, failed) was written with the change.
        hub.deliver_soon();
    }
    hub.store()
        .record_payment_event(
            &event.id,
            &event.kind,
            done.payment_id.as_deref(),
            done.outcome,
            done.detail.as_deref(),
            hub.now_ms(),
        )
        .await?;
    ok(json!({"received": true, "outcome": done.outcome}))
}

async fn act(hub: &Hub, event: &Event) -> Result<Done, ApiError> {
    match event.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            paid(hub, &event.id, &object(event)?).await
        }
        "checkout.session.async_payment_failed" => {
            close(hub, &object(event)?, PaymentStatus::Failed, "the payment failed").await
        }
        "checkout.session.expired" => close(hub, &object(event)?, PaymentStatus::Expired, "the session expired").await,
        "charge.refunded" => refund(hub, &object(event)?).await,
        _ => Ok(Done::new(PaymentOutcome::Ignored, None, None)),
    }
}

/// What in the event disagrees with Hub's record of the checkout, if anything.
fn mismatch(p: &PaymentRow, s: &SessionObject) -> Option<String> {
    let meta = |k: &str| s.metadata.as_ref().and_then(|m| m.get(k)).and_then(Value::as_str);
    let differs = |seen: Option<&str>, recorded: &str| seen.is_some_and(|v| v != recorded);
    if differs(s.client_reference_id.as_deref(), &p.user_id) {
        return Some("client_reference_id is not the user who started the checkout".into());
    }
    if differs(meta("hub_payment_id"), &p.id) {
        return Some("metadata.hub_payment_id is not this checkout's".into());
    }
    if differs(s.currency.as_deref(), p.currency.as_str()) || s.amount_total.is_some_and(|a| a != p.amount) {
        return Some(format!(
            "the session's amount ({:?} {:?}) is not the recorded {} {}",
            s.amount_total,
            s.currency,
            p.amount,
            p.currency.as_str()
        ));
    }
    None
}

/// A session paid: its recorded credits, once.
async fn paid(hub: &Hub, event_id: &str, s: &SessionObject) -> Result<Done, ApiError> {
    let Some(p) = hub.store().payment_by_session(&s.id).await? else {
        return Ok(Done::new(
            PaymentOutcome::UnknownPayment,
            None,
            format!("no checkout Hub started has session {}", s.id),
        ));
    };
    if let Some(problem) = mismatch(&p, s) {
        tracing::warn!(payment = %p.id, "Stripe event {event_id} refused: {problem}");
        return Ok(Done::new(PaymentOutcome::Mismatch, Some(&p), problem));
    }
    if s.payment_status.as_deref() != Some("paid") {
        let status = s.payment_status.as_deref().unwrap_or("missing");
        return Ok(Done::new(
            PaymentOutcome::NotPaid,
            Some(&p),
            format!("payment_status is {status}"),
        ));
    }
    let intent = id_of(&s.payment_intent);
    if hub
        .store()
        .grant_payment(&p, &s.id, event_id, intent, hub.now_ms())
        .await?
    {
        // Like an admin's grant: the book learns of it once the entry is committed.
        if let Some(book) = hub.book() {
            book.credit(&p.user_id, p.credits);
        }
        return Ok(Done::new(
            PaymentOutcome::Granted,
            Some(&p),
            format!("{} credits", p.credits),
        ));
    }
    let now = hub.store().get_payment(&p.id).await?.unwrap_or(p);
    Ok(match now.status {
        PaymentStatus::Paid => Done::new(PaymentOutcome::AlreadyGranted, Some(&now), now.paid_event.clone()),
        PaymentStatus::Open => Done::new(
            PaymentOutcome::OutOfRange,
            Some(&now),
            "the grant would take the balance beyond 1000000000 credits".to_string(),
        ),
        other => Done::new(PaymentOutcome::Closed, Some(&now), format!("the checkout is {other}")),
    })
}

/// A session that will not be paid.
async fn close(hub: &Hub, s: &SessionObject, status: PaymentStatus, why: &str) -> Result<Done, ApiError> {
    let Some(p) = hub.store().payment_by_session(&s.id).await? else {
        return Ok(Done::new(
            PaymentOutcome::UnknownPayment,
            None,
            format!("no checkout Hub started has session {}", s.id),
        ));
    };
    hub.store()
        .close_payment(&p.id, status, Some(why), hub.now_ms())
        .await?;
    Ok(Done::new(PaymentOutcome::Closed, Some(&p), why.to_string()))
}

/// The credits a refund of `refunded` of `amount` (minor units) takes back:
/// the same share of the payment's credits, rounded down to the nano-credit
/// (in the customer's favour); a full refund takes back exactly all of them.
pub(crate) fn refunded_share(credits: Credits, refunded: i64, amount: i64) -> Credits {
    if amount <= 0 {
        return Credits::ZERO;
    }
    let refunded = refunded.clamp(0, amount);
    let share = i128::from(credits.nanos()) * i128::from(refunded) / i128::from(amount);
    // At most `credits`, so it fits.
    Credits::from_nanos(i64::try_from(share).unwrap_or(credits.nanos()))
}

/// A charge refunded (in part or whole; Stripe reports the running total).
async fn refund(hub: &Hub, c: &ChargeObject) -> Result<Done, ApiError> {
    let found = match id_of(&c.payment_intent) {
        Some(intent) => hub.store().payment_by_intent(intent).await?,
        None => None,
    };
    let Some(p) = found else {
        return Ok(Done::new(
            PaymentOutcome::UnknownPayment,
            None,
            "no paid checkout of Hub's has this charge's payment intent".to_string(),
        ));
    };
    if c.currency != p.currency.as_str() {
        return Ok(Done::new(
            PaymentOutcome::Mismatch,
            Some(&p),
            format!("the charge is in {}", c.currency),
        ));
    }
    let refunded = c.amount_refunded.clamp(0, p.amount);
    let share = refunded_share(p.credits, refunded, p.amount);
    // Credit past its expiry leaves first: a refund never takes back credit that expired.
    hub.expire_credits(Some(&p.user_id)).await?;
    let taken = take_back(hub, p.clone(), refunded, share).await?;
    Ok(match taken {
        Some(entry) => {
            if let Some(book) = hub.book() {
                book.credit(&p.user_id, entry);
            }
            let detail = format!("{refunded} of {} refunded: {entry} credits", p.amount);
            Done::new(PaymentOutcome::Refunded, Some(&p), detail)
        }
        None => Done::new(
            PaymentOutcome::AlreadyRefunded,
            Some(&p),
            format!("{refunded} of {} refunded", p.amount),
        ),
    })
}

/// Writes a refund's adjustment against the payment as read; when another
/// refund of the same payment landed in between (the write's condition
/// failed), reads the payment again and retries while this refunded total
/// is still above the recorded one. Returns the entry's amount, if written.
async fn take_back(hub: &Hub, mut p: PaymentRow, refunded: i64, share: Credits) -> Result<Option<Credits>, ApiError> {
    for _ in 0..5 {
        if let Some(entry) = hub.store().refund_payment(&p, refunded, share, hub.now_ms()).await? {
            return Ok(Some(entry));
        }
        match hub.store().get_payment(&p.id).await? {
            Some(now) if now.refunded_amount != p.refunded_amount && now.refunded_amount < refunded => p = now,
            _ => return Ok(None),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refunds_take_back_an_exact_share_rounded_down() {
        let c = |s: &str| Credits::parse(s).unwrap();
        assert_eq!(refunded_share(c("100"), 500, 2000), c("25"));
        assert_eq!(refunded_share(c("100"), 2000, 2000), c("100"));
        assert_eq!(
            refunded_share(c("100"), 9999, 2000),
            c("100"),
            "never more than granted"
        );
        assert_eq!(refunded_share(c("1"), 1, 3), c("0.333333333"));
        assert_eq!(refunded_share(c("1"), 2, 3), c("0.666666666"));
        assert_eq!(
            refunded_share(Credits::MAX, 99_999_998, 99_999_999).nanos(),
            999_999_989_999_999_899
        );
        assert_eq!(refunded_share(c("5"), -1, 100), Credits::ZERO);
    }
}
