//! Which provider and credential each attempt of a call uses, and what a
//! failure does to the next: fail over on connect errors, timeouts, 429 and
//! 5xx (never on the caller's own mistakes); a rejected credential is
//! disabled with the reason and re-checked in the background with backoff
//! until it works again; a rate-limited credential weighs less for a while.

use crate::config::{CredentialEntry, Route};
use crate::error::ApiError;
use crate::http::BodyError;
use crate::http::StatusCode;
use crate::hub::health::MAX_COOLDOWN_MS;
use crate::kinds::CredentialStatus;
use crate::ports::{UpstreamError, UpstreamResponse};
use crate::providers::answers::{credential_rejected, probe_accepted};
use crate::Hub;
use futures_util::StreamExt;

/// How long a rate-limited credential weighs less, unless the provider says.
const COOLDOWN_MS: i64 = 60_000;

/// What one failed attempt tells the next.
pub struct Failure {
    pub error: ApiError,
    pub class: FailureClass,
}

/// Why an attempt failed, which decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The provider or the connection failed: another candidate may do better.
    Provider,
    /// The provider rejected the credential itself: it is disabled, and the
    /// same provider's next credential is tried.
    CredentialRejected,
    /// The provider is rate limiting this credential: it cools down for this
    /// long, and the same provider's next credential is tried.
    RateLimited { cooldown_ms: i64 },
    /// The caller's own mistake (a 4xx about the request): no failover.
    Request,
    /// The provider refused the content (its content policy): another
    /// candidate is tried only through an alias that asks for it.
    Refusal,
}

impl FailureClass {
    /// Whether another attempt may succeed (a refusal: if the route says so).
    fn retryable(self, route: &Route) -> bool {
        match self {
            FailureClass::Request => false,
            FailureClass::Refusal => route.via.as_ref().is_some_and(|v| v.fallback_on_refusal),
            _ => true,
        }
    }

    /// Whether the failure says something about the provider's health
    /// (latency routing counts it), rather than about the request.
    pub fn counts_against_provider(self) -> bool {
        matches!(self, FailureClass::Provider | FailureClass::RateLimited { .. })
    }

    /// Whether the same provider's other credentials are worth a try.
    fn credential_level(self) -> bool {
        matches!(
            self,
            FailureClass::CredentialRejected | FailureClass::RateLimited { .. }
        )
    }
}

impl Failure {
    pub fn retryable(error: ApiError) -> Failure {
        Failure {
            error,
            class: FailureClass::Provider,
        }
    }

    pub fn fatal(error: ApiError) -> Failure {
        Failure {
            error,
            class: FailureClass::Request,
        }
    }
}

/// The attempts of one call, in order: candidates by priority, and on a
/// credential-level failure (401, 429) the same provider's next credential.
pub struct Attempts<'a> {
    hub: &'a Hub,
    routes: &'a [Route],
    next_route: usize,
    /// A route to retry with another credential before moving on.
    again: Option<usize>,
    /// Credentials tried, by route: an alias may reach one provider for
    /// several models, each worth a try with the same credential.
    tried: Vec<(usize, String)>,
    pub made: usize,
    max: usize,
}

/// One attempt: the route and the credential to use.
pub struct Attempt<'a> {
    pub route: &'a Route,
    pub credential: Option<&'a CredentialEntry>,
    pub number: usize,
}

impl<'a> Attempts<'a> {
    pub fn new(hub: &'a Hub, routes: &'a [Route], max: usize) -> Self {
        Attempts {
            hub,
            routes,
            next_route: 0,
            again: None,
            tried: Vec::new(),
            made: 0,
            max: max.max(1),
        }
    }

