//! The payment settings: Stripe's secret key and webhook signing secret
//! (write-only, sealed under the master key like the sign-in secrets), and
//! where Stripe's API is (a test points it at a local stand-in).

use crate::accounts::settings::Sealed;
use serde_json::{json, Value};

/// Stripe's API, unless the operator says otherwise.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

#[derive(Debug, Clone, PartialEq)]
pub struct PaymentSettings {
    pub stripe_secret_key: Option<Sealed>,
    pub stripe_webhook_secret: Option<Sealed>,
    /// Without a trailing slash.
    pub stripe_api_base: String,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_api_base: DEFAULT_API_BASE.into(),
        }
    }
}

/// The payment settings' names, as the admin API takes them.
pub const KEYS: &[&str] = &["stripe_secret_key", "stripe_webhook_secret", "stripe_api_base"];

/// The payment settings that are secrets: sealed before they are stored,
/// shown only as whether they are set.
pub const SECRET_KEYS: &[&str] = &["stripe_secret_key", "stripe_webhook_secret"];

/// A sealed secret, or none (`null` or `""` clear it).
fn sealed(v: &Value) -> Result<Option<Sealed>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if s.len() <= 8192 => Ok(Some(Sealed(s.clone()))),
        _ => Err("must be a string, or null to clear it".into()),
    }
}

/// An http(s) URL without query or fragment; `null` or `""` restore the default.
fn api_base(v: &Value) -> Result<String, String> {
    let text = match v {
        Value::Null => return Ok(DEFAULT_API_BASE.into()),
        Value::String(s) if s.trim().is_empty() => return Ok(DEFAULT_API_BASE.into()),
        Value::String(s) if s.len() <= 512 => s.trim(),
        _ => return Err("must be an https:// URL, or null for Stripe's".into()),
    };
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.query().is_none() && u.fragment().is_none() => {
            Ok(text.trim_end_matches('/').to_string())
        }
        _ => Err("must be an https:// URL (no query or fragment), or null for Stripe's".into()),
    }
}

impl PaymentSettings {
    /// Sets one payment setting from JSON (secrets arrive already sealed).
    pub fn apply(&mut self, key: &str, v: &Value) -> Result<(), String> {
        match key {
            "stripe_secret_key" => self.stripe_secret_key = sealed(v)?,
            "stripe_webhook_secret" => self.stripe_webhook_secret = sealed(v)?,
            "stripe_api_base" => self.stripe_api_base = api_base(v)?,
            _ => return Err("is not a setting".into()),
        }
        Ok(())
    }

    /// The settings as admins see them: secrets only as whether they are set.
    pub fn to_json(&self) -> Value {
        json!({
            "stripe_secret_key_set": self.stripe_secret_key.is_some(),
            "stripe_webhook_secret_set": self.stripe_webhook_secret.is_some(),
            "stripe_api_base": self.stripe_api_base,
        })
    }

    /// One setting's stored JSON text (secrets as their sealed form).
    pub fn stored_value(&self, key: &str) -> Option<String> {
        let sealed = |s: &Option<Sealed>| s.as_ref().map_or(Value::Null, |s| json!(s.0)).to_string();
        match key {
            "stripe_secret_key" => Some(sealed(&self.stripe_secret_key)),
            "stripe_webhook_secret" => Some(sealed(&self.stripe_webhook_secret)),
            _ => self.to_json().get(key).map(Value::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_never_shown_and_the_base_is_a_url() {
        let mut s = PaymentSettings::default();
        s.apply("stripe_secret_key", &json!("v1:sealed-key")).unwrap();
        assert_eq!(s.to_json()["stripe_secret_key_set"], true);
        assert!(!s.to_json().to_string().contains("sealed-key"));
        assert_eq!(s.stored_value("stripe_secret_key").unwrap(), "\"v1:sealed-key\"");
        s.apply("stripe_secret_key", &json!(null)).unwrap();
        assert_eq!(s.to_json()["stripe_secret_key_set"], false);
        s.apply("stripe_api_base", &json!("http://127.0.0.1:9/")).unwrap();
        assert_eq!(s.stripe_api_base, "http://127.0.0.1:9");
        assert!(s.apply("stripe_api_base", &json!("ftp://x")).is_err());
        assert!(s.apply("stripe_api_base", &json!("https://x/?a=1")).is_err());
        s.apply("stripe_api_base", &json!("")).unwrap();
        assert_eq!(s.stripe_api_base, DEFAULT_API_BASE);
    }
}
