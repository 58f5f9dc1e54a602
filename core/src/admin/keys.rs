//! A key's settings as a create or edit body gives them, checked, and whether
//! an edit loosens a key: a restricted caller may only tighten (it could not
//! mint a key as loose either).

use super::fields::Fields;
use crate::error::ApiError;
use crate::store::{KeyPatch, KeyRow, Nullable};

/// The fields a key's body may carry.
pub const FIELDS: [&str; 8] = [
    "label",
    "expires_at",
    "allowed_models",
    "rpm_limit",
    "tpm_limit",
    "daily_spend_cap",
    "monthly_spend_cap",
    "response_cache",
];

/// A new key's body may also name its team (fixed from then on).
pub const TEAM_FIELD: &str = "team_id";

/// A key's settings from a body (400 naming the field): absent fields stay
/// unchanged, `null` clears one. The label is as given (trimmed), possibly empty.
pub fn settings(f: &Fields, now_ms: i64) -> Result<KeyPatch, ApiError> {
    let mut fields = FIELDS.to_vec();
    fields.push(TEAM_FIELD);
    f.only(&fields)?;
    let expires_at = f.time("expires_at")?;
    if expires_at.is_some_and(|t| t <= now_ms) {
        return Err(ApiError::invalid_field("expires_at", "must be in the future"));
    }
    let cap = |k: &str| -> Result<Nullable<crate::Credits>, ApiError> {
        let c = f.credits(k)?;
        if c.is_some_and(|c| c.nanos() <= 0) {
            return Err(ApiError::invalid_field(k, "must be positive"));
        }
        Ok(f.nullable(k, c))
    };
    Ok(KeyPatch {
        label: f.str("label")?,
        expires_at: f.nullable("expires_at", expires_at),
        allowed_models: f.nullable("allowed_models", f.strings("allowed_models")?),
        rpm_limit: f.nullable("rpm_limit", f.int("rpm_limit", 1, 1_000_000)?),
        tpm_limit: f.nullable("tpm_limit", f.int("tpm_limit", 1, 1_000_000_000)?),
        daily_spend_cap: cap("daily_spend_cap")?,
        monthly_spend_cap: cap("monthly_spend_cap")?,
        response_cache: f.bool("response_cache")?,
    })
}

/// An edit's settings: like [`settings`], and a label, when given, must not be empty.
pub fn edit(f: &Fields, now_ms: i64) -> Result<KeyPatch, ApiError> {
    if f.has(TEAM_FIELD) {
        return Err(ApiError::invalid_field(
            TEAM_FIELD,
            "is fixed when a key is made (its usage stays with the team); make a new key in the other team",
        ));
    }
    let patch = settings(f, now_ms)?;
    if f.has("label") && patch.label.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::invalid_field("label", "must be a non-empty string"));
    }
    Ok(patch)
}

/// A new key's limits: those the body leaves out come from its team's defaults.
pub fn with_defaults(mut wanted: KeyPatch, defaults: &crate::store::KeyDefaults) -> KeyPatch {
    wanted.rpm_limit = wanted.rpm_limit.or(Some(defaults.rpm_limit));
    wanted.tpm_limit = wanted.tpm_limit.or(Some(defaults.tpm_limit));
    wanted.daily_spend_cap = wanted.daily_spend_cap.or(Some(defaults.daily_spend_cap));
    wanted.monthly_spend_cap = wanted.monthly_spend_cap.or(Some(defaults.monthly_spend_cap));
    wanted
}

/// Whether a bound goes up or away: `None` is no bound at all.
fn looser<T: Ord + Copy>(old: Option<T>, new: Nullable<T>) -> bool {
    match new {
        None => false,
        Some(None) => old.is_some(),
        Some(Some(n)) => old.is_some_and(|o| n > o),
    }
}

