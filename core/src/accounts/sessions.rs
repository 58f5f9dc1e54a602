//! Browser sessions. The cookie holds a random token; the database keeps
//! only its keyed hash, with the user agent and an expiry that slides
//! forward (at most once an hour, so a busy session is not a write per
//! request). A session signs its user in wherever a key would.
//!
//! CSRF: a cookie is sent by the browser whatever page makes the request, so
//! every write (any method but GET, HEAD, OPTIONS) authenticated by the
//! cookie must also carry `X-CSRF-Token`, a token derived from the session's
//! own secret (HMAC under a key only Hub holds) that a page can only learn
//! from `GET /api/me` — which another origin's page cannot read. A write
//! whose `Origin` is not this Hub's is refused too. Keys are not cookies
//! and need neither. `SameSite=Lax` keeps the cookie off cross-site
//! subrequests besides.

use super::{hash_secret, new_secret};
use crate::auth::{hashes_equal, Caller};
use crate::error::ApiError;
use crate::http::{Method, Request};
use crate::hub::Hub;
use crate::store::NewSession;
use std::sync::Arc;

pub const SESSION_COOKIE: &str = "hub_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
const DAY_MS: i64 = 86_400_000;
/// How stale `last_seen_at` may get before the expiry slides forward.
const SLIDE_EVERY_MS: i64 = 3_600_000;

/// The value of a request's cookie `name`, if it sent one.
pub(crate) fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// This Hub as a browser sees it: its public URL (which may have a path,
/// for a Hub mounted under a prefix), and how its cookies are set: `Secure`
/// except over http to a loopback host (local development), where a browser
/// would drop a secure cookie.
#[derive(Debug, Clone)]
pub struct Site {
    /// The public URL, without a trailing slash.
    pub url: String,
    pub secure: bool,
    /// The URL's path (`""` at the root).
    prefix: String,
}

impl Site {
    pub fn new(url: String, secure: bool) -> Site {
        let prefix = url::Url::parse(&url)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        Site { url, secure, prefix }
    }

