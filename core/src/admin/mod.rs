//! The admin API (owner/admin keys) and the self-service `/api/me` API (any
//! key). JSON in and out; validation errors are 400s naming the field; list
//! endpoints are paged with `?limit&cursor`.

pub(crate) mod aliases;
pub(crate) mod audit;
pub mod codes;
pub(crate) mod credits;
pub(crate) mod fields;
mod keys;
pub mod me;
pub(crate) mod teams;
pub(crate) mod views;

use crate::auth::{Caller, Role};
use crate::config::Settings;
use crate::error::ApiError;
use crate::http::{json, query_pairs, Request, Response, StatusCode};
use crate::hub::Hub;
use crate::kinds::{CallStatus, CredentialStatus, ModelKind};
use crate::metering::money::Rate;
use crate::metering::{LongContext, Rates, DEFAULT_LONG_CONTEXT_THRESHOLD};
use crate::prices::margin::{below_cost, floor_violation, Percent};
use crate::prices::sync::Source;
use crate::prices::CatalogueFormat;
use crate::providers::vendor;
use crate::store::Nullable;
use crate::store::{
    page_limit, CallFilter, CredentialPatch, CredentialRow, GroupBy, KeyPatch, ModelPatch, ModelRow, NewKeyRow,
    ProviderPatch, ProviderRow, SealedSecret, UserPatch, UserRow,
};
use fields::Fields;
use serde_json::{json, Value};
use views::*;

pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub fn of(req: &Request) -> Query {
        Query(query_pairs(req.uri()))
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.get("limit") {
            None => Ok(page_limit(None)),
            Some(v) => v
                .parse()
                .map(|n| page_limit(Some(n)))
                .map_err(|_| ApiError::invalid_field("limit", "must be an integer")),
        }
    }

    pub fn time(&self, k: &str) -> Result<Option<i64>, ApiError> {
        self.get(k)
            .map(|v| {
                crate::time::parse_time(v)
                    .ok_or_else(|| ApiError::invalid_field(k, "must be an ISO-8601 time or epoch milliseconds"))
            })
            .transpose()
    }

    pub fn filter(&self) -> Result<CallFilter, ApiError> {
        let s = |k: &str| self.get(k).map(str::to_owned);
        let status = self
            .get("status")
            .map(|st| {
                CallStatus::parse(st)
                    .ok_or_else(|| ApiError::invalid_field("status", format!("must be {}", CallStatus::names())))
            })
            .transpose()?;
        Ok(CallFilter {
            from: self.time("from")?,
            to: self.time("to")?,
            user: s("user"),
            key: s("key"),
            app: s("app"),
            provider: s("provider"),
            model: s("model"),
            team: s("team"),
            status,
        })
    }

    pub fn tz(&self) -> Result<i64, ApiError> {
        match self.get("tz") {
            None => Ok(0),
            Some(v) => crate::time::parse_offset_minutes(v).ok_or_else(|| {
                ApiError::invalid_field("tz", "must be a UTC offset such as +02:00, -0530 or minutes (120)")
            }),
        }
    }

    pub fn group_by(&self, allowed: &[&str]) -> Result<GroupBy, ApiError> {
        let g = self.get("group_by").unwrap_or("day");
        if !allowed.contains(&g) {
            return Err(ApiError::invalid_field(
                "group_by",
                format!("must be one of {}", allowed.join(", ")),
            ));
        }
        GroupBy::parse(g).ok_or_else(|| ApiError::invalid_field("group_by", "is not a grouping"))
    }
}

fn ok(value: Value) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &value))
}

fn created(value: Value) -> Result<Response, ApiError> {
    Ok(json(StatusCode::CREATED, &value))
}

fn gone(what: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("No {what} with id `{id}`."))
}

/// `GET /api/admin/settings`.
pub(crate) async fn settings(hub: &Hub) -> Result<Response, ApiError> {
    ok(hub.snapshot().await?.settings.to_json())
}

/// `POST /api/admin/users/:id/keys`: a key for a user the caller may manage.
pub(crate) async fn create_key_for(
    hub: &Hub,
    caller: &Caller,
    user: &str,
    req: &Request,
) -> Result<Response, ApiError> {
    manageable_user(hub, caller, user).await?;
    create_key(hub, user, req, Some(caller)).await
}

// ------------------------------------------------------------------ providers

pub(crate) async fn list_providers(hub: &Hub) -> Result<Response, ApiError> {
    let providers = hub.store().list_providers().await?;
    let creds = hub.store().list_credentials(None).await?;
    let data: Vec<Value> = providers.iter().map(|p| provider_json(p, &creds)).collect();
    ok(json!({ "data": data, "next_cursor": null }))
}

pub(crate) async fn get_provider(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    let p = hub
        .store()
        .get_provider(id)
        .await?
        .ok_or_else(|| gone("provider", id))?;
    let creds = hub.store().list_credentials(Some(&p.id)).await?;
    ok(provider_json(&p, &creds))
}

fn check_base_url(hub: &Hub, url: &str) -> Result<(), ApiError> {
    hub.outbound()
        .check_url(url)
        .map(drop)
        .map_err(|problem| ApiError::invalid_field("base_url", problem))
}

