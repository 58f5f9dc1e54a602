//! Credits: grants, the ledger, holds and settlement. Every method is one
//! atomic statement or batch; the schema's triggers keep `users.balance` equal
//! to the ledger's sum and `users.held` equal to the open holds' sum.

use super::{first, rows, Page, Store};
use crate::metering::money::Credits;
use crate::metering::{HeldIn, Rates, Usage};
use crate::ports::{DbError, SqlValue, Stmt};
use crate::sql;

#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub id: i64,
    pub user_id: String,
    pub kind: String,
    pub amount: Credits,
    pub call_id: Option<String>,
    pub reason: Option<String>,
    /// The entry's unique reference, if it has one (`stripe:{session}`,
    /// `redemption:<id>`, …).
    pub reference: Option<String>,
    pub expires_at: Option<i64>,
    pub created_by: Option<String>,
    pub created_at: i64,
}

/// Everything one finished call writes, in one transaction.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub call_id: String,
    pub user_id: String,
    pub key_id: Option<String>,
    pub app: Option<String>,
    pub provider_id: Option<String>,
    pub model: String,
    pub kind: crate::kinds::ModelKind,
    pub usage: Usage,
    pub rates: Rates,
    pub credits: Credits,
    /// Whether the credits come off the balance (billing on).
    pub billed: bool,
    pub estimated: bool,
    /// Where the call's hold is, if one was placed: a hold row is closed,
    /// a lease is charged (the credit book needs no write).
    pub hold: Option<crate::metering::HeldIn>,
    /// Whether the call was admitted under its key's limits (a key_events row to update).
    pub key_limited: bool,
    pub now_ms: i64,
    /// The call-log row of the attempt that produced this usage.
    pub log: CallLog,
}

/// One attempt at a provider, as the call log records it.
#[derive(Debug, Clone)]
pub struct CallLog {
    pub id: String,
    pub call_id: String,
    pub attempt: i64,
    pub request_id: Option<String>,
    pub endpoint: crate::kinds::Endpoint,
    pub user_id: Option<String>,
    pub key_id: Option<String>,
    pub app: Option<String>,
    pub provider_id: Option<String>,
    pub provider: Option<String>,
    pub credential_id: Option<String>,
    /// The model as the caller named it.
    pub model: String,
    /// The alias the caller named, when the call came through one.
    pub alias: Option<String>,
    /// The provider's model this attempt asked for.
    pub upstream_model: Option<String>,
    pub stream: bool,
    pub status: crate::kinds::CallStatus,
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub usage: Usage,
    pub credits: Credits,
    /// What prompt caching saved on this call (`Rates::cache_savings`).
    pub cache_saved: Credits,
    /// How the call used the response cache, if it did.
    pub response_cache: Option<crate::kinds::CacheUse>,
    /// What a cache hit saved: the answer's original cost less what the hit was billed.
    pub response_cache_saved: Credits,
    pub estimated: bool,
    /// The provider reported more usage than the request could produce; it was cut to the bound.
    pub clamped: bool,
    pub duration_ms: i64,
    pub ttfb_ms: Option<i64>,
    pub upstream_ttfb_ms: Option<i64>,
    pub created_at: i64,
}

