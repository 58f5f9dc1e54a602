//! The delivery job: [`Hub::deliver_notifications`] claims due deliveries
//! with a lease (so two instances, or two runs, never send the same attempt
//! at once), sends them a few at a time, records every attempt and
//! schedules the next one. It runs in the background right after Hub writes
//! an event ([`Hub::deliver_soon`]) and periodically (`hub serve`'s timer;
//! the scheduled tick on every runtime). It never runs on a model call's
//! path: a slow or failing endpoint delays nothing but its own deliveries.
//!
//! Retries: after a failure, base × 2^(attempt−1) (`HUB_WEBHOOK_RETRY_BASE_MS`,
//! 30 s), capped at two hours, of which a random half is jitter; a
//! `Retry-After` the endpoint sends is honoured when longer. After 24 hours
//! of failures the delivery is failed. A 2xx is delivered; a 410 Gone fails
//! it and disables the webhook (the endpoint asked to stop, as the Standard
//! Webhooks specification says); redirects are not followed (a failure).

use super::{mail, payload, sign};
use crate::hub::Hub;
use crate::ports::{DbError, Timeouts, UpstreamRequest};
use crate::store::{AttemptRecord, Claimed, Destination, NextStep};
use futures_util::StreamExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Deliveries claimed per run.
pub const BATCH: i64 = 32;
/// Deliveries sent at once by one run.
const CONCURRENCY: usize = 8;
/// How long a claim lasts: longer than any attempt can take.
const LEASE_MS: i64 = 60_000;
/// The whole of one webhook attempt, connecting included (the specification
/// recommends 15 to 30 seconds).
const ATTEMPT_LIMIT_MS: u64 = 20_000;
const MAX_BACKOFF_MS: i64 = 2 * 3_600_000;

/// What one run did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryReport {
    /// Attempts made.
    pub attempted: u32,
    pub delivered: u32,
    /// Attempts that failed and will be retried.
    pub retrying: u32,
    /// Deliveries given up on (24 hours of failures, a 410, no way to send).
    pub failed: u32,
    /// Pending deliveries past their deadline, failed without an attempt.
    pub expired: u64,
}

/// What an attempt came to.
struct Sent {
    status: Option<u16>,
    error: Option<String>,
    /// The endpoint's `Retry-After`, in milliseconds.
    retry_after_ms: Option<i64>,
    /// Retrying cannot help (no mail on this runtime, an unknown type).
    permanent: bool,
}

impl Sent {
    fn failed(error: impl Into<String>) -> Sent {
        Sent {
            status: None,
            error: Some(error.into()),
            retry_after_ms: None,
            permanent: false,
        }
    }

    fn permanent(error: impl Into<String>) -> Sent {
        Sent {
            permanent: true,
            ..Sent::failed(error)
        }
    }

    fn ok(status: Option<u16>) -> Sent {
        Sent {
            status,
            error: None,
            retry_after_ms: None,
            permanent: false,
        }
    }
}

/// The wait before attempt `attempt + 1`: exponential, capped, half of it jitter (`jitter` in 0..=1).
pub fn backoff_ms(base_ms: i64, attempt: i64, jitter: f64) -> i64 {
    let shift = (attempt - 1).clamp(0, 30) as u32;
    let full = base_ms.saturating_mul(1i64 << shift).min(MAX_BACKOFF_MS);
    full / 2 + ((full / 2) as f64 * jitter.clamp(0.0, 1.0)) as i64
}

impl Hub {
    /// One run of the delivery job at `now_ms`: bounded (at most 32
    /// deliveries, 8 at a time, each attempt at most 20 seconds); what is
    /// left is for the next run. Safe to run on several instances at once.
    pub async fn deliver_notifications(&self, now_ms: i64) -> Result<DeliveryReport, DbError> {
        let mut report = DeliveryReport::default();
        if !self.store().deliveries_due(now_ms).await? {
            return Ok(report);
        }
        report.expired = self.store().expire_deliveries(now_ms).await?;
        let lease = self.new_id("lease");
        let claimed = self.store().claim_deliveries(&lease, now_ms, LEASE_MS, BATCH).await?;
        let settings = match self.snapshot().await {
            Ok(s) => Some(s.settings.clone()),
            Err(e) => {
                tracing::warn!("notifications: the settings cannot be read: {}", e.message);
                None
            }
        };
        let steps: Vec<Result<NextStep, DbError>> = futures_util::stream::iter(claimed)
            .map(|d| self.attempt(d, &lease, settings.as_ref()))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for step in steps {
            report.attempted += 1;
            match step? {
                NextStep::Delivered => report.delivered += 1,
                NextStep::RetryAt(_) => report.retrying += 1,
                NextStep::Failed => report.failed += 1,
            }
        }
        if report != DeliveryReport::default() {
            tracing::info!(?report, "notifications delivered");
        }
        Ok(report)
    }

