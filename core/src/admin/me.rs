//! `/api/me`: what any key may see for its own user (its routes are in the
//! route table; keys are created and revoked by the admin module's handlers,
//! limited to the caller's user).

use super::{ok, views};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::hub::Hub;
use serde_json::json;

/// `GET /api/me`: the caller's user, balance, credit expiring soon, the
/// Hub's billing settings, and the key itself or the browser session (with its CSRF token).
pub async fn summary(hub: &Hub, req: &Request, caller: &Caller) -> Result<Response, ApiError> {
    let u = super::credits::current_user(hub, &caller.user_id).await?;
    let buckets = hub.store().live_buckets(&caller.user_id).await?;
    let s = hub.snapshot().await?.settings.clone();
    let teams: Vec<_> = hub
        .store()
        .teams_of(&caller.user_id)
        .await?
        .iter()
        .map(|m| json!({"id": m.team.id, "name": m.team.name, "role": m.role}))
        .collect();
    ok(json!({
        "user": views::user_json(&u),
        "role": u.role,
        "balance": u.balance,
        "held": u.held,
        "available": u.balance.saturating_sub(u.held),
        "expiring": super::credits::expiring_json(&buckets, hub.now_ms()),
        "currency_prefix": s.currency_prefix,
        "billing_enabled": s.billing_enabled,
        "payment_link": s.payment_link,
        "key": if caller.session { serde_json::Value::Null } else { json!({"id": caller.key_id, "label": caller.key_label}) },
        "session": crate::accounts::session_view(hub, req, caller),
        "teams": teams,
        "key_team": caller.team.as_ref().map(|t| &t.id),
    }))
}

/// `GET /api/me/keys`: the user's keys.
pub async fn keys(hub: &Hub, caller: &Caller) -> Result<Response, ApiError> {
    let keys = hub.store().list_keys(&caller.user_id).await?;
    ok(json!({"data": keys.iter().map(views::key_json).collect::<Vec<_>>(), "next_cursor": null}))
}
