//! Teams, their members and what their budget has spent (migration 0015).

use super::patch::{Change, Nullable};
use super::{first, rows, Row, Store};
use crate::kinds::{BudgetPeriod, TeamRole};
use crate::metering::money::Credits;
use crate::ports::{DbError, Stmt};
use crate::sql;
use crate::time::Zone;

/// The limits a team gives its new keys (each `None` leaves it unset).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KeyDefaults {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_spend_cap: Option<Credits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_spend_cap: Option<Credits>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TeamRow {
    pub id: String,
    pub name: String,
    /// The team's own user: its credits pay for the team's service keys.
    pub account_id: String,
    pub budget: Option<Credits>,
    pub period: BudgetPeriod,
    pub zone: Zone,
    pub allowed_models: Option<Vec<String>>,
    pub key_defaults: KeyDefaults,
    pub created_at: i64,
    pub updated_at: i64,
}

fn team(r: &Row) -> TeamRow {
    TeamRow {
        id: r.str("id"),
        name: r.str("name"),
        account_id: r.str("account_id"),
        budget: r.opt_i64("budget").map(Credits::from_nanos),
        // Only Hub writes these columns, through the same names.
        period: BudgetPeriod::parse(&r.str("budget_period")).unwrap_or(BudgetPeriod::None),
        zone: Zone::parse(&r.str("time_zone")).unwrap_or(Zone::UTC),
        allowed_models: r.json("allowed_models").and_then(|v| serde_json::from_value(v).ok()),
        key_defaults: r
            .json("key_defaults")
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default(),
        created_at: r.i64("created_at"),
        updated_at: r.i64("updated_at"),
    }
}

/// A member of a team, with who they are.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRow {
    pub user_id: String,
    pub name: String,
    pub email: Option<String>,
    pub role: TeamRole,
    pub created_at: i64,
}

/// A team as one of its members sees it in their list: the team and their role in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    pub team: TeamRow,
    pub role: TeamRole,
}

/// A new team's settings (its account is made with it).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTeam {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub budget: Option<Credits>,
    pub period: BudgetPeriod,
    pub zone: Zone,
    pub allowed_models: Option<Vec<String>>,
    pub key_defaults: KeyDefaults,
    pub now_ms: i64,
}

/// Which of a team's settings change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamPatch {
    pub name: Option<String>,
    pub budget: Nullable<Credits>,
    pub period: Option<BudgetPeriod>,
    pub zone: Option<Zone>,
    pub allowed_models: Nullable<Vec<String>>,
    pub key_defaults: Option<KeyDefaults>,
}

impl TeamPatch {
    fn changes(&self) -> Vec<Change> {
        let mut out: Vec<Change> = Vec::new();
        if let Some(v) = &self.name {
            out.push(("name", v.as_str().into()));
        }
        if let Some(v) = self.budget {
            out.push(("budget", v.map(Credits::nanos).into()));
        }
        if let Some(v) = self.period {
            out.push(("budget_period", v.as_str().into()));
        }
        if let Some(v) = self.zone {
            out.push(("time_zone", v.name().into()));
        }
        if let Some(v) = &self.allowed_models {
            out.push(("allowed_models", models_json(v.as_deref()).into()));
        }
        if let Some(v) = &self.key_defaults {
            out.push(("key_defaults", defaults_json(v).into()));
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self == &TeamPatch::default()
    }
}

fn models_json(models: Option<&[String]>) -> Option<String> {
    models.map(|m| serde_json::to_string(m).unwrap_or_default())
}

fn defaults_json(d: &KeyDefaults) -> Option<String> {
    (d != &KeyDefaults::default()).then(|| serde_json::to_string(d).unwrap_or_default())
}

/// Revokes the keys `user` holds in `team` (keys minted from them included).
fn revoke_member_keys(team: &str, user: &str, now_ms: i64) -> Stmt {
    sql!(
        "WITH RECURSIVE minted(id) AS (
           SELECT id FROM api_keys WHERE team_id = ?1 AND user_id = ?2
           UNION SELECT k.id FROM api_keys k JOIN minted m ON k.parent_key_id = m.id
         )
         UPDATE api_keys SET revoked_at = ?3 WHERE id IN (SELECT id FROM minted) AND revoked_at IS NULL",
        team,
        user,
        now_ms
    )
}

impl Store {
    /// Creates a team and its account (a user without email, named after
    /// the team), in one batch.
    pub async fn insert_team(&self, t: &NewTeam) -> Result<(), DbError> {
        self.db
            .batch(vec![
                sql!(
                    "INSERT INTO users (id, name, email, role, created_at, updated_at) VALUES (?1, ?2, NULL, 'member', ?3, ?3)",
                    &t.account_id,
                    &t.name,
                    t.now_ms
                ),
                sql!(
                    "INSERT INTO teams (id, name, account_id, budget, budget_period, time_zone, allowed_models, key_defaults, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                    &t.id,
                    &t.name,
                    &t.account_id,
                    t.budget.map(Credits::nanos),
                    t.period.as_str(),
                    t.zone.name(),
                    models_json(t.allowed_models.as_deref()),
                    defaults_json(&t.key_defaults),
                    t.now_ms
                ),
            ])
            .await
            .map(drop)
    }

    pub async fn get_team(&self, id: &str) -> Result<Option<TeamRow>, DbError> {
        let r = self.db.query(sql!("SELECT * FROM teams WHERE id = ?1", id)).await?;
        Ok(first(&r).map(|r| team(&r)))
    }

