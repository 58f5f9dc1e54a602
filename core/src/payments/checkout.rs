//! `POST /api/me/checkout {"pack_id"}`: a customer buys a pack. The payment
//! is recorded (`pending`) with the pack's credits and price before Stripe
//! is asked, so what a paid session grants is fixed by Hub, never by what a
//! webhook later says; then Stripe creates the Checkout Session and the
//! customer is sent to its URL.

use super::packs::payment_json;
use super::settings::PaymentSettings;
use super::stripe::{SessionRequest, Stripe};
use crate::accounts::settings::Sealed;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{json, Request, Response, StatusCode};
use crate::hub::Hub;
use crate::kinds::PaymentStatus;
use crate::store::{PackRow, PaymentRow};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckoutBody {
    pack_id: String,
}

/// A sealed setting, opened; a 503 saying which when the master key cannot.
pub(super) fn open_secret(hub: &Hub, sealed: &Sealed, name: &str) -> Result<String, ApiError> {
    hub.master_key().decrypt(&sealed.0).map_err(|e| {
        tracing::error!("{name}: {e}");
        ApiError::unavailable(format!(
            "The {name} setting cannot be read with this master key; set it again."
        ))
    })
}

/// Stripe as configured, or a 404 when buying credits is not set up.
fn stripe(hub: &Hub, s: &PaymentSettings) -> Result<Stripe, ApiError> {
    let sealed = s
        .stripe_secret_key
        .as_ref()
        .ok_or_else(|| ApiError::not_found("Buying credits is not set up on this Hub (no Stripe secret key)."))?;
    Ok(Stripe {
        api_base: s.stripe_api_base.clone(),
        secret_key: open_secret(hub, sealed, "stripe_secret_key")?,
    })
}

fn pack_id(req: &Request) -> Result<String, ApiError> {
    let body: CheckoutBody = serde_json::from_slice(req.body()).map_err(|e| {
        ApiError::bad_request(format!("The body must be {{\"pack_id\": \"pck_…\"}}: {e}")).with_param("pack_id")
    })?;
    Ok(body.pack_id)
}

fn new_payment(hub: &Hub, user_id: &str, pack: &PackRow) -> PaymentRow {
    let now = hub.now_ms();
    PaymentRow {
        id: hub.new_id("pay"),
        user_id: user_id.to_string(),
        pack_id: Some(pack.id.clone()),
        pack_name: pack.name.clone(),
        credits: pack.credits,
        amount: pack.unit_amount,
        currency: pack.currency.clone(),
        status: PaymentStatus::Pending,
        session_id: None,
        payment_intent: None,
        error: None,
        paid_event: None,
        refunded_amount: 0,
        refunded_credits: Default::default(),
        created_at: now,
        updated_at: now,
        paid_at: None,
    }
}

/// `POST /api/me/checkout`: `201 {"id", "session_id", "url"}`; Stripe's
/// refusal is a 502 naming it, and the payment is recorded `failed`.
pub(crate) async fn checkout(hub: &Hub, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
    let pack_id = pack_id(req)?;
    let snap = hub.snapshot().await?;
    let stripe = stripe(hub, &snap.settings.payments)?;
    let pack = hub
        .store()
        .get_pack(&pack_id)
        .await?
        .filter(|p| p.active)
        .ok_or_else(|| {
            ApiError::not_found(format!("No credit pack on sale with id `{pack_id}`.")).with_param("pack_id")
        })?;
    let user = hub
        .store()
        .get_user(&caller.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("This key's user no longer exists."))?;
    let site = crate::origin::app_url(req, snap.settings.app_url.as_deref(), &hub.options().trusted_proxies);
    let payment = new_payment(hub, &user.id, &pack);
    hub.store().insert_payment(&payment).await?;
    let request = SessionRequest {
        payment: &payment,
        customer_email: user.email.as_deref().filter(|e| crate::accounts::is_email(e)),
        success_url: format!("{}/#/account?checkout=success", site.url()),
        cancel_url: format!("{}/#/account?checkout=cancel", site.url()),
    };
    match stripe.create_session(hub, &request).await {
        Ok(session) => {
            hub.store().open_payment(&payment.id, &session.id, hub.now_ms()).await?;
            let mut body = json!({"id": payment.id, "session_id": session.id, "url": session.url});
            body["payment"] = payment_json(&PaymentRow {
                status: PaymentStatus::Open,
                session_id: Some(session.id.clone()),
                ..payment.clone()
            });
            Ok(json(StatusCode::CREATED, &body))
        }
        Err(e) => {
            let closed = hub
                .store()
                .close_payment(&payment.id, PaymentStatus::Failed, Some(&e.message), hub.now_ms());
            closed.await?;
            Err(e)
        }
    }
}
