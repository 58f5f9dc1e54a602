//! Notifications: webhook endpoints, the events the schema's triggers write
//! in the same transaction as the change behind them, their deliveries and
//! every attempt. A delivery is claimed with a lease (one conditional UPDATE)
//! before it is sent, so two instances never send the same attempt at once.

use super::{first, rows, Page, Row, Store};
use crate::metering::money::Credits;
use crate::ports::{DbError, Stmt};
use crate::sql;

/// How long the retries of one event (or of a resend) go on.
pub const RETRY_WINDOW_MS: i64 = 24 * 3_600_000;

#[derive(Debug, Clone)]
pub struct WebhookRow {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// `*`, or the subscribed types between commas (`,a,b,`).
    pub events: String,
    pub secret_enc: String,
    pub secret_hint: String,
    pub previous_secret_enc: Option<String>,
    pub previous_until: Option<i64>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn webhook(r: &Row<'_>) -> WebhookRow {
    WebhookRow {
        id: r.str("id"),
        url: r.str("url"),
        description: r.opt_str("description"),
        events: r.str("events"),
        secret_enc: r.str("secret_enc"),
        secret_hint: r.str("secret_hint"),
        previous_secret_enc: r.opt_str("previous_secret_enc"),
        previous_until: r.opt_i64("previous_until"),
        enabled: r.bool("enabled"),
        disabled_reason: r.opt_str("disabled_reason"),
        created_at: r.i64("created_at"),
        updated_at: r.i64("updated_at"),
    }
}

/// A webhook's changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<String>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// An event as stored: money in nano-credits, the rest in `detail`.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: String,
    pub kind: String,
    pub user_id: Option<String>,
    pub amount: Option<Credits>,
    pub balance: Option<Credits>,
    pub threshold: Option<Credits>,
    pub subject: Option<String>,
    pub detail: Option<serde_json::Value>,
    pub created_at: i64,
}

fn event(r: &Row<'_>) -> EventRow {
    EventRow {
        id: r.str("event_id"),
        kind: r.str("type"),
        user_id: r.opt_str("user_id"),
        amount: r.opt_i64("amount").map(Credits::from_nanos),
        balance: r.opt_i64("balance").map(Credits::from_nanos),
        threshold: r.opt_i64("threshold").map(Credits::from_nanos),
        subject: r.opt_str("subject"),
        detail: r.json("detail"),
        created_at: r.i64("event_at"),
    }
}

/// An event Hub writes itself (the triggers write the others).
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub user_id: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub detail: serde_json::Value,
    /// At most one event per dedupe key, ever.
    pub dedupe: Option<String>,
    pub now_ms: i64,
}

/// Where a delivery goes.
#[derive(Debug, Clone)]
pub enum Destination {
    Webhook {
        id: String,
        url: String,
        secret_enc: String,
        /// Signs too while a rotation's grace period lasts.
        previous_secret_enc: Option<String>,
    },
    Email {
        to: String,
    },
}

/// A delivery this instance claimed, with its event and destination.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub attempt: i64,
    pub deadline: i64,
    pub event: EventRow,
    pub to: Destination,
}

/// How an attempt went, and what happens next.
#[derive(Debug, Clone)]
pub struct AttemptRecord<'a> {
    pub delivery_id: &'a str,
    pub lease: &'a str,
    pub attempt: i64,
    pub at: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub next: NextStep,
    /// The endpoint asked to be disabled (410 Gone): this webhook, with why.
    pub disable_webhook: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt(i64),
    Failed,
}

#[derive(Debug, Clone)]
pub struct DeliveryRow {
    /// Its place in the listing (newest first), for the cursor.
    pub seq: i64,
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub state: String,
    pub attempts: i64,
    pub next_at: i64,
    pub deadline: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub delivery_id: String,
    pub attempt: i64,
    pub at: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A customer's notification choices.
#[derive(Debug, Clone, Default)]
pub struct NotificationPrefs {
    pub email_low_balance: bool,
    pub email_receipts: bool,
    /// `None`: the setting's default applies.
    pub low_balance_threshold: Option<Credits>,
}

/// Changes to [`NotificationPrefs`]; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PrefsPatch {
    pub email_low_balance: Option<bool>,
    pub email_receipts: Option<bool>,
    /// `Some(None)`: back to the setting's default.
    pub low_balance_threshold: Option<Option<Credits>>,
}

