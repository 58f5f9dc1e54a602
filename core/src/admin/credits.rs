//! Credits that expire, as the APIs show them: a grant's `expires_at`, the
//! buckets (`GET /api/me/credit-buckets`, `GET
//! /api/admin/users/{id}/credit-buckets`) and the `expiring` summary of
//! `/api/me`. Every read expires the user's due buckets first, so a runtime
//! without a timer still shows the `expiry` entries once the time has come.

use super::fields::Fields;
use crate::error::ApiError;
use crate::http::{json as respond, Response, StatusCode};
use crate::hub::Hub;
use crate::metering::money::Credits;
use crate::store::{BucketRow, UserRow};
use crate::time::iso8601;
use serde_json::{json, Value};

/// `/api/me`'s `expiring` sums the credit expiring within this many days.
pub(crate) const EXPIRING_WINDOW_DAYS: i64 = 30;
const DAY_MS: i64 = 86_400_000;
/// 9999-12-31T23:59:59.999Z: the latest expiry an ISO-8601 date can name.
const LATEST_EXPIRY_MS: i64 = 253_402_300_799_999;

/// A grant's `expires_at`, if it has one (absent or null: never). Only a
/// positive grant can expire, and only in the future.
pub(crate) fn grant_expiry(f: &Fields, amount: Credits, now_ms: i64) -> Result<Option<i64>, ApiError> {
    if f.0.get("expires_at").is_none_or(Value::is_null) {
        return Ok(None);
    }
    let at = f.time("expires_at")?.unwrap_or_default();
    if amount.is_negative() {
        return Err(ApiError::invalid_field(
            "expires_at",
            "only a grant (a positive amount) can expire",
        ));
    }
    if at <= now_ms {
        return Err(ApiError::invalid_field("expires_at", "must be in the future"));
    }
    if at > LATEST_EXPIRY_MS {
        return Err(ApiError::invalid_field("expires_at", "must be before the year 10000"));
    }
    Ok(Some(at))
}

/// A user as the API shows them ([`Hub::current_user`]), or 404.
pub(crate) async fn current_user(hub: &Hub, id: &str) -> Result<UserRow, ApiError> {
    hub.current_user(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No user with id `{id}`.")))
}

pub(crate) fn bucket_json(b: &BucketRow) -> Value {
    json!({
        "id": b.id,
        "amount": b.amount,
        "remaining": b.remaining,
        "expires_at": iso8601(b.expires_at),
        "reason": b.reason,
        "ref": b.reference,
        "created_at": iso8601(b.created_at),
    })
}

/// The credit that expires within [`EXPIRING_WINDOW_DAYS`], and the next
/// bucket to expire (whenever that is).
pub(crate) fn expiring_json(buckets: &[BucketRow], now_ms: i64) -> Value {
    let horizon = now_ms.saturating_add(EXPIRING_WINDOW_DAYS * DAY_MS);
    let amount = buckets
        .iter()
        .filter(|b| b.expires_at <= horizon)
        .fold(Credits::ZERO, |sum, b| sum.saturating_add(b.remaining));
    let next = buckets.iter().min_by_key(|b| (b.expires_at, b.id));
    json!({
        "amount": amount,
        "within_days": EXPIRING_WINDOW_DAYS,
        "next_expires_at": next.map(|b| iso8601(b.expires_at)),
        "next_amount": next.map(|b| b.remaining),
    })
}

/// `GET …/credit-buckets`: the user's buckets with credit left, soonest
/// expiry first.
pub(crate) async fn buckets(hub: &Hub, user: &str) -> Result<Response, ApiError> {
    current_user(hub, user).await?;
    let buckets = hub.store().live_buckets(user).await?;
    let data: Vec<Value> = buckets.iter().map(bucket_json).collect();
    Ok(respond(StatusCode::OK, &json!({ "data": data })))
}
