//! Credit packs (`/api/admin/credit-packs`, and `/api/me/credit-packs` for
//! the ones on sale), and the admin's view of payments and webhook
//! deliveries.

use crate::admin::fields::Fields;
use crate::error::ApiError;
use crate::http::{json, query_pairs, Request, Response, StatusCode};
use crate::hub::Hub;
use crate::kinds::{Currency, PaymentStatus};
use crate::store::{page_limit, PackPatch, PackRow, PaymentEventRow, PaymentFilter, PaymentRow};
use crate::time::iso8601;
use serde_json::{json, Value};

const PACK_FIELDS: &[&str] = &["name", "currency", "unit_amount", "credits", "active"];
/// The largest amount Stripe charges in one line item, in minor units.
const MAX_UNIT_AMOUNT: i64 = 99_999_999;

pub(super) fn ok(value: Value) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &value))
}

fn no_pack(id: &str) -> ApiError {
    ApiError::not_found(format!("No credit pack with id `{id}`."))
}

pub(crate) fn pack_json(p: &PackRow) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "currency": p.currency,
        "unit_amount": p.unit_amount,
        "credits": p.credits,
        "active": p.active,
        "created_at": iso8601(p.created_at),
        "updated_at": iso8601(p.updated_at),
    })
}

pub(super) fn payment_json(p: &PaymentRow) -> Value {
    json!({
        "id": p.id,
        "user_id": p.user_id,
        "pack_id": p.pack_id,
        "pack_name": p.pack_name,
        "credits": p.credits,
        "amount": p.amount,
        "currency": p.currency,
        "status": p.status,
        "session_id": p.session_id,
        "payment_intent": p.payment_intent,
        "error": p.error,
        "paid_event": p.paid_event,
        "refunded_amount": p.refunded_amount,
        "refunded_credits": p.refunded_credits,
        "created_at": iso8601(p.created_at),
        "updated_at": iso8601(p.updated_at),
        "paid_at": p.paid_at.map(iso8601),
    })
}

fn event_json(e: &PaymentEventRow) -> Value {
    json!({
        "id": e.id,
        "event_id": e.event_id,
        "type": e.event_type,
        "payment_id": e.payment_id,
        "outcome": e.outcome,
        "detail": e.detail,
        "created_at": iso8601(e.created_at),
    })
}

/// A pack's fields, checked; each `None` when absent.
fn pack_patch(f: &Fields) -> Result<PackPatch, ApiError> {
    f.only(PACK_FIELDS)?;
    let name = f.str("name")?;
    if name
        .as_ref()
        .is_some_and(|n| n.is_empty() || n.len() > 200 || n.chars().any(char::is_control))
    {
        return Err(ApiError::invalid_field("name", "must be 1-200 characters"));
    }
    let currency = f
        .str("currency")?
        .map(|c| {
            Currency::parse(&c)
                .ok_or_else(|| ApiError::invalid_field("currency", "must be a three-letter ISO 4217 code such as usd"))
        })
        .transpose()?;
    let credits = f.credits("credits")?;
    if credits.is_some_and(|c| c.nanos() <= 0) {
        return Err(ApiError::invalid_field("credits", "must be more than zero"));
    }
    Ok(PackPatch {
        name,
        currency,
        unit_amount: f.int("unit_amount", 1, MAX_UNIT_AMOUNT)?,
        credits,
        active: f.bool("active")?,
    })
}

/// `GET /api/admin/credit-packs`: every pack.
pub(crate) async fn list_packs(hub: &Hub) -> Result<Response, ApiError> {
    let packs = hub.store().list_packs(false).await?;
    ok(json!({"data": packs.iter().map(pack_json).collect::<Vec<_>>(), "next_cursor": null}))
}

/// `GET /api/me/credit-packs`: the packs on sale, and whether buying works here.
pub(crate) async fn packs_on_sale(hub: &Hub) -> Result<Response, ApiError> {
    let snap = hub.snapshot().await?;
    let packs = hub.store().list_packs(true).await?;
    ok(json!({
        "data": packs.iter().map(pack_json).collect::<Vec<_>>(),
        "checkout_available": snap.settings.payments.stripe_secret_key.is_some(),
        "next_cursor": null,
    }))
}

/// `POST /api/admin/credit-packs`.
pub(crate) async fn create_pack(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    let p = pack_patch(&f)?;
    let required = |k: &str| ApiError::invalid_field(k, "is required");
    let now = hub.now_ms();
    let pack = PackRow {
        id: hub.new_id("pck"),
        name: p.name.ok_or_else(|| required("name"))?,
        currency: p.currency.ok_or_else(|| required("currency"))?,
        unit_amount: p.unit_amount.ok_or_else(|| required("unit_amount"))?,
        credits: p.credits.ok_or_else(|| required("credits"))?,
        active: p.active.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    hub.store().insert_pack(&pack).await?;
    Ok(json(StatusCode::CREATED, &pack_json(&pack)))
}

/// `PATCH /api/admin/credit-packs/{id}`: checkouts already started keep
/// the credits and price they recorded.
pub(crate) async fn patch_pack(hub: &Hub, id: &str, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    let patch = pack_patch(&f)?;
    hub.store().get_pack(id).await?.ok_or_else(|| no_pack(id))?;
    if !patch.is_empty() {
        hub.store().update_pack(id, &patch, hub.now_ms()).await?;
    }
    let pack = hub.store().get_pack(id).await?.ok_or_else(|| no_pack(id))?;
    ok(pack_json(&pack))
}

/// `DELETE /api/admin/credit-packs/{id}`.
pub(crate) async fn delete_pack(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    if !hub.store().delete_pack(id).await? {
        return Err(no_pack(id));
    }
    ok(json!({"id": id, "deleted": true}))
}

/// One query parameter, if present and not empty.
fn param(req: &Request, name: &str) -> Option<String> {
    query_pairs(req.uri())
        .into_iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v)
}

fn limit(req: &Request) -> Result<i64, ApiError> {
    param(req, "limit")
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::invalid_field("limit", "must be an integer"))
        })
        .transpose()
        .map(page_limit)
}

/// `GET /api/admin/payments?user&status&limit&cursor` (and `/api/me/payments`
/// for the caller's own), newest first.
pub(crate) async fn list_payments(hub: &Hub, req: &Request, only_user: Option<&str>) -> Result<Response, ApiError> {
    let status = param(req, "status")
        .map(|s| {
            PaymentStatus::parse(&s)
                .ok_or_else(|| ApiError::invalid_field("status", format!("must be {}", PaymentStatus::names())))
        })
        .transpose()?;
    let filter = PaymentFilter {
        user: only_user.map(str::to_owned).or_else(|| param(req, "user")),
        status,
    };
    let cursor = param(req, "cursor");
    let page = hub
        .store()
        .list_payments(&filter, cursor.as_deref(), limit(req)?)
        .await?;
    ok(json!({"data": page.items.iter().map(payment_json).collect::<Vec<_>>(), "next_cursor": page.next_cursor}))
}

/// `GET /api/admin/payments/events?limit&cursor`: every verified webhook
/// delivery with what Hub did, newest first.
pub(crate) async fn list_payment_events(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let cursor = param(req, "cursor")
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid_field("cursor", "is not an events cursor"))
        })
        .transpose()?;
    let page = hub.store().list_payment_events(cursor, limit(req)?).await?;
    ok(json!({"data": page.items.iter().map(event_json).collect::<Vec<_>>(), "next_cursor": page.next_cursor}))
}
