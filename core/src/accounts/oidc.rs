//! Sign-in with an OpenID provider: the authorization code flow with PKCE
//! (S256) and a nonce. The flow's secrets (state, nonce, code verifier,
//! where to return) travel in a short-lived HttpOnly cookie sealed under the
//! master key, so any instance can finish a flow another one started and
//! nothing is stored until someone is signed in. The provider's discovery
//! document and keys are cached per instance for an hour; the keys are
//! fetched again when a token names a key Hub has not seen (a rotation).

use super::discovery::{Discovery, Provider};
use super::people::{self, Method, Proven};
use super::sessions::{self, Site};
use super::settings::SignInSettings;
use crate::auth::jwt::{self, Expected, IdToken, Jwks};
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::hub::Hub;
use crate::ports::{Timeouts, UpstreamRequest};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

pub const FLOW_COOKIE: &str = "hub_oidc";
const FLOW_PATH: &str = "/auth/oidc";
/// How long someone has to finish signing in at the provider.
const FLOW_TTL_MS: i64 = 10 * 60_000;
/// How long a discovery document and keys are trusted.
const CACHE_TTL_MS: i64 = 3_600_000;
/// The least time between two fetches of the keys for an unknown `kid`.
const JWKS_REFETCH_MS: i64 = 30_000;
/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_S: i64 = 120;
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// The flow in progress, sealed in the flow cookie.
#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
    /// The signed-in user linking this identity from their account page.
    link_user: Option<String>,
    expires_at: i64,
}

/// The settings' provider, when OpenID Connect is configured.
struct Client {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    scopes: String,
}

fn client(hub: &Hub, s: &SignInSettings) -> Result<Client, ApiError> {
    let (Some(issuer), Some(client_id)) = (&s.oidc_issuer, &s.oidc_client_id) else {
        return Err(ApiError::not_found(
            "Sign-in with an OpenID provider is not configured on this Hub.",
        ));
    };
    let client_secret = match &s.oidc_client_secret {
        Some(sealed) => Some(hub.master_key().decrypt(&sealed.0).map_err(|e| {
            tracing::error!("oidc_client_secret: {e}");
            ApiError::unavailable("The OpenID client secret cannot be read with this master key; set it again.")
        })?),
        None => None,
    };
    Ok(Client {
        issuer: issuer.clone(),
        client_id: client_id.clone(),
        client_secret,
        scopes: s.oidc_scopes.clone(),
    })
}

/// The callback URL registered with the provider: `{app_url}/auth/oidc/callback`.
fn redirect_uri(site_url: &str) -> String {
    format!("{site_url}/auth/oidc/callback")
}

fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn random(hub: &Hub) -> Result<String, ApiError> {
    super::new_secret(hub.rng()).map_err(|e| {
        tracing::error!("{e}");
        ApiError::unavailable("Hub could not get randomness from the platform; retry in a moment.")
    })
}

/// `GET /auth/oidc/start?return_to=/path[&link=1]`: to the provider's
/// sign-in page, with the flow cookie.
pub(crate) async fn start(hub: &Hub, req: &Request, site: &Site) -> Result<Response, ApiError> {
    let snap = hub.snapshot().await?;
    let client = client(hub, &snap.settings.sign_in)?;
    let query = crate::http::query_pairs(req.uri());
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let return_to = param("return_to").unwrap_or("/");
    if !super::is_local_path(return_to) {
        return Err(ApiError::invalid_field(
            "return_to",
            "must be a path on this site, like /#/account",
        ));
    }
    let link_user = match param("link") {
        Some("1" | "true") => Some(linking_user(hub, req).await?),
        _ => None,
    };
    let provider = provider(hub, &client.issuer).await?;
    let flow = Flow {
        state: random(hub)?,
        nonce: random(hub)?,
        verifier: random(hub)?,
        return_to: return_to.to_string(),
        link_user,
        expires_at: hub.now_ms() + FLOW_TTL_MS,
    };
    let mut url = url::Url::parse(&provider.discovery.authorization_endpoint)
        .map_err(|_| ApiError::unavailable("The OpenID provider's authorization endpoint is not a URL."))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", &redirect_uri(&site.url))
        .append_pair("scope", &client.scopes)
        .append_pair("state", &flow.state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &pkce_challenge(&flow.verifier))
        .append_pair("code_challenge_method", "S256");
    // Sealed, then base64url: cookie values pass through proxies (a Function
    // URL's) that may decode `+` or trim `=`.
    let sealed = URL_SAFE_NO_PAD.encode(hub.seal(&serde_json::to_string(&flow).unwrap_or_default())?);
    let mut res = super::pages::redirect(url.as_str());
    crate::http::append_header(
        &mut res,
        "set-cookie",
        &site.set_cookie(FLOW_COOKIE, &sealed, FLOW_PATH, FLOW_TTL_MS / 1000),
    );
    Ok(res)
}