/// A Bedrock region becomes part of a host name
/// (`bedrock-runtime.{region}.amazonaws.com`): letters, digits and dashes only.
fn check_region(region: &str) -> Result<(), ApiError> {
    let ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(ApiError::invalid_field(
            "region",
            "must be an AWS region name such as us-east-1 (lower-case letters, digits and '-')",
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(ApiError::invalid_field(
            "name",
            "must be 1-64 letters, digits, '-', '_' or '.' (it is used in `name/model`)",
        ));
    }
    Ok(())
}

/// The `region` field, checked; empty counts as unset.
fn region(f: &Fields) -> Result<Option<String>, ApiError> {
    let region = f.str("region")?.filter(|r| !r.is_empty());
    if let Some(r) = &region {
        check_region(r)?;
    }
    Ok(region)
}

const PROVIDER_FIELDS: &[&str] = &["name", "kind", "base_url", "region", "enabled", "priority"];

pub(crate) async fn create_provider(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(PROVIDER_FIELDS)?;
    let kind = f.req_str("kind")?;
    let v = vendor(&kind).ok_or_else(|| {
        let kinds: Vec<&str> = crate::providers::VENDORS.iter().map(|v| v.kind).collect();
        ApiError::invalid_field("kind", format!("must be one of: {}", kinds.join(", ")))
    })?;
    let name = f.str("name")?.unwrap_or_else(|| kind.clone());
    check_name(&name)?;
    let base_url = f.str("base_url")?.filter(|u| !u.is_empty());
    match &base_url {
        Some(u) => check_base_url(hub, u)?,
        None if v.default_base_url.is_empty() && !v.needs_region => {
            return Err(ApiError::invalid_field(
                "base_url",
                format!("is required for kind `{kind}`"),
            ))
        }
        None => {}
    }
    let now = hub.now_ms();
    let p = ProviderRow {
        id: hub.new_id("prv"),
        name,
        kind,
        base_url,
        region: region(&f)?,
        enabled: f.bool("enabled")?.unwrap_or(true),
        priority: f.int("priority", -1000, 1000)?.unwrap_or(0),
        created_at: now,
        updated_at: now,
    };
    hub.store()
        .insert_provider(&p)
        .await
        .map_err(|e| conflict_as(e, "a provider with this name already exists"))?;
    hub.reload().await?;
    created(provider_json(&p, &[]))
}

fn conflict_as(e: crate::ports::DbError, msg: &str) -> ApiError {
    match e {
        crate::ports::DbError::Constraint(_) => ApiError::conflict(msg),
        other => other.into(),
    }
}

pub(crate) async fn patch_provider(hub: &Hub, id: &str, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(PROVIDER_FIELDS)?;
    let p = hub
        .store()
        .get_provider(id)
        .await?
        .ok_or_else(|| gone("provider", id))?;
    let patch = provider_patch(hub, &f)?;
    if !patch.is_empty() {
        hub.store()
            .update_provider(&p.id, &patch, hub.now_ms())
            .await
            .map_err(|e| conflict_as(e, "a provider with this name already exists"))?;
        hub.reload().await?;
    }
    get_provider(hub, &p.id).await
}

/// What a PATCH body changes on a provider, checked.
fn provider_patch(hub: &Hub, f: &Fields) -> Result<ProviderPatch, ApiError> {
    let name = f.str("name")?;
    if let Some(n) = &name {
        check_name(n)?;
    }
    let kind = f.str("kind")?;
    if let Some(k) = &kind {
        vendor(k).ok_or_else(|| ApiError::invalid_field("kind", "is not a known provider kind"))?;
    }
    let base_url = f.str("base_url")?.filter(|u| !u.is_empty());
    if let Some(u) = &base_url {
        check_base_url(hub, u)?;
    }
    Ok(ProviderPatch {
        name,
        kind,
        base_url: f.nullable("base_url", base_url),
        region: f.nullable("region", region(f)?),
        enabled: f.bool("enabled")?,
        priority: f.int("priority", -1000, 1000)?,
    })
}

pub(crate) async fn delete_provider(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    let p = hub
        .store()
        .get_provider(id)
        .await?
        .ok_or_else(|| gone("provider", id))?;
    hub.store().delete_provider(&p.id, hub.now_ms()).await?;
    hub.reload().await?;
    ok(json!({"id": p.id, "deleted": true}))
}

// ------------------------------------------------------------------ credentials

pub(crate) async fn list_credentials(hub: &Hub, provider: &str) -> Result<Response, ApiError> {
    let p = hub
        .store()
        .get_provider(provider)
        .await?
        .ok_or_else(|| gone("provider", provider))?;
    let creds = hub.store().list_credentials(Some(&p.id)).await?;
    ok(json!({"data": creds.iter().map(credential_json).collect::<Vec<_>>(), "next_cursor": null}))
}

/// A secret as stored: a string, or an AWS key pair as JSON.
fn secret_text(f: &Fields) -> Result<String, ApiError> {
    match f.0.get("secret") {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::Object(o)) => {
            let has = |k: &str| o.get(k).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
            if !has("access_key_id") || !has("secret_access_key") {
                return Err(ApiError::invalid_field(
                    "secret",
                    "as an object needs `access_key_id` and `secret_access_key`",
                ));
            }
            Ok(Value::Object(o.clone()).to_string())
        }
        _ => Err(ApiError::invalid_field(
            "secret",
            "is required: the provider's API key (or an AWS key pair object)",
        )),
    }
}

fn secret_hint(secret: &str) -> String {
    match serde_json::from_str::<Value>(secret) {
        Ok(Value::Object(o)) => crate::crypto::mask(o.get("access_key_id").and_then(Value::as_str).unwrap_or("")),
        _ => crate::crypto::mask(secret),
    }
}

const CREDENTIAL_FIELDS: &[&str] = &["name", "secret", "weight", "enabled", "status"];

pub(crate) async fn create_credential(hub: &Hub, provider: &str, req: &Request) -> Result<Response, ApiError> {
    let p = hub
        .store()
        .get_provider(provider)
        .await?
        .ok_or_else(|| gone("provider", provider))?;
    let f = Fields::parse(req.body())?;
    f.only(CREDENTIAL_FIELDS)?;
    let secret = secret_text(&f)?;
    let now = hub.now_ms();
    let c = CredentialRow {
        id: hub.new_id("crd"),
        provider_id: p.id.clone(),
        name: f
            .str("name")?
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into()),
        secret_enc: hub.seal(&secret)?,
        secret_hint: secret_hint(&secret),
        weight: f.int("weight", 1, 10_000)?.unwrap_or(100),
        enabled: f.bool("enabled")?.unwrap_or(true),
        status: CredentialStatus::Active,
        last_error: None,
        created_at: now,
        updated_at: now,
    };
    hub.store().insert_credential(&c).await?;
    hub.reload().await?;
    created(credential_json(&c))
}

