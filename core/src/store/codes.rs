//! Redemption codes: batches of codes minted by an operator, stored as keyed
//! hashes, and their redemptions. A redemption, the use it takes and its
//! ledger grant are one atomic batch whose every write is conditional, so
//! concurrent redemptions never exceed a code's uses and a retried batch
//! grants once.

use super::{first, grant_stmt, rows, Grant, GrantIf, Page, Row, Store};
use crate::metering::money::Credits;
use crate::ports::{DbError, Stmt};
use crate::sql;

/// A batch as minted: what each of its codes is worth, and the rules.
#[derive(Debug, Clone)]
pub struct CodeBatchRow {
    pub id: String,
    pub label: Option<String>,
    pub credits: Credits,
    /// Redemptions each code allows.
    pub uses: i64,
    pub once_per_user: bool,
    pub expires_at: Option<i64>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

/// One code of a batch: its keyed hash stays in the database.
#[derive(Debug, Clone)]
pub struct CodeRow {
    pub id: String,
    pub batch_id: String,
    pub hint: String,
    /// Redemptions so far (the schema keeps it equal to their count).
    pub used: i64,
    pub disabled_at: Option<i64>,
}

/// A code to store: its id, keyed hash and hint.
#[derive(Debug, Clone)]
pub struct NewCode {
    pub id: String,
    pub hash: String,
    pub hint: String,
}

/// One redemption to attempt.
#[derive(Debug, Clone)]
pub struct Redemption<'a> {
    pub id: &'a str,
    pub code: &'a CodeRow,
    pub batch: &'a CodeBatchRow,
    pub user_id: &'a str,
    /// The failed-attempt record this redemption clears when it succeeds.
    pub attempt_id: &'a str,
    pub now_ms: i64,
}

/// Codes per INSERT: three parameters each, under D1's 100 per statement.
const CODES_PER_INSERT: usize = 30;

fn batch_row(r: &Row<'_>) -> CodeBatchRow {
    CodeBatchRow {
        id: r.str("id"),
        label: r.opt_str("label"),
        credits: Credits::from_nanos(r.i64("credits")),
        uses: r.i64("uses"),
        once_per_user: r.bool("once_per_user"),
        expires_at: r.opt_i64("expires_at"),
        created_by: r.opt_str("created_by"),
        created_at: r.i64("created_at"),
        disabled_at: r.opt_i64("disabled_at"),
    }
}

fn code_row(r: &Row<'_>) -> CodeRow {
    CodeRow {
        id: r.str("id"),
        batch_id: r.str("batch_id"),
        hint: r.str("hint"),
        used: r.i64("used"),
        disabled_at: r.opt_i64("disabled_at"),
    }
}

/// The INSERTs of a batch's codes, a few dozen rows each.
fn code_inserts(batch_id: &str, codes: &[NewCode]) -> Vec<Stmt> {
    codes
        .chunks(CODES_PER_INSERT)
        .map(|chunk| {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("(?{}, ?1, ?{}, ?{})", 3 * i + 2, 3 * i + 3, 3 * i + 4))
                .collect();
            let mut params = vec![batch_id.into()];
            for c in chunk {
                params.extend([c.id.as_str().into(), c.hash.as_str().into(), c.hint.as_str().into()]);
            }
            let text = format!(
                "INSERT INTO redemption_codes (id, batch_id, code_hash, hint) VALUES {}",
                rows.join(", ")
            );
            Stmt::new(text, params)
        })
        .collect()
}

/// The redemption row, written only while the code is enabled, unexpired,
/// has a use left, the user has not redeemed it (once per user: the unique
/// index), and the grant keeps the balance in range. Its trigger takes the use.
fn redemption_stmt(r: &Redemption<'_>) -> Stmt {
    sql!(
        "INSERT INTO redemptions (id, code_id, user_id, credits, once_per_user, created_at)
         SELECT ?1, c.id, ?2, b.credits, b.once_per_user, ?3
         FROM redemption_codes c JOIN redemption_batches b ON b.id = c.batch_id
         WHERE c.id = ?4 AND c.disabled_at IS NULL AND b.disabled_at IS NULL
           AND (b.expires_at IS NULL OR b.expires_at > ?3) AND c.used < b.uses
           AND EXISTS (SELECT 1 FROM users WHERE id = ?2 AND balance + b.credits BETWEEN -?5 AND ?5)
         ON CONFLICT DO NOTHING",
        r.id,
        r.user_id,
        r.now_ms,
        &r.code.id,
        Credits::MAX.nanos()
    )
}

/// The ledger entry of a redemption: its reason names the code by its hint.
fn redemption_grant(r: &Redemption<'_>) -> Stmt {
    let reason = match &r.batch.label {
        Some(label) => format!("redemption code {} ({label})", r.code.hint),
        None => format!("redemption code {}", r.code.hint),
    };
    let grant = Grant {
        user_id: r.user_id,
        amount: r.batch.credits,
        reason: Some(&reason),
        created_by: None,
        reference: Some(format!("redemption:{}", r.id)),
        expires_at: None,
        now_ms: r.now_ms,
    };
    grant_stmt(&grant, GrantIf::Redeemed(r.id))
}

impl Store {
    /// Stores a batch and its codes, all or none.
    pub async fn insert_code_batch(&self, b: &CodeBatchRow, codes: &[NewCode]) -> Result<(), DbError> {
        let mut stmts = vec![sql!(
            "INSERT INTO redemption_batches (id, label, credits, uses, once_per_user, expires_at, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            &b.id,
            b.label.clone(),
            b.credits.nanos(),
            b.uses,
            b.once_per_user,
            b.expires_at,
            b.created_by.clone(),
            b.created_at
        )];
        stmts.extend(code_inserts(&b.id, codes));
        self.db.batch(stmts).await.map(drop)
    }

