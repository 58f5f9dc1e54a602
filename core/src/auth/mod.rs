//! Authentication: API keys (random, `hub_` prefix, only their SHA-256 stored),
//! the caller they resolve to, roles, and a short-lived in-memory cache so a
//! warm request reads nothing. A revoked key stops working everywhere within
//! the cache TTL, and at once on the instance that revoked it.

pub mod jwt;

use crate::ports::{Rng, RngError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;

pub const KEY_PREFIX: &str = "hub_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Admin,
    Member,
    Guest,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            "guest" => Some(Role::Guest),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Guest => "guest",
        }
    }

    pub fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// Higher is more powerful.
    fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Member => 1,
            Role::Guest => 0,
        }
    }

    /// Whether someone of this role may act on someone of `other`'s role:
    /// mint or revoke their keys, change them, or give them that role.
    pub fn may_manage(self, other: Role) -> bool {
        self.rank() >= other.rank()
    }
}

/// Who is calling: the key, its owner, and the key's limits.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub key_label: String,
    pub user_id: String,
    pub role: Role,
    pub expires_at: Option<i64>,
    pub revoked: bool,
    /// Model names (`provider/model` or bare) this key may call; `None` = all.
    pub allowed_models: Option<Vec<String>>,
    /// The key's hash as stored, compared in constant time on every lookup.
    pub key_hash: String,
    pub limits: KeyLimits,
    /// Signed in through a browser session (`key_id` is the session's id),
    /// not a key: its writes must carry the CSRF token.
    pub session: bool,
    /// The team the key belongs to: its budget and models cover the key's calls.
    pub team: Option<TeamScope>,
    /// Whether the key's calls use the response cache when it is on.
    pub response_cache: bool,
}

/// What a key's team asks of its calls, read with the key.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamScope {
    pub id: String,
    /// Credits per period; `None`: no budget.
    pub budget: Option<crate::Credits>,
    pub period: crate::kinds::BudgetPeriod,
    pub zone: crate::time::Zone,
    /// Model names the team's keys may call; `None` = all.
    pub allowed_models: Option<Vec<String>>,
}

impl TeamScope {
    /// The team's budget, when it has one, with the start and end of its current period.
    pub fn budget_now(&self, now_ms: i64) -> Option<(crate::Credits, i64, Option<i64>)> {
        let budget = self.budget?;
        let (start, next) = self.period.bounds(self.zone, now_ms);
        Some((budget, start, next))
    }
}

/// What a key may use: requests and tokens per minute, credits per UTC day and month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyLimits {
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub daily_spend_cap: Option<crate::Credits>,
    pub monthly_spend_cap: Option<crate::Credits>,
}

impl Caller {
    /// Whether this key is restricted in any way (models, limits, expiry, a team).
    /// Restricted keys may not mint keys: a minted key would either escape
    /// the restrictions or share their budgets in ways nobody can follow.
    pub fn is_restricted(&self) -> bool {
        self.allowed_models.is_some() || self.limits.any() || self.expires_at.is_some() || self.team.is_some()
    }
}

impl KeyLimits {
    pub fn any(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.daily_spend_cap.is_some() || self.monthly_spend_cap.is_some()
    }
}

impl Caller {
    /// Whether both the key and its team allow the model.
    pub fn may_use_model(&self, requested: &str, provider: &str, model: &str) -> bool {
        let allows = |list: Option<&Vec<String>>| match list {
            None => true,
            Some(list) => list.iter().any(|m| {
                m == requested
                    || m == model
                    || (m.len() == provider.len() + 1 + model.len() && *m == format!("{provider}/{model}"))
            }),
        };
        allows(self.allowed_models.as_ref()) && allows(self.team.as_ref().and_then(|t| t.allowed_models.as_ref()))
    }

    /// Whether the key's calls are admitted against a budget or limit
    /// (its own limits, its team's budget): a key_events row for each.
    pub fn budgeted(&self) -> bool {
        self.limits.any() || self.team.as_ref().is_some_and(|t| t.budget.is_some())
    }
}

/// The shortest `HUB_ADMIN_KEY` Hub accepts: an owner key must not be
/// guessable, even by someone holding a copy of the database.
pub const MIN_ADMIN_KEY_CHARS: usize = 24;

/// Refuses an operator key too short to be safe.
pub fn check_admin_key(key: &str) -> Result<(), String> {
    if key.trim().chars().count() < MIN_ADMIN_KEY_CHARS {
        return Err(format!(
            "HUB_ADMIN_KEY must be at least {MIN_ADMIN_KEY_CHARS} characters (use a random one, e.g. `openssl rand -base64 32`)"
        ));
    }
    Ok(())
}

/// A new key's plaintext (shown once), its hash (stored) and a hint (shown always).
pub struct NewKey {
    pub plaintext: String,
    pub hash: String,
    pub hint: String,
}

/// A new key, or an error when randomness fails (a key from a failed fill would be guessable).
pub fn generate_key(rng: &dyn Rng, secret: &[u8; 32]) -> Result<NewKey, RngError> {
    let mut bytes = [0u8; 24];
    rng.fill(&mut bytes)?;
    let plaintext = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_key(secret, &plaintext);
    let hint = key_hint(&plaintext);
    Ok(NewKey { plaintext, hash, hint })
}