pub(crate) async fn patch_credential(hub: &Hub, id: &str, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(CREDENTIAL_FIELDS)?;
    hub.store()
        .get_credential(id)
        .await?
        .ok_or_else(|| gone("credential", id))?;
    let patch = credential_patch(hub, &f)?;
    if !patch.is_empty() {
        hub.store().update_credential(id, &patch, hub.now_ms()).await?;
        hub.reload().await?;
        if patch.status.is_some() {
            hub.deliver_soon();
        }
    }
    let c = hub
        .store()
        .get_credential(id)
        .await?
        .ok_or_else(|| gone("credential", id))?;
    ok(credential_json(&c))
}

/// What a PATCH body changes on a credential, checked (a new secret sealed).
fn credential_patch(hub: &Hub, f: &Fields) -> Result<CredentialPatch, ApiError> {
    let name = f.str("name")?;
    let secret = f.has("secret").then(|| secret_text(f)).transpose()?;
    let (weight, enabled) = (f.int("weight", 1, 10_000)?, f.bool("enabled")?);
    // An admin sets a credential in or out of rotation; `error` is only Hub's to record.
    let status = match f.str("status")?.as_deref() {
        None => None,
        Some("active") => Some(CredentialStatus::Active),
        Some("disabled") => Some(CredentialStatus::Disabled),
        Some(_) => return Err(ApiError::invalid_field("status", "must be active or disabled")),
    };
    // Sealed last: a body with a bad field uses no randomness.
    let secret = match secret {
        Some(text) => Some(SealedSecret {
            encrypted: hub.seal(&text)?,
            hint: secret_hint(&text),
        }),
        None => None,
    };
    Ok(CredentialPatch {
        name,
        secret,
        weight,
        enabled,
        status,
    })
}

pub(crate) async fn delete_credential(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    if !hub.store().delete_credential(id, hub.now_ms()).await? {
        return Err(gone("credential", id));
    }
    hub.reload().await?;
    ok(json!({"id": id, "deleted": true}))
}

/// Lists the provider's models with the credential: proves the key and the URL.
pub(crate) async fn test_credential(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    let c = hub
        .store()
        .get_credential(id)
        .await?
        .ok_or_else(|| gone("credential", id))?;
    let p = hub
        .store()
        .get_provider(&c.provider_id)
        .await?
        .ok_or_else(|| gone("provider", &c.provider_id))?;
    let secret = hub
        .master_key()
        .decrypt(&c.secret_enc)
        .map_err(|e| ApiError::internal(format!("The stored secret cannot be read: {e}")))?;
    let probe = hub.probe(&p, &secret).await?;
    let now = hub.now_ms();
    let err = (!probe.ok).then(|| {
        format!(
            "{} {}",
            probe.status.map(|s| s.to_string()).unwrap_or_default(),
            probe.message
        )
        .trim()
        .to_string()
    });
    if probe.ok && c.status == CredentialStatus::Disabled {
        // A credential that works again is back in rotation.
        hub.store()
            .set_credential_health(id, CredentialStatus::Active, None, now)
            .await?;
        hub.reload().await?;
        hub.deliver_soon();
    } else if c.status != CredentialStatus::Disabled {
        hub.store()
            .set_credential_status(
                id,
                if probe.ok {
                    CredentialStatus::Active
                } else {
                    CredentialStatus::Error
                },
                err.as_deref(),
                now,
            )
            .await?;
    }
    ok(json!({"ok": probe.ok, "status": probe.status, "latency_ms": probe.latency_ms, "message": probe.message}))
}

pub(crate) async fn provider_kinds() -> Result<Response, ApiError> {
    let data: Vec<Value> = crate::providers::VENDORS
        .iter()
        .map(|v| {
            json!({
                "kind": v.kind,
                "display_name": v.display_name,
                "default_base_url": v.default_base_url,
                "needs_secret": v.needs_secret,
                "needs_region": v.needs_region,
                "wire": v.wire.name(),
            })
        })
        .collect();
    ok(json!({ "data": data, "next_cursor": null }))
}

// ------------------------------------------------------------------ models

const MODEL_FIELDS: &[&str] = &[
    "provider_id",
    "model",
    "type",
    "input_rate",
    "output_rate",
    "cache_read_rate",
    "cache_write_rate",
    "cache_write_1h_rate",
    "image_rate",
    "video_rate",
    "audio_rate",
    "max_output_tokens",
    "unit_costs",
    "metadata",
    "routing",
    "enabled",
    "input_rate_above_200k",
    "output_rate_above_200k",
    "cache_read_rate_above_200k",
    "cache_write_rate_above_200k",
    "long_context_threshold",
    "cost_input_rate",
    "cost_output_rate",
    "cost_cache_read_rate",
    "cost_cache_write_rate",
    "cost_input_rate_above_200k",
    "cost_output_rate_above_200k",
    "cost_cache_read_rate_above_200k",
    "cost_cache_write_rate_above_200k",
    "context_window",
    "force",
];

/// A nullable rate as sent (`null` clears it), else as it was.
fn rate_or(f: &Fields, k: &str, was: Option<Rate>) -> Result<Option<Rate>, ApiError> {
    if f.has(k) {
        f.rate(k)
    } else {
        Ok(was)
    }
}