pub fn call_log_stmt(c: &CallLog) -> Stmt {
    sql!(
        "INSERT OR IGNORE INTO calls (id, call_id, attempt, request_id, endpoint, user_id, key_id, app, provider_id, provider, credential_id, model, stream, status, http_status, error, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, credits, estimated, duration_ms, ttfb_ms, upstream_ttfb_ms, created_at, clamped, cache_write_1h_tokens, cache_saved, audio_ms, characters, video_seconds, response_cache, response_cache_saved, alias, upstream_model)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36)",
        &c.id, &c.call_id, c.attempt, c.request_id.clone(), c.endpoint.as_str(), c.user_id.clone(), c.key_id.clone(), c.app.clone(),
        c.provider_id.clone(), c.provider.clone(), c.credential_id.clone(), &c.model, c.stream, c.status.as_str(), c.http_status,
        c.error.clone(), c.usage.input_tokens, c.usage.output_tokens, c.usage.cache_read_tokens, c.usage.cache_write_tokens,
        c.credits.nanos(), c.estimated, c.duration_ms, c.ttfb_ms, c.upstream_ttfb_ms, c.created_at, c.clamped,
        c.usage.cache_write_1h_tokens, c.cache_saved.nanos(), c.usage.audio_ms, c.usage.characters, c.usage.video_seconds,
        c.response_cache.map(crate::kinds::CacheUse::as_str), c.response_cache_saved.nanos(),
        c.alias.clone(), c.upstream_model.clone()
    )
}

/// Credits added to a balance (or, negative, taken from it). Every grant Hub
/// writes, whatever asked for it (an admin, a payment, a refund, a
/// redemption, starter credits), is written by [`grant_stmt`].
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    pub user_id: &'a str,
    pub amount: Credits,
    pub reason: Option<&'a str>,
    pub created_by: Option<&'a str>,
    /// A unique reference (`redemption:<id>`): with one, the entry is
    /// written at most once however often its write is retried.
    pub reference: Option<String>,
    /// When the credits expire (positive grants only): the grant opens a
    /// bucket that the ledger's trigger keeps (see migration 0008).
    pub expires_at: Option<i64>,
    pub now_ms: i64,
}

/// What must also hold, in the same batch, for a grant to be written.
#[derive(Debug, Clone, Copy)]
pub enum GrantIf<'a> {
    Always,
    /// The redemption with this id was written earlier in the batch.
    Redeemed(&'a str),
    /// The checkout with this Checkout Session is still `open` (not paid,
    /// not closed): a paid checkout's grant.
    CheckoutOpen {
        session_id: &'a str,
    },
    /// The payment is `paid` and its refunded totals are still the ones read
    /// (no other refund was taken back since): a refund's adjustment.
    RefundAfter {
        payment_id: &'a str,
        refunded_amount: i64,
        refunded_credits: Credits,
    },
}

impl GrantIf<'_> {
    /// The condition's SQL (its parameters numbered from ?9) and their values.
    fn sql(self) -> (&'static str, Vec<SqlValue>) {
        match self {
            GrantIf::Always => ("", vec![]),
            GrantIf::Redeemed(id) => ("AND EXISTS (SELECT 1 FROM redemptions WHERE id = ?9)", vec![id.into()]),
            GrantIf::CheckoutOpen { session_id } => (
                "AND EXISTS (SELECT 1 FROM payments WHERE session_id = ?9 AND user_id = ?1 AND status = 'open')",
                vec![session_id.into()],
            ),
            GrantIf::RefundAfter {
                payment_id,
                refunded_amount,
                refunded_credits,
            } => (
                "AND EXISTS (SELECT 1 FROM payments WHERE id = ?9 AND user_id = ?1 AND status = 'paid'
                             AND refunded_amount = ?10 AND refunded_credits = ?11)",
                vec![
                    payment_id.into(),
                    refunded_amount.into(),
                    refunded_credits.nanos().into(),
                ],
            ),
        }
    }
}

