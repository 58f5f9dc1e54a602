//! Users and their API keys.

use super::{first, rows, KeyPatch, Page, Row, Store, UserPatch};
use crate::auth::{Caller, Role};
use crate::metering::money::Credits;
use crate::ports::{DbError, Stmt};
use crate::sql;

/// How long key-limit rows are kept: the longest limit window is a calendar
/// month, plus a day for clock skew.
pub const KEY_EVENTS_KEPT_MS: i64 = 32 * 86_400_000;

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub role: String,
    pub balance: Credits,
    pub held: Credits,
    /// Of `held`, what instances hold as credit leases (a shared
    /// database): credit set aside for the user's own calls.
    pub leased: Credits,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub user_id: String,
    pub label: String,
    pub key_hint: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub allowed_models: Option<Vec<String>>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub daily_spend_cap: Option<Credits>,
    pub monthly_spend_cap: Option<Credits>,
    /// Whether the key's calls use the response cache when it is on.
    pub response_cache: bool,
    pub created_at: i64,
    pub parent_key_id: Option<String>,
    /// The team whose budget the key's calls count against (fixed at creation).
    pub team_id: Option<String>,
}

pub(super) fn user(r: &Row) -> UserRow {
    UserRow {
        id: r.str("id"),
        name: r.str("name"),
        email: r.opt_str("email"),
        role: r.str("role"),
        balance: Credits::from_nanos(r.i64("balance")),
        held: Credits::from_nanos(r.i64("held")),
        leased: Credits::from_nanos(r.i64("leased")),
        disabled: r.bool("disabled"),
        created_at: r.i64("created_at"),
        updated_at: r.i64("updated_at"),
    }
}

pub(super) fn key(r: &Row) -> KeyRow {
    KeyRow {
        id: r.str("id"),
        user_id: r.str("user_id"),
        label: r.str("label"),
        key_hint: r.str("key_hint"),
        expires_at: r.opt_i64("expires_at"),
        revoked_at: r.opt_i64("revoked_at"),
        allowed_models: r.json("allowed_models").and_then(|v| serde_json::from_value(v).ok()),
        rpm_limit: r.opt_i64("rpm_limit"),
        tpm_limit: r.opt_i64("tpm_limit"),
        daily_spend_cap: r.opt_i64("daily_spend_cap").map(Credits::from_nanos),
        monthly_spend_cap: r.opt_i64("monthly_spend_cap").map(Credits::from_nanos),
        response_cache: r.bool("response_cache"),
        created_at: r.i64("created_at"),
        parent_key_id: r.opt_str("parent_key_id"),
        team_id: r.opt_str("team_id"),
    }
}

/// A team budget a call is admitted against, in the period it counts in.
struct TeamBudget {
    id: String,
    budget: Credits,
    /// 0 for a budget without a period.
    period_start: i64,
    next_period: Option<i64>,
}

impl TeamBudget {
    fn of(caller: &Caller, now_ms: i64) -> Option<TeamBudget> {
        let team = caller.team.as_ref()?;
        let (budget, period_start, next_period) = team.budget_now(now_ms)?;
        Some(TeamBudget {
            id: team.id.clone(),
            budget,
            period_start,
            next_period,
        })
    }
}

/// What a key has used within the last minute, the call just admitted included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUse {
    pub requests: i64,
    pub tokens: i64,
}

/// A key to store: everything but the plaintext.
pub struct NewKeyRow<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub label: &'a str,
    pub key_hash: &'a str,
    pub key_hint: &'a str,
    pub expires_at: Option<i64>,
    pub allowed_models: Option<&'a [String]>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub daily_spend_cap: Option<Credits>,
    pub monthly_spend_cap: Option<Credits>,
    pub now_ms: i64,
    /// The key that minted this one through `/api/me/keys`.
    pub parent_key_id: Option<&'a str>,
    pub team_id: Option<&'a str>,
}

pub fn insert_key_stmt(k: &NewKeyRow) -> Stmt {
    sql!(
        "INSERT INTO api_keys (id, user_id, label, key_hash, key_hint, expires_at, allowed_models, rpm_limit, tpm_limit, daily_spend_cap, monthly_spend_cap, created_at, parent_key_id, team_id, hash_scheme) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 2)",
        k.id, k.user_id, k.label, k.key_hash, k.key_hint, k.expires_at,
        k.allowed_models.map(|m| serde_json::to_string(m).unwrap_or_default()),
        k.rpm_limit, k.tpm_limit, k.daily_spend_cap.map(Credits::nanos), k.monthly_spend_cap.map(Credits::nanos), k.now_ms,
        k.parent_key_id, k.team_id
    )
}