/// A tier's change from its fields (`prefix` `` for sell rates, `cost_` for
/// costs) over `old`: `None` when none is sent; a null tier input rate clears it.
fn tier_fields(f: &Fields, prefix: &str, old: Option<LongContext>) -> Result<Nullable<LongContext>, ApiError> {
    let key = |c: &str| format!("{prefix}{c}_above_200k");
    let fields = ["input_rate", "output_rate", "cache_read_rate", "cache_write_rate"].map(key);
    if !fields.iter().any(|k| f.has(k)) && !f.has("long_context_threshold") {
        return Ok(None);
    }
    if f.has(&fields[0]) && f.rate(&fields[0])?.is_none() {
        return Ok(Some(None));
    }
    let input = match (f.rate(&fields[0])?, old) {
        (Some(r), _) => r,
        (None, Some(t)) => t.input,
        // Only a threshold, and no tier to apply it to.
        (None, None) if !fields.iter().any(|k| f.has(k)) => return Ok(None),
        (None, None) => {
            return Err(ApiError::invalid_field(
                &fields[0],
                "is required for a long-context tier",
            ))
        }
    };
    // Output at the tier is never left free by a rate nobody gave.
    let output = match (f.rate(&fields[1])?, old) {
        (Some(r), _) => r,
        (None, Some(t)) => t.output,
        (None, None) => {
            return Err(ApiError::invalid_field(
                &fields[1],
                "is required for a long-context tier",
            ))
        }
    };
    let threshold = f.int("long_context_threshold", 1, 100_000_000)?;
    Ok(Some(Some(LongContext {
        threshold: threshold
            .map(|t| t as u64)
            .or(old.map(|t| t.threshold))
            .unwrap_or(DEFAULT_LONG_CONTEXT_THRESHOLD),
        input,
        output,
        cache_read: rate_or(f, &fields[2], old.and_then(|t| t.cache_read))?,
        cache_write: rate_or(f, &fields[3], old.and_then(|t| t.cache_write))?,
    })))
}

/// The cost rates' change from the `cost_*` fields over `old`: `None` when
/// none is sent; a null `cost_input_rate` clears every cost.
fn cost_fields(f: &Fields, old: Option<Rates>) -> Result<Nullable<Rates>, ApiError> {
    let flat = [
        "cost_input_rate",
        "cost_output_rate",
        "cost_cache_read_rate",
        "cost_cache_write_rate",
    ];
    let tier = tier_fields(f, "cost_", old.and_then(|c| c.long_context))?;
    if !flat.iter().any(|k| f.has(k)) && tier.is_none() {
        return Ok(None);
    }
    if f.has("cost_input_rate") && f.rate("cost_input_rate")?.is_none() {
        return Ok(Some(None));
    }
    let input = f
        .rate("cost_input_rate")?
        .or(old.map(|c| c.input))
        .ok_or_else(|| ApiError::invalid_field("cost_input_rate", "is required with other cost rates"))?;
    Ok(Some(Some(Rates {
        input,
        output: f
            .rate("cost_output_rate")?
            .or(old.map(|c| c.output))
            .unwrap_or(Rate::ZERO),
        cache_read: rate_or(f, "cost_cache_read_rate", old.and_then(|c| c.cache_read))?,
        cache_write: rate_or(f, "cost_cache_write_rate", old.and_then(|c| c.cache_write))?,
        long_context: tier.unwrap_or(old.and_then(|c| c.long_context)),
        ..Default::default()
    })))
}

/// Refuses a sell rate this change leaves below cost × (1 + the margin
/// floor), unless the body says `force: true`.
fn check_margin_floor(settings: &Settings, f: &Fields, old: Option<&ModelRow>, new: &ModelRow) -> Result<(), ApiError> {
    let floor = settings.margin_floor_percent.as_deref().and_then(Percent::parse);
    let (Some(floor), false) = (floor, f.bool("force")?.unwrap_or(false)) else {
        return Ok(());
    };
    match floor_violation(old, new, floor) {
        None => Ok(()),
        Some((p, least)) => Err(ApiError::invalid_field(
            p.field,
            format!(
                "{} is below the cost {} plus the {floor}% margin floor: at least {least}; send \"force\": true to save it anyway",
                p.sell, p.cost
            ),
        )),
    }
}

pub(crate) async fn list_models(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let q = Query::of(req);
    let search = q.get("q").map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let page = hub
        .store()
        .list_models(q.get("cursor"), q.limit()?, search.as_deref())
        .await?;
    let providers = hub.store().list_providers().await?;
    let data: Vec<Value> = page.items.iter().map(|m| model_json(m, &providers)).collect();
    ok(json!({"data": data, "next_cursor": page.next_cursor}))
}

pub(crate) async fn get_model(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    let m = hub.store().get_model(id).await?.ok_or_else(|| gone("model", id))?;
    let providers = hub.store().list_providers().await?;
    ok(model_json(&m, &providers))
}

fn model_type(f: &Fields) -> Result<Option<ModelKind>, ApiError> {
    match f.str("type")? {
        Some(t) => ModelKind::parse(&t)
            .map(Some)
            .ok_or_else(|| ApiError::invalid_field("type", format!("must be {}", ModelKind::names()))),
        None => Ok(None),
    }
}

pub(crate) async fn create_model(hub: &Hub, who: &Caller, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(MODEL_FIELDS)?;
    let provider = f.req_str("provider_id")?;
    let p = hub
        .store()
        .get_provider(&provider)
        .await?
        .ok_or_else(|| ApiError::invalid_field("provider_id", format!("names no provider (`{provider}`)")))?;
    let now = hub.now_ms();
    let mut m = ModelRow {
        id: hub.new_id("mdl"),
        provider_id: p.id,
        model: f.req_str("model")?,
        kind: model_type(&f)?.unwrap_or(ModelKind::Chat),
        rates: Rates {
            input: f.rate("input_rate")?.unwrap_or(Rate::ZERO),
            output: f.rate("output_rate")?.unwrap_or(Rate::ZERO),
            cache_read: f.rate("cache_read_rate")?,
            cache_write: f.rate("cache_write_rate")?,
            cache_write_1h: f.rate("cache_write_1h_rate")?,
            image: f.rate("image_rate")?.unwrap_or(Rate::ZERO),
            audio: f.rate("audio_rate")?.unwrap_or(Rate::ZERO),
            video: f.rate("video_rate")?.unwrap_or(Rate::ZERO),
            long_context: tier_fields(&f, "", None)?.flatten(),
        },
        max_output_tokens: f.int("max_output_tokens", 1, 10_000_000)?,
        unit_costs: f.object("unit_costs")?,
        metadata: model_metadata(&f)?,
        routing: f.routing()?.unwrap_or(crate::kinds::RoutingMode::Priority),
        enabled: f.bool("enabled")?.unwrap_or(true),
        cost: cost_fields(&f, None)?.flatten(),
        context_window: f.int("context_window", 1, 100_000_000)?,
        below_cost: false,
        price_source: None,
        costs_synced_at: None,
        created_at: now,
        updated_at: now,
    };
    check_margin_floor(&hub.snapshot().await?.settings, &f, None, &m)?;
    m.below_cost = below_cost(&m);
    hub.store()
        .insert_model(&m, &who.user_id)
        .await
        .map_err(|e| conflict_as(e, "this provider already has a model with this name and type"))?;
    hub.reload().await?;
    let providers = hub.store().list_providers().await?;
    created(model_json(&m, &providers))
}