    pub fn next_attempt(&mut self) -> Option<Attempt<'a>> {
        while self.made < self.max {
            let index = match self.again.take() {
                Some(i) => i,
                None if self.next_route < self.routes.len() => {
                    self.next_route += 1;
                    self.next_route - 1
                }
                None => return None,
            };
            let route = &self.routes[index];
            let now = self.hub.now_ms();
            let health = &self.hub.health();
            let credential = route.provider.next_credential(now, health, &self.tried_on(index));
            if route.provider.vendor.needs_secret && credential.is_none() {
                continue;
            }
            self.made += 1;
            if let Some(c) = credential {
                self.tried.push((index, c.id.clone()));
            }
            return Some(Attempt {
                route,
                credential,
                number: self.made,
            });
        }
        None
    }

    /// The last attempt never reached the provider (it could not take the request).
    pub fn forget_last(&mut self) {
        self.made = self.made.saturating_sub(1);
    }

    /// The last attempt was skipped without asking the provider (an alias
    /// target whose context window the prompt exceeds): logged with its
    /// number, it does not count against the most attempts a call makes.
    pub fn skipped_last(&mut self) {
        self.max += 1;
    }

    /// The credentials already tried on the route at `index`.
    fn tried_on(&self, index: usize) -> Vec<String> {
        self.tried
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Records a failed attempt: the credential is scrubbed from the error
    /// (providers may quote it), the attempt is logged, the credential's health
    /// updated. Returns the error to report and whether to go on.
    pub fn failed(&mut self, attempt: &Attempt<'a>, f: Failure) -> (ApiError, bool) {
        let hub = self.hub;
        let now = hub.now_ms();
        let error = scrub(f.error, attempt.credential.map(|c| c.secret.as_str()));
        tracing::warn!(provider = %attempt.route.provider.name, attempt = attempt.number, status = error.status.as_u16(), "attempt failed: {}", error.message);
        if let Some(c) = attempt.credential {
            match f.class {
                FailureClass::CredentialRejected => hub.disable_credential(&c.id, &error.message),
                FailureClass::RateLimited { cooldown_ms } => hub.health().cool(&c.id, now + cooldown_ms),
                FailureClass::Provider | FailureClass::Request | FailureClass::Refusal => {}
            }
            // Another credential of the same provider may do better.
            let index = self.routes.iter().position(|r| std::ptr::eq(r, attempt.route));
            let tried = index.map(|i| self.tried_on(i)).unwrap_or_default();
            let others = attempt
                .route
                .provider
                .credentials
                .iter()
                .any(|o| !tried.contains(&o.id) && !hub.health().is_disabled(&o.id));
            if f.class.credential_level() && others {
                self.again = index;
            }
        }
        (error, f.class.retryable(attempt.route))
    }
}

impl Attempt<'_> {
    /// Where this attempt calls, and with which secret.
    pub fn target(&self, hub: &Hub, default_max_tokens: u64) -> crate::providers::Target<'_> {
        crate::providers::Target {
            vendor: self.route.provider.vendor,
            base_url: &self.route.provider.base_url,
            region: &self.route.provider.region,
            secret: self.credential.map(|c| c.secret.as_str()),
            model: &self.route.model.model,
            timeouts: hub.options().timeouts,
            now_ms: hub.now_ms(),
            default_max_tokens,
            overrides: self.route.via.as_ref().and_then(|v| v.overrides.as_ref()),
        }
    }
}

/// A provider's non-2xx answer, classified. The message never carries the
/// credential (the caller scrubs it).
pub async fn provider_error(mut resp: UpstreamResponse) -> Failure {
    let status = resp.status;
    if (300..400).contains(&status) {
        return Failure::retryable(ApiError::provider(redirect_message(&resp)));
    }
    let retry_after_ms = crate::http::retry_after_ms(&resp.headers);
    let mut body = Vec::new();
    while let Some(Ok(chunk)) = resp.body.next().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    let value = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let detail = value
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("Message"))
                .or_else(|| v.get("error"))
                .and_then(|m| m.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    let error_type = crate::http::header(&resp.headers, "x-amzn-errortype").unwrap_or("");
    let bad_credential = credential_rejected(status, value.as_ref(), error_type);
    if bad_credential {
        return Failure {
            error: ApiError::provider(format!("The provider rejected Hub's credential ({status}): {detail}")),
            class: FailureClass::CredentialRejected,
        };
    }
    match status {
        429 => Failure {
            // The provider's own wait is passed on; without one, a second.
            error: ApiError::rate_limited(format!("The provider is rate limiting requests: {detail}"))
                .with_retry_after_ms(retry_after_ms.unwrap_or(1000)),
            class: FailureClass::RateLimited {
                cooldown_ms: retry_after_ms.map_or(COOLDOWN_MS, |ms| ms.clamp(1000, MAX_COOLDOWN_MS)),
            },
        },
        408 | 504 => Failure::retryable(ApiError::provider_timeout()),
        // Anthropic's "overloaded".
        529 => Failure::retryable(ApiError::provider(format!("The provider is overloaded: {detail}"))),
        400..=499 => {
            let mut e = ApiError::bad_request(format!("The provider refused the request: {detail}"));
            e.status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            match content_refusal(value.as_ref(), &detail) {
                true => Failure {
                    error: e,
                    class: FailureClass::Refusal,
                },
                false => Failure::fatal(e),
            }
        }
        _ => Failure::retryable(ApiError::provider(format!("The provider failed ({status}): {detail}"))),
    }
}