/// The conditional INSERT of a grant: written only if the balance stays
/// within ±`Credits::MAX` (both terms are within it, so their sum cannot
/// overflow SQLite's INTEGER), `condition` holds and no entry has its reference.
pub fn grant_stmt(g: &Grant<'_>, condition: GrantIf<'_>) -> Stmt {
    let kind = if g.amount.is_negative() { "adjustment" } else { "grant" };
    let (extra, extra_params) = condition.sql();
    let text = format!(
        "INSERT INTO ledger (user_id, kind, amount, reason, created_by, ref, created_at, expires_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
         WHERE EXISTS (SELECT 1 FROM users WHERE id = ?1 AND balance + ?3 BETWEEN -?12 AND ?12)
           {extra}
         ON CONFLICT (ref) DO NOTHING"
    );
    let mut params: Vec<SqlValue> = vec![
        g.user_id.into(),
        kind.into(),
        g.amount.nanos().into(),
        g.reason.into(),
        g.created_by.into(),
        g.reference.clone().into(),
        g.now_ms.into(),
        g.expires_at.into(),
    ];
    params.extend(extra_params);
    // ?12 whatever the condition's count: unused numbers in between are NULL.
    params.resize(11, SqlValue::Null);
    params.push(Credits::MAX.nanos().into());
    Stmt::new(text, params)
}

impl Store {
    /// Adds a grant (or, negative, an adjustment) unless it would take the
    /// balance outside ±`Credits::MAX`. Returns whether it was applied.
    pub async fn grant(&self, grant: &Grant<'_>) -> Result<bool, DbError> {
        let n = self.db.execute(grant_stmt(grant, GrantIf::Always)).await?;
        Ok(n > 0)
    }

    /// The id of the ledger entry with this reference, if it was written.
    pub async fn ledger_id(&self, reference: &str) -> Result<Option<i64>, DbError> {
        let r = self
            .db
            .query(sql!("SELECT id FROM ledger WHERE ref = ?1", reference))
            .await?;
        Ok(super::first(&r).map(|row| row.i64("id")))
    }

    /// Grants a paid checkout the credits recorded when it started, once:
    /// the ledger entry carries the unique reference `stripe:{session}`, is
    /// written only while the checkout is `open` (and the balance stays in
    /// range), and marks it `paid` in the same batch. However often, and
    /// however concurrently, its events arrive, one grant. Returns whether
    /// this call wrote it.
    pub async fn grant_payment(
        &self,
        p: &super::PaymentRow,
        session_id: &str,
        event_id: &str,
        payment_intent: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let reference = format!("stripe:{session_id}");
        let reason = format!("purchase: {}", p.pack_name);
        let grant = Grant {
            user_id: &p.user_id,
            amount: p.credits,
            reason: Some(&reason),
            created_by: None,
            reference: Some(reference.clone()),
            expires_at: None,
            now_ms,
        };
        let changed = self
            .db
            .batch(vec![
                grant_stmt(&grant, GrantIf::CheckoutOpen { session_id }),
                sql!(
                    "UPDATE payments SET status = 'paid', paid_event = ?2, payment_intent = COALESCE(?3, payment_intent),
                     paid_at = ?4, updated_at = ?4
                     WHERE session_id = ?1 AND status = 'open' AND EXISTS (SELECT 1 FROM ledger WHERE ref = ?5)",
                    session_id,
                    event_id,
                    payment_intent,
                    now_ms,
                    &reference
                ),
            ])
            .await?;
        Ok(changed.first().is_some_and(|n| *n > 0))
    }