/// The user a `link=1` flow links to: the one the request's session signs in.
async fn linking_user(hub: &Hub, req: &Request) -> Result<String, ApiError> {
    match sessions::caller(hub, req).await {
        Some(Ok(caller)) => Ok(caller.user_id.clone()),
        Some(Err(e)) => Err(e),
        None => Err(ApiError::unauthorized(
            "Sign in first to link another way of signing in.",
        )),
    }
}

/// `GET /auth/oidc/callback?code=…&state=…`: checks the flow, exchanges the
/// code, verifies the ID token, signs the person in (creating or linking
/// their account) and opens a session. Nothing is written before every
/// check has passed.
pub(crate) async fn callback(hub: &Hub, req: &Request, site: &Site) -> Result<Response, ApiError> {
    let flow = flow(hub, req)?;
    let query = crate::http::query_pairs(req.uri());
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if !crate::auth::hashes_equal(param("state").unwrap_or(""), &flow.state) {
        return Err(ApiError::bad_request(
            "This sign-in does not match the one this browser started; start again.",
        ));
    }
    if let Some(error) = param("error") {
        let detail = param("error_description").unwrap_or(error);
        return Err(ApiError::forbidden(format!(
            "The identity provider did not sign you in: {detail}"
        )));
    }
    let code = param("code").ok_or_else(|| ApiError::bad_request("The identity provider sent no code."))?;
    let snap = hub.snapshot().await?;
    let client = client(hub, &snap.settings.sign_in)?;
    let token = exchange(hub, &client, code, &flow.verifier, &site.url).await?;
    let id = verify(hub, &client, &token, &flow.nonce).await?;
    let proven = Proven {
        method: Method::Oidc,
        issuer: client.issuer.clone(),
        subject: id.sub,
        email: id.email,
        email_verified: id.email_verified,
        name: id.name,
    };
    let user = people::sign_in(hub, &proven, flow.link_user.as_deref()).await?;
    let mut res = super::pages::redirect(&site.local(&flow.return_to));
    if flow.link_user.is_none() {
        let cookie = sessions::open(hub, req, &user.id, Method::Oidc, site).await?;
        crate::http::append_header(&mut res, "set-cookie", &cookie);
    }
    crate::http::append_header(&mut res, "set-cookie", &site.clear_cookie(FLOW_COOKIE, FLOW_PATH));
    Ok(res)
}

/// The flow this browser started, from its cookie.
fn flow(hub: &Hub, req: &Request) -> Result<Flow, ApiError> {
    let expired =
        || ApiError::bad_request("This sign-in was not started in this browser or took too long; start again.");
    let cookie = sessions::cookie(req, FLOW_COOKIE).ok_or_else(expired)?;
    let sealed = URL_SAFE_NO_PAD.decode(cookie).map_err(|_| expired())?;
    let sealed = String::from_utf8(sealed).map_err(|_| expired())?;
    let text = hub.master_key().decrypt(&sealed).map_err(|_| expired())?;
    let flow: Flow = serde_json::from_str(&text).map_err(|_| expired())?;
    if flow.expires_at < hub.now_ms() {
        return Err(expired());
    }
    Ok(flow)
}

/// The provider's answer to the code: its ID token.
async fn exchange(hub: &Hub, client: &Client, code: &str, verifier: &str, site_url: &str) -> Result<String, ApiError> {
    let provider = provider(hub, &client.issuer).await?;
    let methods = &provider.discovery.token_endpoint_auth_methods_supported;
    let post_only = !methods.is_empty() && !methods.iter().any(|m| m == "client_secret_basic");
    let (body, headers) = token_request(client, code, verifier, &redirect_uri(site_url), post_only);
    let answer = fetch(
        hub,
        http::Method::POST,
        &provider.discovery.token_endpoint,
        headers,
        body.into(),
    )
    .await;
    let answer = answer
        .map_err(|e| ApiError::forbidden(format!("The identity provider refused the sign-in code: {}", e.message)))?;
    answer["id_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ApiError::forbidden("The identity provider's answer has no ID token."))
}

/// The token request's form body and headers: the client authenticates
/// with HTTP Basic unless the provider takes only `client_secret_post`.
fn token_request(
    client: &Client,
    code: &str,
    verifier: &str,
    redirect: &str,
    post_only: bool,
) -> (String, Vec<(String, String)>) {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", redirect)
        .append_pair("code_verifier", verifier);
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("accept".to_string(), "application/json".to_string()),
    ];
    match &client.client_secret {
        Some(secret) if !post_only => headers.push(("authorization".into(), basic_auth(&client.client_id, secret))),
        Some(secret) => {
            form.append_pair("client_id", &client.client_id)
                .append_pair("client_secret", secret);
        }
        None => {
            form.append_pair("client_id", &client.client_id);
        }
    }
    (form.finish(), headers)
}

/// RFC 6749 §2.3.1: both parts form-urlencoded before they are joined.
fn basic_auth(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
}