/// The hint shown for a key. Keys of 32 characters or more show their first
/// and last four; shorter ones (an operator's `HUB_ADMIN_KEY`) only their first
/// four, and keys under 16 characters nothing: a hint must never leave a
/// short key guessable.
pub fn key_hint(plaintext: &str) -> String {
    let chars: Vec<char> = plaintext.chars().collect();
    let head: String = chars.iter().take(4).collect();
    match chars.len() {
        n if n >= 32 => format!("{head}…{}", chars[n - 4..].iter().collect::<String>()),
        n if n >= 16 => format!("{head}…"),
        _ => "****".into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

/// A key's stored hash (scheme 2): HMAC-SHA-256, keyed with the secret
/// derived from the master key, of the key's SHA-256 in hex (which is what
/// scheme 1 stored, so old rows are upgraded without their plaintext).
pub fn hash_key(secret: &[u8; 32], plaintext: &str) -> String {
    upgrade_hash(secret, &hex(&Sha256::digest(plaintext.as_bytes())))
}

/// A scheme-1 hash (SHA-256 in hex) as its scheme-2 hash.
pub fn upgrade_hash(secret: &[u8; 32], sha256_hex: &str) -> String {
    hex(&crate::crypto::hmac_sha256(secret, sha256_hex.as_bytes()))
}

pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The key a request carries: `Authorization: Bearer …` or `x-api-key: …`.
pub fn presented_key(headers: &http::HeaderMap) -> Option<&str> {
    if let Some(v) = crate::http::header(headers, "authorization") {
        let v = v.trim();
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v)
            .trim();
        if !token.is_empty() {
            return Some(token);
        }
    }
    crate::http::header(headers, "x-api-key")
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Key hash → caller, with the time each entry was read.
#[derive(Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<String, (Arc<Caller>, i64)>>,
    /// Bumped by every `clear`: a lookup read from the database before a
    /// revocation must not be cached after it.
    generation: std::sync::atomic::AtomicU64,
}

impl KeyCache {
    pub fn get(&self, hash: &str, now_ms: i64, ttl_ms: i64) -> Option<Arc<Caller>> {
        let map = self.entries.read().ok()?;
        let (caller, at) = map.get(hash)?;
        (now_ms - at < ttl_ms && hashes_equal(&caller.key_hash, hash)).then(|| caller.clone())
    }

    /// The generation to hand to `put` for a lookup about to read the database.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Caches a caller read at `generation`, unless the cache was cleared since.
    pub fn put(&self, caller: Arc<Caller>, now_ms: i64, generation: u64) {
        if let Ok(mut map) = self.entries.write() {
            if self.generation() != generation {
                return;
            }
            if map.len() > 100_000 {
                map.clear();
            }
            map.insert(caller.key_hash.clone(), (caller, now_ms));
        }
    }

    /// Forgets every cached key (after a revocation or a role change).
    pub fn clear(&self) {
        if let Ok(mut map) = self.entries.write() {
            self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::tests::CountingRng;
    use std::sync::atomic::AtomicU8;

    #[test]
    fn keys_are_long_prefixed_and_hashed_with_a_secret() {
        let rng = CountingRng(AtomicU8::new(1));
        let secret = [9u8; 32];
        let k = generate_key(&rng, &secret).unwrap();
        assert!(k.plaintext.starts_with("hub_"));
        assert_eq!(k.plaintext.len(), 4 + 32);
        assert_eq!(k.hash, hash_key(&secret, &k.plaintext));
        assert_eq!(k.hash.len(), 64);
        assert_ne!(k.hash, hash_key(&[8u8; 32], &k.plaintext), "the secret matters");
        let sha = hex(&Sha256::digest(k.plaintext.as_bytes()));
        assert_ne!(k.hash, sha, "not a bare SHA-256");
        assert_eq!(upgrade_hash(&secret, &sha), k.hash, "scheme-1 rows upgrade in place");
        assert_eq!(k.hint, format!("hub_…{}", &k.plaintext[32..]));
    }

    #[test]
    fn hints_reveal_little() {
        assert_eq!(key_hint("hub_0123456789abcdef0123456789abcdef"), "hub_…cdef");
        assert_eq!(
            key_hint("hub_0123456789abcdef0123"),
            "hub_…",
            "24 characters: the prefix only"
        );
        assert_eq!(key_hint("hub_0123456789ab"), "hub_…");
        assert_eq!(key_hint("hub_012345"), "****");
        assert_eq!(
            key_hint("aéééééééééééééééééééééééééééééééé"),
            "aééé…éééé",
            "characters, not bytes"
        );
    }

    #[test]
    fn reads_bearer_or_x_api_key() {
        let mut h = http::HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", "hub_b".parse().unwrap());
        assert_eq!(presented_key(&h), Some("hub_b"));
        h.insert("authorization", "Bearer hub_a".parse().unwrap());
        assert_eq!(presented_key(&h), Some("hub_a"));
    }
}