/// `insert_key_stmt`'s columns, inserted only while `?2` belongs to team `?14`.
const INSERT_TEAM_KEY: &str = "INSERT INTO api_keys (id, user_id, label, key_hash, key_hint, expires_at, allowed_models, rpm_limit, tpm_limit, daily_spend_cap, monthly_spend_cap, created_at, parent_key_id, team_id, hash_scheme) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 2 \
     WHERE EXISTS (SELECT 1 FROM team_members WHERE team_id = ?14 AND user_id = ?2) \
        OR EXISTS (SELECT 1 FROM teams WHERE id = ?14 AND account_id = ?2)";

impl Store {
    /// Creates a user, with a starter grant when `starter` is positive, atomically.
    pub async fn insert_user(&self, u: &UserRow, starter: Credits, extra: Vec<Stmt>) -> Result<(), DbError> {
        let mut stmts = vec![sql!(
            "INSERT INTO users (id, name, email, role, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            &u.id,
            &u.name,
            u.email.clone(),
            &u.role,
            u.created_at
        )];
        if starter.nanos() > 0 {
            let grant = super::Grant {
                user_id: &u.id,
                amount: starter,
                reason: Some("starter credits"),
                created_by: None,
                reference: None,
                expires_at: None,
                now_ms: u.created_at,
            };
            stmts.push(super::grant_stmt(&grant, super::GrantIf::Always));
        }
        stmts.extend(extra);
        self.db.batch(stmts).await.map(|_| ())
    }