    /// Takes back the credits of a refund of payment `p` (as read): its
    /// refunded total becomes `refunded_amount` (minor units, cumulative as
    /// Stripe reports it) and `refunded_credits`, and the difference from
    /// what was taken back before is one `adjustment` entry, referenced
    /// `stripe-refund:{payment}:{refunded_amount}`, written only while the
    /// payment's refunded totals are still the ones read. A total not above
    /// the one recorded changes nothing, so replays and late, smaller totals
    /// are harmless; a refund that raced in since `p` was read also makes
    /// this write nothing (read again and retry). Returns the entry's amount
    /// when this call wrote it.
    pub async fn refund_payment(
        &self,
        p: &super::PaymentRow,
        refunded_amount: i64,
        refunded_credits: Credits,
        now_ms: i64,
    ) -> Result<Option<Credits>, DbError> {
        if refunded_amount <= p.refunded_amount || refunded_credits <= p.refunded_credits {
            return Ok(None);
        }
        let taken = p.refunded_credits.saturating_sub(refunded_credits);
        let reference = format!("stripe-refund:{}:{refunded_amount}", p.id);
        let reason = format!("refund: {}", p.pack_name);
        let adjustment = Grant {
            user_id: &p.user_id,
            amount: taken,
            reason: Some(&reason),
            created_by: None,
            reference: Some(reference.clone()),
            expires_at: None,
            now_ms,
        };
        let condition = GrantIf::RefundAfter {
            payment_id: &p.id,
            refunded_amount: p.refunded_amount,
            refunded_credits: p.refunded_credits,
        };
        let changed = self
            .db
            .batch(vec![
                grant_stmt(&adjustment, condition),
                sql!(
                    "UPDATE payments SET refunded_amount = ?2, refunded_credits = ?3, updated_at = ?4
                     WHERE id = ?1 AND refunded_amount < ?2 AND EXISTS (SELECT 1 FROM ledger WHERE ref = ?5)",
                    &p.id,
                    refunded_amount,
                    refunded_credits.nanos(),
                    now_ms,
                    &reference
                ),
            ])
            .await?;
        Ok(changed.first().is_some_and(|n| *n > 0).then_some(taken))
    }

