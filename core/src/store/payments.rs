//! Credit packs, the checkouts Hub started, and the webhook deliveries it
//! received. The ledger entries payments write are in `ledger.rs`, with
//! every other write to the ledger.

use super::patch::Change;
use super::{first, rows, Page, Row, Store};
use crate::kinds::{Currency, PaymentOutcome, PaymentStatus};
use crate::metering::money::Credits;
use crate::ports::{DbError, SqlValue, Stmt};
use crate::sql;

#[derive(Debug, Clone)]
pub struct PackRow {
    pub id: String,
    pub name: String,
    pub currency: Currency,
    /// The price in the currency's minor unit.
    pub unit_amount: i64,
    pub credits: Credits,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackPatch {
    pub name: Option<String>,
    pub currency: Option<Currency>,
    pub unit_amount: Option<i64>,
    pub credits: Option<Credits>,
    pub active: Option<bool>,
}

impl PackPatch {
    fn changes(&self) -> Vec<Change> {
        let mut out: Vec<Change> = Vec::new();
        let mut set = |c: &'static str, v: Option<SqlValue>| {
            if let Some(v) = v {
                out.push((c, v));
            }
        };
        set("name", self.name.clone().map(Into::into));
        set("currency", self.currency.as_ref().map(|c| c.as_str().into()));
        set("unit_amount", self.unit_amount.map(Into::into));
        set("credits", self.credits.map(|c| c.nanos().into()));
        set("active", self.active.map(Into::into));
        out
    }

    pub fn is_empty(&self) -> bool {
        self == &PackPatch::default()
    }
}

/// A checkout Hub started, with what it grants and costs fixed at the start.
#[derive(Debug, Clone)]
pub struct PaymentRow {
    pub id: String,
    pub user_id: String,
    pub pack_id: Option<String>,
    pub pack_name: String,
    pub credits: Credits,
    /// The price in the currency's minor unit.
    pub amount: i64,
    pub currency: Currency,
    pub status: PaymentStatus,
    pub session_id: Option<String>,
    pub payment_intent: Option<String>,
    pub error: Option<String>,
    pub paid_event: Option<String>,
    pub refunded_amount: i64,
    pub refunded_credits: Credits,
    pub created_at: i64,
    pub updated_at: i64,
    pub paid_at: Option<i64>,
}

/// A webhook delivery and what Hub did about it.
#[derive(Debug, Clone)]
pub struct PaymentEventRow {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub payment_id: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    pub created_at: i64,
}

fn currency(r: &Row) -> Currency {
    // Written only through `Currency`; an unreadable one would show as `xxx` (ISO's "no currency").
    Currency::parse(&r.str("currency")).unwrap_or_else(|| Currency::parse("xxx").expect("three letters"))
}

fn pack(r: &Row) -> PackRow {
    PackRow {
        id: r.str("id"),
        name: r.str("name"),
        currency: currency(r),
        unit_amount: r.i64("unit_amount"),
        credits: Credits::from_nanos(r.i64("credits")),
        active: r.bool("active"),
        created_at: r.i64("created_at"),
        updated_at: r.i64("updated_at"),
    }
}

pub(super) fn payment(r: &Row) -> PaymentRow {
    PaymentRow {
        id: r.str("id"),
        user_id: r.str("user_id"),
        pack_id: r.opt_str("pack_id"),
        pack_name: r.str("pack_name"),
        credits: Credits::from_nanos(r.i64("credits")),
        amount: r.i64("amount"),
        currency: currency(r),
        status: PaymentStatus::parse(&r.str("status")).unwrap_or(PaymentStatus::Failed),
        session_id: r.opt_str("session_id"),
        payment_intent: r.opt_str("payment_intent"),
        error: r.opt_str("error"),
        paid_event: r.opt_str("paid_event"),
        refunded_amount: r.i64("refunded_amount"),
        refunded_credits: Credits::from_nanos(r.i64("refunded_credits")),
        created_at: r.i64("created_at"),
        updated_at: r.i64("updated_at"),
        paid_at: r.opt_i64("paid_at"),
    }
}

fn event(r: &Row) -> PaymentEventRow {
    PaymentEventRow {
        id: r.i64("id"),
        event_id: r.str("event_id"),
        event_type: r.str("type"),
        payment_id: r.opt_str("payment_id"),
        outcome: r.str("outcome"),
        detail: r.opt_str("detail"),
        created_at: r.i64("created_at"),
    }
}

/// Which payments a listing shows.
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub user: Option<String>,
    pub status: Option<PaymentStatus>,
}

impl Store {
    // ------------------------------------------------------------ packs

    pub async fn insert_pack(&self, p: &PackRow) -> Result<(), DbError> {
        self.db
            .execute(sql!(
                "INSERT INTO credit_packs (id, name, currency, unit_amount, credits, active, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                &p.id,
                &p.name,
                p.currency.as_str(),
                p.unit_amount,
                p.credits.nanos(),
                p.active,
                p.created_at,
                p.updated_at
            ))
            .await
            .map(drop)
    }

