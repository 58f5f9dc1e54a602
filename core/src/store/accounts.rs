//! People signing in: their identities, browser sessions and email links.

use super::{first, rows, Store, UserRow};
use crate::auth::{Caller, KeyLimits, Role};
use crate::ports::{DbError, Stmt};
use crate::sql;

/// One way a user signs in.
#[derive(Debug, Clone)]
pub struct IdentityRow {
    pub id: String,
    pub user_id: String,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
}

/// A session as its owner sees it in a listing.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub user_agent: Option<String>,
    pub method: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// A session found by its token: who it signs in and when it was last slid forward.
pub struct LiveSession {
    pub caller: Caller,
    pub last_seen_at: i64,
}

/// A session to open.
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub token_hash: &'a str,
    pub user_agent: Option<&'a str>,
    pub method: &'a str,
    pub now_ms: i64,
    pub expires_at: i64,
}

/// An email link request to record (`token_hash` set when a link is sent).
pub struct NewEmailLink<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub ip: &'a str,
    pub token_hash: Option<&'a str>,
    pub return_to: Option<&'a str>,
    pub now_ms: i64,
    pub expires_at: i64,
}

fn identity(r: &super::Row) -> IdentityRow {
    IdentityRow {
        id: r.str("id"),
        user_id: r.str("user_id"),
        issuer: r.str("issuer"),
        subject: r.str("subject"),
        email: r.opt_str("email"),
        created_at: r.i64("created_at"),
        last_used_at: r.i64("last_used_at"),
    }
}

/// Links an identity to a user.
pub fn insert_identity_stmt(i: &IdentityRow) -> Stmt {
    sql!(
        "INSERT INTO identities (id, user_id, issuer, subject, email, created_at, last_used_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &i.id, &i.user_id, &i.issuer, &i.subject, i.email.clone(), i.created_at, i.last_used_at
    )
}