pub(crate) async fn patch_model(hub: &Hub, who: &Caller, id: &str, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(MODEL_FIELDS)?;
    let old = hub.store().get_model(id).await?.ok_or_else(|| gone("model", id))?;
    let mut patch = model_patch(&f, &old)?;
    if !patch.is_empty() {
        let new = patch.applied(&old);
        check_margin_floor(&hub.snapshot().await?.settings, &f, Some(&old), &new)?;
        let below = below_cost(&new);
        patch.below_cost = (below != old.below_cost).then_some(below);
        patch.changed_by = Some(who.user_id.clone());
        hub.store()
            .update_model(id, &patch, hub.now_ms())
            .await
            .map_err(|e| conflict_as(e, "this provider already has a model with this name and type"))?;
        hub.reload().await?;
    }
    get_model(hub, id).await
}

/// A rate a PATCH sets: present, it must be a rate (these columns are never NULL).
fn required_rate(f: &Fields, k: &str) -> Result<Option<Rate>, ApiError> {
    if !f.has(k) {
        return Ok(None);
    }
    f.rate(k)?
        .map(Some)
        .ok_or_else(|| ApiError::invalid_field(k, "must be a number"))
}

/// What a PATCH body changes on a model, checked.
fn model_patch(f: &Fields, old: &ModelRow) -> Result<ModelPatch, ApiError> {
    if f.has("provider_id") {
        return Err(ApiError::invalid_field(
            "provider_id",
            "cannot be changed; create the model under the other provider",
        ));
    }
    Ok(ModelPatch {
        model: f.str("model")?,
        kind: model_type(f)?,
        input_rate: required_rate(f, "input_rate")?,
        output_rate: required_rate(f, "output_rate")?,
        image_rate: required_rate(f, "image_rate")?,
        video_rate: required_rate(f, "video_rate")?,
        audio_rate: required_rate(f, "audio_rate")?,
        cache_read_rate: f.nullable("cache_read_rate", f.rate("cache_read_rate")?),
        cache_write_rate: f.nullable("cache_write_rate", f.rate("cache_write_rate")?),
        cache_write_1h_rate: f.nullable("cache_write_1h_rate", f.rate("cache_write_1h_rate")?),
        max_output_tokens: f.nullable("max_output_tokens", f.int("max_output_tokens", 1, 10_000_000)?),
        unit_costs: f.nullable("unit_costs", f.object("unit_costs")?),
        metadata: f.nullable("metadata", model_metadata(f)?),
        routing: f.routing()?,
        enabled: f.bool("enabled")?,
        long_context: tier_fields(f, "", old.rates.long_context)?,
        cost: cost_fields(f, old.cost)?,
        context_window: f.nullable("context_window", f.int("context_window", 1, 100_000_000)?),
        ..Default::default()
    })
}

/// `GET /api/admin/models/{id}/rate-history`: every change of its rates, newest first.
pub(crate) async fn rate_history(hub: &Hub, id: &str, req: &Request) -> Result<Response, ApiError> {
    let q = Query::of(req);
    let page = hub.store().rate_history(id, q.get("cursor"), q.limit()?).await?;
    let data: Vec<Value> = page.items.iter().map(rate_change_json).collect();
    ok(json!({"data": data, "next_cursor": page.next_cursor}))
}

/// `POST /api/admin/prices/sync`: `{format, url}` or `{format, catalogue}`
/// (an uploaded file's JSON); without either, the `price_sync_url` setting.
pub(crate) async fn sync_prices(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(&["format", "url", "catalogue"])?;
    let settings = &hub.snapshot().await?.settings;
    let format = match f.str("format")? {
        Some(t) => CatalogueFormat::parse(&t)
            .ok_or_else(|| ApiError::invalid_field("format", format!("must be {}", CatalogueFormat::names())))?,
        None => settings.price_sync_format,
    };
    let source = match (f.0.get("catalogue").filter(|v| !v.is_null()), f.str("url")?) {
        (Some(doc), _) => Source::Document(doc.clone()),
        (None, Some(url)) => Source::Url(url),
        (None, None) => Source::Url(settings.price_sync_url.clone().ok_or_else(|| {
            ApiError::invalid_field("url", "is required: send a url or a catalogue, or set price_sync_url")
        })?),
    };
    ok(hub.sync_prices(format, source).await?)
}

/// A model's `metadata`, checked where Hub reads it: its context window
/// (`context_window` or `max_input_tokens`, see [`crate::gateway::routing::context_window`])
/// must be a positive whole number of tokens.
fn model_metadata(f: &Fields) -> Result<Option<Value>, ApiError> {
    let metadata = f.object("metadata")?;
    for k in crate::gateway::routing::CONTEXT_WINDOW_KEYS {
        match metadata.as_ref().and_then(|m| m.get(*k)) {
            None | Some(Value::Null) => {}
            Some(v) if v.as_u64().is_some_and(|n| n > 0) => {}
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "metadata",
                    format!("`{k}` must be a positive whole number of tokens"),
                ))
            }
        }
    }
    Ok(metadata)
}

pub(crate) async fn delete_model(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    if !hub.store().delete_model(id, hub.now_ms()).await? {
        return Err(gone("model", id));
    }
    hub.reload().await?;
    ok(json!({"id": id, "deleted": true}))
}

