//! `GET /api/admin/audit`: the audit log of admin writes (see
//! [`crate::store::AuditTrail`] for how entries are written), newest first,
//! filtered by actor, resource, action and time, paged on the server.

use super::{ok, Query};
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::hub::Hub;
use crate::kinds::{AuditAction, AuditResource};
use crate::store::{AuditFilter, AuditRow};
use crate::time::iso8601;
use serde_json::{json, Value};

/// `GET /api/admin/audit?actor&resource&resource_id&action&from&to&limit&cursor`.
pub(crate) async fn list(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let q = Query::of(req);
    let filter = filter(&q)?;
    let page = hub.store().list_audit(&filter, q.get("cursor"), q.limit()?).await?;
    ok(json!({
        "data": page.items.iter().map(entry_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    }))
}

fn filter(q: &Query) -> Result<AuditFilter, ApiError> {
    let resource = q
        .get("resource")
        .map(|r| {
            AuditResource::parse(r)
                .ok_or_else(|| ApiError::invalid_field("resource", format!("must be {}", AuditResource::names())))
        })
        .transpose()?;
    let action = q
        .get("action")
        .map(|a| {
            AuditAction::parse(a)
                .ok_or_else(|| ApiError::invalid_field("action", format!("must be {}", AuditAction::names())))
        })
        .transpose()?;
    Ok(AuditFilter {
        actor: q.get("actor").map(str::to_owned),
        resource,
        resource_id: q.get("resource_id").map(str::to_owned),
        action,
        from: q.time("from")?,
        to: q.time("to")?,
    })
}

fn entry_json(e: &AuditRow) -> Value {
    json!({
        "id": e.id,
        "at": iso8601(e.at),
        "actor": {
            "user_id": e.actor.user_id,
            "key_id": e.actor.key_id,
            "session_id": e.actor.session_id,
        },
        "request_id": e.request_id,
        "method": e.method,
        "path": e.path,
        "resource": e.resource,
        "resource_id": e.resource_id,
        "action": e.action,
        "status": e.status,
        "finished_at": e.finished_at.map(iso8601),
        "request": e.request,
        "before": e.before,
        "after": e.after,
    })
}