    /// Every user's balance, for the credit book of an exclusive database.
    pub async fn balances(&self) -> Result<Vec<(String, Credits)>, DbError> {
        let r = self.db.query(sql!("SELECT id, balance FROM users")).await?;
        Ok(rows(&r)
            .map(|r| (r.str("id"), Credits::from_nanos(r.i64("balance"))))
            .collect())
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<UserRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                concat!("SELECT *, ", leased_column!(), " FROM users WHERE id = ?1"),
                id
            ))
            .await?;
        Ok(first(&r).map(|r| user(&r)))
    }

    /// Users by id, a page at a time; `search` (lower case) keeps those whose
    /// name or email contains it, or whose id it is. `instr`, not `LIKE`: a
    /// `%` or `_` someone types is a character to find, not a wildcard.
    pub async fn list_users(
        &self,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> Result<Page<UserRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                concat!("SELECT *, ", leased_column!(), " FROM users WHERE (?1 IS NULL OR id > ?1) \
                 AND (?3 IS NULL OR instr(lower(name), ?3) > 0 OR instr(lower(coalesce(email, '')), ?3) > 0 OR lower(id) = ?3) \
                 ORDER BY id LIMIT ?2"),
                cursor,
                limit + 1,
                search
            ))
            .await?;
        let items: Vec<UserRow> = rows(&r).map(|r| user(&r)).collect();
        Ok(Page::from_rows(items, limit, |u| u.id.clone()))
    }

    /// The users among `ids` (unknown ids are left out).
    pub async fn users_by_ids(&self, ids: &[&str]) -> Result<Vec<UserRow>, DbError> {
        let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        let r = self
            .db
            .query(sql!(
                concat!(
                    "SELECT *, ",
                    leased_column!(),
                    " FROM users WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id"
                ),
                list
            ))
            .await?;
        Ok(rows(&r).map(|r| user(&r)).collect())
    }

    pub async fn update_user(&self, id: &str, patch: &UserPatch, now_ms: i64) -> Result<bool, DbError> {
        let mut sets = Vec::new();
        let mut params = Vec::new();
        for (i, (col, v)) in patch.changes().into_iter().enumerate() {
            sets.push(format!("{col} = ?{}", i + 1));
            params.push(v);
        }
        let n = params.len();
        params.push(now_ms.into());
        params.push(id.into());
        let stmt = Stmt::new(
            format!(
                "UPDATE users SET {}, updated_at = ?{} WHERE id = ?{}",
                sets.join(", "),
                n + 1,
                n + 2
            ),
            params,
        );
        Ok(self.db.execute(stmt).await? > 0)
    }

    /// The owner user holding the key with this hash, creating both if
    /// missing; an existing key is restored to a working, unrestricted key of
    /// an enabled owner. Returns whether they were created.
    pub async fn ensure_owner_key(&self, user_id: &str, key: NewKeyRow<'_>) -> Result<bool, DbError> {
        let exists = self
            .db
            .query(sql!(
                "SELECT id, user_id FROM api_keys WHERE key_hash = ?1",
                key.key_hash
            ))
            .await?;
        if let Some(row) = first(&exists) {
            self.db
                .batch(vec![
                    sql!(
                        "UPDATE api_keys SET revoked_at = NULL, expires_at = NULL, allowed_models = NULL, rpm_limit = NULL,
                                tpm_limit = NULL, daily_spend_cap = NULL, monthly_spend_cap = NULL, parent_key_id = NULL,
                                key_hint = ?2
                         WHERE id = ?1",
                        row.str("id"),
                        key.key_hint
                    ),
                    sql!(
                        "UPDATE users SET role = 'owner', disabled = 0, updated_at = ?2 WHERE id = ?1 AND (role <> 'owner' OR disabled <> 0)",
                        row.str("user_id"),
                        key.now_ms
                    ),
                ])
                .await?;
            return Ok(false);
        }
        let user = UserRow {
            id: user_id.to_string(),
            name: "Owner".into(),
            email: None,
            role: "owner".into(),
            balance: Credits::ZERO,
            held: Credits::ZERO,
            leased: Credits::ZERO,
            disabled: false,
            created_at: key.now_ms,
            updated_at: key.now_ms,
        };
        self.insert_user(&user, Credits::ZERO, vec![insert_key_stmt(&key)])
            .await?;
        Ok(true)
    }

    // ------------------------------------------------------------ keys

    /// Inserts a key; one of a team only while its user is still a member
    /// (or the team's account), checked by the insert itself so a member
    /// removed, or a team deleted, meanwhile gets no key. False when refused.
    pub async fn insert_key(&self, k: &NewKeyRow<'_>) -> Result<bool, DbError> {
        let mut stmt = insert_key_stmt(k);
        if k.team_id.is_some() {
            stmt.sql = INSERT_TEAM_KEY.into();
        }
        Ok(self.db.execute(stmt).await? > 0)
    }

    pub async fn list_keys(&self, user_id: &str) -> Result<Vec<KeyRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM api_keys WHERE user_id = ?1 ORDER BY created_at DESC",
                user_id
            ))
            .await?;
        Ok(rows(&r).map(|r| key(&r)).collect())
    }

    pub async fn get_key(&self, id: &str) -> Result<Option<KeyRow>, DbError> {
        let r = self.db.query(sql!("SELECT * FROM api_keys WHERE id = ?1", id)).await?;
        Ok(first(&r).map(|r| key(&r)))
    }

    /// Applies a patch to a key that is not revoked; false when there is none.
    pub async fn update_key(&self, id: &str, patch: &KeyPatch) -> Result<bool, DbError> {
        let changes = patch.changes();
        let sets: Vec<String> = (0..changes.len())
            .map(|i| format!("{} = ?{}", changes[i].0, i + 1))
            .collect();
        let mut params: Vec<_> = changes.into_iter().map(|(_, v)| v).collect();
        params.push(id.into());
        let stmt = Stmt::new(
            format!(
                "UPDATE api_keys SET {} WHERE id = ?{} AND revoked_at IS NULL",
                sets.join(", "),
                params.len()
            ),
            params,
        );
        Ok(self.db.execute(stmt).await? > 0)
    }

    /// Revokes a key and every key minted from it, at any depth.
    pub async fn revoke_key(&self, id: &str, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(sql!(
                "WITH RECURSIVE minted(id) AS (
                   SELECT ?1 UNION SELECT k.id FROM api_keys k JOIN minted m ON k.parent_key_id = m.id
                 )
                 UPDATE api_keys SET revoked_at = ?2 WHERE id IN (SELECT id FROM minted) AND revoked_at IS NULL",
                id,
                now_ms
            ))
            .await?;
        Ok(n > 0)
    }

    /// Rewrites scheme-1 key hashes (bare SHA-256) as keyed hashes, and their
    /// hints as today's shorter ones. Returns how many keys were upgraded.
    pub async fn upgrade_key_hashes(&self, secret: &[u8; 32]) -> Result<u64, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT id, key_hash, key_hint FROM api_keys WHERE hash_scheme = 1"
            ))
            .await?;
        let stmts: Vec<Stmt> = rows(&r)
            .map(|row| {
                let hint = row.str("key_hint");
                // Old hints are `first eight…last four` of 36-character keys.
                let chars: Vec<char> = hint.chars().collect();
                let hint = match chars.iter().position(|c| *c == '…') {
                    Some(dot) if dot >= 4 && chars.len() >= dot + 5 => {
                        let head: String = chars[..4].iter().collect();
                        let tail: String = chars[chars.len() - 4..].iter().collect();
                        format!("{head}…{tail}")
                    }
                    _ => "****".to_string(),
                };
                sql!(
                    "UPDATE api_keys SET key_hash = ?2, key_hint = ?3, hash_scheme = 2 WHERE id = ?1 AND hash_scheme = 1",
                    row.str("id"),
                    crate::auth::upgrade_hash(secret, &row.str("key_hash")),
                    hint
                )
            })
            .collect();
        let n = stmts.len() as u64;
        if n > 0 {
            self.db.batch(stmts).await?;
        }
        Ok(n)
    }

    /// How many enabled owners there are.
    pub async fn active_owners(&self) -> Result<i64, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT COUNT(*) AS n FROM users WHERE role = 'owner' AND disabled = 0"
            ))
            .await?;
        Ok(first(&r).map_or(0, |r| r.i64("n")))
    }

    /// The caller behind a key hash, if the key exists (revoked and expired keys included).
    pub async fn caller_by_key_hash(&self, hash: &str) -> Result<Option<Caller>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT k.id, k.label, k.key_hash, k.expires_at, k.revoked_at, k.allowed_models, k.rpm_limit, k.tpm_limit,
                        k.daily_spend_cap, k.monthly_spend_cap, k.response_cache, u.id AS user_id, u.role, u.disabled,
                        k.team_id AS key_team, t.id AS team_id, t.budget AS team_budget, t.budget_period AS team_period,
                        t.time_zone AS team_zone, t.allowed_models AS team_models
                 FROM api_keys k JOIN users u ON u.id = k.user_id LEFT JOIN teams t ON t.id = k.team_id
                 WHERE k.key_hash = ?1",
                hash
            ))
            .await?;
        Ok(first(&r).map(|r| Caller {
            key_id: r.str("id"),
            key_label: r.str("label"),
            user_id: r.str("user_id"),
            role: Role::parse(&r.str("role")).unwrap_or(Role::Guest),
            expires_at: r.opt_i64("expires_at"),
            // A key of a team that is gone is revoked with it (its team's limits cannot hold).
            revoked: r.opt_i64("revoked_at").is_some()
                || r.bool("disabled")
                || (r.opt_str("key_team").is_some() && r.opt_str("team_id").is_none()),
            allowed_models: r.json("allowed_models").and_then(|v| serde_json::from_value(v).ok()),
            key_hash: r.str("key_hash"),
            limits: crate::auth::KeyLimits {
                rpm: r.opt_i64("rpm_limit"),
                tpm: r.opt_i64("tpm_limit"),
                daily_spend_cap: r.opt_i64("daily_spend_cap").map(crate::Credits::from_nanos),
                monthly_spend_cap: r.opt_i64("monthly_spend_cap").map(crate::Credits::from_nanos),
            },
            session: false,
            team: r.opt_str("team_id").map(|id| crate::auth::TeamScope {
                id,
                budget: r.opt_i64("team_budget").map(crate::Credits::from_nanos),
                period: crate::kinds::BudgetPeriod::parse(&r.str("team_period"))
                    .unwrap_or(crate::kinds::BudgetPeriod::None),
                zone: crate::time::Zone::parse(&r.str("team_zone")).unwrap_or(crate::time::Zone::UTC),
                allowed_models: r.json("team_models").and_then(|v| serde_json::from_value(v).ok()),
            }),
            response_cache: r.bool("response_cache"),
        }))
    }

    /// Admits a call under its key's limits and its team's budget by
    /// recording it, in one conditional INSERT: within the last minute fewer
    /// than `rpm` calls and at most `tpm` tokens (with this call's bound),
    /// this UTC day's and month's spend plus this call's hold within the
    /// caps, and the team's spend this period plus the hold within its
    /// budget. Spend is read from running totals (key_spend, team_spend)
    /// that the row's triggers move by the hold now and by the difference at
    /// settlement, so admission reads a few rows however busy the key. Returns
    /// what the key has used in the last minute, this call included (for the
    /// caller's rate-limit headers, read by the same statement), or None if
    /// refused.
    ///
    /// The reservation is released at `release_at` if the call never
    /// settles (see [`Store::prune_key_events`]).
    pub async fn admit_key_call(
        &self,
        call_id: &str,
        caller: &Caller,
        tokens: i64,
        spend: i64,
        now_ms: i64,
        release_at: i64,
    ) -> Result<Option<KeyUse>, DbError> {
        let l = &caller.limits;
        let (day, month) = crate::time::day_and_month_start(now_ms);
        let team = TeamBudget::of(caller, now_ms);
        // The RETURNING subqueries leave this call's row out and add it
        // back, whether or not SQLite shows them the row being inserted.
        let r = self
            .db
            .write_returning(sql!(
                "INSERT INTO key_events (call_id, key_id, at, tokens, spent, team_id, team_period, release_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?12, ?13, ?15
                 WHERE (?6 IS NULL OR (SELECT COUNT(*) FROM key_events WHERE key_id = ?2 AND at > ?3 - 60000) < ?6)
                   AND (?7 IS NULL OR (SELECT COALESCE(SUM(tokens), 0) FROM key_events WHERE key_id = ?2 AND at > ?3 - 60000) + ?4 <= ?7)
                   AND (?8 IS NULL OR COALESCE((SELECT spent FROM key_spend WHERE key_id = ?2 AND grain = 'day' AND start = ?9), 0) + ?5 <= ?8)
                   AND (?10 IS NULL OR COALESCE((SELECT spent FROM key_spend WHERE key_id = ?2 AND grain = 'month' AND start = ?11), 0) + ?5 <= ?10)
                   AND (?14 IS NULL OR COALESCE((SELECT spent FROM team_spend WHERE team_id = ?12 AND period_start = ?13), 0) + ?5 <= ?14)
                 RETURNING
                   (SELECT COUNT(*) FROM key_events WHERE key_id = ?2 AND at > ?3 - 60000 AND call_id <> ?1) + 1 AS requests,
                   (SELECT COALESCE(SUM(tokens), 0) FROM key_events WHERE key_id = ?2 AND at > ?3 - 60000 AND call_id <> ?1) + ?4 AS tokens",
                call_id,
                &caller.key_id,
                now_ms,
                tokens,
                spend,
                l.rpm,
                l.tpm,
                l.daily_spend_cap.map(|c| c.nanos()),
                day,
                l.monthly_spend_cap.map(|c| c.nanos()),
                month,
                team.as_ref().map(|t| t.id.clone()),
                team.as_ref().map(|t| t.period_start),
                team.as_ref().map(|t| t.budget.nanos()),
                release_at
            ))
            .await?;
        Ok(first(&r).map(|r| KeyUse {
            requests: r.i64("requests"),
            tokens: r.i64("tokens"),
        }))
    }

    /// Which of a key's limits (or its team's budget) is reached, for the
    /// refusal and its notice, and in how many milliseconds it would admit
    /// the call; `None` when none is any more (the window moved on meanwhile).
    pub async fn key_limit_reached(
        &self,
        caller: &Caller,
        tokens: i64,
        spend: i64,
        now_ms: i64,
    ) -> Result<Option<(crate::kinds::KeyLimit, Option<i64>)>, DbError> {
        use crate::kinds::KeyLimit;
        let (day, month) = crate::time::day_and_month_start(now_ms);
        let team = TeamBudget::of(caller, now_ms);
        let r = self
            .db
            .query(sql!(
                "SELECT
                   (SELECT COUNT(*) FROM key_events WHERE key_id = ?1 AND at > ?2 - 60000) AS requests,
                   (SELECT COALESCE(SUM(tokens), 0) FROM key_events WHERE key_id = ?1 AND at > ?2 - 60000) AS tokens,
                   (SELECT MIN(at) FROM key_events WHERE key_id = ?1 AND at > ?2 - 60000) AS oldest,
                   COALESCE((SELECT spent FROM key_spend WHERE key_id = ?1 AND grain = 'day' AND start = ?3), 0) AS today,
                   COALESCE((SELECT spent FROM key_spend WHERE key_id = ?1 AND grain = 'month' AND start = ?4), 0) AS month,
                   COALESCE((SELECT spent FROM team_spend WHERE team_id = ?5 AND period_start = ?6), 0) AS team",
                &caller.key_id,
                now_ms,
                day,
                month,
                team.as_ref().map(|t| t.id.clone()),
                team.as_ref().map(|t| t.period_start)
            ))
            .await?;
        let l = &caller.limits;
        let Some(row) = first(&r) else { return Ok(None) };
        // The minute's limits free up as its oldest call leaves the window
        // (the earliest time anything could change).
        let minute = row.opt_i64("oldest").map(|at| at + 60_000 - now_ms);
        Ok(if l.rpm.is_some_and(|m| row.i64("requests") >= m) {
            Some((KeyLimit::RequestsPerMinute, minute))
        } else if l.tpm.is_some_and(|m| row.i64("tokens") + tokens > m) {
            Some((KeyLimit::TokensPerMinute, minute))
        } else if l.daily_spend_cap.is_some_and(|c| row.i64("today") + spend > c.nanos()) {
            Some((KeyLimit::DailySpendCap, Some(day + 86_400_000 - now_ms)))
        } else if l
            .monthly_spend_cap
            .is_some_and(|c| row.i64("month") + spend > c.nanos())
        {
            Some((
                KeyLimit::MonthlySpendCap,
                Some(crate::time::next_month_start(now_ms) - now_ms),
            ))
        } else if let Some(t) = team.filter(|t| row.i64("team") + spend > t.budget.nanos()) {
            Some((KeyLimit::TeamBudget, t.next_period.map(|at| at - now_ms)))
        } else {
            None
        })
    }

    /// Records what a call really used against its key's limits (no-op without a row).
    pub fn key_call_stmt(call_id: &str, tokens: i64, spent: i64) -> crate::ports::Stmt {
        sql!(
            "UPDATE key_events SET tokens = ?2, spent = ?3, release_at = NULL WHERE call_id = ?1",
            call_id,
            tokens,
            spent
        )
    }

    /// Forgets limit rows older than [`KEY_EVENTS_KEPT_MS`] among the
    /// `limit` oldest-inserted ones; returns how many it deleted.
    ///
    /// Rows are inserted as calls are admitted, so insertion (rowid) order is
    /// time order up to the clock skew between instances: looking only at
    /// the first `limit` rows reads at most `limit` rows however large the
    /// table (no index on `at` alone), and a row out of order is deleted at
    /// the latest once the rows before it age out. A batch that deletes
    /// `limit` rows may have more behind it.
    ///
    /// The running totals of days and months that ended that long ago go
    /// with them (up to `limit` too; they are one row per key and day), and
    /// up to `limit` reservations of calls that never settled are released
    /// once their hold would have expired (their spend set to 0: the
    /// triggers give it back to the totals; a settlement arriving later
    /// still counts what the call used).
    pub async fn prune_key_events(&self, now_ms: i64, limit: u64) -> Result<u64, DbError> {
        let before = now_ms - KEY_EVENTS_KEPT_MS;
        let counts = self
            .db
            .batch(vec![
                sql!(
                    "UPDATE key_events SET tokens = 0, spent = 0, release_at = NULL WHERE rowid IN (
                       SELECT rowid FROM key_events WHERE release_at <= ?1 LIMIT ?2)",
                    now_ms,
                    limit as i64
                ),
                sql!(
                    "DELETE FROM key_events WHERE rowid IN (
                       SELECT rowid FROM (SELECT rowid, at FROM key_events ORDER BY rowid LIMIT ?2) WHERE at < ?1)",
                    before,
                    limit as i64
                ),
                sql!(
                    "DELETE FROM key_spend WHERE rowid IN (SELECT rowid FROM key_spend WHERE start < ?1 LIMIT ?2)",
                    before,
                    limit as i64
                ),
            ])
            .await?;
        Ok(counts.get(1).copied().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_team_key_insert_has_the_plain_inserts_columns() {
        let key = NewKeyRow {
            id: "key_1",
            user_id: "usr_1",
            label: "ci",
            key_hash: "h",
            key_hint: "hub_…abcd",
            expires_at: None,
            allowed_models: None,
            rpm_limit: None,
            tpm_limit: None,
            daily_spend_cap: None,
            monthly_spend_cap: None,
            now_ms: 1,
            parent_key_id: None,
            team_id: Some("team_1"),
        };
        let columns = |s: &str| s.split(')').next().unwrap().to_string();
        assert_eq!(columns(&insert_key_stmt(&key).sql), columns(INSERT_TEAM_KEY));
    }
}
