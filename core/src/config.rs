//! Settings and the in-memory configuration snapshot (providers with their
//! decrypted credentials, models and rates, settings). The hot path reads only
//! the snapshot; it is reloaded when stale (in the background) or at once after
//! a change made through this instance.

use crate::accounts::settings::SignInSettings;
use crate::crypto::MasterKey;
use crate::hub::health::Health;
use crate::kinds::{CredentialStatus, ModelKind};
use crate::metering::money::Credits;
use crate::payments::settings::PaymentSettings;
use crate::prices::{BelowCostAction, CatalogueFormat};
use crate::providers::{vendor, Vendor};
use crate::store::{AliasRow, ModelRow, Store};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Operator settings, with their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub billing_enabled: bool,
    pub starter_credits: Credits,
    /// USD per credit, a decimal string.
    pub credit_price_usd: String,
    /// Target margin over provider cost, percent, a decimal string.
    pub margin_percent: String,
    pub currency_prefix: String,
    pub payment_link: Option<String>,
    pub max_attempts: i64,
    /// Output budget held for a call that sets no `max_tokens`, when the model sets none.
    pub default_max_output_tokens: i64,
    /// How long a hold may stay open before the sweeper releases it.
    pub hold_ttl_seconds: i64,
    /// Days the call log keeps its rows (the usage roll-ups keep their sums
    /// for good); 0 keeps them forever.
    pub call_retention_days: i64,
    pub app_name: String,
    /// This Hub's public URL, announced to AIGNE clients (default: the URL a request came to).
    pub app_url: Option<String>,
    /// The app id announced to AIGNE clients.
    pub app_pid: String,
    /// Who may sign in, and how.
    pub sign_in: SignInSettings,
    /// How customers buy credits (Stripe).
    pub payments: PaymentSettings,
    /// Below this balance a customer is told (`balance.low`), unless they
    /// chose their own threshold. `None`: only those who chose one are.
    pub low_balance_threshold: Option<Credits>,
    /// The response cache (off unless the operator turns it on).
    pub response_cache: ResponseCacheSettings,
    /// The least margin over cost a sell rate may have (percent, a decimal
    /// string); `None`: no floor.
    pub margin_floor_percent: Option<String>,
    /// What a price sync does to a model it finds selling below cost.
    pub below_cost_action: BelowCostAction,
    /// The price catalogue the scheduled sync reads.
    pub price_sync_url: Option<String>,
    pub price_sync_format: CatalogueFormat,
    /// Hours between scheduled syncs; 0: none.
    pub price_sync_interval_hours: i64,
}

/// How the response cache answers identical requests (see `gateway::cache`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseCacheSettings {
    pub enabled: bool,
    /// How long an answer is kept when the request asks for no other time.
    pub ttl_seconds: i64,
    /// The share of an answer's original cost a hit is billed, from 0 to 1.
    pub hit_fraction: Credits,
    /// Whether one user's answer may answer another's identical request.
    pub shared: bool,
    /// The most the stored answers may take, in MiB (older ones go first).
    pub max_mb: i64,
    /// Only requests that ask for one deterministic answer (`temperature`
    /// 0, `n` at most 1) are cached.
    pub deterministic_only: bool,
}

impl Default for ResponseCacheSettings {
    fn default() -> Self {
        ResponseCacheSettings {
            enabled: false,
            ttl_seconds: 3600,
            hit_fraction: Credits::ZERO,
            shared: false,
            max_mb: 256,
            deterministic_only: false,
        }
    }
}