// ------------------------------------------------------------------ users

/// The most users `GET /api/admin/users?ids=` names at once.
const MAX_USER_IDS: usize = 100;

pub(crate) async fn list_users(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let q = Query::of(req);
    if let Some(ids) = q.get("ids") {
        // The people a page shows (a call log's, an audit log's), named in one request.
        let ids: Vec<&str> = ids.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if ids.len() > MAX_USER_IDS {
            return Err(ApiError::invalid_field(
                "ids",
                format!("names at most {MAX_USER_IDS} users"),
            ));
        }
        let users = hub.store().users_by_ids(&ids).await?;
        let data: Vec<Value> = users.into_iter().map(|u| user_json(&hub.live_user(u))).collect();
        return ok(json!({"data": data, "next_cursor": null}));
    }
    let search = q.get("q").map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let page = hub
        .store()
        .list_users(q.get("cursor"), q.limit()?, search.as_deref())
        .await?;
    let data: Vec<Value> = page.items.into_iter().map(|u| user_json(&hub.live_user(u))).collect();
    ok(json!({"data": data, "next_cursor": page.next_cursor}))
}

pub(crate) async fn get_user(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    ok(user_json(&credits::current_user(hub, id).await?))
}

fn role_field(f: &Fields, caller: &Caller) -> Result<Option<Role>, ApiError> {
    let Some(r) = f.str("role")? else { return Ok(None) };
    let role =
        Role::parse(&r).ok_or_else(|| ApiError::invalid_field("role", "must be owner, admin, member or guest"))?;
    if !caller.role.may_manage(role) {
        return Err(ApiError::forbidden(format!(
            "Only an owner can give someone the {} role.",
            role.as_str()
        )));
    }
    Ok(Some(role))
}

/// The user `id`, if the caller's role is at least theirs: nobody mints keys
/// for, revokes keys of, or changes someone of a higher role.
async fn manageable_user(hub: &Hub, caller: &Caller, id: &str) -> Result<UserRow, ApiError> {
    let target = hub.store().get_user(id).await?.ok_or_else(|| gone("user", id))?;
    let role = Role::parse(&target.role).unwrap_or(Role::Owner);
    if !caller.role.may_manage(role) {
        return Err(ApiError::forbidden(format!(
            "Only an owner can act on a user with the {} role.",
            role.as_str()
        )));
    }
    Ok(target)
}

fn check_email(email: &Option<String>) -> Result<(), ApiError> {
    match email {
        Some(e) if !(e.contains('@') && e.len() <= 254 && !e.contains(char::is_whitespace)) => {
            Err(ApiError::invalid_field("email", "must be an email address"))
        }
        _ => Ok(()),
    }
}

pub(crate) async fn create_user(hub: &Hub, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(&["name", "email", "role"])?;
    let email = f.str("email")?.filter(|e| !e.is_empty());
    check_email(&email)?;
    let now = hub.now_ms();
    let u = UserRow {
        id: hub.new_id("usr"),
        name: f.req_str("name")?,
        email,
        role: role_field(&f, caller)?.unwrap_or(Role::Member).as_str().into(),
        balance: Default::default(),
        held: Default::default(),
        leased: Default::default(),
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    let settings = hub.snapshot().await?.settings.clone();
    let starter = if settings.billing_enabled {
        settings.starter_credits
    } else {
        Default::default()
    };
    hub.store()
        .insert_user(&u, starter, vec![])
        .await
        .map_err(|e| conflict_as(e, "a user with this email already exists"))?;
    if let Some(book) = hub.book() {
        book.open(&u.id, starter, Vec::new());
    }
    let u = hub.store().get_user(&u.id).await?.ok_or_else(|| gone("user", &u.id))?;
    created(user_json(&u))
}

pub(crate) async fn patch_user(hub: &Hub, caller: &Caller, id: &str, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(&["name", "email", "role", "disabled"])?;
    let target = manageable_user(hub, caller, id).await?;
    let patch = user_patch(caller, &f)?;
    let stops_being_owner = target.role == "owner"
        && !target.disabled
        && (patch.role.is_some_and(|r| r != Role::Owner) || patch.disabled == Some(true));
    if stops_being_owner && hub.store().active_owners().await? <= 1 {
        return Err(ApiError::conflict(
            "This is the last owner: make someone else owner before demoting or disabling them.",
        ));
    }
    if !patch.is_empty() {
        hub.store()
            .update_user(id, &patch, hub.now_ms())
            .await
            .map_err(|e| conflict_as(e, "a user with this email already exists"))?;
        hub.keys().clear();
    }
    get_user(hub, id).await
}

/// What a PATCH body changes on a user, checked (a role the caller may give).
fn user_patch(caller: &Caller, f: &Fields) -> Result<UserPatch, ApiError> {
    let name = f.str("name")?;
    if name.as_deref() == Some("") {
        return Err(ApiError::invalid_field("name", "must not be empty"));
    }
    let email = f.str("email")?.filter(|e| !e.is_empty());
    check_email(&email)?;
    Ok(UserPatch {
        name,
        email: f.nullable("email", email),
        role: role_field(f, caller)?,
        disabled: f.bool("disabled")?,
    })
}

// ------------------------------------------------------------------ keys

pub(crate) async fn list_keys(hub: &Hub, user: &str) -> Result<Response, ApiError> {
    hub.store().get_user(user).await?.ok_or_else(|| gone("user", user))?;
    let keys = hub.store().list_keys(user).await?;
    ok(json!({"data": keys.iter().map(key_json).collect::<Vec<_>>(), "next_cursor": null}))
}

/// Creates a key for `user`, asked for by the key `minted_by`: it must be
/// unrestricted (an admin's restricted key minting one for anyone would escape
/// its restrictions just the same), and revoking it revokes a key it minted
/// for its own user.
pub(crate) async fn create_key(
    hub: &Hub,
    user: &str,
    req: &Request,
    minted_by: Option<&Caller>,
) -> Result<Response, ApiError> {
    if minted_by.is_some_and(Caller::is_restricted) {
        return Err(ApiError::forbidden(
            "A key with allowed models, limits, an expiry or a team cannot create keys; ask an admin, or use an unrestricted key.",
        ));
    }
    hub.store().get_user(user).await?.ok_or_else(|| gone("user", user))?;
    let now = hub.now_ms();
    let f = Fields::parse(req.body())?;
    let wanted = keys::settings(&f, now)?;
    let team = keys::key_team(hub, user, &f).await?;
    let wanted = match &team {
        Some(t) => keys::with_defaults(wanted, &t.key_defaults),
        None => wanted,
    };
    let new = hub.generate_key()?;
    let id = hub.new_id("key");
    let label = wanted
        .label
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "default".into());
    let allowed = wanted.allowed_models.flatten();
    let row = NewKeyRow {
        id: &id,
        user_id: user,
        label: &label,
        key_hash: &new.hash,
        key_hint: &new.hint,
        expires_at: wanted.expires_at.flatten(),
        allowed_models: allowed.as_deref(),
        rpm_limit: wanted.rpm_limit.flatten(),
        tpm_limit: wanted.tpm_limit.flatten(),
        daily_spend_cap: wanted.daily_spend_cap.flatten(),
        monthly_spend_cap: wanted.monthly_spend_cap.flatten(),
        now_ms: now,
        parent_key_id: minted_by
            .filter(|c| !c.session && c.user_id == user)
            .map(|c| c.key_id.as_str()),
        team_id: team.as_ref().map(|t| t.id.as_str()),
    };
    if !hub.store().insert_key(&row).await? {
        return Err(ApiError::conflict(
            "The user left the team, or the team was deleted, meanwhile; no key was made.",
        ));
    }
    if wanted.response_cache == Some(false) {
        let off = KeyPatch {
            response_cache: Some(false),
            ..Default::default()
        };
        hub.store().update_key(&id, &off).await?;
    }
    let stored = hub.store().get_key(&id).await?.ok_or_else(|| gone("key", &id))?;
    let mut body = key_json(&stored);
    body["key"] = Value::String(new.plaintext);
    created(body)
}