/// Whether a provider's 4xx refuses the content under its policy (OpenAI's
/// and Azure's `content_policy_violation` / `content_filter`, a policy or
/// safety refusal in the message) rather than the request's form.
fn content_refusal(value: Option<&serde_json::Value>, detail: &str) -> bool {
    const CODES: &[&str] = &["content_policy_violation", "content_filter", "content_policy"];
    let field = |path: &str| value.and_then(|v| v.pointer(path)).and_then(|c| c.as_str());
    let coded = ["/error/code", "/error/type", "/code", "/type"]
        .iter()
        .any(|p| field(p).is_some_and(|c| CODES.contains(&c)));
    let d = detail.to_ascii_lowercase();
    coded || d.contains("content policy") || d.contains("content management policy") || d.contains("safety system")
}

/// A provider's redirect, reported instead of followed: following it would
/// send the credential, and return the answer, of wherever it points.
pub fn redirect_message(resp: &UpstreamResponse) -> String {
    let to = crate::http::header(&resp.headers, "location")
        .map(|l| format!(" to {}", l.chars().take(200).collect::<String>()))
        .unwrap_or_default();
    format!(
        "The provider answered with a redirect ({}{to}); Hub does not follow redirects from providers: check the provider's base URL.",
        resp.status
    )
}

pub fn transport_failure(e: UpstreamError) -> Failure {
    Failure::retryable(match e {
        UpstreamError::Timeout => ApiError::provider_timeout(),
        other => ApiError::provider(other.to_string()),
    })
}

/// The error a provider's answer ends with when its body fails midway.
pub fn body_failure(e: &BodyError) -> ApiError {
    match e.kind {
        crate::http::BodyFailure::TimedOut => ApiError::provider_timeout(),
        crate::http::BodyFailure::Broken => ApiError::provider(format!("The provider's stream failed: {}", e.message)),
    }
}

/// Removes a secret from an error message, wherever it came from.
pub fn scrub(mut e: ApiError, secret: Option<&str>) -> ApiError {
    if let Some(s) = secret.filter(|s| s.len() >= 4) {
        if e.message.contains(s) {
            e.message = e.message.replace(s, "****");
        }
    }
    e
}

/// The outcome of probing a credential.
pub struct Probe {
    pub ok: bool,
    pub status: Option<u16>,
    pub message: String,
    pub latency_ms: u64,
}

impl Hub {
    /// Marks a credential the provider rejected as disabled, at once for this
    /// instance and in the database for every other.
    pub(crate) fn disable_credential(&self, id: &str, reason: &str) {
        let health = &self.health();
        if health.is_disabled(id) {
            return;
        }
        let now = self.now_ms();
        health.disable(id, now);
        let base = self.options().recheck_interval_ms;
        health.backoff(id, now, base / 2);
        tracing::warn!(credential = %id, "credential disabled: {reason}");
        let (hub, id, reason) = (
            self.clone(),
            id.to_string(),
            reason.chars().take(500).collect::<String>(),
        );
        self.background().spawn(Box::pin(async move {
            let now = hub.now_ms();
            if let Err(e) = hub
                .store()
                .set_credential_health(&id, CredentialStatus::Disabled, Some(&reason), now)
                .await
            {
                tracing::error!(credential = %id, "could not record the disabled credential: {e}");
            }
            let _ = hub.reload().await;
            hub.deliver_soon();
        }));
    }

