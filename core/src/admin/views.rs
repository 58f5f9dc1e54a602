//! JSON shapes of admin resources. Money as exact decimal strings, rates per
//! million tokens, times as ISO-8601, secrets only as masked hints.

use crate::store::{
    CallLog, CredentialRow, KeyRow, LedgerEntry, ModelRow, ProviderRow, RateChangeRow, UsageBucket, UserRow,
};
use crate::time::iso8601;
use serde_json::{json, Value};

pub(crate) fn t(ms: i64) -> Value {
    Value::String(iso8601(ms))
}

fn opt_t(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, t)
}

pub fn provider_json(p: &ProviderRow, creds: &[CredentialRow]) -> Value {
    let vendor = crate::providers::vendor(&p.kind);
    let mine: Vec<&CredentialRow> = creds.iter().filter(|c| c.provider_id == p.id).collect();
    json!({
        "id": p.id,
        "name": p.name,
        "kind": p.kind,
        "display_name": vendor.map(|v| v.display_name),
        "base_url": p.base_url,
        "effective_base_url": p.base_url.clone().filter(|u| !u.is_empty()).or_else(|| vendor.map(|v| v.default_base_url.to_string())),
        "region": p.region,
        "enabled": p.enabled,
        "priority": p.priority,
        "credentials": mine.len(),
        "active_credentials": mine.iter().filter(|c| c.enabled && c.status == crate::kinds::CredentialStatus::Active).count(),
        "created_at": t(p.created_at),
        "updated_at": t(p.updated_at),
    })
}

pub fn credential_json(c: &CredentialRow) -> Value {
    json!({
        "id": c.id,
        "provider_id": c.provider_id,
        "name": c.name,
        "secret_hint": c.secret_hint,
        "weight": c.weight,
        "enabled": c.enabled,
        "status": c.status,
        "last_error": c.last_error,
        "created_at": t(c.created_at),
        "updated_at": t(c.updated_at),
    })
}

pub fn model_json(m: &ModelRow, providers: &[ProviderRow]) -> Value {
    let provider = providers.iter().find(|p| p.id == m.provider_id);
    json!({
        "id": m.id,
        "provider_id": m.provider_id,
        "provider": provider.map(|p| p.name.clone()),
        "model": m.model,
        "name": provider.map(|p| format!("{}/{}", p.name, m.model)),
        "type": m.kind,
        "input_rate": m.rates.input,
        "output_rate": m.rates.output,
        "cache_read_rate": m.rates.cache_read,
        "cache_write_rate": m.rates.cache_write,
        "cache_write_1h_rate": m.rates.cache_write_1h,
        "image_rate": m.rates.image,
        "video_rate": m.rates.video,
        "audio_rate": m.rates.audio,
        "rate_unit": "credits per million tokens (image_rate per image, video_rate per second, audio_rate per second of audio for transcription models and per million characters for speech models)",
        "max_output_tokens": m.max_output_tokens,
        "unit_costs": m.unit_costs,
        "metadata": m.metadata,
        "context_window": crate::gateway::routing::context_window(m),
        "routing": m.routing,
        "enabled": m.enabled,
        "input_rate_above_200k": m.rates.long_context.map(|t| t.input),
        "output_rate_above_200k": m.rates.long_context.map(|t| t.output),
        "cache_read_rate_above_200k": m.rates.long_context.and_then(|t| t.cache_read),
        "cache_write_rate_above_200k": m.rates.long_context.and_then(|t| t.cache_write),
        "long_context_threshold": m.rates.long_context.or(m.cost.and_then(|c| c.long_context)).map(|t| t.threshold),
        "cost_input_rate": m.cost.map(|c| c.input),
        "cost_output_rate": m.cost.map(|c| c.output),
        "cost_cache_read_rate": m.cost.and_then(|c| c.cache_read),
        "cost_cache_write_rate": m.cost.and_then(|c| c.cache_write),
        "cost_input_rate_above_200k": m.cost.and_then(|c| c.long_context).map(|t| t.input),
        "cost_output_rate_above_200k": m.cost.and_then(|c| c.long_context).map(|t| t.output),
        "cost_cache_read_rate_above_200k": m.cost.and_then(|c| c.long_context).and_then(|t| t.cache_read),
        "cost_cache_write_rate_above_200k": m.cost.and_then(|c| c.long_context).and_then(|t| t.cache_write),
        "below_cost": m.below_cost,
        "price_source": m.price_source,
        "costs_synced_at": opt_t(m.costs_synced_at),
        "created_at": t(m.created_at),
        "updated_at": t(m.updated_at),
    })
}

