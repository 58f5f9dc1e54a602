//! The audit of admin writes. Every admin route that is not a read is
//! declared in the [table](super::table) with an [`Audit`]: what resource it
//! changes, how, and where the resource's id is. The front door runs such a
//! route through [`run`]: the resource as the admin API shows it before, a
//! Hub whose store writes the request's entry with its first change (see
//! [`crate::store::AuditTrail`]), then the entry finished with the answer's
//! status and the resource after. The views are the admin API's own JSON
//! shapes, which carry secrets only as masked hints; the request body is
//! kept with secret fields masked.

use super::table::{Audit, Call, Reply, Target};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Body, Response};
use crate::hub::Hub;
use crate::kinds::AuditResource;
use crate::store::{Actor, AuditEntry, AuditFinish, AuditTrail};
use serde_json::Value;
use std::sync::Arc;

/// A request body larger than this is recorded by its size only.
const MAX_RECORDED_BODY: usize = 16 * 1024;

/// Runs an admin write's handler with its audit entry (see the module).
pub(crate) async fn run(
    hub: &Hub,
    audit: Audit,
    call: Call,
    caller: Arc<Caller>,
    handler: fn(Call, Arc<Caller>) -> Reply,
) -> Result<Response, ApiError> {
    let path_id = match audit.target {
        Target::Path(n) => Some(call.param(n).to_owned()),
        _ => None,
    };
    let before = match audit.target {
        Target::Answer(_) => None,
        _ => view(hub, audit.resource, path_id.as_deref()).await?,
    };
    let trail = AuditTrail::new(AuditEntry {
        id: hub.new_id("aud"),
        at: hub.now_ms(),
        actor: actor(&caller),
        request_id: call.request_id.clone(),
        method: call.req.method().to_string(),
        path: call.req.uri().path().to_owned(),
        resource: audit.resource,
        resource_id: path_id.clone(),
        action: audit.action,
        request: recorded_body(call.req.body()),
        before,
    });
    let call = call.with_hub(hub.audited(trail.clone()));
    let result = handler(call, caller).await;
    // Read before awaiting again: an answer is not shared between threads.
    let (status, answer_id) = match &result {
        Ok(res) => (res.status().as_u16(), answer_field(res, audit.target)),
        Err(e) => (e.status.as_u16(), None),
    };
    finish(hub, audit.resource, &trail, path_id.or(answer_id), status).await;
    result
}

fn actor(caller: &Caller) -> Actor {
    let id = Some(caller.key_id.clone());
    Actor {
        user_id: caller.user_id.clone(),
        key_id: if caller.session { None } else { id.clone() },
        session_id: if caller.session { id } else { None },
    }
}

/// Finishes the entry (written now if the request changed nothing). A
/// failure here leaves the entry unfinished (status unknown), never the
/// answer changed: the change itself has committed.
async fn finish(hub: &Hub, resource: AuditResource, trail: &AuditTrail, id: Option<String>, status: u16) {
    let after = if trail.written() {
        view(hub, resource, id.as_deref()).await.unwrap_or_else(|e| {
            tracing::warn!(
                audit = trail.id(),
                "audit: the resource after could not be read: {}",
                e.message
            );
            None
        })
    } else {
        // Nothing changed: as it was.
        trail.before().cloned()
    };
    let end = AuditFinish {
        status,
        resource_id: id.as_deref(),
        after,
        now_ms: hub.now_ms(),
    };
    if let Err(e) = hub.store().finish_audit(trail, &end).await {
        tracing::warn!(audit = trail.id(), "audit: the entry could not be finished: {e}");
    }
}

/// A create's new id, read from its JSON answer.
fn answer_field(res: &Response, target: Target) -> Option<String> {
    let (Target::Answer(field), Body::Full(bytes)) = (target, res.body()) else {
        return None;
    };
    let answer: Value = serde_json::from_slice(bytes).ok()?;
    answer.get(field)?.as_str().map(str::to_owned)
}

/// The request body as the entry keeps it: JSON with secret fields masked.
fn recorded_body(body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    if body.len() > MAX_RECORDED_BODY {
        return Some(serde_json::json!({ "omitted": format!("a body of {} bytes", body.len()) }));
    }
    serde_json::from_slice(body).ok().map(masked)
}

/// Whether a field holds a secret: a secret setting, or a name that says so
/// (a credential's `secret`, a password, a token, an API key). Generous on
/// purpose: masking a harmless field costs nothing.
fn secret_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    crate::config::is_secret(name)
        || ["secret", "password", "token", "credential"]
            .iter()
            .any(|w| n.contains(w))
        || n == "key"
        || n.ends_with("_key")
        || n.ends_with("apikey")
}

