//! Teams: the operators' API (`/api/admin/teams`: create, configure, delete)
//! and the teams' own (`/api/teams`), where a team's admins manage its
//! members and keys and read its usage, and its members see it. Outside
//! their teams, members and team admins see nothing: another team is a 404.

use super::fields::Fields;
use super::{created, gone, ok};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::hub::Hub;
use crate::kinds::{BudgetPeriod, TeamRole};
use crate::metering::money::Credits;
use crate::store::{KeyDefaults, MemberRow, NewTeam, TeamPatch, TeamRow};
use crate::time::{iso8601, Zone};
use serde_json::{json, Value};

const TEAM_FIELDS: [&str; 6] = [
    "name",
    "budget",
    "budget_period",
    "time_zone",
    "allowed_models",
    "key_defaults",
];

// ------------------------------------------------------------------ who may

/// How the caller stands to a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// An owner or admin of Hub: every team.
    Operator,
    Member(TeamRole),
}

impl Standing {
    fn manages(self) -> bool {
        matches!(self, Standing::Operator | Standing::Member(TeamRole::Admin))
    }
}

/// The team `id` and how the caller stands to it; a team the caller is not
/// in is a 404, as if it did not exist.
async fn team_for(hub: &Hub, caller: &Caller, id: &str) -> Result<(TeamRow, Standing), ApiError> {
    let team = hub.store().get_team(id).await?.ok_or_else(|| gone("team", id))?;
    if caller.role.is_admin() {
        return Ok((team, Standing::Operator));
    }
    match hub.store().member_role(id, &caller.user_id).await? {
        Some(role) => Ok((team, Standing::Member(role))),
        None => Err(gone("team", id)),
    }
}

/// The team `id`, for a change by the caller: an operator or a team admin,
/// with an unrestricted key or a browser session (a key with limits, models,
/// an expiry or a team could otherwise loosen keys or add people it could
/// not mint for itself).
async fn team_to_change(hub: &Hub, caller: &Caller, id: &str) -> Result<TeamRow, ApiError> {
    let team = managed_team(hub, caller, id).await?;
    if caller.is_restricted() {
        return Err(ApiError::forbidden(
            "A key with allowed models, limits, an expiry or a team cannot change a team; use an unrestricted key or the site.",
        ));
    }
    Ok(team)
}

/// The team `id`, if the caller manages it (an operator or a team admin); 403 for a plain member.
async fn managed_team(hub: &Hub, caller: &Caller, id: &str) -> Result<TeamRow, ApiError> {
    let (team, standing) = team_for(hub, caller, id).await?;
    if !standing.manages() {
        return Err(ApiError::forbidden(
            "Only the team's admins (or Hub's owners and admins) manage its members and keys and see its usage.",
        ));
    }
    Ok(team)
}

// ------------------------------------------------------------------ shapes

/// A team, with what its budget has spent in the current period.
async fn team_json(hub: &Hub, t: &TeamRow, role: Option<TeamRole>) -> Result<Value, ApiError> {
    let now = hub.now_ms();
    let (start, next) = t.period.bounds(t.zone, now);
    let spent = match t.budget {
        Some(_) => Some(hub.store().team_spent(&t.id, start).await?),
        None => None,
    };
    let account = hub.store().get_user(&t.account_id).await?.map(|u| hub.live_user(u));
    Ok(json!({
        "id": t.id,
        "name": t.name,
        "account_id": t.account_id,
        "balance": account.as_ref().map(|u| u.balance),
        "available": account.as_ref().map(|u| u.balance.saturating_sub(u.held)),
        "budget": t.budget,
        "budget_period": t.period,
        "time_zone": t.zone.name(),
        "period_start": t.budget.map(|_| (t.period != BudgetPeriod::None).then(|| iso8601(start))),
        "period_end": next.filter(|_| t.budget.is_some()).map(iso8601),
        "spent": spent,
        "remaining": t.budget.zip(spent).map(|(b, s)| b.saturating_sub(s)),
        "allowed_models": t.allowed_models,
        "key_defaults": t.key_defaults,
        "role": role,
        "created_at": iso8601(t.created_at),
        "updated_at": iso8601(t.updated_at),
    }))
}

fn member_json(m: &MemberRow) -> Value {
    json!({
        "user_id": m.user_id,
        "name": m.name,
        "email": m.email,
        "role": m.role,
        "added_at": iso8601(m.created_at),
    })
}