impl Store {
    /// The identity with this issuer and subject, if linked.
    pub async fn identity(&self, issuer: &str, subject: &str) -> Result<Option<IdentityRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM identities WHERE issuer = ?1 AND subject = ?2",
                issuer,
                subject
            ))
            .await?;
        Ok(first(&r).map(|r| identity(&r)))
    }

    pub async fn identities_of(&self, user_id: &str) -> Result<Vec<IdentityRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM identities WHERE user_id = ?1 ORDER BY created_at",
                user_id
            ))
            .await?;
        Ok(rows(&r).map(|r| identity(&r)).collect())
    }

    pub async fn insert_identity(&self, i: &IdentityRow) -> Result<(), DbError> {
        self.db.execute(insert_identity_stmt(i)).await.map(drop)
    }

    pub async fn touch_identity(&self, id: &str, now_ms: i64) -> Result<(), DbError> {
        self.db
            .execute(sql!(
                "UPDATE identities SET last_used_at = ?1 WHERE id = ?2",
                now_ms,
                id
            ))
            .await
            .map(drop)
    }

    /// Unlinks one of a user's identities; returns whether it was theirs.
    pub async fn delete_identity(&self, user_id: &str, id: &str) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(sql!(
                "DELETE FROM identities WHERE id = ?1 AND user_id = ?2",
                id,
                user_id
            ))
            .await?;
        Ok(n > 0)
    }

    /// The user with this email address, compared without case.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                concat!(
                    "SELECT *, ",
                    leased_column!(),
                    " FROM users WHERE lower(email) = lower(?1) ORDER BY created_at LIMIT 1"
                ),
                email
            ))
            .await?;
        Ok(first(&r).map(|r| super::users::user(&r)))
    }

    // ------------------------------------------------------------ sessions

    pub async fn insert_session(&self, s: &NewSession<'_>) -> Result<(), DbError> {
        self.db
            .execute(sql!(
                "INSERT INTO sessions (id, user_id, token_hash, user_agent, method, created_at, last_seen_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
                s.id, s.user_id, s.token_hash, s.user_agent, s.method, s.now_ms, s.expires_at
            ))
            .await
            .map(drop)
    }

    /// The live session with this token hash: not revoked, not expired, and
    /// its user enabled.
    pub async fn session_by_token_hash(&self, hash: &str, now_ms: i64) -> Result<Option<LiveSession>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT s.id, s.token_hash, s.last_seen_at, u.id AS user_id, u.role
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2 AND u.disabled = 0",
                hash,
                now_ms
            ))
            .await?;
        Ok(first(&r).map(|r| LiveSession {
            caller: Caller {
                key_id: r.str("id"),
                key_label: "browser session".into(),
                user_id: r.str("user_id"),
                role: Role::parse(&r.str("role")).unwrap_or(Role::Guest),
                expires_at: None,
                revoked: false,
                allowed_models: None,
                key_hash: r.str("token_hash"),
                limits: KeyLimits::default(),
                session: true,
                team: None,
                response_cache: true,
            },
            last_seen_at: r.i64("last_seen_at"),
        }))
    }

    /// Slides a session's expiry forward.
    pub async fn touch_session(&self, id: &str, now_ms: i64, expires_at: i64) -> Result<(), DbError> {
        self.db
            .execute(sql!(
                "UPDATE sessions SET last_seen_at = ?1, expires_at = ?2 WHERE id = ?3 AND revoked_at IS NULL",
                now_ms,
                expires_at,
                id
            ))
            .await
            .map(drop)
    }

    pub async fn sessions_of(&self, user_id: &str, now_ms: i64) -> Result<Vec<SessionRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2 ORDER BY last_seen_at DESC",
                user_id,
                now_ms
            ))
            .await?;
        Ok(rows(&r)
            .map(|r| SessionRow {
                id: r.str("id"),
                user_agent: r.opt_str("user_agent"),
                method: r.str("method"),
                created_at: r.i64("created_at"),
                last_seen_at: r.i64("last_seen_at"),
                expires_at: r.i64("expires_at"),
            })
            .collect())
    }

    /// Ends one of a user's sessions; returns whether it was theirs and live.
    pub async fn revoke_session(&self, user_id: &str, id: &str, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(sql!(
                "UPDATE sessions SET revoked_at = ?1 WHERE id = ?2 AND user_id = ?3 AND revoked_at IS NULL",
                now_ms,
                id,
                user_id
            ))
            .await?;
        Ok(n > 0)
    }

    // ------------------------------------------------------------ email links

    /// Link requests for an address since one time, and from an IP since another.
    pub async fn email_link_requests(
        &self,
        email: &str,
        email_since_ms: i64,
        ip: &str,
        ip_since_ms: i64,
    ) -> Result<(i64, i64), DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT (SELECT COUNT(*) FROM email_links WHERE email = ?1 AND created_at > ?2) AS by_email,
                        (SELECT COUNT(*) FROM email_links WHERE ip = ?3 AND created_at > ?4) AS by_ip",
                email,
                email_since_ms,
                ip,
                ip_since_ms
            ))
            .await?;
        Ok(first(&r).map_or((0, 0), |r| (r.i64("by_email"), r.i64("by_ip"))))
    }

    /// Records a link request, and forgets those older than a day.
    pub async fn insert_email_link(&self, l: &NewEmailLink<'_>) -> Result<(), DbError> {
        self.db
            .batch(vec![
                sql!("DELETE FROM email_links WHERE created_at < ?1", l.now_ms - 86_400_000),
                sql!(
                    "INSERT INTO email_links (id, email, ip, token_hash, return_to, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    l.id, l.email, l.ip, l.token_hash, l.return_to, l.now_ms, l.expires_at
                ),
            ])
            .await
            .map(drop)
    }

    /// Uses a link once: its address and where to go, if it was unused and
    /// unexpired (the conditional UPDATE makes two clicks race safely).
    pub async fn consume_email_link(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(String, Option<String>)>, DbError> {
        let used = self
            .db
            .execute(sql!(
                "UPDATE email_links SET used_at = ?1 WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1",
                now_ms,
                token_hash
            ))
            .await?;
        if used == 0 {
            return Ok(None);
        }
        let r = self
            .db
            .query(sql!(
                "SELECT email, return_to FROM email_links WHERE token_hash = ?1",
                token_hash
            ))
            .await?;
        Ok(first(&r).map(|r| (r.str("email"), r.opt_str("return_to"))))
    }
}