    /// Runs the job in the background now (after Hub wrote an event); a run
    /// asked for while one is going makes that one go round again.
    pub(crate) fn deliver_soon(&self) {
        if !self.options().deliver_in_background {
            return;
        }
        let run = self.delivery_run();
        if run.running.swap(true, Ordering::AcqRel) {
            run.again.store(true, Ordering::Release);
            return;
        }
        let hub = self.clone();
        self.background().spawn(Box::pin(async move {
            loop {
                hub.delivery_run().again.store(false, Ordering::Release);
                if let Err(e) = hub.deliver_notifications(hub.now_ms()).await {
                    tracing::warn!("notifications: delivery run failed: {e}");
                }
                if hub.delivery_run().again.load(Ordering::Acquire) {
                    continue;
                }
                hub.delivery_run().running.store(false, Ordering::Release);
                // Asked for between the check and the release: take it back.
                let asked = hub.delivery_run().again.load(Ordering::Acquire);
                if !asked || hub.delivery_run().running.swap(true, Ordering::AcqRel) {
                    break;
                }
            }
        }));
    }

    /// One attempt at a claimed delivery, recorded with what comes next.
    async fn attempt(
        &self,
        d: Claimed,
        lease: &str,
        settings: Option<&crate::config::Settings>,
    ) -> Result<NextStep, DbError> {
        let started = self.clock().monotonic_us();
        let at = self.now_ms();
        let sent = match &d.to {
            Destination::Webhook {
                url,
                secret_enc,
                previous_secret_enc,
                ..
            } => {
                self.post_webhook(&d, url, secret_enc, previous_secret_enc.as_deref())
                    .await
            }
            Destination::Email { to } => self.send_mail(&d, to, settings).await,
        };
        let duration_ms = (self.clock().monotonic_us().saturating_sub(started) / 1000) as i64;
        let gone = sent.status == Some(410);
        let next = self.next_step(&d, &sent, gone);
        let disable_webhook = match (&d.to, gone) {
            (Destination::Webhook { id, .. }, true) => {
                tracing::warn!(webhook = %id, "the endpoint answered 410 Gone: webhook disabled");
                Some((id.clone(), "the endpoint answered 410 Gone".to_string()))
            }
            _ => None,
        };
        let record = AttemptRecord {
            delivery_id: &d.id,
            lease,
            attempt: d.attempt,
            at,
            status: sent.status,
            error: sent.error.clone(),
            duration_ms,
            next,
            disable_webhook,
        };
        self.store().finish_attempt(&record).await?;
        Ok(next)
    }

    fn next_step(&self, d: &Claimed, sent: &Sent, gone: bool) -> NextStep {
        if sent.error.is_none() {
            return NextStep::Delivered;
        }
        if gone || sent.permanent {
            return NextStep::Failed;
        }
        let mut random = [0u8; 2];
        let jitter = match self.rng().fill(&mut random) {
            Ok(()) => f64::from(u16::from_be_bytes(random)) / f64::from(u16::MAX),
            Err(_) => 1.0,
        };
        let wait = backoff_ms(self.options().webhook_retry_base_ms, d.attempt, jitter)
            .max(sent.retry_after_ms.unwrap_or(0).min(MAX_BACKOFF_MS));
        let at = self.now_ms().saturating_add(wait);
        if at > d.deadline {
            NextStep::Failed
        } else {
            NextStep::RetryAt(at)
        }
    }

