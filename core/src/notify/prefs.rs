//! `GET/PATCH /api/me/notifications`: what a customer is told about their
//! own account. `email_low_balance` (low and exhausted balance mail),
//! `email_receipts` (purchase receipts), and `low_balance_threshold`: their
//! own threshold as a decimal string, `"0"` for no low-balance notice, or
//! `null` for the operator's default (`default_low_balance_threshold`).

use crate::admin::fields::Fields;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{json, Request, Response, StatusCode};
use crate::hub::Hub;
use crate::store::PrefsPatch;
use serde_json::json;

const FIELDS: &[&str] = &["email_low_balance", "email_receipts", "low_balance_threshold"];

/// `GET /api/me/notifications`.
pub(crate) async fn get(hub: &Hub, caller: &Caller) -> Result<Response, ApiError> {
    let prefs = hub
        .store()
        .notification_prefs(&caller.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("The key's user no longer exists."))?;
    let snap = hub.snapshot().await?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "email_low_balance": prefs.email_low_balance,
            "email_receipts": prefs.email_receipts,
            "low_balance_threshold": prefs.low_balance_threshold,
            "default_low_balance_threshold": snap.settings.low_balance_threshold,
            // Mail needs an SMTP server, and a runtime that can reach one.
            "email_available": crate::accounts::email::server(hub, &snap.settings.sign_in).is_some(),
        }),
    ))
}

/// `PATCH /api/me/notifications`: any of the fields; the answer is `GET`'s.
pub(crate) async fn patch(hub: &Hub, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(FIELDS)?;
    let threshold = f.credits("low_balance_threshold")?;
    if threshold.is_some_and(|t| t.is_negative()) {
        return Err(ApiError::invalid_field("low_balance_threshold", "must not be negative"));
    }
    let patch = PrefsPatch {
        email_low_balance: f.bool("email_low_balance")?,
        email_receipts: f.bool("email_receipts")?,
        low_balance_threshold: f.nullable("low_balance_threshold", threshold),
    };
    if !hub.store().set_notification_prefs(&caller.user_id, &patch).await? {
        return Err(ApiError::unauthorized("The key's user no longer exists."));
    }
    get(hub, caller).await
}