/// A team with its members, as `GET /api/teams/{id}` and the audit log show it.
pub(crate) async fn team_view(hub: &Hub, t: &TeamRow, role: Option<TeamRole>) -> Result<Value, ApiError> {
    let mut v = team_json(hub, t, role).await?;
    let members = hub.store().team_members(&t.id).await?;
    v["members"] = members.iter().map(member_json).collect();
    Ok(v)
}

// ------------------------------------------------------------------ settings from a body

fn period(f: &Fields) -> Result<Option<BudgetPeriod>, ApiError> {
    f.str("budget_period")?
        .map(|p| {
            BudgetPeriod::parse(&p)
                .ok_or_else(|| ApiError::invalid_field("budget_period", format!("must be {}", BudgetPeriod::names())))
        })
        .transpose()
}

fn zone(f: &Fields) -> Result<Option<Zone>, ApiError> {
    f.str("time_zone")?
        .map(|z| {
            Zone::parse(&z).ok_or_else(|| {
                ApiError::invalid_field(
                    "time_zone",
                    "must be an IANA time zone name, such as UTC, Europe/Berlin or America/New_York",
                )
            })
        })
        .transpose()
}

fn budget(f: &Fields) -> Result<Option<Credits>, ApiError> {
    let b = f.credits("budget")?;
    if b.is_some_and(|b| b.nanos() <= 0) {
        return Err(ApiError::invalid_field(
            "budget",
            "must be positive (or null for no budget)",
        ));
    }
    Ok(b)
}

fn key_defaults(f: &Fields) -> Result<Option<KeyDefaults>, ApiError> {
    let Some(v) = f.object("key_defaults")? else {
        return Ok(None);
    };
    let inner = Fields(v.as_object().cloned().unwrap_or_default());
    let limits = super::keys::settings(&inner, 0)
        .map_err(|e| ApiError::invalid_field("key_defaults", e.message).with_param("key_defaults"))?;
    inner
        .only(&["rpm_limit", "tpm_limit", "daily_spend_cap", "monthly_spend_cap"])
        .map_err(|e| ApiError::invalid_field("key_defaults", e.message))?;
    Ok(Some(KeyDefaults {
        rpm_limit: limits.rpm_limit.flatten(),
        tpm_limit: limits.tpm_limit.flatten(),
        daily_spend_cap: limits.daily_spend_cap.flatten(),
        monthly_spend_cap: limits.monthly_spend_cap.flatten(),
    }))
}

fn name(f: &Fields) -> Result<Option<String>, ApiError> {
    let n = f.str("name")?;
    if n.as_deref().is_some_and(|n| n.is_empty() || n.chars().count() > 100) {
        return Err(ApiError::invalid_field("name", "must be 1 to 100 characters"));
    }
    Ok(n)
}

fn name_taken(e: crate::ports::DbError) -> ApiError {
    super::conflict_as(e, "a team with this name already exists")
}

// ------------------------------------------------------------------ operators

/// `POST /api/admin/teams`.
pub(crate) async fn create(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(&TEAM_FIELDS)?;
    let now = hub.now_ms();
    let team = NewTeam {
        id: hub.new_id("team"),
        name: name(&f)?.ok_or_else(|| ApiError::invalid_field("name", "is required"))?,
        account_id: hub.new_id("usr"),
        budget: budget(&f)?,
        period: period(&f)?.unwrap_or(BudgetPeriod::Monthly),
        zone: zone(&f)?.unwrap_or(Zone::UTC),
        allowed_models: f.strings("allowed_models")?,
        key_defaults: key_defaults(&f)?.unwrap_or_default(),
        now_ms: now,
    };
    hub.store().insert_team(&team).await.map_err(name_taken)?;
    if let Some(book) = hub.book() {
        book.open(&team.account_id, Credits::ZERO, Vec::new());
    }
    let t = hub
        .store()
        .get_team(&team.id)
        .await?
        .ok_or_else(|| gone("team", &team.id))?;
    created(team_view(hub, &t, None).await?)
}

