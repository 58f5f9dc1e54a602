//! The sign-in settings: the OpenID provider, who may sign up, the SMTP
//! server for email links, and how long sessions last. Kept with the other
//! operator settings (one `settings` row each); the two secrets are stored
//! sealed under the master key and never shown back.

use serde_json::{json, Value};

/// A secret as stored: sealed under the master key (`crypto::MasterKey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed(pub String);

crate::kinds::named!(
    /// How Hub talks to the SMTP server.
    SmtpSecurity {
        /// Plain connection upgraded with STARTTLS (port 587).
        StartTls = "starttls",
        /// TLS from the first byte (port 465).
        Tls = "tls",
        /// No encryption: only to a server on loopback (a local relay).
        None = "none",
    }
);

#[derive(Debug, Clone, PartialEq)]
pub struct SignInSettings {
    pub oidc_issuer: Option<String>,
    pub oidc_client_id: Option<String>,
    pub oidc_client_secret: Option<Sealed>,
    pub oidc_scopes: String,
    /// Whether people without an account may create one by signing in.
    pub signup_open: bool,
    /// Domains whose addresses may sign up (lower-case); empty: any.
    pub signup_email_domains: Vec<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<Sealed>,
    pub smtp_from: Option<String>,
    pub smtp_security: SmtpSecurity,
    /// How long a session lasts unused (it slides forward with use).
    pub session_days: i64,
}

impl Default for SignInSettings {
    fn default() -> Self {
        SignInSettings {
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_scopes: "openid email profile".into(),
            signup_open: false,
            signup_email_domains: Vec::new(),
            smtp_host: None,
            smtp_port: 587,
            smtp_username: None,
            smtp_password: None,
            smtp_from: None,
            smtp_security: SmtpSecurity::StartTls,
            session_days: 30,
        }
    }
}

/// The sign-in settings' names, as the admin API takes them.
pub const KEYS: &[&str] = &[
    "oidc_issuer",
    "oidc_client_id",
    "oidc_client_secret",
    "oidc_scopes",
    "signup_open",
    "signup_email_domains",
    "smtp_host",
    "smtp_port",
    "smtp_username",
    "smtp_password",
    "smtp_from",
    "smtp_security",
    "session_days",
];

/// The settings that are secrets: sealed before they are stored, and shown
/// only as whether they are set.
pub const SECRET_KEYS: &[&str] = &["oidc_client_secret", "smtp_password"];

/// A string setting that may be cleared with `null` or `""`.
fn optional_text(v: &Value, max: usize) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) if s.len() <= max && !s.chars().any(char::is_control) => Ok(Some(s.trim().to_string())),
        _ => Err(format!("must be a string of at most {max} characters, or null")),
    }
}

fn issuer(v: &Value) -> Result<Option<String>, String> {
    let Some(url) = optional_text(v, 512)? else {
        return Ok(None);
    };
    match url::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.query().is_none() && u.fragment().is_none() => {
            Ok(Some(url))
        }
        _ => Err("must be the provider's issuer URL (https://…, no query or fragment), or null".into()),
    }
}

fn domains(v: &Value) -> Result<Vec<String>, String> {
    let problem = || "must be a list of email domains (like \"example.com\"), empty for any".to_string();
    let list = v.as_array().ok_or_else(problem)?;
    list.iter()
        .map(|d| {
            let d = d
                .as_str()
                .ok_or_else(problem)?
                .trim()
                .trim_start_matches('@')
                .to_ascii_lowercase();
            let valid = d.contains('.')
                && d.len() <= 253
                && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            valid.then_some(d).ok_or_else(problem)
        })
        .collect()
}

impl SignInSettings {
    /// Sets one sign-in setting from JSON (secrets arrive already sealed).
    pub fn apply(&mut self, key: &str, v: &Value) -> Result<(), String> {
        match key {
            "oidc_issuer" => self.oidc_issuer = issuer(v)?.map(|i| i.trim_end_matches('/').to_string()),
            "oidc_client_id" => self.oidc_client_id = optional_text(v, 512)?,
            "oidc_client_secret" => self.oidc_client_secret = optional_text(v, 4096)?.map(Sealed),
            "oidc_scopes" => {
                let scopes = optional_text(v, 512)?.unwrap_or_else(|| Self::default().oidc_scopes);
                if !scopes.split_whitespace().any(|s| s == "openid") {
                    return Err("must include `openid`".into());
                }
                self.oidc_scopes = scopes.split_whitespace().collect::<Vec<_>>().join(" ");
            }
            "signup_open" => self.signup_open = v.as_bool().ok_or("must be true or false")?,
            "signup_email_domains" => self.signup_email_domains = domains(v)?,
            "smtp_host" => self.smtp_host = optional_text(v, 253)?,
            "smtp_port" => {
                self.smtp_port = v
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
                    .ok_or("must be a port number from 1 to 65535")?
            }
            "smtp_username" => self.smtp_username = optional_text(v, 512)?,
            "smtp_password" => self.smtp_password = optional_text(v, 4096)?.map(Sealed),
            "smtp_from" => self.smtp_from = optional_text(v, 320)?,
            "smtp_security" => {
                self.smtp_security = v
                    .as_str()
                    .and_then(SmtpSecurity::parse)
                    .ok_or("must be one of starttls, tls, none")?
            }
            "session_days" => {
                self.session_days = v
                    .as_i64()
                    .filter(|d| (1..=365).contains(d))
                    .ok_or("must be an integer from 1 to 365")?
            }
            _ => return Err("is not a setting".into()),
        }
        Ok(())
    }