/// The longest an answer may be kept, in seconds (30 days).
pub const MAX_CACHE_TTL_SECONDS: i64 = 30 * 86_400;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            billing_enabled: true,
            starter_credits: Credits::ZERO,
            credit_price_usd: "1".into(),
            margin_percent: "0".into(),
            currency_prefix: "$".into(),
            payment_link: None,
            max_attempts: 3,
            default_max_output_tokens: 4096,
            hold_ttl_seconds: 3600,
            call_retention_days: 30,
            app_name: "Hub".into(),
            app_url: None,
            app_pid: "hub".into(),
            sign_in: SignInSettings::default(),
            payments: PaymentSettings::default(),
            low_balance_threshold: None,
            response_cache: ResponseCacheSettings::default(),
            margin_floor_percent: None,
            below_cost_action: BelowCostAction::Flag,
            price_sync_url: None,
            price_sync_format: CatalogueFormat::Litellm,
            price_sync_interval_hours: 0,
        }
    }
}

pub const SETTING_KEYS: &[&str] = &[
    "billing_enabled",
    "starter_credits",
    "credit_price_usd",
    "margin_percent",
    "currency_prefix",
    "payment_link",
    "max_attempts",
    "default_max_output_tokens",
    "hold_ttl_seconds",
    "call_retention_days",
    "app_name",
    "app_url",
    "app_pid",
    "low_balance_threshold",
    "response_cache_enabled",
    "response_cache_ttl_seconds",
    "response_cache_hit_fraction",
    "response_cache_shared",
    "response_cache_max_mb",
    "response_cache_deterministic_only",
    "margin_floor_percent",
    "below_cost_action",
    "price_sync_url",
    "price_sync_format",
    "price_sync_interval_hours",
];

/// Every setting that is a secret, whichever group it belongs to: sealed
/// under the master key before it is stored, shown only as `<name>_set`.
pub fn is_secret(key: &str) -> bool {
    crate::accounts::settings::SECRET_KEYS.contains(&key) || crate::payments::settings::SECRET_KEYS.contains(&key)
}

/// Every setting's name, as `PATCH /api/admin/settings` takes them.
pub fn all_keys() -> impl Iterator<Item = &'static str> {
    SETTING_KEYS
        .iter()
        .chain(crate::accounts::settings::KEYS)
        .chain(crate::payments::settings::KEYS)
        .copied()
}

impl Settings {
    /// Settings from stored (key, JSON) pairs over the defaults.
    pub fn from_pairs(pairs: &[(String, String)]) -> Settings {
        let mut s = Settings::default();
        for (k, v) in pairs {
            if let Ok(v) = serde_json::from_str::<Value>(v) {
                let _ = s.apply(k, &v);
            }
        }
        s
    }