/// The first field the patch loosens on `key`, if any: a later or no expiry,
/// models the key may not call today, a higher or no limit.
pub fn loosened(key: &KeyRow, p: &KeyPatch) -> Option<&'static str> {
    let models = match (&key.allowed_models, &p.allowed_models) {
        (_, None) => false,
        (old, Some(None)) => old.is_some(),
        (None, Some(Some(_))) => false,
        (Some(old), Some(Some(new))) => new.iter().any(|m| !old.contains(m)),
    };
    let nanos = |c: Option<crate::Credits>| c.map(crate::Credits::nanos);
    let nanos_patch = |c: Nullable<crate::Credits>| c.map(nanos);
    [
        ("expires_at", looser(key.expires_at, p.expires_at)),
        ("allowed_models", models),
        ("rpm_limit", looser(key.rpm_limit, p.rpm_limit)),
        ("tpm_limit", looser(key.tpm_limit, p.tpm_limit)),
        (
            "daily_spend_cap",
            looser(nanos(key.daily_spend_cap), nanos_patch(p.daily_spend_cap)),
        ),
        (
            "monthly_spend_cap",
            looser(nanos(key.monthly_spend_cap), nanos_patch(p.monthly_spend_cap)),
        ),
    ]
    .into_iter()
    .find_map(|(field, loose)| loose.then_some(field))
}

/// The team a new key of `user` belongs to, from the body's `team_id`: a
/// team `user` is a member of, or none (left out or `null`). A team
/// account's keys are its team's. A member's key joins a team only when
/// asked: being added to a team does not move the keys they make later.
pub async fn key_team(
    hub: &crate::hub::Hub,
    user: &str,
    f: &Fields,
) -> Result<Option<crate::store::TeamRow>, ApiError> {
    let field = TEAM_FIELD;
    let store = hub.store();
    if let Some(team) = store.team_of_account(user).await? {
        if f.str(field)?.is_some_and(|t| t != team.id) {
            return Err(ApiError::invalid_field(field, "a team account's keys are its team's"));
        }
        return Ok(Some(team));
    }
    let Some(id) = f.str(field)? else { return Ok(None) };
    if store.member_role(&id, user).await?.is_none() {
        return Err(ApiError::invalid_field(field, "names no team this user is a member of"));
    }
    Ok(store.get_team(&id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Credits;

    fn key() -> KeyRow {
        KeyRow {
            id: "key_1".into(),
            user_id: "usr_1".into(),
            label: "ci".into(),
            key_hint: "hub_…abcd".into(),
            expires_at: Some(2_000),
            revoked_at: None,
            allowed_models: Some(vec!["a".into(), "b".into()]),
            rpm_limit: Some(10),
            tpm_limit: None,
            daily_spend_cap: Some(Credits::from_nanos(5)),
            monthly_spend_cap: None,
            response_cache: true,
            created_at: 0,
            parent_key_id: None,
            team_id: None,
        }
    }

    #[test]
    fn tightening_is_not_loosening() {
        let p = KeyPatch {
            label: Some("renamed".into()),
            expires_at: Some(Some(1_500)),
            allowed_models: Some(Some(vec!["a".into()])),
            rpm_limit: Some(Some(5)),
            tpm_limit: Some(Some(100)),
            daily_spend_cap: Some(Some(Credits::from_nanos(4))),
            monthly_spend_cap: Some(Some(Credits::from_nanos(1))),
            response_cache: Some(false),
        };
        assert_eq!(loosened(&key(), &p), None);
        assert_eq!(loosened(&key(), &KeyPatch::default()), None);
    }

    #[test]
    fn each_loosening_is_named() {
        let cases = [
            (
                KeyPatch {
                    expires_at: Some(None),
                    ..Default::default()
                },
                "expires_at",
            ),
            (
                KeyPatch {
                    expires_at: Some(Some(2_001)),
                    ..Default::default()
                },
                "expires_at",
            ),
            (
                KeyPatch {
                    allowed_models: Some(None),
                    ..Default::default()
                },
                "allowed_models",
            ),
            (
                KeyPatch {
                    allowed_models: Some(Some(vec!["c".into()])),
                    ..Default::default()
                },
                "allowed_models",
            ),
            (
                KeyPatch {
                    rpm_limit: Some(None),
                    ..Default::default()
                },
                "rpm_limit",
            ),
            (
                KeyPatch {
                    rpm_limit: Some(Some(11)),
                    ..Default::default()
                },
                "rpm_limit",
            ),
            (
                KeyPatch {
                    daily_spend_cap: Some(Some(Credits::from_nanos(6))),
                    ..Default::default()
                },
                "daily_spend_cap",
            ),
        ];
        for (p, field) in cases {
            assert_eq!(loosened(&key(), &p), Some(field), "{p:?}");
        }
    }
}