    /// POSTs the event, signed, to a webhook endpoint; reads its status only.
    async fn post_webhook(&self, d: &Claimed, url: &str, secret_enc: &str, previous: Option<&str>) -> Sent {
        if let Err(problem) = self.webhook_policy().check_url(url) {
            return Sent::failed(format!("the webhook URL {problem}"));
        }
        let mut secrets = Vec::new();
        for sealed in std::iter::once(secret_enc).chain(previous) {
            match self.master_key().decrypt(sealed) {
                Ok(s) => secrets.push(s),
                Err(e) => return Sent::failed(format!("the webhook's secret cannot be read: {e}")),
            }
        }
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let body = payload::body(&d.event);
        let timestamp = self.now_ms().div_euclid(1000);
        let req = UpstreamRequest {
            method: http::Method::POST,
            url: url.to_string(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("user-agent".into(), "Hub-Webhooks/1".into()),
                ("webhook-id".into(), d.event.id.clone()),
                ("webhook-timestamp".into(), timestamp.to_string()),
                (
                    "webhook-signature".into(),
                    sign::signature_header(&secrets, &d.event.id, timestamp, &body),
                ),
            ],
            body: body.into(),
            timeouts: Timeouts {
                connect: Duration::from_secs(10),
                first_byte: Duration::from_millis(ATTEMPT_LIMIT_MS),
                idle: Duration::from_secs(5),
            },
        };
        let send = self.send_upstream(req);
        let limit = self.background().sleep(ATTEMPT_LIMIT_MS);
        let response = match futures_util::future::select(Box::pin(send), limit).await {
            futures_util::future::Either::Left((r, _)) => r,
            futures_util::future::Either::Right(_) => return Sent::failed("no answer within 20 seconds"),
        };
        // The body is never read (nor kept): an attempt's cost is bounded, and
        // nothing an endpoint answers is shown back.
        match response {
            Ok(r) if (200..300).contains(&r.status) => Sent::ok(Some(r.status)),
            Ok(r) => Sent {
                status: Some(r.status),
                error: Some(refusal(r.status)),
                retry_after_ms: crate::http::retry_after_ms(&r.headers),
                permanent: false,
            },
            Err(e) => Sent::failed(transport(e)),
        }
    }

    /// Mails the customer about their account.
    async fn send_mail(&self, d: &Claimed, to: &str, settings: Option<&crate::config::Settings>) -> Sent {
        let Some(mailer) = self.mailer() else {
            return Sent::permanent("this runtime cannot send mail (Cloudflare Workers have no SMTP)");
        };
        let Some(settings) = settings else {
            return Sent::failed("the settings cannot be read");
        };
        let Some(server) = crate::accounts::email::server(self, &settings.sign_in) else {
            return Sent::failed("no SMTP server is configured");
        };
        let Some(message) = mail::compose(settings, &d.event, to) else {
            return Sent::permanent(format!("customers get no mail about {}", d.event.kind));
        };
        match mailer.send(&server, &message).await {
            Ok(()) => Sent::ok(None),
            Err(e) => Sent::failed(e.to_string()),
        }
    }
}

/// A transport failure as the delivery log shows it (the port's messages speak of providers).
fn transport(e: crate::ports::UpstreamError) -> String {
    use crate::ports::UpstreamError;
    match e {
        UpstreamError::Connect(why) => format!("could not connect: {why}"),
        UpstreamError::Timeout => "the endpoint did not answer in time".to_string(),
        UpstreamError::Refused(why) | UpstreamError::Other(why) => why,
    }
}

fn refusal(status: u16) -> String {
    match status {
        300..=399 => format!("the endpoint answered with a redirect ({status}), which Hub does not follow"),
        410 => "the endpoint answered 410 Gone".to_string(),
        _ => format!("the endpoint answered {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_half_of_it_jitter_and_a_cap() {
        assert_eq!(backoff_ms(30_000, 1, 0.0), 15_000);
        assert_eq!(backoff_ms(30_000, 1, 1.0), 30_000);
        assert_eq!(backoff_ms(30_000, 2, 1.0), 60_000);
        assert_eq!(backoff_ms(30_000, 4, 0.5), 180_000);
        assert_eq!(backoff_ms(30_000, 40, 1.0), MAX_BACKOFF_MS);
        let total: i64 = (1..=32).map(|n| backoff_ms(30_000, n, 0.0)).sum();
        assert!(
            total > 24 * 3_600_000,
            "32 attempts span the day even with the least jitter"
        );
    }
}