    /// The settings as admins see them: secrets only as whether they are set.
    pub fn to_json(&self) -> Value {
        json!({
            "oidc_issuer": self.oidc_issuer,
            "oidc_client_id": self.oidc_client_id,
            "oidc_client_secret_set": self.oidc_client_secret.is_some(),
            "oidc_scopes": self.oidc_scopes,
            "signup_open": self.signup_open,
            "signup_email_domains": self.signup_email_domains,
            "smtp_host": self.smtp_host,
            "smtp_port": self.smtp_port,
            "smtp_username": self.smtp_username,
            "smtp_password_set": self.smtp_password.is_some(),
            "smtp_from": self.smtp_from,
            "smtp_security": self.smtp_security.as_str(),
            "session_days": self.session_days,
        })
    }

    /// One setting's stored JSON text (secrets as their sealed form).
    pub fn stored_value(&self, key: &str) -> Option<String> {
        let sealed = |s: &Option<Sealed>| s.as_ref().map_or(Value::Null, |s| json!(s.0)).to_string();
        match key {
            "oidc_client_secret" => Some(sealed(&self.oidc_client_secret)),
            "smtp_password" => Some(sealed(&self.smtp_password)),
            _ => self.to_json().get(key).map(Value::to_string),
        }
    }

    /// Whether OpenID Connect sign-in is configured.
    pub fn oidc_configured(&self) -> bool {
        self.oidc_issuer.is_some() && self.oidc_client_id.is_some()
    }

    /// Whether email links can be sent (a mailer on this runtime is checked apart).
    pub fn smtp_configured(&self) -> bool {
        self.smtp_host.is_some() && self.smtp_from.is_some()
    }

    /// Whether someone with this (verified) address may create an account.
    pub fn may_sign_up(&self, email: &str) -> bool {
        let domain = email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
        self.signup_open
            && (self.signup_email_domains.is_empty() || domain.is_some_and(|d| self.signup_email_domains.contains(&d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_and_secrets_never_shown() {
        let mut s = SignInSettings::default();
        s.apply("oidc_issuer", &json!("https://id.example.com/")).unwrap();
        assert_eq!(s.oidc_issuer.as_deref(), Some("https://id.example.com"));
        assert!(s.apply("oidc_issuer", &json!("ftp://x")).is_err());
        assert!(s
            .apply("oidc_scopes", &json!("email profile"))
            .unwrap_err()
            .contains("openid"));
        s.apply("oidc_client_secret", &json!("v1:sealed")).unwrap();
        assert_eq!(s.to_json()["oidc_client_secret_set"], true);
        assert!(!s.to_json().to_string().contains("v1:sealed"));
        assert_eq!(s.stored_value("oidc_client_secret").unwrap(), "\"v1:sealed\"");
        s.apply("signup_email_domains", &json!(["@Example.com"])).unwrap();
        assert!(s.apply("signup_email_domains", &json!(["a b"])).is_err());
        assert!(s.apply("smtp_security", &json!("ssl")).is_err());
        assert!(s.apply("smtp_host", &json!("a\r\nb")).is_err());
    }

    #[test]
    fn sign_up_follows_the_switch_and_the_domains() {
        let mut s = SignInSettings::default();
        assert!(!s.may_sign_up("a@example.com"), "closed by default");
        s.signup_open = true;
        assert!(s.may_sign_up("a@anything.org"));
        s.signup_email_domains = vec!["example.com".into()];
        assert!(s.may_sign_up("a@EXAMPLE.com"));
        assert!(!s.may_sign_up("a@example.com.evil.org"));
        assert!(!s.may_sign_up("a@sub.example.com"));
    }
}
