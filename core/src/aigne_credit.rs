//! AIGNE Hub's user credit endpoints (`/api/user/credit/*`), which AIGNE
//! apps read to show a balance, its history and a top-up link. AIGNE Hub
//! passes Payment Kit's answers through (`{count, list, paging}` lists);
//! Hub answers the same shapes from its own ledger, money as exact decimal
//! strings.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{json, Request, Response, StatusCode};
use crate::hub::Hub;
use crate::store::{GrantEntry, LedgerWindow};
use crate::time::iso8601;
use serde_json::{json, Value};

/// AIGNE Hub's `pageSize` bound and default.
const MAX_PAGE_SIZE: i64 = 100;
const DEFAULT_PAGE_SIZE: i64 = 20;
/// Hub keeps money in nano-credits: nine decimals.
const DECIMALS: u32 = 9;

/// `GET /api/user/credit/balance`: what the caller may spend (`balance`),
/// their whole balance (`total`) and what open calls hold (`pendingCredit`).
pub async fn balance(hub: &Hub, caller: &Caller) -> Result<Response, ApiError> {
    let snap = hub.snapshot().await?;
    let user = crate::admin::credits::current_user(hub, &caller.user_id).await?;
    let grants = hub.store().grant_count(&caller.user_id).await?;
    let available = user.balance.saturating_sub(user.held);
    Ok(json(
        StatusCode::OK,
        &json!({
            "balance": available.to_string(),
            "total": user.balance.to_string(),
            "pendingCredit": user.held.to_string(),
            "held": user.held.to_string(),
            "available": available.to_string(),
            "grantCount": grants,
            "currency": currency(&snap.settings.currency_prefix),
            "enableCredit": snap.settings.billing_enabled,
        }),
    ))
}

fn currency(prefix: &str) -> Value {
    json!({"name": "Credits", "symbol": prefix, "decimal": DECIMALS})
}

/// The `page`, `pageSize`, `start` and `end` (unix seconds) of a list request.
struct Paging {
    page: i64,
    page_size: i64,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

fn paging(req: &Request) -> Result<Paging, ApiError> {
    let pairs = crate::http::query_pairs(req.uri());
    let int = |name: &str, min: i64, max: i64| -> Result<Option<i64>, ApiError> {
        match pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()) {
            None | Some("") => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::invalid_field(
                    name,
                    format!("must be an integer from {min} to {max}"),
                )),
            },
        }
    };
    let seconds = |name: &str| int(name, 0, i64::MAX / 1000).map(|s| s.map(|s| s * 1000));
    Ok(Paging {
        page: int("page", 1, 1_000_000)?.unwrap_or(1),
        page_size: int("pageSize", 1, MAX_PAGE_SIZE)?.unwrap_or(DEFAULT_PAGE_SIZE),
        from_ms: seconds("start")?,
        to_ms: seconds("end")?,
    })
}

fn window(grants_only: bool, from_ms: Option<i64>, to_ms: Option<i64>, offset: i64, limit: i64) -> LedgerWindow {
    LedgerWindow {
        grants_only,
        from_ms,
        to_ms,
        offset,
        limit,
    }
}

/// One page of the caller's ledger as AIGNE lists it.
async fn list(hub: &Hub, caller: &Caller, req: &Request, grants_only: bool) -> Result<Response, ApiError> {
    let p = paging(req)?;
    // Due buckets expire first, so an expired grant reads as expired.
    crate::admin::credits::current_user(hub, &caller.user_id).await?;
    let w = window(grants_only, p.from_ms, p.to_ms, (p.page - 1) * p.page_size, p.page_size);
    let slice = hub.store().ledger_slice(&caller.user_id, w).await?;
    let now = hub.now_ms();
    let item = |g: &GrantEntry| {
        if grants_only {
            grant_json(g, now)
        } else {
            transaction_json(g)
        }
    };
    Ok(json(
        StatusCode::OK,
        &json!({
            "count": slice.count,
            "list": slice.items.iter().map(item).collect::<Vec<_>>(),
            "paging": {"page": p.page, "pageSize": p.page_size},
        }),
    ))
}

/// `GET /api/user/credit/grants?page&pageSize&start&end`: the caller's grants, newest first.
pub async fn grants(hub: &Hub, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
    list(hub, caller, req, true).await
}

/// `GET /api/user/credit/transactions?page&pageSize&start&end`: every ledger entry, newest first.
pub async fn transactions(hub: &Hub, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
    list(hub, caller, req, false).await
}

/// A grant: bought (`paid`) or given (`promotional`); what is left of it is
/// known for grants that expire (each is a bucket), null for the others.
fn grant_json(g: &GrantEntry, now_ms: i64) -> Value {
    let e = &g.entry;
    let paid = e.reference.as_deref().is_some_and(|r| r.starts_with("stripe:"));
    let status = match (g.remaining, g.expired_at) {
        (_, Some(_)) => "expired",
        (Some(r), None) if r.nanos() == 0 => "depleted",
        (Some(_), None) if e.expires_at.is_some_and(|t| t <= now_ms) => "expired",
        _ => "granted",
    };
    json!({
        "id": e.id.to_string(),
        "object": "credit_grant",
        "amount": e.amount.to_string(),
        "remaining_amount": g.remaining.map(|r| r.to_string()),
        "category": if paid { "paid" } else { "promotional" },
        "name": e.reason,
        "status": status,
        "effective_at": iso8601(e.created_at),
        "expires_at": e.expires_at.map(iso8601),
        "created_at": iso8601(e.created_at),
    })
}

/// A ledger entry: `type` is its kind (grant, usage, adjustment, expiry),
/// `amount` signed, `credit_amount` its size.
fn transaction_json(g: &GrantEntry) -> Value {
    let e = &g.entry;
    json!({
        "id": e.id.to_string(),
        "object": "credit_transaction",
        "type": e.kind,
        "amount": e.amount.to_string(),
        "credit_amount": crate::Credits::from_nanos(e.amount.nanos().saturating_abs()).to_string(),
        "description": e.reason,
        "call_id": e.call_id,
        "ref": e.reference,
        "created_at": iso8601(e.created_at),
    })
}

/// `GET /api/user/credit/payment-link`: where to buy credits, as a JSON
/// string (AIGNE Hub's shape): the `payment_link` setting, else this Hub's
/// own buy page when it sells credits, else null.
pub async fn payment_link(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let snap = hub.snapshot().await?;
    let s = &snap.settings;
    let link = match (&s.payment_link, s.payments.stripe_secret_key.is_some()) {
        (Some(link), _) => Some(link.clone()),
        (None, true) => {
            let url = crate::origin::app_url(req, s.app_url.as_deref(), &hub.options().trusted_proxies);
            Some(format!("{}/#/account", url.url().trim_end_matches('/')))
        }
        (None, false) => None,
    };
    Ok(json(StatusCode::OK, &json!(link)))
}
