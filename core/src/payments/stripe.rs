//! Stripe's API, as far as Hub calls it: creating a Checkout Session
//! (`POST /v1/checkout/sessions`, form-encoded, the secret key as a bearer
//! token, an idempotency key). Through the Hub's upstream port, so the
//! outbound address policy, redirects never followed and bounded time hold
//! as for providers, on every runtime.

use crate::error::ApiError;
use crate::hub::Hub;
use crate::ports::{Timeouts, UpstreamRequest};
use crate::store::PaymentRow;
use serde::Deserialize;
use std::time::Duration;

const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Stripe, as the settings configure it.
pub struct Stripe {
    pub api_base: String,
    pub secret_key: String,
}

/// What a Checkout Session is made of.
pub struct SessionRequest<'a> {
    pub payment: &'a PaymentRow,
    pub customer_email: Option<&'a str>,
    pub success_url: String,
    pub cancel_url: String,
}

/// The parts of Stripe's Checkout Session Hub reads.
#[derive(Debug, Deserialize)]
pub struct Session {
    pub id: String,
    pub url: String,
}

#[derive(Debug, Deserialize)]
struct StripeErrorBody {
    error: StripeError,
}

#[derive(Debug, Deserialize)]
struct StripeError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// The form Stripe takes, in its bracket notation.
fn session_form(r: &SessionRequest) -> String {
    let p = r.payment;
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("mode", "payment")
        .append_pair("line_items[0][price_data][currency]", p.currency.as_str())
        .append_pair("line_items[0][price_data][unit_amount]", &p.amount.to_string())
        .append_pair("line_items[0][price_data][product_data][name]", &p.pack_name)
        .append_pair("line_items[0][quantity]", "1")
        .append_pair("client_reference_id", &p.user_id)
        .append_pair("metadata[hub_payment_id]", &p.id)
        .append_pair("metadata[hub_user_id]", &p.user_id)
        .append_pair("metadata[hub_pack_id]", p.pack_id.as_deref().unwrap_or(""))
        .append_pair("metadata[hub_credits]", &p.credits.to_string())
        .append_pair("success_url", &r.success_url)
        .append_pair("cancel_url", &r.cancel_url);
    if let Some(email) = r.customer_email {
        form.append_pair("customer_email", email);
    }
    form.finish()
}

impl Stripe {
    /// Creates the Checkout Session for a payment; the payment's id is the
    /// idempotency key, so a retried request cannot open two sessions.
    pub async fn create_session(&self, hub: &Hub, r: &SessionRequest<'_>) -> Result<Session, ApiError> {
        let request = UpstreamRequest {
            method: http::Method::POST,
            url: format!("{}/v1/checkout/sessions", self.api_base),
            headers: vec![
                ("authorization".into(), format!("Bearer {}", self.secret_key)),
                ("content-type".into(), "application/x-www-form-urlencoded".into()),
                ("accept".into(), "application/json".into()),
                ("idempotency-key".into(), r.payment.id.clone()),
            ],
            body: session_form(r).into(),
            timeouts: Timeouts {
                connect: Duration::from_secs(10),
                first_byte: Duration::from_secs(30),
                idle: Duration::from_secs(30),
            },
        };
        let failed = |why: String| ApiError::provider(format!("Stripe could not start the checkout: {why}"));
        let mut resp = hub.send_upstream(request).await.map_err(|e| failed(e.to_string()))?;
        let body = crate::gateway::collect(&mut resp, MAX_ANSWER_BYTES)
            .await
            .map_err(|f| failed(f.error.message))?;
        if resp.status != 200 {
            return Err(failed(refusal(resp.status, &body)));
        }
        serde_json::from_slice::<Session>(&body)
            .map_err(|e| failed(format!("its answer is not a Checkout Session ({e})")))
    }
}

/// Stripe's error, in words: its message and type (never the secret key:
/// Stripe masks a wrong key in its own message).
fn refusal(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<StripeErrorBody>(body) {
        Ok(StripeErrorBody { error }) => format!(
            "{status} {}: {}",
            error.kind.as_deref().unwrap_or("error"),
            error.message.as_deref().unwrap_or("no message")
        ),
        Err(_) => format!("it answered {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{Currency, PaymentStatus};
    use crate::metering::money::Credits;

    #[test]
    fn the_form_carries_the_line_item_the_user_and_the_credits() {
        let payment = PaymentRow {
            id: "pay_1".into(),
            user_id: "usr_1".into(),
            pack_id: Some("pck_1".into()),
            pack_name: "Starter & more".into(),
            credits: Credits::parse("12.5").unwrap(),
            amount: 1999,
            currency: Currency::parse("usd").unwrap(),
            status: PaymentStatus::Pending,
            session_id: None,
            payment_intent: None,
            error: None,
            paid_event: None,
            refunded_amount: 0,
            refunded_credits: Credits::ZERO,
            created_at: 0,
            updated_at: 0,
            paid_at: None,
        };
        let form = session_form(&SessionRequest {
            payment: &payment,
            customer_email: Some("a+b@example.com"),
            success_url: "https://hub.example/#/account?checkout=success".into(),
            cancel_url: "https://hub.example/#/account?checkout=cancel".into(),
        });
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes()).into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("line_items[0][price_data][unit_amount]"), Some("1999"));
        assert_eq!(
            get("line_items[0][price_data][product_data][name]"),
            Some("Starter & more")
        );
        assert_eq!(get("metadata[hub_credits]"), Some("12.5"));
        assert_eq!(get("customer_email"), Some("a+b@example.com"));
        assert_eq!(
            get("success_url"),
            Some("https://hub.example/#/account?checkout=success")
        );
    }
}