/// `PATCH /api/admin/teams/{id}`: takes effect for keys within the key cache's TTL.
pub(crate) async fn patch(hub: &Hub, id: &str, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(&TEAM_FIELDS)?;
    let p = TeamPatch {
        name: name(&f)?,
        budget: f.nullable("budget", budget(&f)?),
        period: period(&f)?,
        zone: zone(&f)?,
        allowed_models: f.nullable("allowed_models", f.strings("allowed_models")?),
        key_defaults: f
            .has("key_defaults")
            .then(|| key_defaults(&f))
            .transpose()?
            .map(Option::unwrap_or_default),
    };
    if !hub
        .store()
        .update_team(id, &p, hub.now_ms())
        .await
        .map_err(name_taken)?
    {
        return Err(gone("team", id));
    }
    hub.keys().clear();
    let t = hub.store().get_team(id).await?.ok_or_else(|| gone("team", id))?;
    ok(team_view(hub, &t, None).await?)
}

/// `DELETE /api/admin/teams/{id}`: its keys are revoked, its account disabled.
pub(crate) async fn delete(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    let t = hub.store().get_team(id).await?.ok_or_else(|| gone("team", id))?;
    hub.store().delete_team(id, hub.now_ms()).await?;
    hub.keys().clear();
    ok(json!({"id": t.id, "deleted": true}))
}

// ------------------------------------------------------------------ the teams' own API

/// `GET /api/teams`: every team for an operator, else the caller's own with their role.
pub(crate) async fn list(hub: &Hub, caller: &Caller) -> Result<Response, ApiError> {
    let mut data = Vec::new();
    if caller.role.is_admin() {
        for t in hub.store().list_teams().await? {
            data.push(team_json(hub, &t, None).await?);
        }
    } else {
        for m in hub.store().teams_of(&caller.user_id).await? {
            data.push(team_json(hub, &m.team, Some(m.role)).await?);
        }
    }
    ok(json!({"data": data}))
}

/// `GET /api/teams/{id}`: the team and its members.
pub(crate) async fn get(hub: &Hub, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let (team, standing) = team_for(hub, caller, id).await?;
    let role = match standing {
        Standing::Member(r) => Some(r),
        Standing::Operator => None,
    };
    ok(team_view(hub, &team, role).await?)
}

/// The user a member body names, by `user_id` or `email` (exact).
async fn named_user(hub: &Hub, f: &Fields) -> Result<crate::store::UserRow, ApiError> {
    let user = match (f.str("user_id")?, f.str("email")?) {
        (Some(id), _) => hub.store().get_user(&id).await?,
        (None, Some(email)) => hub.store().user_by_email(&email).await?,
        (None, None) => return Err(ApiError::invalid_field("user_id", "is required (or `email`)")),
    };
    user.filter(|u| !u.disabled)
        .ok_or_else(|| ApiError::invalid_field("user_id", "names no enabled user"))
}

fn role(f: &Fields) -> Result<Option<TeamRole>, ApiError> {
    f.str("role")?
        .map(|r| {
            TeamRole::parse(&r).ok_or_else(|| ApiError::invalid_field("role", format!("must be {}", TeamRole::names())))
        })
        .transpose()
}

/// `POST /api/teams/{id}/members` (`user_id` or `email`, `role`): adds a
/// member, or sets the role of one already in.
pub(crate) async fn add_member(hub: &Hub, caller: &Caller, id: &str, req: &Request) -> Result<Response, ApiError> {
    let team = team_to_change(hub, caller, id).await?;
    let f = Fields::parse(req.body())?;
    f.only(&["user_id", "email", "role"])?;
    let role = role(&f)?.unwrap_or(TeamRole::Member);
    let user = named_user(hub, &f).await?;
    if team.account_id == user.id {
        return Err(ApiError::invalid_field("user_id", "is the team's own account"));
    }
    if !hub.store().set_member(&team.id, &user.id, role, hub.now_ms()).await? {
        return Err(gone("team", id));
    }
    let t = hub.store().get_team(id).await?.ok_or_else(|| gone("team", id))?;
    created(team_view(hub, &t, None).await?)
}

/// `PATCH /api/teams/{id}/members/{user}` (`role`).
pub(crate) async fn patch_member(
    hub: &Hub,
    caller: &Caller,
    id: &str,
    user: &str,
    req: &Request,
) -> Result<Response, ApiError> {
    let team = team_to_change(hub, caller, id).await?;
    let f = Fields::parse(req.body())?;
    f.only(&["role"])?;
    let role = role(&f)?.ok_or_else(|| ApiError::invalid_field("role", "is required"))?;
    if hub.store().member_role(&team.id, user).await?.is_none() {
        return Err(gone("team member", user));
    }
    hub.store().set_member(&team.id, user, role, hub.now_ms()).await?;
    ok(team_view(hub, &team, None).await?)
}

