//! `/api/admin/webhooks`: operator endpoints that receive events, signed
//! (Standard Webhooks). A URL must pass the webhook address policy when it
//! is saved (and again before every attempt); the signing secret is shown
//! once, when the webhook is created or its secret rotated, and is stored
//! sealed under the master key.

use super::{sign, subscribable, EventType};
use crate::admin::fields::Fields;
use crate::error::ApiError;
use crate::http::{json, query_pairs, Request, Response, StatusCode};
use crate::hub::{no_randomness, Hub};
use crate::store::{page_limit, DeliveryRow, NewEvent, WebhookPatch, WebhookRow};
use crate::time::iso8601;
use serde_json::{json, Value};

const FIELDS: &[&str] = &["url", "events", "description", "enabled"];
/// How long the previous secret keeps signing after a rotation.
const ROTATION_GRACE_MS: i64 = 24 * 3_600_000;

fn no_webhook(id: &str) -> ApiError {
    ApiError::not_found(format!("No webhook with id `{id}`."))
}

pub(crate) fn webhook_json(w: &WebhookRow) -> Value {
    let events: Vec<&str> = if w.events == "*" {
        vec!["*"]
    } else {
        w.events.split(',').filter(|e| !e.is_empty()).collect()
    };
    json!({
        "id": w.id,
        "url": w.url,
        "description": w.description,
        "events": events,
        "enabled": w.enabled,
        "disabled_reason": w.disabled_reason,
        "secret_hint": w.secret_hint,
        "created_at": iso8601(w.created_at),
        "updated_at": iso8601(w.updated_at),
    })
}

/// A URL Hub may deliver to (400 naming `url` otherwise).
fn checked_url(hub: &Hub, url: String) -> Result<String, ApiError> {
    if url.len() > 2048 {
        return Err(ApiError::invalid_field("url", "must be at most 2048 characters"));
    }
    hub.webhook_policy()
        .check_url(&url)
        .map_err(|problem| ApiError::invalid_field("url", problem))?;
    Ok(url)
}

/// `["*"]` or known types, stored as `*` or `,a,b,`.
fn checked_events(v: &Value) -> Result<String, ApiError> {
    let bad = || {
        let names: Vec<&str> = subscribable().map(|t| t.as_str()).collect();
        ApiError::invalid_field(
            "events",
            format!("must be [\"*\"] or a non-empty list of: {}", names.join(", ")),
        )
    };
    let list = v.as_array().filter(|l| !l.is_empty()).ok_or_else(bad)?;
    let mut names = Vec::new();
    for e in list {
        let name = e.as_str().ok_or_else(bad)?;
        if name == "*" {
            return if list.len() == 1 { Ok("*".into()) } else { Err(bad()) };
        }
        let kind = EventType::parse(name)
            .filter(|t| *t != EventType::WebhookTest)
            .ok_or_else(bad)?;
        if !names.contains(&kind.as_str()) {
            names.push(kind.as_str());
        }
    }
    Ok(format!(",{},", names.join(",")))
}

fn patch_of(hub: &Hub, f: &Fields) -> Result<WebhookPatch, ApiError> {
    f.only(FIELDS)?;
    let description = match f.0.get("description") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => {
            let d = f.str("description")?.unwrap_or_default();
            if d.len() > 500 || d.chars().any(char::is_control) {
                return Err(ApiError::invalid_field(
                    "description",
                    "must be at most 500 characters, one line",
                ));
            }
            Some(Some(d).filter(|d| !d.is_empty()))
        }
    };
    Ok(WebhookPatch {
        url: f.str("url")?.map(|u| checked_url(hub, u)).transpose()?,
        events: f.0.get("events").map(checked_events).transpose()?,
        description,
        enabled: f.bool("enabled")?,
    })
}

/// `GET /api/admin/webhooks`.
pub(crate) async fn list(hub: &Hub) -> Result<Response, ApiError> {
    let all = hub.store().list_webhooks().await?;
    Ok(json(
        StatusCode::OK,
        &json!({"data": all.iter().map(webhook_json).collect::<Vec<_>>(), "next_cursor": null}),
    ))
}