    /// Sends a cheap authenticated request with a credential and reports what the provider said.
    pub async fn probe(&self, provider: &crate::store::ProviderRow, secret: &str) -> Result<Probe, ApiError> {
        let vendor = crate::providers::vendor(&provider.kind)
            .ok_or_else(|| ApiError::bad_request("This provider kind cannot be tested."))?;
        let base = provider
            .base_url
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| vendor.default_base_url.to_string());
        let region = provider
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| crate::providers::bedrock::DEFAULT_REGION.to_string());
        let target = crate::providers::Target {
            vendor,
            base_url: &base,
            region: &region,
            secret: Some(secret),
            model: "",
            timeouts: crate::ports::Timeouts {
                first_byte: std::time::Duration::from_secs(15),
                ..self.options().timeouts
            },
            now_ms: self.now_ms(),
            default_max_tokens: 1,
            overrides: None,
        };
        let req = crate::providers::probe_request(&target)?;
        let started = self.clock().monotonic_us();
        let (ok, status, message) = match self.send_upstream(req).await {
            // Only the redirect is reported: its target is never asked.
            Ok(resp) if (300..400).contains(&resp.status) => (
                false,
                Some(resp.status),
                redirect_message(&resp).replace(secret, "****"),
            ),
            Ok(mut resp) => {
                let mut body = Vec::new();
                while let Some(Ok(chunk)) = resp.body.next().await {
                    body.extend_from_slice(&chunk);
                    if body.len() > 1 << 20 {
                        break;
                    }
                }
                let text = String::from_utf8_lossy(&body[..body.len().min(500)]).replace(secret, "****");
                let parsed = serde_json::from_slice::<serde_json::Value>(&body).ok();
                let aws = crate::http::header(&resp.headers, "x-amzn-errortype").unwrap_or("");
                let ok = probe_accepted(vendor.wire, resp.status, parsed.as_ref(), aws);
                (ok, Some(resp.status), text)
            }
            Err(e) => (false, None, e.to_string()),
        };
        Ok(Probe {
            ok,
            status,
            message,
            latency_ms: (self.clock().monotonic_us() - started) / 1000,
        })
    }

    /// Re-checks credentials disabled after a provider rejected them, each on
    /// its own backoff, re-enabling those that work again: at most `max`
    /// probes, none started once the clock passes `deadline_ms` (a probe
    /// waits on the provider). Returns how many it re-enabled and how many
    /// due ones it left for the next run.
    pub async fn recheck_credentials(&self, max: usize, deadline_ms: i64) -> Result<Rechecked, ApiError> {
        let now = self.now_ms();
        let creds = self.store().list_credentials(None).await?;
        let due: Vec<_> = creds
            .iter()
            .filter(|c| c.enabled && c.status == CredentialStatus::Disabled && self.health().due(&c.id, now))
            .collect();
        let mut done = Rechecked::default();
        for (i, c) in due.iter().enumerate() {
            if i == max || self.now_ms() >= deadline_ms {
                done.left = due.len() - i;
                break;
            }
            let Some(provider) = self.store().get_provider(&c.provider_id).await? else {
                continue;
            };
            let secret = match self.master_key().decrypt(&c.secret_enc) {
                Ok(s) => s,
                Err(_) => continue,
            };
            let probe = self.probe(&provider, &secret).await?;
            let now = self.now_ms();
            if probe.ok {
                self.store()
                    .set_credential_health(&c.id, CredentialStatus::Active, None, now)
                    .await?;
                self.health().enable(&c.id);
                tracing::info!(credential = %c.id, "credential works again: re-enabled");
                done.enabled += 1;
            } else {
                self.health().backoff(&c.id, now, self.options().recheck_interval_ms);
            }
        }
        if done.enabled > 0 {
            self.reload().await?;
            self.deliver_soon();
        }
        Ok(done)
    }
}

/// What one round of credential re-checks did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rechecked {
    /// Credentials found working again and re-enabled.
    pub enabled: usize,
    /// Credentials due a re-check that this round left for the next.
    pub left: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_refusals_are_told_from_other_4xx() {
        let refusal = |v: serde_json::Value, detail: &str| content_refusal(Some(&v), detail);
        assert!(refusal(json!({"error": {"code": "content_policy_violation"}}), "x"));
        assert!(refusal(json!({"error": {"code": "content_filter"}}), "x"));
        assert!(refusal(
            json!({}),
            "Your request was rejected as a result of our safety system."
        ));
        assert!(refusal(
            json!({}),
            "The response was filtered due to Azure OpenAI's content management policy."
        ));
        assert!(!refusal(
            json!({"error": {"code": "invalid_request_error"}}),
            "max_tokens is too large"
        ));
        assert!(!content_refusal(None, "Unknown parameter: 'foo'."));
    }
}
