//! Partial updates as types: which fields of a provider, credential, model or
//! user change, and to what. Callers say what changes; only the store knows
//! the columns (and writes `updated_at`).

use crate::metering::money::Rate;
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
