//! The sign-in routes (`/auth/*`, browser-facing: failures are a small page,
//! not JSON, where a person lands on them) and the account routes
//! (`/api/me/sessions`, `/api/me/identities`).

use super::pages::page;
use super::sessions::{self, Site};
use super::{email, oidc};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{json, Body, Request, Response, StatusCode};
use crate::hub::Hub;
use serde_json::json;

/// This Hub for sign-in: https, or http on a loopback host (local
/// development); anything else would set cookies a browser drops, so it is
/// refused with what to do.
async fn site(hub: &Hub, req: &Request) -> Result<Site, ApiError> {
    let snap = hub.snapshot().await?;
    let url = crate::origin::app_url(req, snap.settings.app_url.as_deref(), &hub.options().trusted_proxies)
        .url()
        .to_string();
    if url.starts_with("https://") {
        return Ok(Site::new(url, true));
    }
    let host = url::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_owned));
    let loopback = host.as_deref().is_some_and(|h| {
        h == "localhost"
            || h.trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if loopback {
        return Ok(Site::new(url, false));
    }
    Err(ApiError::bad_request(format!(
        "Sign-in needs HTTPS: this Hub is reached at {url}. Set the app_url setting to its https:// address."
    )))
}

/// A browser-facing sign-in step: its answer, or its failure as a page.
async fn browser<F, Fut>(hub: &Hub, req: &Request, step: F) -> Result<Response, ApiError>
where
    F: FnOnce(Site) -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    let result = match site(hub, req).await {
        Ok(site) => step(site).await,
        Err(e) => Err(e),
    };
    Ok(result.unwrap_or_else(page))
}

pub(crate) async fn oidc_start(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    browser(hub, req, |site| async move { oidc::start(hub, req, &site).await }).await
}

pub(crate) async fn oidc_callback(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    browser(hub, req, |site| async move { oidc::callback(hub, req, &site).await }).await
}

pub(crate) async fn email_verify(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    browser(hub, req, |site| async move { email::verify(hub, req, &site).await }).await
}

/// `POST /auth/email` (JSON errors: the sign-in page calls it).
pub(crate) async fn email_request(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let site = site(hub, req).await?;
    email::request(hub, req, &site).await
}

/// `GET /auth/methods`: what the sign-in page offers.
pub(crate) async fn methods(hub: &Hub) -> Result<Response, ApiError> {
    let snap = hub.snapshot().await?;
    let s = &snap.settings.sign_in;
    Ok(json(
        StatusCode::OK,
        &json!({
            "oidc": s.oidc_configured(),
            "email": email::server(hub, s).is_some(),
            "signup_open": s.signup_open,
            "app_name": snap.settings.app_name,
        }),
    ))
}

/// `POST /auth/logout`: ends the request's session (a write: it needs the
/// CSRF token) and removes the cookie.
pub(crate) async fn logout(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let site = site(hub, req).await?;
    if let Some(caller) = sessions::caller(hub, req).await {
        let caller = caller?;
        hub.store()
            .revoke_session(&caller.user_id, &caller.key_id, hub.now_ms())
            .await?;
        hub.keys().clear();
    }
    let mut res = http::Response::new(Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    crate::http::append_header(
        &mut res,
        "set-cookie",
        &site.clear_cookie(sessions::SESSION_COOKIE, "/"),
    );
    Ok(res)
}

/// `GET /api/me/sessions`: the user's live sessions, this one marked.
pub(crate) async fn list_sessions(hub: &Hub, caller: &Caller) -> Result<Response, ApiError> {
    let sessions = hub.store().sessions_of(&caller.user_id, hub.now_ms()).await?;
    let data: Vec<_> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "user_agent": s.user_agent,
                "method": s.method,
                "created_at": crate::time::iso8601(s.created_at),
                "last_seen_at": crate::time::iso8601(s.last_seen_at),
                "expires_at": crate::time::iso8601(s.expires_at),
                "current": caller.session && caller.key_id == s.id,
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({"data": data})))
}

/// `DELETE /api/me/sessions/{id}`.
pub(crate) async fn revoke_session(hub: &Hub, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    if !hub.store().revoke_session(&caller.user_id, id, hub.now_ms()).await? {
        return Err(ApiError::not_found(format!("You have no live session {id}.")));
    }
    hub.keys().clear();
    Ok(no_content())
}

/// `GET /api/me/identities`: the ways the user signs in.
pub(crate) async fn list_identities(hub: &Hub, caller: &Caller) -> Result<Response, ApiError> {
    let identities = hub.store().identities_of(&caller.user_id).await?;
    let data: Vec<_> = identities
        .iter()
        .map(|i| {
            json!({
                "id": i.id,
                "method": if i.issuer == super::people::EMAIL_ISSUER { "email" } else { "oidc" },
                "issuer": i.issuer,
                "email": i.email,
                "created_at": crate::time::iso8601(i.created_at),
                "last_used_at": crate::time::iso8601(i.last_used_at),
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({"data": data})))
}

/// `DELETE /api/me/identities/{id}`: unlinks one (its sessions stay until they end).
pub(crate) async fn unlink_identity(hub: &Hub, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    if !hub.store().delete_identity(&caller.user_id, id).await? {
        return Err(ApiError::not_found(format!("You have no sign-in {id}.")));
    }
    Ok(no_content())
}

fn no_content() -> Response {
    let mut res = http::Response::new(Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

/// The session part of `GET /api/me` for a session caller: its id and CSRF token.
pub(crate) fn session_view(hub: &Hub, req: &Request, caller: &Caller) -> serde_json::Value {
    match (caller.session, sessions::token(req)) {
        (true, Some(token)) => json!({"id": caller.key_id, "csrf_token": sessions::csrf_token(hub, token)}),
        _ => serde_json::Value::Null,
    }
}
