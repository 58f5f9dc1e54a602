//! Partial updates as types: which fields of a provider, credential, model or
//! user change, and to what. Callers say what changes; only the store knows
//! the columns (and writes `updated_at`).

use crate::metering::money::Rate;
use crate::metering::{LongContext, Rates};
use crate::ports::SqlValue;
use serde_json::Value;

/// A nullable field's change: `None` leaves it, `Some(None)` clears it.
pub type Nullable<T> = Option<Option<T>>;

/// A column and its new value.
pub(super) type Change = (&'static str, SqlValue);

/// Pushes `(column, value)` when the field changes.
fn set<T: Into<SqlValue>>(out: &mut Vec<Change>, column: &'static str, value: Option<T>) {
    if let Some(v) = value {
        out.push((column, v.into()));
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderPatch {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub base_url: Nullable<String>,
    pub region: Nullable<String>,
    pub enabled: Option<bool>,
    pub priority: Option<i64>,
}

impl ProviderPatch {
    pub(super) fn changes(&self) -> Vec<Change> {
        let mut out = Vec::new();
        set(&mut out, "name", self.name.clone());
        set(&mut out, "kind", self.kind.clone());
        set(&mut out, "base_url", self.base_url.clone());
        set(&mut out, "region", self.region.clone());
        set(&mut out, "enabled", self.enabled);
        set(&mut out, "priority", self.priority);
        out
    }

    pub fn is_empty(&self) -> bool {
        self == &ProviderPatch::default()
    }
}

/// A replacement secret, already sealed with the master key.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedSecret {
    pub encrypted: String,
    pub hint: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CredentialPatch {
    pub name: Option<String>,
    /// A new secret also puts the credential back in rotation (`active`, no error).
    pub secret: Option<SealedSecret>,
    pub weight: Option<i64>,
    pub enabled: Option<bool>,
    /// In or out of rotation, as an admin sets it.
    pub status: Option<crate::kinds::CredentialStatus>,
}

impl CredentialPatch {
    pub(super) fn changes(&self) -> Vec<Change> {
        let mut out = Vec::new();
        set(&mut out, "name", self.name.clone());
        if let Some(s) = &self.secret {
            set(&mut out, "secret_enc", Some(s.encrypted.clone()));
            set(&mut out, "secret_hint", Some(s.hint.clone()));
            set(&mut out, "last_error", Some(SqlValue::Null));
        }
        set(&mut out, "weight", self.weight);
        set(&mut out, "enabled", self.enabled);
        // A new secret is tried afresh.
        let status = self
            .status
            .or(self.secret.as_ref().map(|_| crate::kinds::CredentialStatus::Active));
        set(&mut out, "status", status.map(|s| s.as_str()));
        out
    }

    pub fn is_empty(&self) -> bool {
        self == &CredentialPatch::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelPatch {
    pub model: Option<String>,
    pub kind: Option<crate::kinds::ModelKind>,
    pub input_rate: Option<Rate>,
    pub output_rate: Option<Rate>,
    pub image_rate: Option<Rate>,
    pub video_rate: Option<Rate>,
    pub audio_rate: Option<Rate>,
    pub cache_read_rate: Nullable<Rate>,
    pub cache_write_rate: Nullable<Rate>,
    pub cache_write_1h_rate: Nullable<Rate>,
    pub max_output_tokens: Nullable<i64>,
    pub unit_costs: Nullable<Value>,
    pub metadata: Nullable<Value>,
    pub routing: Option<crate::kinds::RoutingMode>,
    pub enabled: Option<bool>,
    /// The sell rates' long-context tier (its threshold is the cost tier's too).
    pub long_context: Nullable<LongContext>,
    /// What the provider charges, its tier included.
    pub cost: Nullable<Rates>,
    pub context_window: Nullable<i64>,
    pub below_cost: Option<bool>,
    pub price_source: Nullable<String>,
    pub costs_synced_at: Option<i64>,
    /// Who makes the change (a user id, or `sync`): the rate history's
    /// author. Set it with any rate change.
    pub changed_by: Option<String>,
}

/// The columns of a tier (`prefix` `` for sell rates, `cost_` for costs),
/// NULL without one.
fn tier_changes(out: &mut Vec<Change>, prefix: &str, tier: Option<&LongContext>) {
    let column = |c: &str| -> &'static str {
        // Allow-listed names only: the four tier columns of either prefix.
        match (prefix, c) {
            ("", "input") => "input_rate_above_200k",
            ("", "output") => "output_rate_above_200k",
            ("", "cache_read") => "cache_read_rate_above_200k",
            ("", "cache_write") => "cache_write_rate_above_200k",
            (_, "input") => "cost_input_rate_above_200k",
            (_, "output") => "cost_output_rate_above_200k",
            (_, "cache_read") => "cost_cache_read_rate_above_200k",
            _ => "cost_cache_write_rate_above_200k",
        }
    };
    let nanos = |r: Option<Rate>| SqlValue::from(r.map(Rate::nanos));
    out.push((column("input"), nanos(tier.map(|t| t.input))));
    out.push((column("output"), nanos(tier.map(|t| t.output))));
    out.push((column("cache_read"), nanos(tier.and_then(|t| t.cache_read))));
    out.push((column("cache_write"), nanos(tier.and_then(|t| t.cache_write))));
    if let Some(t) = tier {
        out.push(("long_context_threshold", SqlValue::from(t.threshold as i64)));
    }
}

impl ModelPatch {
    pub(super) fn changes(&self) -> Vec<Change> {
        let nanos = |r: &Option<Rate>| r.map(Rate::nanos);
        let text = |v: &Nullable<Value>| v.as_ref().map(|v| v.as_ref().map(Value::to_string));
        let mut out = Vec::new();
        set(&mut out, "model", self.model.clone());
        set(&mut out, "type", self.kind.map(|k| k.as_str()));
        set(&mut out, "input_rate", nanos(&self.input_rate));
        set(&mut out, "output_rate", nanos(&self.output_rate));
        set(&mut out, "image_rate", nanos(&self.image_rate));
        set(&mut out, "video_rate", nanos(&self.video_rate));
        set(&mut out, "audio_rate", nanos(&self.audio_rate));
        set(
            &mut out,
            "cache_read_rate",
            self.cache_read_rate.map(|r| r.map(Rate::nanos)),
        );
        set(
            &mut out,
            "cache_write_rate",
            self.cache_write_rate.map(|r| r.map(Rate::nanos)),
        );
        set(
            &mut out,
            "cache_write_1h_rate",
            self.cache_write_1h_rate.map(|r| r.map(Rate::nanos)),
        );
        set(&mut out, "max_output_tokens", self.max_output_tokens);
        set(&mut out, "unit_costs", text(&self.unit_costs));
        set(&mut out, "metadata", text(&self.metadata));
        set(&mut out, "routing", self.routing.map(|r| r.as_str()));
        set(&mut out, "enabled", self.enabled);
        if let Some(tier) = &self.long_context {
            tier_changes(&mut out, "", tier.as_ref());
        }
        if let Some(cost) = &self.cost {
            set(&mut out, "cost_input_rate", Some(cost.map(|c| c.input.nanos())));
            set(&mut out, "cost_output_rate", Some(cost.map(|c| c.output.nanos())));
            set(
                &mut out,
                "cost_cache_read_rate",
                Some(cost.and_then(|c| c.cache_read).map(Rate::nanos)),
            );
            set(
                &mut out,
                "cost_cache_write_rate",
                Some(cost.and_then(|c| c.cache_write).map(Rate::nanos)),
            );
            tier_changes(&mut out, "cost_", cost.and_then(|c| c.long_context).as_ref());
        }
        set(&mut out, "context_window", self.context_window);
        set(&mut out, "below_cost", self.below_cost);
        set(&mut out, "price_source", self.price_source.clone());
        set(&mut out, "costs_synced_at", self.costs_synced_at);
        set(&mut out, "changed_by", self.changed_by.clone());
        out
    }

    pub fn is_empty(&self) -> bool {
        self == &ModelPatch::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    pub name: Option<String>,
    pub email: Nullable<String>,
    pub role: Option<crate::auth::Role>,
    pub disabled: Option<bool>,
}

impl UserPatch {
    pub(super) fn changes(&self) -> Vec<Change> {
        let mut out = Vec::new();
        set(&mut out, "name", self.name.clone());
        set(&mut out, "email", self.email.clone());
        set(&mut out, "role", self.role.map(crate::auth::Role::as_str));
        set(&mut out, "disabled", self.disabled);
        out
    }

    pub fn is_empty(&self) -> bool {
        self == &UserPatch::default()
    }
}

/// A key's editable fields (its secret, owner and lineage never change).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPatch {
    pub label: Option<String>,
    pub expires_at: Nullable<i64>,
    pub allowed_models: Nullable<Vec<String>>,
    pub rpm_limit: Nullable<i64>,
    pub tpm_limit: Nullable<i64>,
    pub daily_spend_cap: Nullable<crate::Credits>,
    pub monthly_spend_cap: Nullable<crate::Credits>,
    /// Whether the key's calls use the response cache when it is on.
    pub response_cache: Option<bool>,
}

impl KeyPatch {
    pub(super) fn changes(&self) -> Vec<Change> {
        let nanos = |c: &Nullable<crate::Credits>| c.map(|c| c.map(crate::Credits::nanos));
        let models = self
            .allowed_models
            .as_ref()
            .map(|m| m.as_ref().map(|m| serde_json::to_string(m).unwrap_or_default()));
        let mut out = Vec::new();
        set(&mut out, "label", self.label.clone());
        set(&mut out, "expires_at", self.expires_at);
        set(&mut out, "allowed_models", models);
        set(&mut out, "rpm_limit", self.rpm_limit);
        set(&mut out, "tpm_limit", self.tpm_limit);
        set(&mut out, "daily_spend_cap", nanos(&self.daily_spend_cap));
        set(&mut out, "monthly_spend_cap", nanos(&self.monthly_spend_cap));
        set(&mut out, "response_cache", self.response_cache);
        out
    }

    pub fn is_empty(&self) -> bool {
        self == &KeyPatch::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_fields_become_columns() {
        let p = ProviderPatch {
            base_url: Some(None),
            priority: Some(3),
            ..Default::default()
        };
        assert_eq!(
            p.changes(),
            vec![("base_url", SqlValue::Null), ("priority", SqlValue::Integer(3))]
        );
        assert!(ProviderPatch::default().changes().is_empty());
    }

    #[test]
    fn a_new_secret_reactivates_the_credential() {
        let p = CredentialPatch {
            secret: Some(SealedSecret {
                encrypted: "v1:x".into(),
                hint: "sk-…".into(),
            }),
            ..Default::default()
        };
        let columns: Vec<&str> = p.changes().iter().map(|(c, _)| *c).collect();
        assert_eq!(columns, ["secret_enc", "secret_hint", "last_error", "status"]);
        assert_eq!(p.changes()[3].1, SqlValue::Text("active".into()));
    }
}