    /// Sets one setting from JSON; the error names what is wrong with the value.
    pub fn apply(&mut self, key: &str, v: &Value) -> Result<(), String> {
        if crate::accounts::settings::KEYS.contains(&key) {
            return self.sign_in.apply(key, v);
        }
        if crate::payments::settings::KEYS.contains(&key) {
            return self.payments.apply(key, v);
        }
        let positive_int = |v: &Value, max: i64| -> Result<i64, String> {
            v.as_i64()
                .filter(|n| (1..=max).contains(n))
                .ok_or(format!("must be an integer from 1 to {max}"))
        };
        let decimal = |v: &Value| -> Result<String, String> {
            let c = Credits::from_json(v).map_err(|e| e.to_string())?;
            if c.is_negative() {
                return Err("must not be negative".into());
            }
            Ok(c.to_string())
        };
        match key {
            "billing_enabled" => self.billing_enabled = v.as_bool().ok_or("must be true or false")?,
            "starter_credits" => {
                self.starter_credits = Credits::from_json(v).map_err(|e| e.to_string())?;
                if self.starter_credits.is_negative() {
                    return Err("must not be negative".into());
                }
            }
            "credit_price_usd" => {
                self.credit_price_usd = decimal(v)?;
                if self.credit_price_usd == "0" {
                    return Err("must be greater than zero".into());
                }
            }
            "margin_percent" => self.margin_percent = decimal(v)?,
            "currency_prefix" => {
                let p = v.as_str().ok_or("must be a string")?;
                if p.chars().count() > 8 {
                    return Err("must be at most 8 characters".into());
                }
                self.currency_prefix = p.to_string();
            }
            "app_url" => {
                self.app_url = match v {
                    Value::Null => None,
                    Value::String(s) if s.is_empty() => None,
                    Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
                        Some(s.trim_end_matches('/').to_string())
                    }
                    _ => return Err("must be an http(s) URL or null".into()),
                }
            }
            "app_pid" => {
                let p = v
                    .as_str()
                    .filter(|s| !s.trim().is_empty() && s.len() <= 128)
                    .ok_or("must be a non-empty string of at most 128 characters")?;
                self.app_pid = p.to_string();
            }
            "payment_link" => {
                self.payment_link = match v {
                    Value::Null => None,
                    Value::String(s) if s.is_empty() => None,
                    Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => Some(s.clone()),
                    _ => return Err("must be an http(s) URL or null".into()),
                }
            }
            "low_balance_threshold" => {
                self.low_balance_threshold = match v {
                    Value::Null => None,
                    v => Some(Credits::parse(&decimal(v)?).map_err(|e| e.to_string())?),
                }
            }
            "response_cache_enabled" => self.response_cache.enabled = v.as_bool().ok_or("must be true or false")?,
            "response_cache_shared" => self.response_cache.shared = v.as_bool().ok_or("must be true or false")?,
            "response_cache_deterministic_only" => {
                self.response_cache.deterministic_only = v.as_bool().ok_or("must be true or false")?
            }
            "response_cache_ttl_seconds" => self.response_cache.ttl_seconds = positive_int(v, MAX_CACHE_TTL_SECONDS)?,
            "response_cache_max_mb" => self.response_cache.max_mb = positive_int(v, 1_000_000)?,
            "response_cache_hit_fraction" => {
                let f = Credits::parse(&decimal(v)?).map_err(|e| e.to_string())?;
                if f > Credits::from_nanos(1_000_000_000) {
                    return Err("must be a decimal from 0 to 1".into());
                }
                self.response_cache.hit_fraction = f;
            }
            "margin_floor_percent" => {
                self.margin_floor_percent = match v {
                    Value::Null => None,
                    v => Some(decimal(v)?),
                }
            }
            "below_cost_action" => {
                self.below_cost_action = v
                    .as_str()
                    .and_then(BelowCostAction::parse)
                    .ok_or(format!("must be {}", BelowCostAction::names()))?
            }
            "price_sync_url" => {
                self.price_sync_url = match v {
                    Value::Null => None,
                    Value::String(s) if s.is_empty() => None,
                    Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => Some(s.clone()),
                    _ => return Err("must be an http(s) URL or null".into()),
                }
            }
            "price_sync_format" => {
                self.price_sync_format = v
                    .as_str()
                    .and_then(CatalogueFormat::parse)
                    .ok_or(format!("must be {}", CatalogueFormat::names()))?
            }
            "price_sync_interval_hours" => {
                self.price_sync_interval_hours = v
                    .as_i64()
                    .filter(|n| (0..=8_760).contains(n))
                    .ok_or("must be an integer from 0 (no scheduled sync) to 8760")?
            }
            "max_attempts" => self.max_attempts = positive_int(v, 10)?,
            "default_max_output_tokens" => self.default_max_output_tokens = positive_int(v, 10_000_000)?,
            "hold_ttl_seconds" => self.hold_ttl_seconds = positive_int(v, 7 * 86_400)?,
            "call_retention_days" => {
                self.call_retention_days = v
                    .as_i64()
                    .filter(|n| (0..=36_500).contains(n))
                    .ok_or("must be an integer from 0 (keep forever) to 36500")?
            }
            "app_name" => {
                let n = v
                    .as_str()
                    .filter(|s| !s.trim().is_empty())
                    .ok_or("must be a non-empty string")?;
                self.app_name = n.to_string();
            }
            _ => return Err("is not a setting".into()),
        }
        Ok(())
    }

    pub fn to_json(&self) -> Value {
        let mut all = self.own_json();
        for group in [self.sign_in.to_json(), self.payments.to_json()] {
            if let (Some(all), Value::Object(group)) = (all.as_object_mut(), group) {
                all.extend(group);
            }
        }
        all
    }

    fn own_json(&self) -> Value {
        json!({
            "billing_enabled": self.billing_enabled,
            "starter_credits": self.starter_credits,
            // Both are kept as canonical decimal strings (see `apply`).
            "credit_price_usd": self.credit_price_usd,
            "margin_percent": self.margin_percent,
            "currency_prefix": self.currency_prefix,
            "payment_link": self.payment_link,
            "max_attempts": self.max_attempts,
            "default_max_output_tokens": self.default_max_output_tokens,
            "hold_ttl_seconds": self.hold_ttl_seconds,
            "call_retention_days": self.call_retention_days,
            "app_name": self.app_name,
            "app_url": self.app_url,
            "app_pid": self.app_pid,
            // Canonical decimal text: the schema reads it (view low_balance_default).
            "low_balance_threshold": self.low_balance_threshold,
            "response_cache_enabled": self.response_cache.enabled,
            "response_cache_ttl_seconds": self.response_cache.ttl_seconds,
            // Canonical decimal text, like the other decimals.
            "response_cache_hit_fraction": self.response_cache.hit_fraction,
            "response_cache_shared": self.response_cache.shared,
            "response_cache_max_mb": self.response_cache.max_mb,
            "response_cache_deterministic_only": self.response_cache.deterministic_only,
            "margin_floor_percent": self.margin_floor_percent,
            "below_cost_action": self.below_cost_action,
            "price_sync_url": self.price_sync_url,
            "price_sync_format": self.price_sync_format,
            "price_sync_interval_hours": self.price_sync_interval_hours,
        })
    }

    /// The stored JSON text of one setting.
    pub fn stored_value(&self, key: &str) -> Option<String> {
        if crate::accounts::settings::KEYS.contains(&key) {
            return self.sign_in.stored_value(key);
        }
        if crate::payments::settings::KEYS.contains(&key) {
            return self.payments.stored_value(key);
        }
        self.own_json().get(key).map(|v| v.to_string())
    }
}