impl Store {
    pub async fn insert_webhook(&self, w: &WebhookRow) -> Result<(), DbError> {
        self.db
            .execute(sql!(
                "INSERT INTO webhooks (id, url, description, events, secret_enc, secret_hint, enabled, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                &w.id, &w.url, w.description.clone(), &w.events, &w.secret_enc, &w.secret_hint, w.enabled, w.created_at
            ))
            .await
            .map(drop)
    }

    pub async fn list_webhooks(&self) -> Result<Vec<WebhookRow>, DbError> {
        let r = self
            .db
            .query(sql!("SELECT * FROM webhooks ORDER BY created_at"))
            .await?;
        Ok(rows(&r).map(|r| webhook(&r)).collect())
    }

    pub async fn get_webhook(&self, id: &str) -> Result<Option<WebhookRow>, DbError> {
        let r = self.db.query(sql!("SELECT * FROM webhooks WHERE id = ?1", id)).await?;
        Ok(first(&r).map(|r| webhook(&r)))
    }

    /// Applies a patch; enabling a webhook forgets why Hub disabled it.
    pub async fn update_webhook(&self, id: &str, p: &WebhookPatch, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(sql!(
                "UPDATE webhooks SET url = COALESCE(?2, url), events = COALESCE(?3, events),
                   description = CASE WHEN ?4 THEN ?5 ELSE description END,
                   enabled = COALESCE(?6, enabled),
                   disabled_reason = CASE WHEN ?6 = 1 THEN NULL ELSE disabled_reason END,
                   updated_at = ?7
                 WHERE id = ?1",
                id,
                p.url.clone(),
                p.events.clone(),
                p.description.is_some(),
                p.description.clone().flatten(),
                p.enabled,
                now_ms
            ))
            .await?;
        Ok(n > 0)
    }

