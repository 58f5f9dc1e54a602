//! One person, one user: a proven identity is matched to the user it is
//! linked to, else to the user with the same verified address (and linked),
//! else a new member is created when sign-up is open for that address —
//! with the starter credits, granted in the same write as the user, so once.

use super::normal_email;
use crate::auth::Role;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::metering::money::Credits;
use crate::ports::DbError;
use crate::store::{insert_identity_stmt, IdentityRow, UserRow};

/// How someone proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Oidc,
    Email,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Oidc => "oidc",
            Method::Email => "email",
        }
    }
}

/// The issuer of identities proven by an emailed link.
pub const EMAIL_ISSUER: &str = "email";

/// Who someone proved to be.
#[derive(Debug, Clone)]
pub struct Proven {
    pub method: Method,
    /// The OpenID provider's issuer, or [`EMAIL_ISSUER`].
    pub issuer: String,
    /// The provider's subject, or the address.
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

impl Proven {
    /// The address, when it is verified (only a verified address matches or creates an account).
    fn verified_email(&self) -> Option<String> {
        self.email
            .as_deref()
            .filter(|_| self.email_verified)
            .map(normal_email)
            .filter(|e| super::is_email(e))
    }
}

/// Why someone may not sign in; said to them as a 403.
fn refused(why: &str) -> ApiError {
    ApiError::forbidden(why.to_string())
}

/// The user a proven identity signs in as, linking or creating as the rules
/// say; `link_to` is the signed-in user when they link a new identity from
/// their account page.
pub async fn sign_in(hub: &Hub, p: &Proven, link_to: Option<&str>) -> Result<UserRow, ApiError> {
    let store = hub.store();
    let now = hub.now_ms();
    if let Some(identity) = store.identity(&p.issuer, &p.subject).await? {
        if link_to.is_some_and(|u| u != identity.user_id) {
            return Err(refused("This sign-in is already linked to another account."));
        }
        store.touch_identity(&identity.id, now).await?;
        return usable(hub, &identity.user_id).await;
    }
    let email = p.verified_email();
    let existing = match (link_to, &email) {
        (Some(user), _) => Some(usable(hub, user).await?),
        (None, Some(email)) => store.user_by_email(email).await?,
        (None, None) => None,
    };
    match existing {
        Some(user) => link(hub, p, user, email).await,
        None => sign_up(hub, p, email).await,
    }
}

/// An enabled user, or why not.
async fn usable(hub: &Hub, user_id: &str) -> Result<UserRow, ApiError> {
    match hub.store().get_user(user_id).await? {
        Some(u) if !u.disabled => Ok(u),
        Some(_) => Err(refused("This account is disabled. Ask the Hub's operator.")),
        None => Err(refused("This account no longer exists.")),
    }
}

fn identity_row(hub: &Hub, p: &Proven, user_id: &str, email: Option<String>) -> IdentityRow {
    let now = hub.now_ms();
    IdentityRow {
        id: hub.new_id("idn"),
        user_id: user_id.to_string(),
        issuer: p.issuer.clone(),
        subject: p.subject.clone(),
        email,
        created_at: now,
        last_used_at: now,
    }
}

/// Links a new identity to an existing user (same verified address, or the
/// signed-in user), making them the owner if theirs is `HUB_ADMIN_EMAIL`.
async fn link(hub: &Hub, p: &Proven, user: UserRow, email: Option<String>) -> Result<UserRow, ApiError> {
    if user.disabled {
        return Err(refused("This account is disabled. Ask the Hub's operator."));
    }
    let identity = identity_row(hub, p, &user.id, email.clone());
    match hub.store().insert_identity(&identity).await {
        Ok(()) => {}
        // Linked meanwhile by a concurrent sign-in of the same person.
        Err(DbError::Constraint(_)) => return retry(hub, p).await,
        Err(e) => return Err(e.into()),
    }
    if is_admin_email(hub, email.as_deref()) && user.role != Role::Owner.as_str() {
        promote_owner(hub, &user.id).await?;
        return usable(hub, &user.id).await;
    }
    Ok(user)
}

/// Creates a member (or the owner, for `HUB_ADMIN_EMAIL`) with the starter
/// credits and the identity, in one write.
async fn sign_up(hub: &Hub, p: &Proven, email: Option<String>) -> Result<UserRow, ApiError> {
    let Some(email) = email else {
        return Err(refused(
            "Your sign-in did not come with a verified email address, which a new account needs.",
        ));
    };
    let snap = hub.snapshot().await?;
    let owner = is_admin_email(hub, Some(&email));
    if !owner && !snap.settings.sign_in.may_sign_up(&email) {
        return Err(refused(
            "There is no account for this address, and sign-up is closed for it. Ask the Hub's operator for an invitation.",
        ));
    }
    let now = hub.now_ms();
    let user = UserRow {
        id: hub.new_id("usr"),
        name: p
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| email.clone()),
        email: Some(email.clone()),
        role: if owner { Role::Owner } else { Role::Member }.as_str().into(),
        balance: Credits::ZERO,
        held: Credits::ZERO,
        leased: Credits::ZERO,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    let settings = &snap.settings;
    let starter = if settings.billing_enabled {
        settings.starter_credits
    } else {
        Credits::ZERO
    };
    let identity = insert_identity_stmt(&identity_row(hub, p, &user.id, Some(email)));
    match hub.store().insert_user(&user, starter, vec![identity]).await {
        Ok(()) => {
            if let Some(book) = hub.book() {
                book.open(&user.id, starter, Vec::new());
            }
            tracing::info!(user = %user.id, method = p.method.as_str(), "signed up");
            Ok(user)
        }
        // The same person signing up twice at once: the other write won.
        Err(DbError::Constraint(_)) => retry(hub, p).await,
        Err(e) => Err(e.into()),
    }
}

/// After losing a race to a concurrent sign-in: the identity it linked.
async fn retry(hub: &Hub, p: &Proven) -> Result<UserRow, ApiError> {
    match hub.store().identity(&p.issuer, &p.subject).await? {
        Some(identity) => usable(hub, &identity.user_id).await,
        None => Err(refused(
            "An account with this address exists but could not be linked; sign in the way you did before.",
        )),
    }
}

fn is_admin_email(hub: &Hub, email: Option<&str>) -> bool {
    matches!((hub.options().admin_email.as_deref(), email), (Some(a), Some(e)) if a == e)
}

async fn promote_owner(hub: &Hub, user_id: &str) -> Result<(), ApiError> {
    let patch = crate::store::UserPatch {
        name: None,
        email: Default::default(),
        role: Some(Role::Owner),
        disabled: None,
    };
    hub.store().update_user(user_id, &patch, hub.now_ms()).await?;
    hub.keys().clear();
    tracing::info!(user = %user_id, "HUB_ADMIN_EMAIL signed in: now the owner");
    Ok(())
}
