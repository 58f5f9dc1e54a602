//! Sign-in by emailed link. Asking for a link always gets the same answer,
//! whether or not the address may sign in, so nobody can learn who has an
//! account; a link is sent only to an address that has an account or may
//! sign up. A link works once, for 15 minutes, and only its keyed hash is
//! stored. Requests are limited per address (silently: a refusal would tell)
//! and per IP (a 429: that tells nothing about any address).

use super::people::{self, Method, Proven, EMAIL_ISSUER};
use super::sessions::{self, Site};
use super::{hash_secret, is_email, is_local_path, new_secret, normal_email};
use crate::error::ApiError;
use crate::http::{json, Request, Response, StatusCode};
use crate::hub::Hub;
use crate::ports::{Mail, SmtpServer};
use crate::store::NewEmailLink;
use serde_json::json;

const LINK_TTL_MS: i64 = 15 * 60_000;
/// Links sent to one address per window (more are dropped silently).
const PER_ADDRESS: i64 = 3;
const ADDRESS_WINDOW_MS: i64 = 15 * 60_000;
/// Requests from one IP per hour (more get a 429).
const PER_IP: i64 = 20;
const IP_WINDOW_MS: i64 = 3_600_000;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    email: String,
    #[serde(default)]
    return_to: Option<String>,
}

/// The SMTP server from the settings, when email sign-in can work on this runtime.
pub(crate) fn server(hub: &Hub, s: &super::settings::SignInSettings) -> Option<SmtpServer> {
    hub.mailer()?;
    let (host, from) = (s.smtp_host.clone()?, s.smtp_from.clone()?);
    let password = match &s.smtp_password {
        Some(sealed) => Some(hub.master_key().decrypt(&sealed.0).ok()?),
        None => None,
    };
    Some(SmtpServer {
        host,
        port: s.smtp_port,
        username: s.smtp_username.clone(),
        password,
        from,
        security: s.smtp_security,
    })
}

fn accepted() -> Response {
    json(
        StatusCode::ACCEPTED,
        &json!({"message": "If this address may sign in, a sign-in link is on its way. It works once, for 15 minutes."}),
    )
}

/// `POST /auth/email {"email", "return_to"?}`.
pub(crate) async fn request(hub: &Hub, req: &Request, site: &Site) -> Result<Response, ApiError> {
    let body: LinkRequest = serde_json::from_slice(req.body())
        .map_err(|e| ApiError::bad_request(format!("Send {{\"email\": \"you@example.com\"}}: {e}")))?;
    let email = normal_email(&body.email);
    if !is_email(&email) {
        return Err(ApiError::invalid_field("email", "must be an email address"));
    }
    let return_to = body.return_to.filter(|p| !p.is_empty());
    if return_to.as_deref().is_some_and(|p| !is_local_path(p)) {
        return Err(ApiError::invalid_field(
            "return_to",
            "must be a path on this site, like /#/account",
        ));
    }
    let snap = hub.snapshot().await?;
    let Some(smtp) = server(hub, &snap.settings.sign_in) else {
        return Err(ApiError::not_found(
            "Sign-in by email link is not available on this Hub.",
        ));
    };
    let ip = client_ip(req);
    let now = hub.now_ms();
    let (by_email, by_ip) = hub
        .store()
        .email_link_requests(&email, now - ADDRESS_WINDOW_MS, &ip, now - IP_WINDOW_MS)
        .await?;
    if by_ip >= PER_IP {
        return Err(
            ApiError::rate_limited("Too many sign-in link requests from here; try again in an hour.")
                .with_retry_after_ms(IP_WINDOW_MS),
        );
    }
    let send = by_email < PER_ADDRESS && may_sign_in(hub, &snap.settings.sign_in, &email).await?;
    let token = if send { Some(random(hub)?) } else { None };
    let token_hash = token.as_deref().map(|t| link_hash(hub, t));
    hub.store()
        .insert_email_link(&NewEmailLink {
            id: &hub.new_id("eml"),
            email: &email,
            ip: &ip,
            token_hash: token_hash.as_deref(),
            return_to: return_to.as_deref(),
            now_ms: now,
            expires_at: now + LINK_TTL_MS,
        })
        .await?;
    if let Some(token) = token {
        let link = format!("{}/auth/email/verify?token={token}", site.url);
        deliver(hub, smtp, mail(&snap.settings.app_name, &email, &link));
    }
    Ok(accepted())
}