/// A credential, decrypted.
pub struct CredentialEntry {
    pub id: String,
    pub name: String,
    pub secret: String,
    pub weight: i64,
    /// When its row last changed (an admin's re-enable, say).
    pub updated_at: i64,
}

/// An enabled provider, ready to call.
pub struct ProviderEntry {
    pub id: String,
    pub name: String,
    pub vendor: &'static Vendor,
    pub base_url: String,
    pub region: String,
    pub priority: i64,
    pub credentials: Vec<CredentialEntry>,
    /// Smooth weighted round-robin state, one counter per credential.
    rotation: Mutex<Vec<i64>>,
}

impl ProviderEntry {
    /// The next credential by smooth weighted round-robin (nginx's), skipping
    /// those already tried for this call and those disabled; one cooling down
    /// after a 429 weighs a tenth.
    pub fn next_credential(&self, now_ms: i64, health: &Health, tried: &[String]) -> Option<&CredentialEntry> {
        let weight = |c: &CredentialEntry| -> i64 {
            if tried.contains(&c.id) || health.is_disabled(&c.id) {
                0
            } else if health.cooling(&c.id, now_ms) {
                (c.weight / 10).max(1)
            } else {
                c.weight.max(1)
            }
        };
        let mut current = self.rotation.lock().ok()?;
        let total: i64 = self.credentials.iter().map(weight).sum();
        if total == 0 {
            return None;
        }
        let mut best: Option<usize> = None;
        for (i, c) in self.credentials.iter().enumerate() {
            let w = weight(c);
            if w == 0 {
                continue;
            }
            current[i] += w;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        current[best] -= total;
        self.credentials.get(best)
    }
}

#[cfg(test)]
impl ProviderEntry {
    /// An OpenAI-compatible provider with these credentials, for tests.
    pub(crate) fn for_tests(name: &str, priority: i64, credentials: Vec<CredentialEntry>) -> ProviderEntry {
        ProviderEntry {
            id: name.into(),
            name: name.into(),
            vendor: vendor("openai").expect("a known kind"),
            base_url: String::new(),
            region: String::new(),
            priority,
            rotation: Mutex::new(vec![0; credentials.len()]),
            credentials,
        }
    }
}

impl std::fmt::Debug for ProviderEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProviderEntry({})", self.name)
    }
}