    /// Every pack (cheapest first), or only those on sale.
    pub async fn list_packs(&self, active_only: bool) -> Result<Vec<PackRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM credit_packs WHERE (?1 = 0 OR active = 1) ORDER BY currency, unit_amount, id",
                active_only
            ))
            .await?;
        Ok(rows(&r).map(|r| pack(&r)).collect())
    }

    pub async fn get_pack(&self, id: &str) -> Result<Option<PackRow>, DbError> {
        let r = self
            .db
            .query(sql!("SELECT * FROM credit_packs WHERE id = ?1", id))
            .await?;
        Ok(first(&r).map(|r| pack(&r)))
    }

    pub async fn update_pack(&self, id: &str, patch: &PackPatch, now_ms: i64) -> Result<bool, DbError> {
        let changes = patch.changes();
        let mut sets: Vec<String> = changes
            .iter()
            .enumerate()
            .map(|(i, (c, _))| format!("{c} = ?{}", i + 1))
            .collect();
        let n = changes.len();
        sets.push(format!("updated_at = ?{}", n + 1));
        let mut params: Vec<SqlValue> = changes.into_iter().map(|(_, v)| v).collect();
        params.push(now_ms.into());
        params.push(id.into());
        let sql = format!("UPDATE credit_packs SET {} WHERE id = ?{}", sets.join(", "), n + 2);
        Ok(self.db.execute(Stmt::new(sql, params)).await? > 0)
    }

    /// Deletes a pack; checkouts already started keep what they recorded.
    pub async fn delete_pack(&self, id: &str) -> Result<bool, DbError> {
        Ok(self
            .db
            .execute(sql!("DELETE FROM credit_packs WHERE id = ?1", id))
            .await?
            > 0)
    }

    // ------------------------------------------------------------ payments

    /// Records a checkout about to be started (`pending`).
    pub async fn insert_payment(&self, p: &PaymentRow) -> Result<(), DbError> {
        self.db
            .execute(sql!(
                "INSERT INTO payments (id, user_id, pack_id, pack_name, credits, amount, currency, status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                &p.id, &p.user_id, p.pack_id.clone(), &p.pack_name, p.credits.nanos(), p.amount, p.currency.as_str(),
                p.status.as_str(), p.created_at
            ))
            .await
            .map(drop)
    }

    /// Stripe created the session: the checkout is open.
    pub async fn open_payment(&self, id: &str, session_id: &str, now_ms: i64) -> Result<(), DbError> {
        self.db
            .execute(sql!(
                "UPDATE payments SET status = 'open', session_id = ?2, updated_at = ?3 WHERE id = ?1 AND status = 'pending'",
                id,
                session_id,
                now_ms
            ))
            .await
            .map(drop)
    }

    /// The checkout ended without payment (`failed` or `expired`); a paid
    /// one is never changed.
    pub async fn close_payment(
        &self,
        id: &str,
        status: PaymentStatus,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(sql!(
                "UPDATE payments SET status = ?2, error = ?3, updated_at = ?4 WHERE id = ?1 AND status IN ('pending', 'open')",
                id,
                status.as_str(),
                error,
                now_ms
            ))
            .await?;
        Ok(n > 0)
    }

    pub async fn get_payment(&self, id: &str) -> Result<Option<PaymentRow>, DbError> {
        let r = self.db.query(sql!("SELECT * FROM payments WHERE id = ?1", id)).await?;
        Ok(first(&r).map(|r| payment(&r)))
    }

    pub async fn payment_by_session(&self, session_id: &str) -> Result<Option<PaymentRow>, DbError> {
        let r = self
            .db
            .query(sql!("SELECT * FROM payments WHERE session_id = ?1", session_id))
            .await?;
        Ok(first(&r).map(|r| payment(&r)))
    }

    pub async fn payment_by_intent(&self, payment_intent: &str) -> Result<Option<PaymentRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM payments WHERE payment_intent = ?1 AND status = 'paid'",
                payment_intent
            ))
            .await?;
        Ok(first(&r).map(|r| payment(&r)))
    }

    /// Payments, newest first.
    pub async fn list_payments(
        &self,
        filter: &PaymentFilter,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Page<PaymentRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM payments WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR status = ?2)
                 AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4",
                filter.user.clone(),
                filter.status.map(|s| s.as_str()),
                cursor,
                limit + 1
            ))
            .await?;
        let items: Vec<PaymentRow> = rows(&r).map(|r| payment(&r)).collect();
        Ok(Page::from_rows(items, limit, |p| p.id.clone()))
    }

    // ------------------------------------------------------------ webhook deliveries

    pub async fn record_payment_event(
        &self,
        event_id: &str,
        event_type: &str,
        payment_id: Option<&str>,
        outcome: PaymentOutcome,
        detail: Option<&str>,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.db
            .execute(sql!(
                "INSERT INTO payment_events (event_id, type, payment_id, outcome, detail, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                event_id,
                event_type,
                payment_id,
                outcome.as_str(),
                detail,
                now_ms
            ))
            .await
            .map(drop)
    }

    /// Deliveries, newest first.
    pub async fn list_payment_events(&self, cursor: Option<i64>, limit: i64) -> Result<Page<PaymentEventRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM payment_events WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
                cursor,
                limit + 1
            ))
            .await?;
        let items: Vec<PaymentEventRow> = rows(&r).map(|r| event(&r)).collect();
        Ok(Page::from_rows(items, limit, |e| e.id.to_string()))
    }
}