    /// A path of this site as the browser addresses it (under the prefix).
    pub fn local(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// `Set-Cookie` for a cookie only Hub reads, sent back to `path` and below.
    pub fn set_cookie(&self, name: &str, value: &str, path: &str, max_age_s: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        let path = self.local(path);
        format!("{name}={value}; Path={path}; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}")
    }

    /// `Set-Cookie` that removes a cookie.
    pub fn clear_cookie(&self, name: &str, path: &str) -> String {
        self.set_cookie(name, "", path, 0)
    }
}

/// The session token's stored hash.
fn token_hash(hub: &Hub, token: &str) -> String {
    hash_secret(hub.master_key().key_hash_secret(), "session", token)
}

/// The CSRF token of the session with this token.
pub(crate) fn csrf_token(hub: &Hub, token: &str) -> String {
    hash_secret(hub.master_key().key_hash_secret(), "csrf", token)
}

/// Opens a session for a user; returns its `Set-Cookie`.
pub(crate) async fn open(
    hub: &Hub,
    req: &Request,
    user_id: &str,
    method: super::people::Method,
    site: &Site,
) -> Result<String, ApiError> {
    let token = new_secret(hub.rng()).map_err(|e| {
        tracing::error!("{e}");
        ApiError::unavailable("Hub could not get randomness from the platform; retry in a moment.")
    })?;
    let days = hub.snapshot().await?.settings.sign_in.session_days;
    let now = hub.now_ms();
    let user_agent = crate::http::header(req.headers(), "user-agent").map(|ua| truncate(ua, 256));
    hub.store()
        .insert_session(&NewSession {
            id: &hub.new_id("ses"),
            user_id,
            token_hash: &token_hash(hub, &token),
            user_agent: user_agent.as_deref(),
            method: method.as_str(),
            now_ms: now,
            expires_at: now + days * DAY_MS,
        })
        .await?;
    Ok(site.set_cookie(SESSION_COOKIE, &token, "/", days * 86_400))
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The caller a request's session cookie signs in, if it sent one: the
/// caller, or a 401 (unknown, ended or expired) or 403 (a write without
/// its CSRF token).
pub(crate) async fn caller(hub: &Hub, req: &Request) -> Option<Result<Arc<Caller>, ApiError>> {
    let token = cookie(req, SESSION_COOKIE)?;
    Some(match live(hub, token).await {
        Ok(caller) => check_csrf(hub, req, token).await.map(|()| caller),
        Err(e) => Err(e),
    })
}

async fn live(hub: &Hub, token: &str) -> Result<Arc<Caller>, ApiError> {
    let hash = token_hash(hub, token);
    let now = hub.now_ms();
    if let Some(c) = hub.keys().get(&hash, now, hub.options().key_cache_ttl_ms) {
        return Ok(c);
    }
    let generation = hub.keys().generation();
    let found = hub.store().session_by_token_hash(&hash, now).await?;
    let session = found.ok_or_else(|| ApiError::unauthorized("Your session has ended; sign in again."))?;
    if now - session.last_seen_at > SLIDE_EVERY_MS {
        let days = hub.snapshot().await?.settings.sign_in.session_days;
        hub.store()
            .touch_session(&session.caller.key_id, now, now + days * DAY_MS)
            .await?;
    }
    let caller = Arc::new(session.caller);
    hub.keys().put(caller.clone(), now, generation);
    Ok(caller)
}

/// Refuses a write authenticated by the cookie without the session's CSRF
/// token, or from another origin.
async fn check_csrf(hub: &Hub, req: &Request, token: &str) -> Result<(), ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    if let Some(origin) = crate::http::header(req.headers(), "origin") {
        let own = own_origin(hub, req);
        let configured = hub.snapshot().await?.settings.app_url.clone();
        let configured = configured
            .and_then(|u| url::Url::parse(&u).ok())
            .map(|u| u.origin().ascii_serialization());
        let allowed = origin == own
            || configured.as_deref() == Some(origin)
            || hub.options().cors_origins.iter().any(|o| o == origin);
        if !allowed {
            return Err(ApiError::forbidden(format!(
                "A signed-in browser may only write from this Hub's own pages ({own}), not from {origin}."
            )));
        }
    }
    let sent = crate::http::header(req.headers(), CSRF_HEADER).unwrap_or("");
    if !hashes_equal(sent, &csrf_token(hub, token)) {
        return Err(ApiError::forbidden(
            "This write is authenticated by a session cookie and needs its CSRF token in the X-CSRF-Token header (from GET /api/me).",
        ));
    }
    Ok(())
}

/// This Hub's origin as the request reached it.
fn own_origin(hub: &Hub, req: &Request) -> String {
    crate::origin::app_url(req, None, &hub.options().trusted_proxies)
        .url()
        .to_string()
}

/// The token of the session a request is signed in with, if any.
pub(crate) fn token(req: &Request) -> Option<&str> {
    cookie(req, SESSION_COOKIE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut req = http::Request::new(bytes::Bytes::new());
        req.headers_mut()
            .insert("cookie", "a=1; hub_session=tok; b=2".parse().unwrap());
        assert_eq!(cookie(&req, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&req, "hub"), None);
        let site = Site::new("https://hub.example.com".into(), true);
        assert_eq!(
            site.set_cookie("n", "v", "/", 60),
            "n=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        let mounted = Site::new("http://127.0.0.1:8787/hub/".into(), false);
        assert_eq!(mounted.local("/#/account"), "/hub/#/account");
        let cleared = mounted.clear_cookie("n", "/auth/oidc");
        assert!(
            cleared.contains("Path=/hub/auth/oidc; Max-Age=0") && !cleared.contains("Secure"),
            "{cleared}"
        );
    }
}