/// Whether a link may go to this address: it has an enabled account, or may sign up.
async fn may_sign_in(hub: &Hub, s: &super::settings::SignInSettings, email: &str) -> Result<bool, ApiError> {
    if let Some(identity) = hub.store().identity(EMAIL_ISSUER, email).await? {
        return Ok(hub
            .store()
            .get_user(&identity.user_id)
            .await?
            .is_some_and(|u| !u.disabled));
    }
    Ok(match hub.store().user_by_email(email).await? {
        Some(u) => !u.disabled,
        None => s.may_sign_up(email) || hub.options().admin_email.as_deref() == Some(email),
    })
}

fn mail(app_name: &str, to: &str, link: &str) -> Mail {
    Mail {
        to: to.to_string(),
        subject: format!("Sign in to {app_name}"),
        text: format!(
            "Open this link to sign in to {app_name}:\n\n{link}\n\nIt works once, for the next 15 minutes. \
             If you did not ask to sign in, ignore this message: nothing happens without the link."
        ),
        html: None,
    }
}

/// Sends after the answer, so the answer takes as long whether or not a
/// link is sent (its timing must not tell either).
fn deliver(hub: &Hub, smtp: SmtpServer, mail: Mail) {
    let hub2 = hub.clone();
    hub.background().spawn(Box::pin(async move {
        let Some(mailer) = hub2.mailer() else { return };
        match mailer.send(&smtp, &mail).await {
            Ok(()) => tracing::info!("sent a sign-in link"),
            Err(e) => tracing::error!(smtp = %smtp.host, "could not send a sign-in link: {e}"),
        }
    }));
}

fn random(hub: &Hub) -> Result<String, ApiError> {
    new_secret(hub.rng()).map_err(|e| {
        tracing::error!("{e}");
        ApiError::unavailable("Hub could not get randomness from the platform; retry in a moment.")
    })
}

fn link_hash(hub: &Hub, token: &str) -> String {
    hash_secret(hub.master_key().key_hash_secret(), "email-link", token)
}

/// The caller's address as this runtime knows it (the server's peer; a
/// Worker's `cf-connecting-ip`), else one bucket for everyone unknown.
pub(crate) fn client_ip(req: &Request) -> String {
    if let Some(peer) = req.extensions().get::<crate::http::PeerAddr>() {
        return peer.0.to_canonical().to_string();
    }
    crate::http::header(req.headers(), "cf-connecting-ip")
        .filter(|v| v.parse::<std::net::IpAddr>().is_ok())
        .unwrap_or("unknown")
        .to_string()
}

/// `GET /auth/email/verify?token=…`: signs in once per link.
pub(crate) async fn verify(hub: &Hub, req: &Request, site: &Site) -> Result<Response, ApiError> {
    let query = crate::http::query_pairs(req.uri());
    let token = query
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let used = hub
        .store()
        .consume_email_link(&link_hash(hub, token), hub.now_ms())
        .await?;
    let Some((email, return_to)) = used else {
        return Err(ApiError::forbidden(
            "This sign-in link has expired or was already used. Ask for a new one.",
        ));
    };
    let proven = Proven {
        method: Method::Email,
        issuer: EMAIL_ISSUER.into(),
        subject: email.clone(),
        email: Some(email),
        email_verified: true,
        name: None,
    };
    let user = people::sign_in(hub, &proven, None).await?;
    let cookie = sessions::open(hub, req, &user.id, Method::Email, site).await?;
    let mut res = super::pages::redirect(&site.local(return_to.as_deref().unwrap_or("/")));
    crate::http::append_header(&mut res, "set-cookie", &cookie);
    Ok(res)
}
