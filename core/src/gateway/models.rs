//! `GET /v1/models`: the models and aliases a key may call, in OpenAI's list shape.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{json, Response, StatusCode};
use crate::Hub;
use serde_json::json;

pub async fn list(hub: &Hub, caller: &Caller) -> Result<Response, ApiError> {
    let snap = hub.snapshot().await?;
    let mut data = Vec::new();
    for routes in snap.routes.values() {
        for r in routes {
            let id = format!("{}/{}", r.provider.name, r.model.model);
            if caller.may_use_model(&id, &r.provider.name, &r.model.model) {
                data.push(json!({
                    "id": id,
                    "object": "model",
                    "created": r.model.created_at / 1000,
                    "owned_by": r.provider.name,
                    "type": r.model.kind,
                }));
            }
        }
    }
    for alias in snap.aliases.values() {
        // Listed when the key may reach one of its targets; typed like its first.
        let usable = super::routing::alias_routes(&snap, alias)
            .find(|r| caller.may_use_model(&alias.name, &r.provider.name, &r.model.model));
        if let Some(r) = usable {
            data.push(json!({
                "id": alias.name,
                "object": "model",
                "created": alias.created_at / 1000,
                "owned_by": "hub",
                "type": r.model.kind,
                "alias": true,
            }));
        }
    }
    data.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(json(StatusCode::OK, &json!({"object": "list", "data": data})))
}