/// The ID token's claims once its signature and claims check out; the keys
/// are fetched again once when it names a key not seen yet.
async fn verify(hub: &Hub, client: &Client, token: &str, nonce: &str) -> Result<IdToken, ApiError> {
    let mut provider = provider(hub, &client.issuer).await?;
    let kid = jwt::header_kid(token).map_err(refused)?;
    if kid.as_deref().is_some_and(|k| !provider.jwks.has_kid(k)) {
        provider = refetch_keys(hub, &provider).await?;
    }
    let expected = Expected {
        issuer: &provider.discovery.issuer,
        client_id: &client.client_id,
        nonce,
        now_s: hub.now_ms() / 1000,
        leeway_s: LEEWAY_S,
    };
    jwt::verify_id_token(token, &provider.jwks, &expected).map_err(refused)
}

fn refused(e: jwt::JwtError) -> ApiError {
    tracing::warn!("ID token refused: {e}");
    ApiError::forbidden(format!("The identity provider's ID token was refused: {e}."))
}

/// The configured provider's discovery document and keys, from the cache
/// while fresh.
async fn provider(hub: &Hub, issuer: &str) -> Result<Arc<Provider>, ApiError> {
    let now = hub.now_ms();
    let cached = hub.oidc_cache().0.read().ok().and_then(|c| c.clone());
    if let Some(p) = cached.filter(|p| p.issuer == issuer && now - p.fetched_at < CACHE_TTL_MS) {
        return Ok(p);
    }
    let url = format!("{issuer}/.well-known/openid-configuration");
    let doc = fetch(hub, http::Method::GET, &url, vec![], bytes::Bytes::new()).await?;
    let discovery: Discovery = serde_json::from_value(doc)
        .map_err(|e| ApiError::unavailable(format!("The OpenID provider's discovery document is incomplete: {e}")))?;
    if discovery.issuer.trim_end_matches('/') != issuer {
        return Err(ApiError::unavailable(format!(
            "The OpenID provider calls itself `{}`, not the configured issuer `{issuer}`.",
            discovery.issuer
        )));
    }
    let jwks = keys(hub, &discovery.jwks_uri).await?;
    Ok(remember(
        hub,
        Provider {
            issuer: issuer.to_string(),
            discovery,
            jwks,
            fetched_at: now,
            jwks_fetched_at: now,
        },
    ))
}

async fn refetch_keys(hub: &Hub, p: &Provider) -> Result<Arc<Provider>, ApiError> {
    let now = hub.now_ms();
    if now - p.jwks_fetched_at < JWKS_REFETCH_MS {
        return Err(ApiError::forbidden(
            "The ID token is signed with a key the identity provider does not publish.",
        ));
    }
    let jwks = keys(hub, &p.discovery.jwks_uri).await?;
    Ok(remember(
        hub,
        Provider {
            issuer: p.issuer.clone(),
            discovery: p.discovery.clone(),
            jwks,
            fetched_at: p.fetched_at,
            jwks_fetched_at: now,
        },
    ))
}

async fn keys(hub: &Hub, url: &str) -> Result<Jwks, ApiError> {
    let doc = fetch(hub, http::Method::GET, url, vec![], bytes::Bytes::new()).await?;
    Jwks::parse(doc.to_string().as_bytes())
        .map_err(|e| ApiError::unavailable(format!("The OpenID provider's keys cannot be read: {e}")))
}

fn remember(hub: &Hub, p: Provider) -> Arc<Provider> {
    let p = Arc::new(p);
    if let Ok(mut slot) = hub.oidc_cache().0.write() {
        *slot = Some(p.clone());
    }
    p
}

/// A JSON document from the provider (through the outbound policy, with
/// bounded time and size); a 503 naming the problem otherwise.
async fn fetch(
    hub: &Hub,
    method: http::Method,
    url: &str,
    headers: Vec<(String, String)>,
    body: bytes::Bytes,
) -> Result<serde_json::Value, ApiError> {
    let unavailable = |why: String| ApiError::unavailable(format!("The OpenID provider at {url}: {why}"));
    let timeouts = Timeouts {
        connect: Duration::from_secs(10),
        first_byte: Duration::from_secs(15),
        idle: Duration::from_secs(15),
    };
    let mut resp = hub
        .send_upstream(UpstreamRequest {
            method,
            url: url.to_string(),
            headers,
            body,
            timeouts,
        })
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let bytes = crate::gateway::collect(&mut resp, MAX_DOCUMENT_BYTES)
        .await
        .map_err(|f| unavailable(f.error.message))?;
    let doc: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| unavailable(format!("answered {} with no JSON", resp.status)))?;
    if resp.status != 200 {
        let why = doc["error_description"]
            .as_str()
            .or(doc["error"].as_str())
            .unwrap_or("an error");
        return Err(unavailable(format!("answered {}: {why}", resp.status)));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_and_basic_auth_follow_the_rfcs() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        // RFC 6749 §2.3.1: the parts are form-encoded before base64.
        assert_eq!(
            basic_auth("a b", "p:w"),
            format!("Basic {}", STANDARD.encode("a+b:p%3Aw"))
        );
    }
}