    /// Batches newest first, each with its codes.
    pub async fn list_code_batches(
        &self,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Page<(CodeBatchRow, Vec<CodeRow>)>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM redemption_batches WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
                cursor,
                limit + 1
            ))
            .await?;
        let batches: Vec<CodeBatchRow> = rows(&r).map(|r| batch_row(&r)).collect();
        let page = Page::from_rows(batches, limit, |b| b.id.clone());
        let codes = self.codes_of_page(cursor, limit).await?;
        let items = page
            .items
            .into_iter()
            .map(|b| {
                let mine = codes.iter().filter(|c| c.batch_id == b.id).cloned().collect();
                (b, mine)
            })
            .collect();
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    /// The codes of the batches a page of [`Store::list_code_batches`] shows.
    async fn codes_of_page(&self, cursor: Option<&str>, limit: i64) -> Result<Vec<CodeRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT id, batch_id, hint, used, disabled_at FROM redemption_codes WHERE batch_id IN
                   (SELECT id FROM redemption_batches WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2)
                 ORDER BY id",
                cursor,
                limit
            ))
            .await?;
        Ok(rows(&r).map(|r| code_row(&r)).collect())
    }

    /// The codes of one batch.
    pub async fn codes_of_batch(&self, batch_id: &str) -> Result<Vec<CodeRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT id, batch_id, hint, used, disabled_at FROM redemption_codes WHERE batch_id = ?1 ORDER BY id",
                batch_id
            ))
            .await?;
        Ok(rows(&r).map(|r| code_row(&r)).collect())
    }

    pub async fn get_code_batch(&self, id: &str) -> Result<Option<CodeBatchRow>, DbError> {
        let r = self
            .db
            .query(sql!("SELECT * FROM redemption_batches WHERE id = ?1", id))
            .await?;
        Ok(first(&r).map(|r| batch_row(&r)))
    }

    /// The code with this keyed hash, and its batch.
    pub async fn find_code(&self, hash: &str) -> Result<Option<(CodeRow, CodeBatchRow)>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT id, batch_id, hint, used, disabled_at FROM redemption_codes WHERE code_hash = ?1",
                hash
            ))
            .await?;
        let Some(code) = first(&r).map(|r| code_row(&r)) else {
            return Ok(None);
        };
        let batch = self.get_code_batch(&code.batch_id).await?;
        Ok(batch.map(|b| (code, b)))
    }

    /// The code's current state (after a refused redemption, to say why).
    pub async fn get_code(&self, id: &str) -> Result<Option<CodeRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT id, batch_id, hint, used, disabled_at FROM redemption_codes WHERE id = ?1",
                id
            ))
            .await?;
        Ok(first(&r).map(|r| code_row(&r)))
    }

    /// Disables a code (`rdc_…`) or every code of a batch (`rcb_…`); returns
    /// whether one was found. Redemptions already made stay.
    pub async fn disable_codes(&self, id: &str, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .db
            .batch(vec![
                sql!(
                    "UPDATE redemption_codes SET disabled_at = COALESCE(disabled_at, ?2) WHERE id = ?1",
                    id,
                    now_ms
                ),
                sql!(
                    "UPDATE redemption_batches SET disabled_at = COALESCE(disabled_at, ?2) WHERE id = ?1",
                    id,
                    now_ms
                ),
            ])
            .await?;
        Ok(n.iter().any(|n| *n > 0))
    }

    /// Records an attempt to redeem unless the user already has `max`
    /// unsuccessful ones within the window: one conditional INSERT, so
    /// concurrent attempts cannot slip past the limit. Older records go.
    pub async fn take_redemption_attempt(
        &self,
        id: &str,
        user_id: &str,
        now_ms: i64,
        window_ms: i64,
        max: i64,
    ) -> Result<bool, DbError> {
        let since = now_ms - window_ms;
        let n = self
            .db
            .batch(vec![
                sql!(
                    "DELETE FROM redemption_attempts WHERE user_id = ?1 AND created_at <= ?2",
                    user_id,
                    since
                ),
                sql!(
                    "INSERT INTO redemption_attempts (id, user_id, created_at)
                     SELECT ?1, ?2, ?3
                     WHERE (SELECT COUNT(*) FROM redemption_attempts WHERE user_id = ?2 AND created_at > ?4) < ?5",
                    id,
                    user_id,
                    now_ms,
                    since,
                    max
                ),
            ])
            .await?;
        Ok(n.get(1).is_some_and(|n| *n > 0))
    }

    /// Redeems a code: the redemption (taking a use), its grant and the
    /// clearing of its attempt record, as one batch in which the grant and
    /// the clearing happen only if the redemption was written. Returns
    /// whether the credits were granted.
    pub async fn redeem(&self, r: &Redemption<'_>) -> Result<bool, DbError> {
        let counts = self
            .db
            .batch(vec![
                redemption_stmt(r),
                redemption_grant(r),
                sql!(
                    "DELETE FROM redemption_attempts WHERE id = ?1 AND EXISTS (SELECT 1 FROM redemptions WHERE id = ?2)",
                    r.attempt_id,
                    r.id
                ),
            ])
            .await?;
        // Some servers count the trigger's update too: any change means it was written.
        Ok(counts.get(1).is_some_and(|n| *n >= 1))
    }

    /// Whether the user has redeemed the code before.
    pub async fn has_redeemed(&self, code_id: &str, user_id: &str) -> Result<bool, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT 1 FROM redemptions WHERE code_id = ?1 AND user_id = ?2 LIMIT 1",
                code_id,
                user_id
            ))
            .await?;
        Ok(!r.rows.is_empty())
    }
}