    /// A new signing secret; the current one keeps signing until `previous_until`.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret_enc: &str,
        hint: &str,
        previous_until: i64,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(sql!(
                "UPDATE webhooks SET previous_secret_enc = secret_enc, previous_until = ?4,
                   secret_enc = ?2, secret_hint = ?3, updated_at = ?5 WHERE id = ?1",
                id,
                secret_enc,
                hint,
                previous_until,
                now_ms
            ))
            .await?;
        Ok(n > 0)
    }

    /// Deletes a webhook with its deliveries and their attempts.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, DbError> {
        let n = self
            .db
            .batch(vec![
                sql!(
                    "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE webhook_id = ?1)",
                    id
                ),
                sql!("DELETE FROM deliveries WHERE webhook_id = ?1", id),
                sql!("DELETE FROM webhooks WHERE id = ?1", id),
            ])
            .await?;
        Ok(n.get(2).is_some_and(|n| *n > 0))
    }

    fn event_stmt(e: &NewEvent<'_>) -> Stmt {
        sql!(
            "INSERT INTO events (id, type, user_id, subject, detail, dedupe, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (dedupe) DO NOTHING",
            e.id,
            e.kind,
            e.user_id,
            e.subject,
            e.detail.to_string(),
            e.dedupe.clone(),
            e.now_ms
        )
    }

    /// Records an event Hub raises itself (its deliveries follow from the
    /// schema); with a dedupe key, at most once. Returns whether it was new.
    pub async fn record_event(&self, e: &NewEvent<'_>) -> Result<bool, DbError> {
        Ok(self.db.execute(Self::event_stmt(e)).await? > 0)
    }

    /// A test event for one webhook, with its one delivery.
    pub async fn record_test_event(
        &self,
        e: &NewEvent<'_>,
        delivery_id: &str,
        webhook_id: &str,
    ) -> Result<(), DbError> {
        self.db
            .batch(vec![
                Self::event_stmt(e),
                sql!(
                    "INSERT INTO deliveries (id, event_id, channel, webhook_id, state, next_at, deadline, created_at, updated_at)
                     VALUES (?1, ?2, 'webhook', ?3, 'pending', ?4, ?5, ?4, ?4)",
                    delivery_id,
                    e.id,
                    webhook_id,
                    e.now_ms,
                    e.now_ms + RETRY_WINDOW_MS
                ),
            ])
            .await
            .map(drop)
    }

    /// Whether any delivery is due: to be sent (not in flight, its webhook
    /// enabled) or past its deadline. One indexed read: the job's idle check.
    pub async fn deliveries_due(&self, now_ms: i64) -> Result<bool, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT 1 FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.state = 'pending' AND d.next_at <= ?1 AND (d.lease_until IS NULL OR d.lease_until <= ?1)
                   AND (d.channel = 'email' OR w.enabled = 1 OR d.deadline <= ?1)
                 LIMIT 1",
                now_ms
            ))
            .await?;
        Ok(!r.rows.is_empty())
    }

    /// Gives up on pending deliveries past their deadline (their webhook
    /// disabled meanwhile, say). Returns how many.
    pub async fn expire_deliveries(&self, now_ms: i64) -> Result<u64, DbError> {
        self.db
            .execute(sql!(
                "UPDATE deliveries SET state = 'failed', updated_at = ?1,
                   last_error = COALESCE(last_error, 'not delivered within 24 hours')
                 WHERE state = 'pending' AND deadline <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)",
                now_ms
            ))
            .await
    }

    /// Claims up to `limit` due deliveries for `lease` until `now + lease_ms`
    /// (one conditional UPDATE: a delivery another instance holds is not
    /// taken), counting the attempt; then reads them back.
    pub async fn claim_deliveries(
        &self,
        lease: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, DbError> {
        self.db
            .execute(sql!(
                "UPDATE deliveries SET lease = ?1, lease_until = ?2 + ?3, attempts = attempts + 1, updated_at = ?2
                 WHERE id IN (
                     SELECT d.id FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.state = 'pending' AND d.next_at <= ?2 AND (d.lease_until IS NULL OR d.lease_until <= ?2)
                       AND (d.channel = 'email' OR w.enabled = 1)
                     ORDER BY d.next_at LIMIT ?4)
                   AND state = 'pending' AND (lease_until IS NULL OR lease_until <= ?2)",
                lease,
                now_ms,
                lease_ms,
                limit
            ))
            .await?;
        let r = self
            .db
            .query(sql!(
                "SELECT d.id, d.attempts, d.deadline, d.channel, d.recipient, d.webhook_id,
                        e.id AS event_id, e.type, e.user_id, e.amount, e.balance, e.threshold, e.subject, e.detail,
                        e.created_at AS event_at, w.url, w.secret_enc, w.previous_secret_enc, w.previous_until
                 FROM deliveries d JOIN events e ON e.id = d.event_id LEFT JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.lease = ?1 AND d.state = 'pending'",
                lease
            ))
            .await?;
        Ok(rows(&r).filter_map(|r| claimed(&r, now_ms)).collect())
    }

    /// Records an attempt and what comes next, if this instance still holds the lease.
    pub async fn finish_attempt(&self, a: &AttemptRecord<'_>) -> Result<(), DbError> {
        let (state, next_at) = match a.next {
            NextStep::Delivered => ("delivered", a.at),
            NextStep::RetryAt(t) => ("pending", t),
            NextStep::Failed => ("failed", a.at),
        };
        let mut stmts = vec![
            sql!(
                "INSERT OR IGNORE INTO delivery_attempts (delivery_id, attempt, at, status, error, duration_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                a.delivery_id,
                a.attempt,
                a.at,
                a.status.map(i64::from),
                a.error.clone(),
                a.duration_ms
            ),
            sql!(
                "UPDATE deliveries SET state = ?3, next_at = ?4, last_error = ?5, lease = NULL, lease_until = NULL, updated_at = ?6
                 WHERE id = ?1 AND lease = ?2",
                a.delivery_id,
                a.lease,
                state,
                next_at,
                a.error.clone(),
                a.at
            ),
        ];
        if let Some((webhook, why)) = &a.disable_webhook {
            stmts.push(sql!(
                "UPDATE webhooks SET enabled = 0, disabled_reason = ?2, updated_at = ?3 WHERE id = ?1",
                webhook,
                why,
                a.at
            ));
        }
        self.db.batch(stmts).await.map(drop)
    }

    /// A webhook's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        webhook_id: &str,
        cursor: Option<i64>,
        limit: i64,
    ) -> Result<Page<DeliveryRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT d.*, d.rowid AS seq, e.type AS event_type FROM deliveries d JOIN events e ON e.id = d.event_id
                 WHERE d.webhook_id = ?1 AND (?2 IS NULL OR d.rowid < ?2)
                 ORDER BY d.rowid DESC LIMIT ?3",
                webhook_id,
                cursor,
                limit + 1
            ))
            .await?;
        let items: Vec<DeliveryRow> = rows(&r).map(|r| delivery_row(&r)).collect();
        Ok(Page::from_rows(items, limit, |d| d.seq.to_string()))
    }

    /// One delivery.
    pub async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT d.*, d.rowid AS seq, e.type AS event_type FROM deliveries d JOIN events e ON e.id = d.event_id
                 WHERE d.id = ?1",
                id
            ))
            .await?;
        Ok(first(&r).map(|r| delivery_row(&r)))
    }

    /// Every attempt of these deliveries, in order.
    pub async fn delivery_attempts(&self, delivery_ids: &[String]) -> Result<Vec<AttemptRow>, DbError> {
        if delivery_ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(delivery_ids).unwrap_or_else(|_| "[]".into());
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM delivery_attempts WHERE delivery_id IN (SELECT value FROM json_each(?1))
                 ORDER BY delivery_id, attempt",
                list
            ))
            .await?;
        Ok(rows(&r)
            .map(|r| AttemptRow {
                delivery_id: r.str("delivery_id"),
                attempt: r.i64("attempt"),
                at: r.i64("at"),
                status: r.opt_i64("status"),
                error: r.opt_str("error"),
                duration_ms: r.i64("duration_ms"),
            })
            .collect())
    }

    /// Sends a delivery of this webhook again now (with the same webhook-id),
    /// retrying for another 24 hours; not while an attempt is in flight.
    pub async fn resend_delivery(&self, webhook_id: &str, delivery_id: &str, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(sql!(
                "UPDATE deliveries SET state = 'pending', next_at = ?3, deadline = ?4, updated_at = ?3
                 WHERE id = ?1 AND webhook_id = ?2 AND (lease_until IS NULL OR lease_until <= ?3)",
                delivery_id,
                webhook_id,
                now_ms,
                now_ms + RETRY_WINDOW_MS
            ))
            .await?;
        Ok(n > 0)
    }

    pub async fn notification_prefs(&self, user_id: &str) -> Result<Option<NotificationPrefs>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT email_low_balance, email_receipts, low_balance_threshold FROM users WHERE id = ?1",
                user_id
            ))
            .await?;
        Ok(first(&r).map(|r| NotificationPrefs {
            email_low_balance: r.bool("email_low_balance"),
            email_receipts: r.bool("email_receipts"),
            low_balance_threshold: r.opt_i64("low_balance_threshold").map(Credits::from_nanos),
        }))
    }

    pub async fn set_notification_prefs(&self, user_id: &str, p: &PrefsPatch) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(sql!(
                "UPDATE users SET email_low_balance = COALESCE(?2, email_low_balance),
                   email_receipts = COALESCE(?3, email_receipts),
                   low_balance_threshold = CASE WHEN ?4 THEN ?5 ELSE low_balance_threshold END
                 WHERE id = ?1",
                user_id,
                p.email_low_balance,
                p.email_receipts,
                p.low_balance_threshold.is_some(),
                p.low_balance_threshold.flatten().map(|c| c.nanos())
            ))
            .await?;
        Ok(n > 0)
    }
}

