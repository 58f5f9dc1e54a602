//! `/api/me`: what any key may see and do for its own user.

use super::{calls, create_key, ok, revoke_key, usage, views::key_json, Revoker};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Method, Request, Response};
use crate::Hub;
use serde_json::json;

pub async fn me(hub: &Hub, caller: &Caller, req: Request) -> Result<Response, ApiError> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).skip(2).collect();
    let user = caller.user_id.as_str();
    match (req.method(), segs.as_slice()) {
        (&Method::GET, []) => {
            let u = hub
                .store()
                .get_user(user)
                .await?
                .ok_or_else(|| ApiError::unauthorized("This key's user no longer exists."))?;
            let u = hub.live_user(u);
            let s = hub.snapshot().await?.settings.clone();
            ok(json!({
                "user": super::views::user_json(&u),
                "role": u.role,
                "balance": u.balance,
                "held": u.held,
                "available": u.balance.saturating_sub(u.held),
                "currency_prefix": s.currency_prefix,
                "billing_enabled": s.billing_enabled,
                "payment_link": s.payment_link,
                "key": {"id": caller.key_id, "label": caller.key_label},
            }))
        }
        (&Method::GET, ["usage"]) => usage(hub, &req, Some(user)).await,
        (&Method::GET, ["calls"]) => calls(hub, &req, Some(user)).await,
        (&Method::GET, ["keys"]) => {
            let keys = hub.store().list_keys(user).await?;
            ok(json!({"data": keys.iter().map(key_json).collect::<Vec<_>>(), "next_cursor": null}))
        }
        (&Method::POST, ["keys"]) => create_key(hub, user, &req, Some(caller)).await,
        (&Method::DELETE, ["keys", id]) => revoke_key(hub, id, Revoker::Owner(caller)).await,
        _ => Err(ApiError::not_found(format!(
            "No route for {} {}.",
            req.method(),
            req.uri().path()
        ))),
    }
}