/// One way to serve a model: a provider and its rate row.
#[derive(Debug, Clone)]
pub struct Route {
    pub provider: Arc<ProviderEntry>,
    pub model: Arc<ModelRow>,
    /// The alias target this route serves, when the caller named an alias.
    pub via: Option<Arc<Via>>,
}

/// How a route was reached through an alias.
#[derive(Debug)]
pub struct Via {
    /// The alias's name.
    pub alias: String,
    /// The target as the alias lists it (`provider/model` or a bare model).
    pub target: String,
    /// Parameters merged into the body sent to the provider.
    pub overrides: Option<serde_json::Map<String, Value>>,
    /// A content-policy refusal moves on to the next candidate.
    pub fallback_on_refusal: bool,
}

/// Everything the hot path needs, read once.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: i64,
    pub settings: Settings,
    pub providers: HashMap<String, Arc<ProviderEntry>>,
    /// Enabled models by the provider's model id, best provider first.
    pub routes: HashMap<String, Vec<Route>>,
    /// Enabled model aliases by name.
    pub aliases: HashMap<String, Arc<AliasRow>>,
    /// Smooth weighted round-robin state for providers of equal priority, per model.
    pub(crate) spread: Mutex<HashMap<String, Vec<i64>>>,
}

impl Snapshot {
    /// Every usable credential of every enabled provider.
    pub fn credentials(&self) -> impl Iterator<Item = &CredentialEntry> {
        self.providers.values().flat_map(|p| p.credentials.iter())
    }

