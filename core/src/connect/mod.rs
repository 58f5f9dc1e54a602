//! `aigne hub connect`: how the AIGNE CLI gets an API key, as AIGNE Hub's
//! Blocklet service hands it one (the CLI's `utils/aigne-hub/credential.js`).
//!
//! 1. The CLI opens a session: `POST /.well-known/service/api/access-key/session`
//!    answers a random session id (the `sid`).
//! 2. It opens `/.well-known/service/gen-simple-access-key?__token__=<base64url(sid)>&appName=…`
//!    in the browser; Hub sends that to the admin site's `#/connect` page,
//!    where the person signs in if needed and approves or denies.
//! 3. Approving (`POST /api/me/connect`, as that person) mints a key for them,
//!    labelled with the app name, and stores it in the session encrypted as
//!    the CLI's `decrypt(accessKeySecret, accessKeyId, challenge)` reads it.
//! 4. The CLI polls `GET …/session?sid=` until the key is there, then ends
//!    the session with `DELETE …/session?sid=`.
//!
//! The session id is the only thing that retrieves the key: the database
//! keeps its keyed hash, sessions live 10 minutes, are decided once, and the
//! scheduled job deletes them after expiry.

pub mod cryptojs;

use crate::accounts::{client_ip, hash_secret, new_secret};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{json, Request, Response, StatusCode};
use crate::hub::Hub;
use crate::store::{Approval, ConnectSession, ConnectStatus, NewKeyRow};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

/// How long the CLI has to get its key approved and picked up.
pub const SESSION_TTL_MS: i64 = 10 * 60 * 1000;
/// Live sessions one address may hold open at once.
pub const PER_IP: i64 = 20;
/// The label of a key approved without an app name.
const DEFAULT_LABEL: &str = "AIGNE CLI";
const LABEL_MAX_CHARS: usize = 64;

fn sid_hash(hub: &Hub, sid: &str) -> String {
    hash_secret(hub.master_key().key_hash_secret(), "cli-connect", sid)
}

fn no_randomness(e: crate::ports::RngError) -> ApiError {
    tracing::error!("{e}");
    ApiError::unavailable("Hub could not get randomness from the platform; retry in a moment.")
}

fn query(req: &Request, name: &str) -> Option<String> {
    crate::http::query_pairs(req.uri())
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn gone() -> ApiError {
    ApiError::not_found("No such connect session: it has expired, was ended, or never existed.")
}

/// `POST /.well-known/service/api/access-key/session`: opens a session.
pub async fn open(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let ip = client_ip(req);
    let now = hub.now_ms();
    if hub.store().live_connect_sessions_from(&ip, now).await? >= PER_IP {
        return Err(ApiError::rate_limited(
            "Too many connect sessions open from here; finish one or wait ten minutes.",
        )
        .with_retry_after_ms(SESSION_TTL_MS));
    }
    let sid = new_secret(hub.rng()).map_err(no_randomness)?;
    let expires_at = now + SESSION_TTL_MS;
    hub.store()
        .open_connect_session(&sid_hash(hub, &sid), &ip, now, expires_at)
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"id": sid, "status": "pending", "expiresAt": crate::time::iso8601(expires_at)}),
    ))
}

/// `GET …/session?sid=`: the session's state, with the key once approved.
pub async fn poll(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let sid = query(req, "sid").ok_or_else(|| ApiError::invalid_field("sid", "is required"))?;
    let session = hub
        .store()
        .connect_session(&sid_hash(hub, &sid), hub.now_ms())
        .await?
        .ok_or_else(gone)?;
    let mut body = json!({"id": sid, "status": session.status.as_str()});
    if let ConnectSession {
        status: ConnectStatus::Approved,
        key_id: Some(key_id),
        sealed_secret: Some(sealed),
        challenge: Some(challenge),
        ..
    } = session
    {
        let secret = hub.master_key().decrypt(&sealed).map_err(|e| {
            tracing::error!("a connect session's key could not be unsealed: {e}");
            ApiError::internal("The approved key could not be read; connect again.")
        })?;
        body["accessKeyId"] = json!(key_id);
        body["accessKeySecret"] = json!(secret);
        body["challenge"] = json!(challenge);
    }
    Ok(json(StatusCode::OK, &body))
}

/// `DELETE …/session?sid=`: ends the session; its key is no longer handed out.
pub async fn end(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let sid = query(req, "sid").ok_or_else(|| ApiError::invalid_field("sid", "is required"))?;
    if !hub
        .store()
        .end_connect_session(&sid_hash(hub, &sid), hub.now_ms())
        .await?
    {
        return Err(gone());
    }
    Ok(json(StatusCode::OK, &json!({"id": sid, "status": "ended"})))
}

/// `GET /.well-known/service/gen-simple-access-key?…`: the page the CLI
/// opens is the admin site's `#/connect`, which gets the same query.
pub async fn page(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let snap = hub.snapshot().await?;
    let url = crate::origin::app_url(req, snap.settings.app_url.as_deref(), &hub.options().trusted_proxies);
    let prefix = url::Url::parse(url.url())
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    let query = req.uri().query().unwrap_or("");
    let mut res = http::Response::new(crate::http::Body::empty());
    *res.status_mut() = StatusCode::FOUND;
    crate::http::set_header(&mut res, "location", &format!("{prefix}/#/connect?{query}"));
    crate::http::set_header(&mut res, "cache-control", "no-store");
    Ok(res)
}