/// A claimed row with its destination; `None` for one whose webhook is gone.
fn claimed(r: &Row<'_>, now_ms: i64) -> Option<Claimed> {
    let to = match r.str("channel").as_str() {
        "email" => Destination::Email {
            to: r.opt_str("recipient")?,
        },
        _ => Destination::Webhook {
            id: r.opt_str("webhook_id")?,
            url: r.opt_str("url")?,
            secret_enc: r.opt_str("secret_enc")?,
            previous_secret_enc: r
                .opt_str("previous_secret_enc")
                .filter(|_| r.opt_i64("previous_until").is_some_and(|t| t > now_ms)),
        },
    };
    Some(Claimed {
        id: r.str("id"),
        attempt: r.i64("attempts"),
        deadline: r.i64("deadline"),
        event: event(r),
        to,
    })
}

fn delivery_row(r: &Row) -> DeliveryRow {
    DeliveryRow {
        seq: r.i64("seq"),
        id: r.str("id"),
        event_id: r.str("event_id"),
        event_type: r.str("event_type"),
        state: r.str("state"),
        attempts: r.i64("attempts"),
        next_at: r.i64("next_at"),
        deadline: r.i64("deadline"),
        last_error: r.opt_str("last_error"),
        created_at: r.i64("created_at"),
    }
}
