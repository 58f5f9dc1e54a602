//! The AIGNE CLI's connect sessions (`aigne hub connect`): opened by the
//! CLI, decided once by a signed-in person, ended by the CLI or by expiry.

use super::{first, insert_key_stmt, NewKeyRow, Store};
use crate::ports::{DbError, SqlValue};
use crate::sql;

/// Where a connect session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectStatus {
    Pending,
    Approved,
    Denied,
}

impl ConnectStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectStatus::Pending => "pending",
            ConnectStatus::Approved => "approved",
            ConnectStatus::Denied => "denied",
        }
    }

    fn parse(s: &str) -> ConnectStatus {
        match s {
            "approved" => ConnectStatus::Approved,
            "denied" => ConnectStatus::Denied,
            _ => ConnectStatus::Pending,
        }
    }
}

/// A live (unexpired) connect session.
#[derive(Debug, Clone)]
pub struct ConnectSession {
    pub status: ConnectStatus,
    pub created_at: i64,
    pub expires_at: i64,
    /// Once approved: the new key's id, the key as the CLI decrypts it
    /// (sealed under the master key) and the challenge it is encrypted with.
    pub key_id: Option<String>,
    pub sealed_secret: Option<String>,
    pub challenge: Option<String>,
}

/// What an approval stores: the person's new key and what the CLI will receive.
pub struct Approval<'a> {
    pub key: &'a NewKeyRow<'a>,
    pub sealed_secret: &'a str,
    pub challenge: &'a str,
}

/// `insert_key_stmt`'s columns, inserted only if the approval in the same
/// batch claimed the session for this key (`?15` is the session's hash).
const INSERT_KEY_IF_CLAIMED: &str = "INSERT INTO api_keys (id, user_id, label, key_hash, key_hint, expires_at, allowed_models, rpm_limit, tpm_limit, daily_spend_cap, monthly_spend_cap, created_at, parent_key_id, team_id, hash_scheme) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 2 \
     WHERE EXISTS (SELECT 1 FROM access_key_sessions WHERE token_hash = ?15 AND key_id = ?1)";

impl Store {
    pub async fn open_connect_session(
        &self,
        token_hash: &str,
        ip: &str,
        now_ms: i64,
        expires_at: i64,
    ) -> Result<(), DbError> {
        self.db
            .execute(sql!(
                "INSERT INTO access_key_sessions (token_hash, ip, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                token_hash,
                ip,
                now_ms,
                expires_at
            ))
            .await
            .map(drop)
    }

    /// Sessions opened from `ip` that are still live.
    pub async fn live_connect_sessions_from(&self, ip: &str, now_ms: i64) -> Result<i64, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT COUNT(*) AS n FROM access_key_sessions WHERE ip = ?1 AND expires_at > ?2",
                ip,
                now_ms
            ))
            .await?;
        Ok(first(&r).map_or(0, |r| r.i64("n")))
    }

    /// The live session with this hash, if any.
    pub async fn connect_session(&self, token_hash: &str, now_ms: i64) -> Result<Option<ConnectSession>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM access_key_sessions WHERE token_hash = ?1 AND expires_at > ?2",
                token_hash,
                now_ms
            ))
            .await?;
        Ok(first(&r).map(|r| ConnectSession {
            status: ConnectStatus::parse(&r.str("status")),
            created_at: r.i64("created_at"),
            expires_at: r.i64("expires_at"),
            key_id: r.opt_str("key_id"),
            sealed_secret: r.opt_str("sealed_secret"),
            challenge: r.opt_str("challenge"),
        }))
    }

    /// Approves a pending, live session and creates its key, atomically:
    /// false (and no key) when it was already decided, ended or expired.
    pub async fn approve_connect_session(
        &self,
        token_hash: &str,
        approval: &Approval<'_>,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let claim = sql!(
            "UPDATE access_key_sessions SET status = 'approved', user_id = ?2, key_id = ?3, sealed_secret = ?4, challenge = ?5, decided_at = ?6
             WHERE token_hash = ?1 AND status = 'pending' AND expires_at > ?6",
            token_hash,
            approval.key.user_id,
            approval.key.id,
            approval.sealed_secret,
            approval.challenge,
            now_ms
        );
        let mut insert = insert_key_stmt(approval.key);
        insert.sql = INSERT_KEY_IF_CLAIMED.into();
        insert.params.push(SqlValue::from(token_hash));
        let changed = self.db.batch(vec![claim, insert]).await?;
        Ok(changed.first() == Some(&1))
    }

    /// Denies a pending, live session; false when there was none.
    pub async fn deny_connect_session(&self, token_hash: &str, user_id: &str, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(sql!(
                "UPDATE access_key_sessions SET status = 'denied', user_id = ?2, decided_at = ?3
                 WHERE token_hash = ?1 AND status = 'pending' AND expires_at > ?3",
                token_hash,
                user_id,
                now_ms
            ))
            .await?;
        Ok(n > 0)
    }

    /// Ends a session (whatever its state); true when a live one ended.
    pub async fn end_connect_session(&self, token_hash: &str, now_ms: i64) -> Result<bool, DbError> {
        let live = self.connect_session(token_hash, now_ms).await?.is_some();
        self.db
            .execute(sql!(
                "DELETE FROM access_key_sessions WHERE token_hash = ?1",
                token_hash
            ))
            .await?;
        Ok(live)
    }

    /// Deletes up to `limit` expired sessions (with any key they still held).
    pub async fn delete_expired_connect_sessions(&self, now_ms: i64, limit: u64) -> Result<u64, DbError> {
        self.db
            .execute(sql!(
                "DELETE FROM access_key_sessions WHERE token_hash IN
                   (SELECT token_hash FROM access_key_sessions WHERE expires_at <= ?1 LIMIT ?2)",
                now_ms,
                limit as i64
            ))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conditional_insert_has_the_plain_inserts_columns() {
        let key = NewKeyRow {
            id: "key_1",
            user_id: "usr_1",
            label: "AIGNE CLI",
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
            team_id: None,
        };
        let plain = insert_key_stmt(&key);
        let columns = |s: &str| s.split(')').next().unwrap().to_string();
        assert_eq!(columns(&plain.sql), columns(INSERT_KEY_IF_CLAIMED));
        assert_eq!(plain.params.len(), 14);
    }
}