    pub async fn load(store: &Store, key: &MasterKey) -> Result<Snapshot, crate::ports::DbError> {
        let version = store.config_version().await?;
        let settings = Settings::from_pairs(&store.settings().await?);
        let credentials = store.list_credentials(None).await?;
        let mut providers = HashMap::new();
        for p in store.list_providers().await? {
            let Some(vendor) = vendor(&p.kind) else { continue };
            if !p.enabled {
                continue;
            }
            let creds: Vec<CredentialEntry> = credentials
                .iter()
                .filter(|c| c.provider_id == p.id && c.enabled && c.status != CredentialStatus::Disabled)
                .filter_map(|c| match key.decrypt(&c.secret_enc) {
                    Ok(secret) => Some(CredentialEntry {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        secret,
                        weight: c.weight,
                        updated_at: c.updated_at,
                    }),
                    Err(e) => {
                        tracing::error!(credential = %c.id, provider = %p.name, "skipping credential: {e}");
                        None
                    }
                })
                .collect();
            if vendor.needs_secret && creds.is_empty() {
                continue;
            }
            let base_url = p
                .base_url
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| vendor.default_base_url.to_string());
            let rotation = Mutex::new(vec![0; creds.len()]);
            let entry = ProviderEntry {
                id: p.id.clone(),
                name: p.name.clone(),
                vendor,
                base_url,
                region: p
                    .region
                    .clone()
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| crate::providers::bedrock::DEFAULT_REGION.to_string()),
                priority: p.priority,
                credentials: creds,
                rotation,
            };
            providers.insert(p.id.clone(), Arc::new(entry));
        }
        let mut routes: HashMap<String, Vec<Route>> = HashMap::new();
        for m in store.all_models().await? {
            if !m.enabled {
                continue;
            }
            if let Some(provider) = providers.get(&m.provider_id) {
                routes.entry(m.model.clone()).or_default().push(Route {
                    provider: provider.clone(),
                    model: Arc::new(m),
                    via: None,
                });
            }
        }
        for list in routes.values_mut() {
            list.sort_by(|a, b| {
                b.provider
                    .priority
                    .cmp(&a.provider.priority)
                    .then(a.provider.name.cmp(&b.provider.name))
            });
        }
        let providers = providers.into_values().map(|p| (p.name.clone(), p)).collect();
        let aliases = store
            .list_aliases()
            .await?
            .into_iter()
            .filter(|a| a.enabled)
            .map(|a| (a.name.clone(), Arc::new(a)))
            .collect();
        Ok(Snapshot {
            version,
            settings,
            providers,
            routes,
            aliases,
            spread: Mutex::default(),
        })
    }

    /// Candidates for a requested model of a type: `provider/model` pins a
    /// provider; a bare name may be served by any provider that offers it.
    /// Providers of equal priority take turns, by smooth weighted round-robin
    /// over their credentials' weights.
    pub fn resolve(&self, requested: &str, kind: ModelKind) -> Vec<Route> {
        if let Some((prefix, rest)) = requested.split_once('/') {
            if let Some(p) = self.providers.get(prefix) {
                return self
                    .routes
                    .get(rest)
                    .map(|l| {
                        l.iter()
                            .filter(|r| Arc::ptr_eq(&r.provider, p) && r.model.kind == kind)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
            }
            // AIGNE clients name providers by kind (`openai/…`, `google/…`).
            let by_kind: Vec<Route> = self
                .routes
                .get(rest)
                .map(|l| {
                    l.iter()
                        .filter(|r| {
                            r.model.kind == kind
                                && (r.provider.vendor.kind == prefix
                                    || (prefix == "google" && r.provider.vendor.kind == "gemini"))
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if !by_kind.is_empty() {
                return by_kind;
            }
        }
        let mut routes: Vec<Route> = self
            .routes
            .get(requested)
            .map(|l| l.iter().filter(|r| r.model.kind == kind).cloned().collect())
            .unwrap_or_default();
        let mut start = 0;
        while start < routes.len() {
            let priority = routes[start].provider.priority;
            let len = routes[start..]
                .iter()
                .take_while(|r| r.provider.priority == priority)
                .count();
            if len > 1 {
                let key = format!("{kind}\u{0}{requested}\u{0}{priority}");
                let pick = self.spread_pick(&key, &routes[start..start + len]);
                routes[start..start + len].rotate_left(pick);
            }
            start += len;
        }
        routes
    }

    fn spread_pick(&self, key: &str, group: &[Route]) -> usize {
        let Ok(mut state) = self.spread.lock() else { return 0 };
        let current = state.entry(key.to_string()).or_insert_with(|| vec![0; group.len()]);
        current.resize(group.len(), 0);
        let weight = |r: &Route| {
            r.provider
                .credentials
                .iter()
                .map(|c| c.weight.max(1))
                .sum::<i64>()
                .max(1)
        };
        let total: i64 = group.iter().map(weight).sum();
        let mut best = 0;
        for (i, r) in group.iter().enumerate() {
            current[i] += weight(r);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_weighted_round_robin() {
        let cred = |id: &str, weight| CredentialEntry {
            id: id.into(),
            name: id.into(),
            secret: String::new(),
            weight,
            updated_at: 0,
        };
        let p = ProviderEntry {
            id: "p".into(),
            name: "p".into(),
            vendor: vendor("openai").unwrap(),
            base_url: String::new(),
            region: String::new(),
            priority: 0,
            credentials: vec![cred("a", 5), cred("b", 1), cred("c", 1)],
            rotation: Mutex::new(vec![0; 3]),
        };
        let health = Health::default();
        let picks: String = (0..7)
            .map(|_| p.next_credential(0, &health, &[]).unwrap().id.clone())
            .collect();
        assert_eq!(picks, "aabacaa");
        // Tried credentials are skipped; none left is none.
        let tried = vec!["a".to_string(), "b".to_string()];
        assert_eq!(p.next_credential(0, &health, &tried).unwrap().id, "c");
        let all = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        assert!(p.next_credential(0, &health, &all).is_none());
        // A rate-limited credential weighs a tenth (here 5 → 1, one pick in three) until its cooldown ends.
        health.cool("a", 1000);
        let during: String = (0..70)
            .map(|_| p.next_credential(500, &health, &[]).unwrap().id.clone())
            .collect();
        assert!(during.matches('a').count() <= 24, "{during}");
        let after: String = (0..70)
            .map(|_| p.next_credential(1000, &health, &[]).unwrap().id.clone())
            .collect();
        assert_eq!(after.matches('a').count(), 50, "{after}");
    }

    #[test]
    fn providers_of_equal_priority_take_turns_by_weight() {
        let provider = |name: &str, priority: i64, weight: i64| {
            Arc::new(ProviderEntry {
                id: name.into(),
                name: name.into(),
                vendor: vendor("openai").unwrap(),
                base_url: String::new(),
                region: String::new(),
                priority,
                credentials: vec![CredentialEntry {
                    id: format!("{name}-c"),
                    name: "c".into(),
                    secret: String::new(),
                    weight,
                    updated_at: 0,
                }],
                rotation: Mutex::new(vec![0]),
            })
        };
        let model = |p: &str| {
            Arc::new(ModelRow {
                id: format!("{p}-m"),
                provider_id: p.into(),
                model: "m".into(),
                kind: ModelKind::Chat,
                rates: Default::default(),
                max_output_tokens: None,
                unit_costs: None,
                metadata: None,
                routing: crate::kinds::RoutingMode::Priority,
                enabled: true,
                cost: None,
                context_window: None,
                below_cost: false,
                price_source: None,
                costs_synced_at: None,
                created_at: 0,
                updated_at: 0,
            })
        };
        let (top, a, b) = (provider("top", 10, 1), provider("a", 0, 300), provider("b", 0, 100));
        let routes: Vec<Route> = [&top, &a, &b]
            .iter()
            .map(|p| Route {
                provider: (*p).clone(),
                model: model(&p.name),
                via: None,
            })
            .collect();
        let snap = Snapshot {
            routes: HashMap::from([("m".to_string(), routes)]),
            ..Default::default()
        };
        let firsts: Vec<String> = (0..8)
            .map(|_| {
                let order = snap.resolve("m", ModelKind::Chat);
                assert_eq!(order[0].provider.name, "top", "priority first");
                assert_eq!(order.len(), 3, "every candidate stays in the list");
                order[1].provider.name.clone()
            })
            .collect();
        assert_eq!(firsts.iter().filter(|n| *n == "a").count(), 6, "{firsts:?}");
        assert!(snap.resolve("m", ModelKind::Image).is_empty());
    }

    #[test]
    fn settings_validate_and_name_the_problem() {
        let mut s = Settings::default();
        assert!(s.apply("max_attempts", &json!(0)).unwrap_err().contains("integer"));
        assert!(s.apply("starter_credits", &json!(-1)).is_err());
        assert!(s.apply("payment_link", &json!("ftp://x")).is_err());
        s.apply("starter_credits", &json!(2.5)).unwrap();
        assert_eq!(s.starter_credits.to_string(), "2.5");
        let back = Settings::from_pairs(&[("starter_credits".into(), s.stored_value("starter_credits").unwrap())]);
        assert_eq!(back.starter_credits, s.starter_credits);
    }
}