/// Who revokes or edits a key.
pub(crate) enum Revoker<'a> {
    /// An admin: any key of a user whose role is not above theirs.
    Admin(&'a Caller),
    /// A user's key, through `/api/me`: the user's keys if it is unrestricted,
    /// else only itself (a leaked restricted key must not touch its owner's others).
    Owner(&'a Caller),
}

/// The key `id`, if `by` may revoke or edit it (404 for another user's key
/// through `/api/me`, 403 past the caller's reach).
async fn manageable_key(hub: &Hub, id: &str, by: &Revoker<'_>) -> Result<crate::store::KeyRow, ApiError> {
    let key = hub
        .store()
        .get_key(id)
        .await?
        .filter(|k| match by {
            Revoker::Owner(caller) => k.user_id == caller.user_id,
            Revoker::Admin(_) => true,
        })
        .ok_or_else(|| gone("key", id))?;
    match by {
        Revoker::Owner(caller) if caller.is_restricted() && key.id != caller.key_id => Err(ApiError::forbidden(
            "A key with allowed models, limits, an expiry or a team can revoke or edit only itself.",
        )),
        Revoker::Admin(caller) => manageable_user(hub, caller, &key.user_id).await.map(|_| key),
        Revoker::Owner(_) => Ok(key),
    }
}

/// Revokes a key, and every key minted from it.
pub(crate) async fn revoke_key(hub: &Hub, id: &str, by: Revoker<'_>) -> Result<Response, ApiError> {
    let key = manageable_key(hub, id, &by).await?;
    hub.store().revoke_key(&key.id, hub.now_ms()).await?;
    hub.keys().clear();
    let key = hub.store().get_key(id).await?.ok_or_else(|| gone("key", id))?;
    ok(key_json(&key))
}

/// Edits a key's label, expiry, allowed models and limits. A restricted
/// caller may only tighten (it could not mint a looser key); the change
/// holds at once here and within the key cache's TTL everywhere else.
pub(crate) async fn patch_key(hub: &Hub, id: &str, req: &Request, by: Revoker<'_>) -> Result<Response, ApiError> {
    let patch = keys::edit(&Fields::parse(req.body())?, hub.now_ms())?;
    let key = manageable_key(hub, id, &by).await?;
    if key.revoked_at.is_some() {
        return Err(ApiError::conflict(
            "This key is revoked; revoked keys cannot be edited.",
        ));
    }
    let (Revoker::Admin(caller) | Revoker::Owner(caller)) = by;
    if let Some(field) = keys::loosened(&key, &patch).filter(|_| caller.is_restricted()) {
        return Err(ApiError::forbidden(format!(
            "A key with allowed models, limits, an expiry or a team may only tighten a key; `{field}` would loosen it. Use an unrestricted key."
        ))
        .with_param(field));
    }
    if !patch.is_empty() && !hub.store().update_key(&key.id, &patch).await? {
        return Err(ApiError::conflict(
            "This key was revoked meanwhile; nothing was changed.",
        ));
    }
    hub.keys().clear();
    let key = hub.store().get_key(id).await?.ok_or_else(|| gone("key", id))?;
    ok(key_json(&key))
}

// ------------------------------------------------------------------ credits

/// `POST /api/admin/users/{id}/grants`: credits added (or, negative, taken
/// back), optionally expiring at `expires_at`.
pub(crate) async fn grant(hub: &Hub, caller: &Caller, user: &str, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(&["amount", "reason", "expires_at"])?;
    let amount = f
        .credits("amount")?
        .ok_or_else(|| ApiError::invalid_field("amount", "is required (credits, up to 9 decimals)"))?;
    if amount.nanos() == 0 {
        return Err(ApiError::invalid_field("amount", "must not be zero"));
    }
    let now = hub.now_ms();
    let expires_at = credits::grant_expiry(&f, amount, now)?;
    let reason = f.str("reason")?;
    // Credit past its expiry leaves first: it never pays for an adjustment.
    credits::current_user(hub, user).await?;
    // An expiring grant gets a reference, to find its bucket (its ledger id) for the credit book.
    let reference = expires_at.map(|_| format!("grant:{}", hub.new_id("grt")));
    let grant = crate::store::Grant {
        user_id: user,
        amount,
        reason: reason.as_deref(),
        created_by: Some(&caller.user_id),
        reference: reference.clone(),
        expires_at,
        now_ms: now,
    };
    if !hub.store().grant(&grant).await? {
        return Err(ApiError::invalid_field(
            "amount",
            "would take the balance beyond ±1000000000 credits, the most Hub keeps",
        ));
    }
    if amount.is_negative() {
        // No call is admitted on the credit taken once this answers.
        hub.credit_taken(user).await;
    }
    if let Some(book) = hub.book() {
        match (reference, expires_at) {
            (Some(r), Some(at)) => {
                let bucket = hub.store().ledger_id(&r).await?.ok_or_else(|| gone("grant", &r))?;
                book.credit_expiring(user, bucket, amount, at);
            }
            _ => book.credit(user, amount),
        }
    }
    // The grant's event (and any balance crossing) was written with it.
    hub.deliver_soon();
    let u = hub.live_user(hub.store().get_user(user).await?.ok_or_else(|| gone("user", user))?);
    created(json!({
        "user_id": user, "amount": amount, "reason": reason, "expires_at": expires_at.map(crate::time::iso8601),
        "balance": u.balance, "held": u.held,
    }))
}

/// `GET /api/admin/users/{id}/ledger` and `GET /api/me/ledger`: the user's
/// entries, newest first (due buckets expired first).
pub(crate) async fn ledger(hub: &Hub, user: &str, req: &Request) -> Result<Response, ApiError> {
    let q = Query::of(req);
    let cursor = match q.get("cursor") {
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid_field("cursor", "is not a ledger cursor"))?,
        ),
        None => None,
    };
    let u = credits::current_user(hub, user).await?;
    let page = hub.store().ledger(user, cursor, q.limit()?).await?;
    ok(json!({
        "balance": u.balance, "held": u.held,
        "data": page.items.iter().map(ledger_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    }))
}