fn masked(v: Value) -> Value {
    match v {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Null => Value::Null,
                        _ if secret_field(&k) => Value::String("****".into()),
                        other => masked(other),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(masked).collect()),
        other => other,
    }
}

/// The resource as the admin API shows it (secrets as hints only), or None
/// if it does not exist (before a create, after a delete).
async fn view(hub: &Hub, resource: AuditResource, id: Option<&str>) -> Result<Option<Value>, ApiError> {
    use crate::admin::views;
    let store = hub.store();
    let Some(id) = id else {
        return match resource {
            AuditResource::Settings => settings_view(hub).await.map(Some),
            _ => Ok(None),
        };
    };
    Ok(match resource {
        AuditResource::Provider => match store.get_provider(id).await? {
            Some(p) => Some(views::provider_json(&p, &store.list_credentials(Some(id)).await?)),
            None => None,
        },
        AuditResource::Credential => store.get_credential(id).await?.map(|c| views::credential_json(&c)),
        AuditResource::Model => match store.get_model(id).await? {
            Some(m) => Some(views::model_json(&m, &store.list_providers().await?)),
            None => None,
        },
        AuditResource::User => store.get_user(id).await?.map(|u| views::user_json(&hub.live_user(u))),
        AuditResource::Key => store.get_key(id).await?.map(|k| views::key_json(&k)),
        AuditResource::RedemptionCodes => codes_view(hub, id).await?,
        AuditResource::CreditPack => store.get_pack(id).await?.map(|p| crate::payments::pack_json(&p)),
        AuditResource::Webhook => store
            .get_webhook(id)
            .await?
            .map(|w| crate::notify::webhooks::webhook_json(&w)),
        AuditResource::WebhookDelivery => match store.get_delivery(id).await? {
            Some(d) => Some(delivery_view(hub, d).await?),
            None => None,
        },
        AuditResource::Team => match store.get_team(id).await? {
            Some(t) => Some(crate::admin::teams::team_view(hub, &t, None).await?),
            None => None,
        },
        AuditResource::Alias => store
            .get_alias(id)
            .await?
            .map(|a| crate::admin::aliases::alias_json(&a)),
        AuditResource::Settings => None,
    })
}

async fn delivery_view(hub: &Hub, d: crate::store::DeliveryRow) -> Result<Value, ApiError> {
    let attempts = hub.store().delivery_attempts(std::slice::from_ref(&d.id)).await?;
    let attempts = attempts
        .iter()
        .map(|a| serde_json::json!({"attempt": a.attempt, "status": a.status, "error": a.error}))
        .collect();
    Ok(crate::notify::webhooks::delivery_json(&d, attempts))
}

async fn settings_view(hub: &Hub) -> Result<Value, ApiError> {
    let pairs = hub.store().settings().await?;
    Ok(crate::config::Settings::from_pairs(&pairs).to_json())
}

/// A batch (`rcb_…`) with its codes' hints, or one code (`rdc_…`).
async fn codes_view(hub: &Hub, id: &str) -> Result<Option<Value>, ApiError> {
    let store = hub.store();
    let now = hub.now_ms();
    if let Some(code) = store.get_code(id).await? {
        let batch = store.get_code_batch(&code.batch_id).await?;
        return Ok(batch.map(|b| crate::admin::codes::code_json(&code, &b, now)));
    }
    let Some(batch) = store.get_code_batch(id).await? else {
        return Ok(None);
    };
    let codes = store.codes_of_batch(id).await?;
    Ok(Some(crate::admin::codes::batch_json(&batch, &codes, now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_fields_are_masked_at_any_depth() {
        let body = json!({
            "name": "main", "secret": "sk-live-123", "weight": 2,
            "nested": {"smtp_password": "pw", "oidc_client_secret": "cs", "stripe_secret_key": "sk_x",
                        "access_key_id": "AKIA", "list": [{"api_key": "k"}]},
            "cleared": null,
        });
        let out = masked(body).to_string();
        for secret in ["sk-live-123", "\"pw\"", "\"cs\"", "sk_x", "\"k\""] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("\"name\":\"main\"") && out.contains("\"weight\":2") && out.contains("\"cleared\":null"));
    }

    #[test]
    fn large_or_empty_bodies_are_not_kept() {
        assert_eq!(recorded_body(b""), None);
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_RECORDED_BODY));
        assert_eq!(
            recorded_body(big.as_bytes()),
            Some(json!({"omitted": format!("a body of {} bytes", big.len())}))
        );
    }
}