    pub async fn ledger(&self, user_id: &str, cursor: Option<i64>, limit: i64) -> Result<Page<LedgerEntry>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM ledger WHERE user_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
                user_id,
                cursor,
                limit + 1
            ))
            .await?;
        let items: Vec<LedgerEntry> = rows(&r)
            .map(|r| LedgerEntry {
                id: r.i64("id"),
                user_id: r.str("user_id"),
                kind: r.str("kind"),
                amount: Credits::from_nanos(r.i64("amount")),
                call_id: r.opt_str("call_id"),
                reason: r.opt_str("reason"),
                reference: r.opt_str("ref"),
                expires_at: r.opt_i64("expires_at"),
                created_by: r.opt_str("created_by"),
                created_at: r.i64("created_at"),
            })
            .collect();
        Ok(Page::from_rows(items, limit, |e| e.id.to_string()))
    }

    /// Reserves `amount` for a call if the user's free balance covers it:
    /// the balance, less open holds, less what is left of buckets past their
    /// expiry that the expiry job has not emptied yet (expired credit is
    /// never spendable, whenever the job runs). One conditional INSERT:
    /// concurrent holds serialize in the database and can never together
    /// exceed the balance.
    pub async fn place_hold(
        &self,
        call_id: &str,
        user_id: &str,
        amount: Credits,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(sql!(
                "INSERT INTO holds (id, user_id, amount, state, created_at, expires_at)
                 SELECT ?1, ?2, ?3, 'open', ?4, ?5 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?2 AND balance - held
                   - (SELECT COALESCE(SUM(remaining), 0) FROM credit_buckets WHERE user_id = ?2 AND remaining > 0 AND expires_at <= ?4)
                   >= ?3)",
                call_id, user_id, amount.nanos(), now_ms, now_ms + ttl_ms
            ))
            .await?;
        // Some servers count the trigger's update too: any change means the hold was placed.
        Ok(n >= 1)
    }

    /// Closes a hold without charging (the provider failed before any output).
    pub fn release_hold_stmt(call_id: &str, now_ms: i64) -> Stmt {
        sql!(
            "UPDATE holds SET state = 'released', closed_at = ?2 WHERE id = ?1 AND state = 'open'",
            call_id,
            now_ms
        )
    }

    /// The writes of a finished call: usage row, ledger entry, hold release,
    /// key-limit record and call log, to run as one batch. Idempotent per call
    /// id (every statement is an INSERT OR IGNORE or a conditional UPDATE), so
    /// running them twice charges once: retries and journal replays are safe.
    pub fn settlement_stmts(s: &Settlement, earlier_attempts: &[CallLog]) -> Vec<Stmt> {
        let u = &s.usage;
        let mut stmts = vec![sql!(
            "INSERT OR IGNORE INTO usage (call_id, user_id, key_id, app, provider_id, model, type, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, images, input_rate, output_rate, cache_read_rate, cache_write_rate, image_rate, credits, billed, estimated, created_at, clamped, cache_write_1h_tokens, cache_write_1h_rate, cache_saved, audio_ms, characters, video_seconds, audio_rate, video_rate, response_cache_saved)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)",
            &s.call_id, &s.user_id, s.key_id.clone(), s.app.clone(), s.provider_id.clone(), &s.model, s.kind.as_str(),
            u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens, u.images,
            s.rates.input.nanos(), s.rates.output.nanos(), s.rates.cache_read.map(|r| r.nanos()),
            s.rates.cache_write.map(|r| r.nanos()), s.rates.image.nanos(), s.credits.nanos(), s.billed, s.estimated, s.now_ms,
            s.log.clamped, u.cache_write_1h_tokens, s.rates.cache_write_1h.map(|r| r.nanos()), s.log.cache_saved.nanos(),
            u.audio_ms, u.characters, u.video_seconds, s.rates.audio.nanos(), s.rates.video.nanos(),
            s.log.response_cache_saved.nanos()
        )];
        if s.billed && s.credits.nanos() != 0 {
            stmts.push(sql!(
                "INSERT OR IGNORE INTO ledger (user_id, kind, amount, call_id, reason, created_at) VALUES (?1, 'usage', ?2, ?3, ?4, ?5)",
                &s.user_id, -s.credits.nanos(), &s.call_id, &s.model, s.now_ms
            ));
        }
        match &s.hold {
            Some(HeldIn::Row) => stmts.push(sql!(
                "UPDATE holds SET state = 'settled', closed_at = ?2 WHERE id = ?1 AND state = 'open'",
                &s.call_id,
                s.now_ms
            )),
            Some(HeldIn::Lease(lease)) if s.billed && s.credits.nanos() > 0 => stmts.push(Store::lease_charge_stmt(
                &s.call_id, &s.user_id, lease, s.credits, s.now_ms,
            )),
            _ => {}
        }
        if s.key_limited {
            let tokens = i64::try_from(u.total_tokens()).unwrap_or(i64::MAX);
            stmts.push(Store::key_call_stmt(&s.call_id, tokens, s.credits.nanos()));
        }
        stmts.extend(earlier_attempts.iter().map(call_log_stmt));
        stmts.push(call_log_stmt(&s.log));
        stmts
    }

    /// Runs writes as one atomic batch (a settlement, or its journal replay).
    pub async fn commit(&self, stmts: Vec<Stmt>) -> Result<(), DbError> {
        self.db.batch(stmts).await.map(|_| ())
    }

    /// Releases holds past their expiry (calls that never settled: a crash, a
    /// lost instance). Returns how many were released.
    pub async fn expire_holds(&self, now_ms: i64) -> Result<u64, DbError> {
        self.db
            .execute(sql!(
                "UPDATE holds SET state = 'expired', closed_at = ?1 WHERE state = 'open' AND expires_at <= ?1",
                now_ms
            ))
            .await
    }

    /// Releases at most `limit` expired holds, oldest expiry first (through
    /// the open-holds index); returns how many. Conditional on the hold still
    /// being open, so two instances sweeping at once release each hold once
    /// (the `holds_close` trigger frees its credit on that one transition).
    pub async fn expire_holds_batch(&self, now_ms: i64, limit: u64) -> Result<u64, DbError> {
        self.db
            .execute(sql!(
                "UPDATE holds SET state = 'expired', closed_at = ?1
                 WHERE state = 'open' AND id IN (
                   SELECT id FROM holds WHERE state = 'open' AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
                now_ms,
                limit as i64
            ))
            .await
    }

    /// Releases every open hold: for an embedded database at start-up, when no
    /// call can still be in flight.
    pub async fn expire_all_holds(&self, now_ms: i64) -> Result<u64, DbError> {
        self.db
            .execute(sql!(
                "UPDATE holds SET state = 'expired', closed_at = ?1 WHERE state = 'open'",
                now_ms
            ))
            .await
    }
}