/// `DELETE /api/teams/{id}/members/{user}`: the keys they hold in the team are revoked with it.
pub(crate) async fn remove_member(hub: &Hub, caller: &Caller, id: &str, user: &str) -> Result<Response, ApiError> {
    let team = team_to_change(hub, caller, id).await?;
    if !hub.store().remove_member(&team.id, user, hub.now_ms()).await? {
        return Err(gone("team member", user));
    }
    hub.keys().clear();
    ok(team_view(hub, &team, None).await?)
}

/// `GET /api/teams/{id}/keys`: every key of the team (its members' and its own), with who holds it.
pub(crate) async fn keys(hub: &Hub, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let team = managed_team(hub, caller, id).await?;
    let members = hub.store().team_members(&team.id).await?;
    let keys = hub.store().team_keys(&team.id).await?;
    let data: Vec<Value> = keys
        .iter()
        .map(|k| {
            let mut v = super::views::key_json(k);
            // A service key (the team account's) has no holder.
            v["holder"] = json!(members.iter().find(|m| m.user_id == k.user_id).map(|m| &m.name));
            v["service"] = json!(k.user_id == team.account_id);
            v
        })
        .collect();
    ok(json!({"data": data, "next_cursor": null}))
}

/// `POST /api/teams/{id}/keys`: a service key of the team (its account's),
/// spending from the team's budget and, with billing on, its account's credits.
pub(crate) async fn create_key(hub: &Hub, caller: &Caller, id: &str, req: &Request) -> Result<Response, ApiError> {
    let team = team_to_change(hub, caller, id).await?;
    let f = Fields::parse(req.body())?;
    if f.str(super::keys::TEAM_FIELD)?.is_some_and(|t| t != team.id) {
        return Err(ApiError::invalid_field(
            super::keys::TEAM_FIELD,
            "must be this team's id, or left out",
        ));
    }
    super::create_key(hub, &team.account_id, req, Some(caller)).await
}

/// `DELETE /api/teams/{id}/keys/{key}`: revokes a key of the team.
pub(crate) async fn revoke_key(hub: &Hub, caller: &Caller, id: &str, key: &str) -> Result<Response, ApiError> {
    let team = team_to_change(hub, caller, id).await?;
    let k = hub
        .store()
        .get_key(key)
        .await?
        .filter(|k| k.team_id.as_deref() == Some(team.id.as_str()))
        .ok_or_else(|| gone("key", key))?;
    hub.store().revoke_key(&k.id, hub.now_ms()).await?;
    hub.keys().clear();
    let k = hub.store().get_key(key).await?.ok_or_else(|| gone("key", key))?;
    ok(super::views::key_json(&k))
}

/// `PATCH /api/teams/{id}/keys/{key}`: a team key's label, expiry, models and limits.
pub(crate) async fn patch_key(
    hub: &Hub,
    caller: &Caller,
    id: &str,
    key: &str,
    req: &Request,
) -> Result<Response, ApiError> {
    let team = team_to_change(hub, caller, id).await?;
    let patch = super::keys::edit(&Fields::parse(req.body())?, hub.now_ms())?;
    let k = hub
        .store()
        .get_key(key)
        .await?
        .filter(|k| k.team_id.as_deref() == Some(team.id.as_str()))
        .ok_or_else(|| gone("key", key))?;
    if !patch.is_empty() && !hub.store().update_key(&k.id, &patch).await? {
        return Err(ApiError::conflict(
            "This key is revoked; revoked keys cannot be edited.",
        ));
    }
    hub.keys().clear();
    let k = hub.store().get_key(key).await?.ok_or_else(|| gone("key", key))?;
    ok(super::views::key_json(&k))
}

/// `GET /api/teams/{id}/usage` and `/calls`: the admin API's, over the team's keys.
pub(crate) async fn usage(hub: &Hub, caller: &Caller, id: &str, req: &Request) -> Result<Response, ApiError> {
    let team = managed_team(hub, caller, id).await?;
    super::usage_of(hub, req, super::Scope::Team(&team.id)).await
}

pub(crate) async fn calls(hub: &Hub, caller: &Caller, id: &str, req: &Request) -> Result<Response, ApiError> {
    let team = managed_team(hub, caller, id).await?;
    super::calls_of(hub, req, super::Scope::Team(&team.id)).await
}
