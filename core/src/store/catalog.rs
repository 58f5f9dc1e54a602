//! Providers, credentials, models with rates, and settings.

use super::patch::{Change, CredentialPatch, ModelPatch, ProviderPatch};
use super::{first, rows, Page, Row, Store};
use crate::kinds::{CredentialStatus, ModelKind, RoutingMode};
use crate::metering::money::Rate;
use crate::metering::{LongContext, Rates, DEFAULT_LONG_CONTEXT_THRESHOLD};
use crate::ports::{DbError, SqlValue, Stmt};
use crate::sql;

#[derive(Debug, Clone)]
pub struct ProviderRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub base_url: Option<String>,
    pub region: Option<String>,
    pub enabled: bool,
    pub priority: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub id: String,
    pub provider_id: String,
    pub name: String,
    pub secret_enc: String,
    pub secret_hint: String,
    pub weight: i64,
    pub enabled: bool,
    pub status: CredentialStatus,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct ModelRow {
    pub id: String,
    pub provider_id: String,
    pub model: String,
    pub kind: ModelKind,
    pub rates: Rates,
    pub max_output_tokens: Option<i64>,
    pub unit_costs: Option<serde_json::Value>,
    pub metadata: Option<serde_json::Value>,
    /// How this model's providers of equal priority are ordered.
    pub routing: RoutingMode,
    pub enabled: bool,
    /// What the provider charges (input, output, cache and the long-context
    /// tier; media unpriced), `None` when unknown.
    pub cost: Option<Rates>,
    /// The most prompt tokens the model takes, from a price catalogue.
    pub context_window: Option<i64>,
    /// Some sell rate is below its cost.
    pub below_cost: bool,
    /// The catalogue its costs last came from.
    pub price_source: Option<String>,
    pub costs_synced_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One change of a model's rate, from the rate history.
#[derive(Debug, Clone)]
pub struct RateChangeRow {
    pub field: String,
    pub old: Option<Rate>,
    pub new: Option<Rate>,
    /// `admin` or `sync`.
    pub source: String,
    /// The admin's user id.
    pub actor: Option<String>,
    pub created_at: i64,
}

/// A tier from its columns (`input_rate_above_200k`, … with `prefix` `` or
/// `cost_`): none without a tier input rate.
fn long_context(r: &Row, prefix: &str) -> Option<LongContext> {
    let rate = |c: &str| r.opt_i64(&format!("{prefix}{c}_above_200k")).map(Rate::from_nanos);
    Some(LongContext {
        threshold: r
            .opt_i64("long_context_threshold")
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(DEFAULT_LONG_CONTEXT_THRESHOLD),
        input: rate("input_rate")?,
        // A tier that names no output rate keeps the model's own (never free output).
        output: rate("output_rate")
            .or_else(|| r.opt_i64(&format!("{prefix}output_rate")).map(Rate::from_nanos))
            .unwrap_or(Rate::ZERO),
        cache_read: rate("cache_read_rate"),
        cache_write: rate("cache_write_rate"),
    })
}

/// The cost rates, when the input cost is known.
fn cost(r: &Row) -> Option<Rates> {
    let rate = |c: &str| r.opt_i64(c).map(Rate::from_nanos);
    Some(Rates {
        input: rate("cost_input_rate")?,
        output: rate("cost_output_rate").unwrap_or(Rate::ZERO),
        cache_read: rate("cost_cache_read_rate"),
        cache_write: rate("cost_cache_write_rate"),
        long_context: long_context(r, "cost_"),
        ..Default::default()
    })
}

fn provider(r: &Row) -> ProviderRow {
    ProviderRow {
        id: r.str("id"),
        name: r.str("name"),
        kind: r.str("kind"),
        base_url: r.opt_str("base_url"),
        region: r.opt_str("region"),
        enabled: r.bool("enabled"),
        priority: r.i64("priority"),
        created_at: r.i64("created_at"),
        updated_at: r.i64("updated_at"),
    }
}

fn credential(r: &Row) -> CredentialRow {
    CredentialRow {
        id: r.str("id"),
        provider_id: r.str("provider_id"),
        name: r.str("name"),
        secret_enc: r.str("secret_enc"),
        secret_hint: r.str("secret_hint"),
        weight: r.i64("weight"),
        enabled: r.bool("enabled"),
        // Only Hub writes this column; a name it does not know is shown as an error (still in rotation).
        status: CredentialStatus::parse(&r.str("status")).unwrap_or(CredentialStatus::Error),
        last_error: r.opt_str("last_error"),
        created_at: r.i64("created_at"),
        updated_at: r.i64("updated_at"),
    }
}

fn model(r: &Row) -> ModelRow {
    ModelRow {
        id: r.str("id"),
        provider_id: r.str("provider_id"),
        model: r.str("model"),
        // The schema's CHECK keeps this column to the known kinds.
        kind: ModelKind::parse(&r.str("type")).unwrap_or(ModelKind::Chat),
        rates: Rates {
            input: Rate::from_nanos(r.i64("input_rate")),
            output: Rate::from_nanos(r.i64("output_rate")),
            cache_read: r.opt_i64("cache_read_rate").map(Rate::from_nanos),
            cache_write: r.opt_i64("cache_write_rate").map(Rate::from_nanos),
            cache_write_1h: r.opt_i64("cache_write_1h_rate").map(Rate::from_nanos),
            image: Rate::from_nanos(r.i64("image_rate")),
            audio: Rate::from_nanos(r.i64("audio_rate")),
            video: Rate::from_nanos(r.i64("video_rate")),
            long_context: long_context(r, ""),
        },
        max_output_tokens: r.opt_i64("max_output_tokens"),
        unit_costs: r.json("unit_costs"),
        metadata: r.json("metadata"),
        routing: RoutingMode::parse(&r.str("routing")).unwrap_or(RoutingMode::Priority),
        enabled: r.bool("enabled"),
        cost: cost(r),
        context_window: r.opt_i64("context_window"),
        below_cost: r.bool("below_cost"),
        price_source: r.opt_str("price_source"),
        costs_synced_at: r.opt_i64("costs_synced_at"),
        created_at: r.i64("created_at"),
        updated_at: r.i64("updated_at"),
    }
}

impl ModelPatch {
    /// A patch writing every price of `m` beyond its flat sell rates: its
    /// tier, costs, context window and flags (empty when it has none).
    pub fn prices_of(m: &ModelRow) -> ModelPatch {
        let some = |present: bool| present.then_some(());
        ModelPatch {
            long_context: some(m.rates.long_context.is_some()).map(|_| m.rates.long_context),
            cost: some(m.cost.is_some()).map(|_| m.cost),
            context_window: some(m.context_window.is_some()).map(|_| m.context_window),
            below_cost: m.below_cost.then_some(true),
            price_source: some(m.price_source.is_some()).map(|_| m.price_source.clone()),
            costs_synced_at: m.costs_synced_at,
            ..Default::default()
        }
    }

    /// `m` as this patch leaves it.
    pub fn applied(&self, m: &ModelRow) -> ModelRow {
        let mut out = m.clone();
        let r = &mut out.rates;
        if let Some(v) = &self.model {
            out.model = v.clone();
        }
        if let Some(k) = self.kind {
            out.kind = k;
        }
        r.input = self.input_rate.unwrap_or(r.input);
        r.output = self.output_rate.unwrap_or(r.output);
        r.image = self.image_rate.unwrap_or(r.image);
        r.video = self.video_rate.unwrap_or(r.video);
        r.audio = self.audio_rate.unwrap_or(r.audio);
        r.cache_read = self.cache_read_rate.unwrap_or(r.cache_read);
        r.cache_write = self.cache_write_rate.unwrap_or(r.cache_write);
        r.cache_write_1h = self.cache_write_1h_rate.unwrap_or(r.cache_write_1h);
        r.long_context = self.long_context.unwrap_or(r.long_context);
        out.cost = self.cost.unwrap_or(out.cost);
        out.context_window = self.context_window.unwrap_or(out.context_window);
        out.below_cost = self.below_cost.unwrap_or(out.below_cost);
        out.enabled = self.enabled.unwrap_or(out.enabled);
        out.max_output_tokens = self.max_output_tokens.unwrap_or(out.max_output_tokens);
        out
    }
}

/// `UPDATE table SET a = ?, b = ?, updated_at = ? WHERE id = ?`, from allow-listed column names.
pub(super) fn update_stmt(table: &str, id: &str, changes: Vec<Change>, now_ms: i64) -> Stmt {
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
    Stmt::new(
        format!("UPDATE {table} SET {} WHERE id = ?{}", sets.join(", "), n + 2),
        params,
    )
}

fn bump_version(now_ms: i64) -> Stmt {
    sql!(
        "UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT), updated_at = ?1 WHERE key = 'config_version'",
        now_ms
    )
}

impl Store {
    /// The configuration version; every catalogue or settings change bumps it.
    pub async fn config_version(&self) -> Result<i64, DbError> {
        let r = self
            .db
            .query(sql!("SELECT value FROM settings WHERE key = 'config_version'"))
            .await?;
        Ok(first(&r)
            .and_then(|r| r.opt_str("value"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Runs configuration writes together with a version bump, atomically.
    pub(super) async fn config_write(&self, mut stmts: Vec<Stmt>, now_ms: i64) -> Result<Vec<u64>, DbError> {
        stmts.push(bump_version(now_ms));
        self.db.batch(stmts).await
    }

    // ------------------------------------------------------------ providers

    pub async fn list_providers(&self) -> Result<Vec<ProviderRow>, DbError> {
        let r = self
            .db
            .query(sql!("SELECT * FROM providers ORDER BY priority DESC, name"))
            .await?;
        Ok(rows(&r).map(|r| provider(&r)).collect())
    }

    pub async fn get_provider(&self, id: &str) -> Result<Option<ProviderRow>, DbError> {
        let r = self
            .db
            .query(sql!("SELECT * FROM providers WHERE id = ?1 OR name = ?1", id))
            .await?;
        Ok(first(&r).map(|r| provider(&r)))
    }

    pub async fn insert_provider(&self, p: &ProviderRow) -> Result<(), DbError> {
        self.config_write(
            vec![sql!(
                "INSERT INTO providers (id, name, kind, base_url, region, enabled, priority, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                &p.id, &p.name, &p.kind, p.base_url.clone(), p.region.clone(), p.enabled, p.priority, p.created_at
            )],
            p.created_at,
        )
        .await
        .map(|_| ())
    }

    pub async fn update_provider(&self, id: &str, patch: &ProviderPatch, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .config_write(vec![update_stmt("providers", id, patch.changes(), now_ms)], now_ms)
            .await?;
        Ok(n[0] > 0)
    }

    pub async fn delete_provider(&self, id: &str, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .config_write(
                vec![
                    sql!("DELETE FROM credentials WHERE provider_id = ?1", id),
                    sql!("DELETE FROM models WHERE provider_id = ?1", id),
                    sql!("DELETE FROM providers WHERE id = ?1", id),
                ],
                now_ms,
            )
            .await?;
        Ok(n[2] > 0)
    }

    // ------------------------------------------------------------ credentials

    pub async fn list_credentials(&self, provider_id: Option<&str>) -> Result<Vec<CredentialRow>, DbError> {
        let r = match provider_id {
            Some(p) => {
                self.db
                    .query(sql!(
                        "SELECT * FROM credentials WHERE provider_id = ?1 ORDER BY created_at",
                        p
                    ))
                    .await?
            }
            None => {
                self.db
                    .query(sql!("SELECT * FROM credentials ORDER BY created_at"))
                    .await?
            }
        };
        Ok(rows(&r).map(|r| credential(&r)).collect())
    }

    pub async fn get_credential(&self, id: &str) -> Result<Option<CredentialRow>, DbError> {
        let r = self
            .db
            .query(sql!("SELECT * FROM credentials WHERE id = ?1", id))
            .await?;
        Ok(first(&r).map(|r| credential(&r)))
    }

    pub async fn insert_credential(&self, c: &CredentialRow) -> Result<(), DbError> {
        self.config_write(
            vec![sql!(
                "INSERT INTO credentials (id, provider_id, name, secret_enc, secret_hint, weight, enabled, status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'active', ?8, ?8)",
                &c.id, &c.provider_id, &c.name, &c.secret_enc, &c.secret_hint, c.weight, c.enabled, c.created_at
            )],
            c.created_at,
        )
        .await
        .map(|_| ())
    }

    pub async fn update_credential(&self, id: &str, patch: &CredentialPatch, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .config_write(vec![update_stmt("credentials", id, patch.changes(), now_ms)], now_ms)
            .await?;
        Ok(n[0] > 0)
    }

    pub async fn delete_credential(&self, id: &str, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .config_write(vec![sql!("DELETE FROM credentials WHERE id = ?1", id)], now_ms)
            .await?;
        Ok(n[0] > 0)
    }

    /// Records a credential's health after a call or a test, without a reload.
    pub async fn set_credential_status(
        &self,
        id: &str,
        status: CredentialStatus,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.db
            .execute(sql!(
                "UPDATE credentials SET status = ?2, last_error = ?3, updated_at = ?4 WHERE id = ?1",
                id,
                status.as_str(),
                error,
                now_ms
            ))
            .await
            .map(|_| ())
    }

    /// Disables or re-enables a credential for its health (a provider
    /// rejected it, or it works again): every instance reloads.
    pub async fn set_credential_health(
        &self,
        id: &str,
        status: CredentialStatus,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), DbError> {
        let update = sql!(
            "UPDATE credentials SET status = ?2, last_error = ?3, updated_at = ?4 WHERE id = ?1",
            id,
            status.as_str(),
            error,
            now_ms
        );
        self.config_write(vec![update], now_ms).await.map(|_| ())
    }

    // ------------------------------------------------------------ models

    /// A page of models by id; `search` (lower case) keeps those whose
    /// `provider/model` name contains it.
    pub async fn list_models(
        &self,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> Result<Page<ModelRow>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT m.* FROM models m LEFT JOIN providers p ON p.id = m.provider_id
                 WHERE (?1 IS NULL OR m.id > ?1)
                   AND (?3 IS NULL OR instr(lower(coalesce(p.name, '') || '/' || m.model), ?3) > 0)
                 ORDER BY m.id LIMIT ?2",
                cursor,
                limit + 1,
                search
            ))
            .await?;
        let items: Vec<ModelRow> = rows(&r).map(|r| model(&r)).collect();
        Ok(Page::from_rows(items, limit, |m| m.id.clone()))
    }

    pub async fn all_models(&self) -> Result<Vec<ModelRow>, DbError> {
        let r = self.db.query(sql!("SELECT * FROM models ORDER BY model")).await?;
        Ok(rows(&r).map(|r| model(&r)).collect())
    }

    pub async fn get_model(&self, id: &str) -> Result<Option<ModelRow>, DbError> {
        let r = self.db.query(sql!("SELECT * FROM models WHERE id = ?1", id)).await?;
        Ok(first(&r).map(|r| model(&r)))
    }

    /// Inserts a model; `changed_by` (a user id, or `sync`) heads its rate history.
    pub async fn insert_model(&self, m: &ModelRow, changed_by: &str) -> Result<(), DbError> {
        let insert = sql!(
            "INSERT INTO models (id, provider_id, model, type, input_rate, output_rate, cache_read_rate, cache_write_rate, image_rate, video_rate, max_output_tokens, unit_costs, metadata, enabled, created_at, updated_at, cache_write_1h_rate, audio_rate, changed_by, routing) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16, ?17, ?18, ?19)",
            &m.id, &m.provider_id, &m.model, m.kind.as_str(),
            m.rates.input.nanos(), m.rates.output.nanos(),
            m.rates.cache_read.map(Rate::nanos), m.rates.cache_write.map(Rate::nanos),
            m.rates.image.nanos(), m.rates.video.nanos(), m.max_output_tokens,
            m.unit_costs.as_ref().map(|v| v.to_string()), m.metadata.as_ref().map(|v| v.to_string()),
            m.enabled, m.created_at, m.rates.cache_write_1h.map(Rate::nanos), m.rates.audio.nanos(), changed_by,
            m.routing.as_str()
        );
        // The prices: written by the one path every later change takes.
        let prices = ModelPatch::prices_of(m);
        let mut stmts = vec![insert];
        if !prices.is_empty() {
            stmts.push(update_stmt("models", &m.id, prices.changes(), m.created_at));
        }
        self.config_write(stmts, m.created_at).await.map(|_| ())
    }

    pub async fn update_model(&self, id: &str, patch: &ModelPatch, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .config_write(vec![update_stmt("models", id, patch.changes(), now_ms)], now_ms)
            .await?;
        Ok(n[0] > 0)
    }

    /// Several models' changes at once (a price sync), atomically.
    pub async fn update_models(&self, patches: &[(String, ModelPatch)], now_ms: i64) -> Result<(), DbError> {
        let stmts = patches
            .iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(id, p)| update_stmt("models", id, p.changes(), now_ms))
            .collect::<Vec<_>>();
        if stmts.is_empty() {
            return Ok(());
        }
        self.config_write(stmts, now_ms).await.map(|_| ())
    }

    /// A model's rate history, newest first.
    pub async fn rate_history(
        &self,
        model_id: &str,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Page<RateChangeRow>, DbError> {
        let before = cursor.and_then(|c| c.parse::<i64>().ok());
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM rate_changes WHERE model_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
                model_id,
                before,
                limit + 1
            ))
            .await?;
        let items: Vec<(i64, RateChangeRow)> = rows(&r)
            .map(|r| {
                let change = RateChangeRow {
                    field: r.str("field"),
                    old: r.opt_i64("old_value").map(Rate::from_nanos),
                    new: r.opt_i64("new_value").map(Rate::from_nanos),
                    source: r.str("source"),
                    actor: r.opt_str("actor"),
                    created_at: r.i64("created_at"),
                };
                (r.i64("id"), change)
            })
            .collect();
        let page = Page::from_rows(items, limit, |(id, _)| id.to_string());
        Ok(Page {
            items: page.items.into_iter().map(|(_, c)| c).collect(),
            next_cursor: page.next_cursor,
        })
    }

    pub async fn delete_model(&self, id: &str, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .config_write(vec![sql!("DELETE FROM models WHERE id = ?1", id)], now_ms)
            .await?;
        Ok(n[0] > 0)
    }

    // ------------------------------------------------------------ settings

    /// Every stored setting as (key, JSON text).
    pub async fn settings(&self) -> Result<Vec<(String, String)>, DbError> {
        let r = self
            .db
            .query(sql!("SELECT key, value FROM settings WHERE key <> 'config_version'"))
            .await?;
        Ok(rows(&r).map(|r| (r.str("key"), r.str("value"))).collect())
    }

    pub async fn put_settings(&self, values: Vec<(String, String)>, now_ms: i64) -> Result<(), DbError> {
        let stmts = values
            .into_iter()
            .map(|(k, v)| {
                sql!(
                    "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    k, v, now_ms
                )
            })
            .collect();
        self.config_write(stmts, now_ms).await.map(|_| ())
    }
}