/// The session id a page's `__token__` carries (base64url of the id).
fn sid_of_token(token: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid_field("token", "is not a connect token"))
}

/// `GET /api/me/connect?token=`: whether the session the page shows is still waiting.
pub async fn check(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let token = query(req, "token").ok_or_else(|| ApiError::invalid_field("token", "is required"))?;
    let sid = sid_of_token(&token)?;
    let session = hub
        .store()
        .connect_session(&sid_hash(hub, &sid), hub.now_ms())
        .await?
        .ok_or_else(gone)?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "status": session.status.as_str(),
            "created_at": crate::time::iso8601(session.created_at),
            "expires_at": crate::time::iso8601(session.expires_at),
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    token: String,
    approve: bool,
    #[serde(default)]
    app_name: Option<String>,
}

/// `POST /api/me/connect {"token", "approve", "app_name"?}`: the signed-in
/// person approves (a key for them) or denies the session, once.
pub async fn decide(hub: &Hub, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
    let d: Decision = crate::protocols::parse_body(req.body())?;
    let hash = sid_hash(hub, &sid_of_token(&d.token)?);
    let now = hub.now_ms();
    if !d.approve {
        if !hub.store().deny_connect_session(&hash, &caller.user_id, now).await? {
            return Err(undecidable(hub, &hash, now).await);
        }
        return Ok(json(StatusCode::OK, &json!({"status": "denied"})));
    }
    if caller.is_restricted() {
        return Err(ApiError::forbidden(
            "A key with allowed models, limits or an expiry cannot approve a new key; sign in another way.",
        ));
    }
    approve(hub, caller, &hash, &label(d.app_name.as_deref()), now).await
}

/// Mints the person's key and stores it in the session for the CLI.
async fn approve(hub: &Hub, caller: &Caller, hash: &str, label: &str, now: i64) -> Result<Response, ApiError> {
    let new = hub.generate_key()?;
    let id = hub.new_id("key");
    let mut salt = [0u8; 8];
    hub.rng().fill(&mut salt).map_err(no_randomness)?;
    let challenge = new_secret(hub.rng()).map_err(no_randomness)?;
    let for_cli = cryptojs::encrypt(&new.plaintext, &id, &challenge, salt);
    let sealed = hub.master_key().encrypt(&for_cli, hub.rng()).map_err(no_randomness)?;
    let key = NewKeyRow {
        id: &id,
        user_id: &caller.user_id,
        label,
        key_hash: &new.hash,
        key_hint: &new.hint,
        expires_at: None,
        allowed_models: None,
        rpm_limit: None,
        tpm_limit: None,
        daily_spend_cap: None,
        monthly_spend_cap: None,
        now_ms: now,
        // As through /api/me/keys: a key minted by a key is revoked with it.
        parent_key_id: (!caller.session).then_some(caller.key_id.as_str()),
        // A key for the AIGNE CLI is the user's own, outside any team.
        team_id: None,
    };
    let approval = Approval {
        key: &key,
        sealed_secret: &sealed,
        challenge: &challenge,
    };
    if !hub.store().approve_connect_session(hash, &approval, now).await? {
        return Err(undecidable(hub, hash, now).await);
    }
    Ok(json(
        StatusCode::CREATED,
        &json!({"status": "approved", "key": {"id": id, "label": label, "key_hint": new.hint}}),
    ))
}

/// Why a decision could not be taken: decided already (409) or gone (404).
async fn undecidable(hub: &Hub, hash: &str, now: i64) -> ApiError {
    match hub.store().connect_session(hash, now).await {
        Ok(Some(s)) => ApiError::conflict(format!("This connect request was already {}.", s.status.as_str())),
        Ok(None) => gone(),
        Err(e) => e.into(),
    }
}

/// The key's label: the app name the CLI put in the page's address
/// (it sends it with a leading space), tidied and bounded.
fn label(app_name: Option<&str>) -> String {
    let cleaned: String = app_name
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(LABEL_MAX_CHARS)
        .collect();
    if cleaned.is_empty() {
        DEFAULT_LABEL.to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_base64url_session_ids() {
        // The CLI's encodeEncryptionKey: base64 with + / = made URL-safe.
        let sid = "Ab-_c9";
        let token = URL_SAFE_NO_PAD.encode(sid);
        assert_eq!(sid_of_token(&token).unwrap(), sid);
        assert_eq!(sid_of_token(&format!("{token}==")).unwrap(), sid);
        assert!(sid_of_token("%%%").is_err());
        assert!(sid_of_token("").is_err());
    }

    #[test]
    fn labels_are_tidied_and_bounded() {
        assert_eq!(label(Some(" AIGNE CLI")), "AIGNE CLI");
        assert_eq!(label(Some("  ")), DEFAULT_LABEL);
        assert_eq!(label(None), DEFAULT_LABEL);
        assert_eq!(label(Some("my\napp\u{7}")), "myapp");
        assert_eq!(label(Some(&"x".repeat(100))).len(), LABEL_MAX_CHARS);
    }
}