// ------------------------------------------------------------------ calls, usage, settings

/// Whose calls and usage a read covers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Everyone's (the admin API), filtered as the query asks.
    All,
    /// One user's own (`/api/me`).
    User(&'a str),
    /// The calls made with a team's keys (`/api/teams/{id}`).
    Team(&'a str),
}

impl Scope<'_> {
    fn filter(self, q: &Query) -> Result<CallFilter, ApiError> {
        let mut filter = q.filter()?;
        match self {
            Scope::All => {}
            Scope::User(u) => filter.user = Some(u.to_string()),
            Scope::Team(t) => filter.team = Some(t.to_string()),
        }
        Ok(filter)
    }

    fn groupings(self) -> &'static [&'static str] {
        match self {
            Scope::All => &["hour", "day", "model", "provider", "user", "team", "app", "key"],
            Scope::User(_) => &["hour", "day", "model", "app", "key"],
            Scope::Team(_) => &["hour", "day", "model", "provider", "user", "app", "key"],
        }
    }
}

pub(crate) async fn calls_of(hub: &Hub, req: &Request, scope: Scope<'_>) -> Result<Response, ApiError> {
    let q = Query::of(req);
    let filter = scope.filter(&q)?;
    let page = hub.store().list_calls(&filter, q.get("cursor"), q.limit()?).await?;
    ok(json!({"data": page.items.iter().map(call_json).collect::<Vec<_>>(), "next_cursor": page.next_cursor}))
}

pub(crate) async fn usage_of(hub: &Hub, req: &Request, scope: Scope<'_>) -> Result<Response, ApiError> {
    let q = Query::of(req);
    let filter = scope.filter(&q)?;
    let group_by = q.group_by(scope.groupings())?;
    let tz = q.tz()?;
    let buckets = hub.store().usage(&filter, group_by, tz).await?;
    let time_grouped = matches!(group_by, GroupBy::Hour | GroupBy::Day);
    ok(json!({"data": buckets.iter().map(|b| usage_json(b, time_grouped)).collect::<Vec<_>>()}))
}

/// A secret setting's value sealed under the master key before it is kept
/// (an empty string or null clears it); other values as they are.
fn seal_secret(hub: &Hub, key: &str, v: &Value) -> Result<Value, ApiError> {
    match v {
        Value::String(secret) if crate::config::is_secret(key) && !secret.is_empty() => {
            if secret.len() > 2048 {
                return Err(ApiError::invalid_field(key, "must be at most 2048 characters"));
            }
            Ok(Value::String(hub.seal(secret)?))
        }
        other => Ok(other.clone()),
    }
}

pub(crate) async fn patch_settings(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    let known: Vec<&str> = crate::config::all_keys().collect();
    f.only(&known)?;
    let mut s: Settings = hub.snapshot().await?.settings.clone();
    // Every value is checked before any secret is sealed: a body with a bad
    // field uses no randomness and changes nothing.
    for (k, v) in &f.0 {
        s.clone()
            .apply(k, v)
            .map_err(|problem| ApiError::invalid_field(k, problem))?;
    }
    let mut values = Vec::new();
    for (k, v) in &f.0 {
        let v = seal_secret(hub, k, v)?;
        s.apply(k, &v).map_err(|problem| ApiError::invalid_field(k, problem))?;
        values.push((k.clone(), s.stored_value(k).unwrap_or_else(|| "null".into())));
    }
    if f.has("stripe_api_base") {
        // Hub will send the secret key there: the same address policy as a provider's base URL.
        hub.outbound()
            .check_url(&s.payments.stripe_api_base)
            .map_err(|problem| ApiError::invalid_field("stripe_api_base", problem))?;
    }
    hub.store().put_settings(values, hub.now_ms()).await?;
    let snap = hub.reload().await?;
    ok(snap.settings.to_json())
}
