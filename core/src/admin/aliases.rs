//! `/api/admin/aliases`: model aliases (a name callers use for an ordered
//! list of targets, see `gateway::routing`).

use super::fields::Fields;
use super::{conflict_as, created, gone, ok};
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::hub::Hub;
use crate::kinds::RoutingMode;
use crate::store::{AliasRow, AliasTarget, ModelRow, ProviderRow};
use serde_json::{json, Map, Value};

const ALIAS_FIELDS: &[&str] = &[
    "name",
    "description",
    "targets",
    "routing",
    "fallback_on_refusal",
    "enabled",
];

/// Most targets one alias may list.
const MAX_TARGETS: usize = 10;

/// Body fields an override may not set: they decide what the call is and
/// how it is billed (the output budget the hold and the billing bound come
/// from, whether usage is reported), not how a target answers it.
const FIXED_PARAMETERS: &[&str] = &[
    "model",
    "stream",
    "stream_options",
    "messages",
    "input",
    "prompt",
    "system",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
];

/// The output budget as Gemini (`generationConfig.maxOutputTokens`) and
/// Bedrock (`inferenceConfig.maxTokens`) name it, at any depth of an override.
const FIXED_NESTED: &[&str] = &["maxOutputTokens", "maxTokens", "candidateCount"];

fn sets_nested(v: &Value) -> Option<&'static str> {
    match v {
        Value::Object(m) => FIXED_NESTED
            .iter()
            .find(|k| m.contains_key(**k))
            .copied()
            .or_else(|| m.values().find_map(sets_nested)),
        Value::Array(a) => a.iter().find_map(sets_nested),
        _ => None,
    }
}

pub fn alias_json(a: &AliasRow) -> Value {
    let t = |ms: i64| super::views::t(ms);
    json!({
        "id": a.id,
        "name": a.name,
        "description": a.description,
        "targets": a.targets,
        "routing": a.routing,
        "fallback_on_refusal": a.fallback_on_refusal,
        "enabled": a.enabled,
        "created_at": t(a.created_at),
        "updated_at": t(a.updated_at),
    })
}

pub(crate) async fn list(hub: &Hub) -> Result<Response, ApiError> {
    let data: Vec<Value> = hub.store().list_aliases().await?.iter().map(alias_json).collect();
    ok(json!({ "data": data }))
}

pub(crate) async fn get(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    let a = hub.store().get_alias(id).await?.ok_or_else(|| gone("alias", id))?;
    ok(alias_json(&a))
}

pub(crate) async fn create(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(ALIAS_FIELDS)?;
    let now = hub.now_ms();
    let mut a = AliasRow {
        id: hub.new_id("als"),
        name: String::new(),
        description: None,
        targets: Vec::new(),
        routing: RoutingMode::Priority,
        fallback_on_refusal: false,
        enabled: true,
        created_at: now,
        updated_at: now,
    };
    if !f.has("name") || !f.has("targets") {
        let missing = if f.has("name") { "targets" } else { "name" };
        return Err(ApiError::invalid_field(missing, "is required"));
    }
    apply(hub, &mut a, &f).await?;
    hub.store()
        .insert_alias(&a)
        .await
        .map_err(|e| conflict_as(e, "an alias with this name already exists"))?;
    hub.reload().await?;
    created(alias_json(&a))
}

pub(crate) async fn patch(hub: &Hub, id: &str, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(ALIAS_FIELDS)?;
    let mut a = hub.store().get_alias(id).await?.ok_or_else(|| gone("alias", id))?;
    apply(hub, &mut a, &f).await?;
    hub.store()
        .update_alias(&a, hub.now_ms())
        .await
        .map_err(|e| conflict_as(e, "an alias with this name already exists"))?;
    hub.reload().await?;
    get(hub, &a.id).await
}

pub(crate) async fn delete(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    if !hub.store().delete_alias(id, hub.now_ms()).await? {
        return Err(gone("alias", id));
    }
    hub.reload().await?;
    ok(json!({"id": id, "deleted": true}))
}