/// `POST /api/admin/webhooks {"url", "events", "description"?}`: answers
/// the signing secret, once.
pub(crate) async fn create(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    let p = patch_of(hub, &f)?;
    let url = p.url.ok_or_else(|| ApiError::invalid_field("url", "is required"))?;
    let events = p
        .events
        .ok_or_else(|| ApiError::invalid_field("events", "is required"))?;
    let secret = sign::new_secret(hub.rng()).map_err(no_randomness)?;
    let now = hub.now_ms();
    let w = WebhookRow {
        id: hub.new_id("whk"),
        url,
        description: p.description.flatten(),
        events,
        secret_enc: hub.seal(&secret)?,
        secret_hint: sign::hint(&secret),
        previous_secret_enc: None,
        previous_until: None,
        enabled: p.enabled.unwrap_or(true),
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    hub.store().insert_webhook(&w).await?;
    let mut body = webhook_json(&w);
    body["secret"] = json!(secret);
    Ok(json(StatusCode::CREATED, &body))
}

pub(crate) async fn get(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    let w = hub.store().get_webhook(id).await?.ok_or_else(|| no_webhook(id))?;
    Ok(json(StatusCode::OK, &webhook_json(&w)))
}

/// `PATCH /api/admin/webhooks/{id}` (url, events, description, enabled).
pub(crate) async fn patch(hub: &Hub, id: &str, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    let p = patch_of(hub, &f)?;
    if !hub.store().update_webhook(id, &p, hub.now_ms()).await? {
        return Err(no_webhook(id));
    }
    if p.enabled == Some(true) {
        hub.deliver_soon();
    }
    get(hub, id).await
}

/// `DELETE /api/admin/webhooks/{id}`, with its deliveries.
pub(crate) async fn delete(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    if !hub.store().delete_webhook(id).await? {
        return Err(no_webhook(id));
    }
    Ok(json(StatusCode::OK, &json!({"id": id, "deleted": true})))
}

/// `POST /api/admin/webhooks/{id}/rotate`: a new secret, answered once; the
/// previous one keeps signing (a second `v1` signature) for 24 hours.
pub(crate) async fn rotate(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    let secret = sign::new_secret(hub.rng()).map_err(no_randomness)?;
    let now = hub.now_ms();
    let sealed = hub.seal(&secret)?;
    if !hub
        .store()
        .rotate_webhook_secret(id, &sealed, &sign::hint(&secret), now + ROTATION_GRACE_MS, now)
        .await?
    {
        return Err(no_webhook(id));
    }
    let w = hub.store().get_webhook(id).await?.ok_or_else(|| no_webhook(id))?;
    let mut body = webhook_json(&w);
    body["secret"] = json!(secret);
    body["previous_secret_until"] = json!(iso8601(now + ROTATION_GRACE_MS));
    Ok(json(StatusCode::OK, &body))
}

/// `POST /api/admin/webhooks/{id}/test`: a `webhook.test` event for this
/// webhook only, sent in the background (see its deliveries).
pub(crate) async fn test(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    hub.store().get_webhook(id).await?.ok_or_else(|| no_webhook(id))?;
    let (event_id, delivery_id) = (hub.new_id("msg"), hub.new_id("dlv"));
    let event = NewEvent {
        id: &event_id,
        kind: EventType::WebhookTest.as_str(),
        user_id: None,
        subject: Some(id),
        detail: json!({"message": "A test event from Hub."}),
        dedupe: None,
        now_ms: hub.now_ms(),
    };
    hub.store().record_test_event(&event, &delivery_id, id).await?;
    hub.deliver_soon();
    Ok(json(
        StatusCode::ACCEPTED,
        &json!({"event_id": event_id, "delivery_id": delivery_id}),
    ))
}

pub(crate) fn delivery_json(d: &DeliveryRow, attempts: Vec<Value>) -> Value {
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "state": d.state,
        "attempts": attempts,
        "next_attempt_at": (d.state == "pending").then(|| iso8601(d.next_at)),
        "retry_until": iso8601(d.deadline),
        "last_error": d.last_error,
        "created_at": iso8601(d.created_at),
    })
}

/// `GET /api/admin/webhooks/{id}/deliveries?limit&cursor`: newest first,
/// each with every attempt (number, time, HTTP status, error, duration).
pub(crate) async fn deliveries(hub: &Hub, id: &str, req: &Request) -> Result<Response, ApiError> {
    hub.store().get_webhook(id).await?.ok_or_else(|| no_webhook(id))?;
    let query = query_pairs(req.uri());
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, v)| n == k && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let cursor = get("cursor")
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid_field("cursor", "is not a deliveries cursor"))
        })
        .transpose()?;
    let limit = get("limit")
        .map(|l| {
            l.parse::<i64>()
                .map_err(|_| ApiError::invalid_field("limit", "must be an integer"))
        })
        .transpose()?;
    let page = hub.store().list_deliveries(id, cursor, page_limit(limit)).await?;
    let ids: Vec<String> = page.items.iter().map(|d| d.id.clone()).collect();
    let attempts = hub.store().delivery_attempts(&ids).await?;
    let data: Vec<Value> = page
        .items
        .iter()
        .map(|d| {
            let mine = attempts.iter().filter(|a| a.delivery_id == d.id).map(|a| {
                json!({"attempt": a.attempt, "at": iso8601(a.at), "status": a.status, "error": a.error, "duration_ms": a.duration_ms})
            });
            delivery_json(d, mine.collect())
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({"data": data, "next_cursor": page.next_cursor}),
    ))
}

/// `POST /api/admin/webhooks/{id}/deliveries/{delivery}/resend`: sends it
/// again now, with the same `webhook-id`, retrying for another 24 hours.
pub(crate) async fn resend(hub: &Hub, id: &str, delivery: &str) -> Result<Response, ApiError> {
    if !hub.store().resend_delivery(id, delivery, hub.now_ms()).await? {
        return Err(ApiError::not_found(format!(
            "No delivery `{delivery}` of webhook `{id}` that can be sent again (it may be in flight right now)."
        )));
    }
    hub.deliver_soon();
    Ok(json(StatusCode::ACCEPTED, &json!({"id": delivery, "state": "pending"})))
}