/// A grant as AIGNE's credit API lists it: the entry, and what is left of it
/// when it expires (only expiring grants are tracked one by one).
#[derive(Debug, Clone)]
pub struct GrantEntry {
    pub entry: LedgerEntry,
    pub remaining: Option<Credits>,
    pub expired_at: Option<i64>,
}

/// A page of a user's ledger by position (AIGNE's `page`/`pageSize`), with the total count.
pub struct LedgerSlice<T> {
    pub count: i64,
    pub items: Vec<T>,
}

/// Which of a user's ledger entries, and which page of them.
#[derive(Debug, Clone, Copy)]
pub struct LedgerWindow {
    /// Only grants (positive `grant` entries), or every entry.
    pub grants_only: bool,
    /// Created at or after / before (ms), when given.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub offset: i64,
    pub limit: i64,
}

fn ledger_entry(r: &super::Row) -> LedgerEntry {
    LedgerEntry {
        id: r.i64("id"),
        user_id: r.str("user_id"),
        kind: r.str("kind"),
        amount: Credits::from_nanos(r.i64("amount")),
        call_id: r.opt_str("call_id"),
        reason: r.opt_str("reason"),
        reference: r.opt_str("ref"),
        expires_at: r.opt_i64("expires_at"),
        created_by: r.opt_str("created_by"),
        created_at: r.i64("created_at"),
    }
}

const LEDGER_WINDOW: &str = "l.user_id = ?1 AND (?2 = 0 OR (l.kind = 'grant' AND l.amount > 0))
     AND (?3 IS NULL OR l.created_at >= ?3) AND (?4 IS NULL OR l.created_at < ?4)";

impl Store {
    /// How many grants a user has had.
    pub async fn grant_count(&self, user_id: &str) -> Result<i64, DbError> {
        let w = LedgerWindow {
            grants_only: true,
            from_ms: None,
            to_ms: None,
            offset: 0,
            limit: 0,
        };
        Ok(self.ledger_slice(user_id, w).await?.count)
    }

    /// One page of a user's ledger (newest first), with the grants' buckets.
    pub async fn ledger_slice(&self, user_id: &str, w: LedgerWindow) -> Result<LedgerSlice<GrantEntry>, DbError> {
        let grants_only = i64::from(w.grants_only);
        let count = self
            .db
            .query(sql!(
                format!("SELECT COUNT(*) AS n FROM ledger l WHERE {LEDGER_WINDOW}"),
                user_id,
                grants_only,
                w.from_ms,
                w.to_ms
            ))
            .await?;
        let r = self
            .db
            .query(sql!(
                format!(
                    "SELECT l.*, b.remaining AS bucket_remaining, b.expired_at AS bucket_expired_at
                     FROM ledger l LEFT JOIN credit_buckets b ON b.id = l.id
                     WHERE {LEDGER_WINDOW} ORDER BY l.id DESC LIMIT ?5 OFFSET ?6"
                ),
                user_id,
                grants_only,
                w.from_ms,
                w.to_ms,
                w.limit,
                w.offset
            ))
            .await?;
        let items = rows(&r)
            .map(|r| GrantEntry {
                entry: ledger_entry(&r),
                remaining: r.opt_i64("bucket_remaining").map(Credits::from_nanos),
                expired_at: r.opt_i64("bucket_expired_at"),
            })
            .collect();
        Ok(LedgerSlice {
            count: first(&count).map_or(0, |r| r.i64("n")),
            items,
        })
    }
}