/// Sets the fields present in `f` on `a`, each checked.
async fn apply(hub: &Hub, a: &mut AliasRow, f: &Fields) -> Result<(), ApiError> {
    let store = hub.store();
    let (models, providers) = (store.all_models().await?, store.list_providers().await?);
    let others: Vec<String> = store
        .list_aliases()
        .await?
        .into_iter()
        .filter(|o| o.id != a.id)
        .map(|o| o.name)
        .collect();
    if f.has("name") {
        a.name = alias_name(&f.req_str("name")?, &models)?;
    }
    if f.has("targets") {
        a.targets = targets(f.0.get("targets"), &models, &providers, &others, &a.name)?;
    }
    if f.has("description") {
        a.description = f.str("description")?.filter(|d| !d.is_empty());
    }
    if let Some(r) = f.routing()? {
        a.routing = r;
    }
    if let Some(b) = f.bool("fallback_on_refusal")? {
        a.fallback_on_refusal = b;
    }
    if let Some(b) = f.bool("enabled")? {
        a.enabled = b;
    }
    if a.targets.iter().any(|t| t.model == a.name) {
        return Err(ApiError::invalid_field("targets", "an alias cannot be its own target"));
    }
    Ok(())
}

/// A name callers can use: no `/` (that pins a provider), no spaces, not a
/// model's name (the alias would hide it).
fn alias_name(name: &str, models: &[ModelRow]) -> Result<String, ApiError> {
    let bad = |why: &str| Err(ApiError::invalid_field("name", why.to_string()));
    if name.chars().count() > 200 {
        return bad("must be at most 200 characters");
    }
    if name.contains('/') || name.chars().any(char::is_whitespace) {
        return bad("must not contain `/` or spaces (`provider/model` names a provider's model)");
    }
    if models.iter().any(|m| m.model == name) {
        return bad("is already a model's name: an alias must not hide a model");
    }
    Ok(name.to_string())
}

/// The targets, in order: each a model callers could name (`provider/model`
/// or a bare model) that exists, given as a string or as
/// `{"model": …, "overrides": {…}}`.
fn targets(
    v: Option<&Value>,
    models: &[ModelRow],
    providers: &[ProviderRow],
    aliases: &[String],
    own_name: &str,
) -> Result<Vec<AliasTarget>, ApiError> {
    let bad = |why: String| ApiError::invalid_field("targets", why);
    let Some(Value::Array(items)) = v else {
        return Err(bad("must be a list of targets".into()));
    };
    if items.is_empty() || items.len() > MAX_TARGETS {
        return Err(bad(format!("must list 1 to {MAX_TARGETS} targets")));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let target = match item {
            Value::String(model) => AliasTarget {
                model: model.trim().to_string(),
                overrides: None,
            },
            Value::Object(o) => {
                if let Some(k) = o.keys().find(|k| !["model", "overrides"].contains(&k.as_str())) {
                    return Err(bad(format!(
                        "target {i}: `{k}` is not a known field (model, overrides)"
                    )));
                }
                let model = o.get("model").and_then(Value::as_str).unwrap_or("").trim().to_string();
                let overrides = match o.get("overrides") {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(m)) => Some(overrides(i, m)?),
                    Some(_) => return Err(bad(format!("target {i}: `overrides` must be an object"))),
                };
                AliasTarget { model, overrides }
            }
            _ => return Err(bad(format!("target {i} must be a model name or an object"))),
        };
        if target.model.is_empty() {
            return Err(bad(format!("target {i}: `model` is required")));
        }
        if target.model == own_name || aliases.contains(&target.model) {
            return Err(bad(format!(
                "target {i}: `{}` is an alias; targets are models",
                target.model
            )));
        }
        if !names_a_model(&target.model, models, providers) {
            return Err(bad(format!("target {i}: `{}` names no model", target.model)));
        }
        out.push(target);
    }
    Ok(out)
}

fn overrides(i: usize, m: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let fixed = m
        .keys()
        .find(|k| FIXED_PARAMETERS.contains(&k.as_str()))
        .map(String::as_str)
        .or_else(|| m.values().find_map(sets_nested));
    match fixed {
        Some(k) => Err(ApiError::invalid_field(
            "targets",
            format!("target {i}: an override cannot set `{k}`"),
        )),
        None => Ok(m.clone()),
    }
}

/// Whether some model row answers to `name` as callers write it.
fn names_a_model(name: &str, models: &[ModelRow], providers: &[ProviderRow]) -> bool {
    let bare = models.iter().any(|m| m.model == name);
    let pinned = name.split_once('/').is_some_and(|(prefix, rest)| {
        models.iter().any(|m| {
            m.model == rest
                && providers
                    .iter()
                    .any(|p| p.id == m.provider_id && (p.name == prefix || p.kind == prefix))
        })
    });
    bare || pinned
}