    /// The team whose account `user` is.
    pub async fn team_of_account(&self, user: &str) -> Result<Option<TeamRow>, DbError> {
        let r = self
            .db
            .query(sql!("SELECT * FROM teams WHERE account_id = ?1", user))
            .await?;
        Ok(first(&r).map(|r| team(&r)))
    }

    /// Every team, by name.
    pub async fn list_teams(&self) -> Result<Vec<TeamRow>, DbError> {
        let r = self.db.query(sql!("SELECT * FROM teams ORDER BY name")).await?;
        Ok(rows(&r).map(|r| team(&r)).collect())
    }

    /// The teams `user` belongs to, with their role in each, by name.
    pub async fn teams_of(&self, user: &str) -> Result<Vec<Membership>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT t.*, m.role AS member_role FROM teams t JOIN team_members m ON m.team_id = t.id
                 WHERE m.user_id = ?1 ORDER BY t.name",
                user
            ))
            .await?;
        Ok(rows(&r)
            .map(|r| Membership {
                team: team(&r),
                role: TeamRole::parse(&r.str("member_role")).unwrap_or(TeamRole::Member),
            })
            .collect())
    }

    /// Applies a patch (and the account's name with the team's); false when there is no such team.
    pub async fn update_team(&self, id: &str, patch: &TeamPatch, now_ms: i64) -> Result<bool, DbError> {
        let mut stmts = vec![super::catalog::update_stmt("teams", id, patch.changes(), now_ms)];
        if let Some(name) = &patch.name {
            stmts.push(sql!(
                "UPDATE users SET name = ?2, updated_at = ?3 WHERE id = (SELECT account_id FROM teams WHERE id = ?1)",
                id,
                name,
                now_ms
            ));
        }
        let counts = self.db.batch(stmts).await?;
        Ok(counts.first().copied().unwrap_or(0) > 0)
    }

    /// Deletes a team: its keys are revoked (keeping its id for their
    /// history), its members and spend forgotten, its account disabled.
    pub async fn delete_team(&self, id: &str, now_ms: i64) -> Result<bool, DbError> {
        let counts = self
            .db
            .batch(vec![
                sql!(
                    "WITH RECURSIVE minted(id) AS (
                       SELECT id FROM api_keys WHERE team_id = ?1
                       UNION SELECT k.id FROM api_keys k JOIN minted m ON k.parent_key_id = m.id
                     )
                     UPDATE api_keys SET revoked_at = ?2 WHERE id IN (SELECT id FROM minted) AND revoked_at IS NULL",
                    id,
                    now_ms
                ),
                sql!(
                    "UPDATE users SET disabled = 1, updated_at = ?2 WHERE id = (SELECT account_id FROM teams WHERE id = ?1)",
                    id,
                    now_ms
                ),
                sql!("DELETE FROM team_members WHERE team_id = ?1", id),
                sql!("DELETE FROM team_spend WHERE team_id = ?1", id),
                sql!("DELETE FROM teams WHERE id = ?1", id),
            ])
            .await?;
        Ok(counts.last().copied().unwrap_or(0) > 0)
    }

    pub async fn team_members(&self, team: &str) -> Result<Vec<MemberRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT m.user_id, m.role, m.created_at, u.name, u.email FROM team_members m JOIN users u ON u.id = m.user_id
                 WHERE m.team_id = ?1 ORDER BY u.name, m.user_id",
                team
            ))
            .await?;
        Ok(rows(&r)
            .map(|r| MemberRow {
                user_id: r.str("user_id"),
                name: r.str("name"),
                email: r.opt_str("email"),
                role: TeamRole::parse(&r.str("role")).unwrap_or(TeamRole::Member),
                created_at: r.i64("created_at"),
            })
            .collect())
    }

    /// `user`'s role in `team`, if a member.
    pub async fn member_role(&self, team: &str, user: &str) -> Result<Option<TeamRole>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT role FROM team_members WHERE team_id = ?1 AND user_id = ?2",
                team,
                user
            ))
            .await?;
        Ok(first(&r).and_then(|r| TeamRole::parse(&r.str("role"))))
    }

    /// Adds a member, or changes their role; false when the team is gone.
    pub async fn set_member(&self, team: &str, user: &str, role: TeamRole, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(sql!(
                "INSERT INTO team_members (team_id, user_id, role, created_at)
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM teams WHERE id = ?1)
                 ON CONFLICT (team_id, user_id) DO UPDATE SET role = excluded.role",
                team,
                user,
                role.as_str(),
                now_ms
            ))
            .await?;
        Ok(n > 0)
    }

    /// Removes a member and revokes the keys they hold in the team, together.
    pub async fn remove_member(&self, team: &str, user: &str, now_ms: i64) -> Result<bool, DbError> {
        let counts = self
            .db
            .batch(vec![
                revoke_member_keys(team, user, now_ms),
                sql!(
                    "DELETE FROM team_members WHERE team_id = ?1 AND user_id = ?2",
                    team,
                    user
                ),
            ])
            .await?;
        Ok(counts.get(1).copied().unwrap_or(0) > 0)
    }

    /// The keys of a team, newest first.
    pub async fn team_keys(&self, team: &str) -> Result<Vec<super::KeyRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM api_keys WHERE team_id = ?1 ORDER BY created_at DESC",
                team
            ))
            .await?;
        Ok(rows(&r).map(|r| super::users::key(&r)).collect())
    }

    /// What the team's calls have spent (and hold) in the period starting at `period_start`.
    pub async fn team_spent(&self, team: &str, period_start: i64) -> Result<Credits, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT spent FROM team_spend WHERE team_id = ?1 AND period_start = ?2",
                team,
                period_start
            ))
            .await?;
        Ok(Credits::from_nanos(first(&r).map_or(0, |r| r.i64("spent"))))
    }
}
