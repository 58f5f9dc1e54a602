//! Model aliases: a name callers use for an ordered list of targets.

use super::{first, rows, Row, Store};
use crate::kinds::RoutingMode;
use crate::ports::DbError;
use crate::sql;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One target of an alias: a model as callers name it (`provider/model` or
/// a bare model), with parameters merged into the body sent to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasTarget {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<Map<String, Value>>,
}

#[derive(Debug, Clone)]
pub struct AliasRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub targets: Vec<AliasTarget>,
    pub routing: RoutingMode,
    /// A provider's content-policy refusal moves on to the next target.
    pub fallback_on_refusal: bool,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

fn alias(r: &Row) -> AliasRow {
    AliasRow {
        id: r.str("id"),
        name: r.str("name"),
        description: r.opt_str("description"),
        // Only Hub writes these columns, checked; anything else reads as empty.
        targets: serde_json::from_str(&r.str("targets")).unwrap_or_default(),
        routing: RoutingMode::parse(&r.str("routing")).unwrap_or(RoutingMode::Priority),
        fallback_on_refusal: r.bool("fallback_on_refusal"),
        enabled: r.bool("enabled"),
        created_at: r.i64("created_at"),
        updated_at: r.i64("updated_at"),
    }
}

impl AliasRow {
    fn targets_json(&self) -> String {
        serde_json::to_string(&self.targets).unwrap_or_else(|_| "[]".into())
    }
}

impl Store {
    pub async fn list_aliases(&self) -> Result<Vec<AliasRow>, DbError> {
        let r = self.db.query(sql!("SELECT * FROM aliases ORDER BY name")).await?;
        Ok(rows(&r).map(|r| alias(&r)).collect())
    }

    /// An alias by id or by name.
    pub async fn get_alias(&self, id: &str) -> Result<Option<AliasRow>, DbError> {
        let r = self
            .db
            .query(sql!("SELECT * FROM aliases WHERE id = ?1 OR name = ?1", id))
            .await?;
        Ok(first(&r).map(|r| alias(&r)))
    }

    pub async fn insert_alias(&self, a: &AliasRow) -> Result<(), DbError> {
        self.config_write(
            vec![sql!(
                "INSERT INTO aliases (id, name, description, targets, routing, fallback_on_refusal, enabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                &a.id, &a.name, a.description.clone(), a.targets_json(), a.routing.as_str(),
                a.fallback_on_refusal, a.enabled, a.created_at
            )],
            a.created_at,
        )
        .await
        .map(|_| ())
    }

    /// Replaces an alias's fields (the admin API merges a PATCH first).
    pub async fn update_alias(&self, a: &AliasRow, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .config_write(
                vec![sql!(
                    "UPDATE aliases SET name = ?2, description = ?3, targets = ?4, routing = ?5, fallback_on_refusal = ?6, enabled = ?7, updated_at = ?8 WHERE id = ?1",
                    &a.id, &a.name, a.description.clone(), a.targets_json(), a.routing.as_str(),
                    a.fallback_on_refusal, a.enabled, now_ms
                )],
                now_ms,
            )
            .await?;
        Ok(n[0] > 0)
    }

    pub async fn delete_alias(&self, id: &str, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .config_write(vec![sql!("DELETE FROM aliases WHERE id = ?1", id)], now_ms)
            .await?;
        Ok(n[0] > 0)
    }
}