pub fn rate_change_json(c: &RateChangeRow) -> Value {
    json!({
        "field": c.field,
        "old": c.old,
        "new": c.new,
        "source": c.source,
        "actor": c.actor,
        "created_at": t(c.created_at),
    })
}

pub fn user_json(u: &UserRow) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "email": u.email,
        "role": u.role,
        "balance": u.balance,
        "held": u.held,
        "available": u.balance.saturating_sub(u.held),
        "disabled": u.disabled,
        "created_at": t(u.created_at),
        "updated_at": t(u.updated_at),
    })
}

pub fn key_json(k: &KeyRow) -> Value {
    json!({
        "id": k.id,
        "user_id": k.user_id,
        "label": k.label,
        "hint": k.key_hint,
        "expires_at": opt_t(k.expires_at),
        "revoked_at": opt_t(k.revoked_at),
        "active": k.revoked_at.is_none(),
        "allowed_models": k.allowed_models,
        "rpm_limit": k.rpm_limit,
        "tpm_limit": k.tpm_limit,
        "daily_spend_cap": k.daily_spend_cap,
        "monthly_spend_cap": k.monthly_spend_cap,
        "team_id": k.team_id,
        "response_cache": k.response_cache,
        "created_at": t(k.created_at),
    })
}

pub fn ledger_json(e: &LedgerEntry) -> Value {
    json!({
        "id": e.id,
        "kind": e.kind,
        "amount": e.amount,
        "call_id": e.call_id,
        "reason": e.reason,
        "ref": e.reference,
        "expires_at": opt_t(e.expires_at),
        "created_by": e.created_by,
        "created_at": t(e.created_at),
    })
}

pub fn call_json(c: &CallLog) -> Value {
    json!({
        "id": c.id,
        "call_id": c.call_id,
        "attempt": c.attempt,
        "request_id": c.request_id,
        "endpoint": c.endpoint,
        "user_id": c.user_id,
        "key_id": c.key_id,
        "app": c.app,
        "provider_id": c.provider_id,
        "provider": c.provider,
        "credential_id": c.credential_id,
        "model": c.model,
        "alias": c.alias,
        "upstream_model": c.upstream_model,
        "stream": c.stream,
        "status": c.status,
        "http_status": c.http_status,
        "error": c.error,
        "input_tokens": c.usage.input_tokens,
        "output_tokens": c.usage.output_tokens,
        "cache_read_tokens": c.usage.cache_read_tokens,
        "cache_write_tokens": c.usage.cache_write_tokens,
        "cache_write_1h_tokens": c.usage.cache_write_1h_tokens,
        "audio_seconds": crate::metering::Usage::seconds_text(c.usage.audio_ms),
        "characters": c.usage.characters,
        "video_seconds": c.usage.video_seconds,
        "credits": c.credits,
        "cache_saved": c.cache_saved,
        "response_cache": c.response_cache,
        "response_cache_saved": c.response_cache_saved,
        "estimated": c.estimated,
        "clamped": c.clamped,
        "duration_ms": c.duration_ms,
        "ttfb_ms": c.ttfb_ms,
        "upstream_ttfb_ms": c.upstream_ttfb_ms,
        "created_at": t(c.created_at),
    })
}

pub fn usage_json(b: &UsageBucket, time_grouped: bool) -> Value {
    let group = if time_grouped {
        b.group.parse::<i64>().map(t).unwrap_or(Value::Null)
    } else {
        Value::String(b.group.clone())
    };
    json!({
        "group": group,
        "calls": b.calls,
        "errors": b.errors,
        "input_tokens": b.input_tokens,
        "output_tokens": b.output_tokens,
        "cache_read_tokens": b.cache_read_tokens,
        "cache_write_tokens": b.cache_write_tokens,
        "cache_write_1h_tokens": b.cache_write_1h_tokens,
        "audio_ms": b.audio_ms,
        "characters": b.characters,
        "video_seconds": b.video_seconds,
        "credits": b.credits,
        "cache_saved": b.cache_saved,
        "ttfb_p50_ms": b.ttfb_p50_ms,
        "ttfb_p95_ms": b.ttfb_p95_ms,
    })
}
