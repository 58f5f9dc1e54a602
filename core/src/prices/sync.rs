//! A price sync: a catalogue's entries matched to Hub's models by provider
//! kind and model name, and what changes on each (costs, context window,
//! a missing long-context sell tier, `below_cost`, and the operator's
//! below-cost action), written in one transaction.

use super::catalogue::{self, CatalogueFormat, Entry};
use super::margin::{at_margin, priced, Percent};
use super::BelowCostAction;
use crate::config::Settings;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::kinds::ModelKind;
use crate::metering::money::Rate;
use crate::metering::{LongContext, Rates};
use crate::store::{ModelPatch, ModelRow};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The `changed_by` of a sync's changes.
pub const SYNC: &str = "sync";

/// The largest catalogue fetched from a URL (LiteLLM's is about 1.5 MB).
const MAX_CATALOGUE_BYTES: usize = 32 << 20;

/// The settings a sync applies.
#[derive(Debug, Clone)]
pub struct Policy {
    pub credit_price_usd: String,
    /// The margin a reprice or a new tier earns.
    pub margin: Percent,
    pub floor: Option<Percent>,
    pub action: BelowCostAction,
}

impl Policy {
    pub fn of(s: &Settings) -> Policy {
        Policy {
            credit_price_usd: s.credit_price_usd.clone(),
            margin: Percent::parse(&s.margin_percent).unwrap_or_default(),
            floor: s.margin_floor_percent.as_deref().and_then(Percent::parse),
            action: s.below_cost_action,
        }
    }

    /// The margin a repriced rate earns: the target, and never below the floor.
    fn reprice_margin(&self) -> Percent {
        self.margin.max(self.floor.unwrap_or_default())
    }
}

/// What a sync did to one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutcome {
    pub id: String,
    pub patch: ModelPatch,
    /// Some sell rate is below its cost after the sync.
    pub below_cost: bool,
    pub disabled: bool,
    /// The rates raised to the margin.
    pub repriced: Vec<&'static str>,
}

/// `sell` scaled as `cost` moves to `tier_cost` (the operator's margin kept),
/// rounded up; at the margin when the flat cost is zero.
fn scaled(sell: Rate, cost: Rate, tier_cost: Rate, margin: Percent) -> Rate {
    if cost.nanos() <= 0 {
        return at_margin(tier_cost, margin);
    }
    let n = i128::from(sell.nanos()) * i128::from(tier_cost.nanos());
    let d = i128::from(cost.nanos());
    Rate::from_nanos(i64::try_from((n + d - 1).div_euclid(d)).unwrap_or(i64::MAX))
}

/// A sell tier for a model that has none, when its provider charges one.
fn sell_tier(sell: &Rates, cost: &Rates, margin: Percent) -> Option<LongContext> {
    let tier = cost.long_context?;
    let scale = |s: Rate, c: Rate, t: Rate| scaled(s, c, t, margin);
    Some(LongContext {
        threshold: tier.threshold,
        input: scale(sell.input, cost.input, tier.input),
        output: scale(sell.output, cost.output, tier.output),
        cache_read: tier
            .cache_read
            .map(|t| scale(sell.cache_read_rate(), cost.cache_read.unwrap_or(cost.input), t)),
        cache_write: tier
            .cache_write
            .map(|t| scale(sell.cache_write_rate(), cost.cache_write.unwrap_or(cost.input), t)),
    })
}

/// Sets the sell rate a priced field names (a tier rate on a model without a
/// tier starts the tier from its flat rates).
fn set_rate(sell: &mut Rates, field: &str, rate: Rate) {
    let tier = sell.long_context.unwrap_or(LongContext {
        threshold: crate::metering::DEFAULT_LONG_CONTEXT_THRESHOLD,
        input: sell.input,
        output: sell.output,
        cache_read: sell.cache_read,
        cache_write: sell.cache_write,
    });
    match field {
        "input_rate" => sell.input = rate,
        "output_rate" => sell.output = rate,
        "cache_read_rate" => sell.cache_read = Some(rate),
        "cache_write_rate" => sell.cache_write = Some(rate),
        "input_rate_above_200k" => sell.long_context = Some(LongContext { input: rate, ..tier }),
        "output_rate_above_200k" => sell.long_context = Some(LongContext { output: rate, ..tier }),
        "cache_read_rate_above_200k" => {
            sell.long_context = Some(LongContext {
                cache_read: Some(rate),
                ..tier
            })
        }
        _ => {
            sell.long_context = Some(LongContext {
                cache_write: Some(rate),
                ..tier
            })
        }
    }
}

/// `new` when it differs from `old`.
fn changed<T: PartialEq>(old: T, new: T) -> Option<T> {
    (old != new).then_some(new)
}

/// What syncing `m` to the catalogue's `entry` changes; `None` when the
/// entry's prices cannot be read.
pub fn plan(
    m: &ModelRow,
    entry: &Entry,
    format: CatalogueFormat,
    policy: &Policy,
    now_ms: i64,
) -> Option<ModelOutcome> {
    let cost = entry.prices.rates(&policy.credit_price_usd)?;
    let mut sell = m.rates;
    if sell.long_context.is_none() {
        sell.long_context = sell_tier(&sell, &cost, policy.margin);
    }
    // One threshold for both tiers: the catalogue's.
    if let (Some(s), Some(c)) = (sell.long_context.as_mut(), cost.long_context) {
        s.threshold = c.threshold;
    }
    let mut repriced = Vec::new();
    let below = |sell: &Rates| priced(sell, &cost).iter().any(|p| p.below_cost());
    let mut enabled = m.enabled;
    if below(&sell) {
        match policy.action {
            BelowCostAction::Flag => {}
            BelowCostAction::Disable => enabled = false,
            BelowCostAction::Reprice => {
                let floor = policy.floor.unwrap_or_default();
                for p in priced(&sell, &cost) {
                    if p.below_floor(floor) || p.below_cost() {
                        set_rate(&mut sell, p.field, at_margin(p.cost, policy.reprice_margin()));
                        repriced.push(p.field);
                    }
                }
            }
        }
    }
    let below_cost = below(&sell);
    let patch = ModelPatch {
        input_rate: changed(m.rates.input, sell.input),
        output_rate: changed(m.rates.output, sell.output),
        cache_read_rate: changed(m.rates.cache_read, sell.cache_read),
        cache_write_rate: changed(m.rates.cache_write, sell.cache_write),
        long_context: changed(m.rates.long_context, sell.long_context),
        cost: changed(m.cost, Some(cost)),
        context_window: entry.context_window.and_then(|w| changed(m.context_window, Some(w))),
        below_cost: changed(m.below_cost, below_cost),
        enabled: changed(m.enabled, enabled),
        price_source: changed(m.price_source.clone(), Some(format.as_str().to_string())),
        costs_synced_at: Some(now_ms),
        changed_by: Some(SYNC.to_string()),
        ..Default::default()
    };
    Some(ModelOutcome {
        id: m.id.clone(),
        patch,
        below_cost,
        disabled: m.enabled && !enabled,
        repriced,
    })
}

/// Where a sync reads its catalogue.
pub enum Source {
    Url(String),
    /// An uploaded file, parsed.
    Document(Value),
}

impl Hub {
    /// Syncs every token-priced model to a catalogue; the answer lists what
    /// matched and what changed.
    pub async fn sync_prices(&self, format: CatalogueFormat, source: Source) -> Result<Value, ApiError> {
        let doc = match source {
            Source::Document(doc) => doc,
            Source::Url(url) => self.fetch_catalogue(&url).await?,
        };
        let entries = catalogue::parse(format, &doc).map_err(|e| ApiError::invalid_field("catalogue", e))?;
        let index: HashMap<(&str, &str), &Entry> = entries
            .iter()
            .rev()
            .map(|e| ((e.kind.as_str(), e.model.as_str()), e))
            .collect();
        let snap = self.snapshot().await?;
        let policy = Policy::of(&snap.settings);
        let kinds: HashMap<String, (String, String)> = self
            .store()
            .list_providers()
            .await?
            .into_iter()
            .map(|p| (p.id, (p.kind, p.name)))
            .collect();
        let now = self.now_ms();
        let mut outcomes = Vec::new();
        let mut unmatched = Vec::new();
        for m in self.store().all_models().await? {
            if !matches!(m.kind, ModelKind::Chat | ModelKind::Embedding) {
                continue;
            }
            let Some((kind, provider)) = kinds.get(&m.provider_id) else {
                continue;
            };
            let name = format!("{provider}/{}", m.model);
            match index
                .get(&(kind.as_str(), m.model.as_str()))
                .and_then(|e| plan(&m, e, format, &policy, now))
            {
                Some(o) => outcomes.push((name, o)),
                None => unmatched.push(name),
            }
        }
        let patches: Vec<(String, ModelPatch)> =
            outcomes.iter().map(|(_, o)| (o.id.clone(), o.patch.clone())).collect();
        self.store().update_models(&patches, now).await?;
        self.reload().await?;
        self.deliver_soon();
        let matched: Vec<Value> = outcomes
            .iter()
            .map(|(name, o)| {
                json!({
                    "id": o.id,
                    "name": name,
                    "below_cost": o.below_cost,
                    "disabled": o.disabled,
                    "repriced": o.repriced,
                })
            })
            .collect();
        tracing::info!(
            format = format.as_str(),
            entries = entries.len(),
            matched = matched.len(),
            "prices synced"
        );
        Ok(json!({
            "format": format,
            "entries": entries.len(),
            "matched": matched,
            "unmatched": unmatched,
        }))
    }

    /// A catalogue from a URL, through the outbound address policy.
    async fn fetch_catalogue(&self, url: &str) -> Result<Value, ApiError> {
        self.outbound()
            .check_url(url)
            .map_err(|problem| ApiError::invalid_field("url", problem))?;
        let req = crate::ports::UpstreamRequest {
            method: http::Method::GET,
            url: url.to_string(),
            headers: vec![("accept".into(), "application/json".into())],
            body: bytes::Bytes::new(),
            timeouts: self.options().timeouts,
        };
        let fetch_failed = |e: String| ApiError::provider(format!("Could not fetch the price catalogue: {e}"));
        let mut resp = self.send_upstream(req).await.map_err(|e| fetch_failed(e.to_string()))?;
        if !(200..300).contains(&resp.status) {
            return Err(fetch_failed(format!("the server answered {}", resp.status)));
        }
        let body = crate::gateway::collect(&mut resp, MAX_CATALOGUE_BYTES)
            .await
            .map_err(|_| fetch_failed("the answer was cut or too large".into()))?;
        serde_json::from_slice(&body).map_err(|e| fetch_failed(format!("the answer is not JSON ({e})")))
    }

    /// The scheduled sync: when a URL is set and its interval has passed
    /// since the last one (kept in the `price_sync_last_at` setting). A
    /// failed fetch waits for the next interval too.
    pub(crate) async fn scheduled_price_sync(&self, now_ms: i64) -> Result<bool, ApiError> {
        let snap = self.snapshot().await?;
        let s = &snap.settings;
        let (Some(url), hours) = (s.price_sync_url.clone(), s.price_sync_interval_hours) else {
            return Ok(false);
        };
        if hours == 0 {
            return Ok(false);
        }
        let last = self
            .store()
            .settings()
            .await?
            .into_iter()
            .find(|(k, _)| k == LAST_SYNC_KEY)
            .and_then(|(_, v)| v.parse::<i64>().ok())
            .unwrap_or(0);
        if now_ms - last < hours * 3_600_000 {
            return Ok(false);
        }
        self.store()
            .put_settings(vec![(LAST_SYNC_KEY.into(), now_ms.to_string())], now_ms)
            .await?;
        self.sync_prices(s.price_sync_format, Source::Url(url)).await?;
        Ok(true)
    }
}

/// When the scheduled sync last ran (ms), beside the settings.
pub const LAST_SYNC_KEY: &str = "price_sync_last_at";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prices::catalogue::Prices;

    fn rate(s: &str) -> Rate {
        Rate::parse(s).unwrap()
    }

    fn model(input: &str, output: &str) -> ModelRow {
        ModelRow {
            id: "mdl_1".into(),
            provider_id: "prv_1".into(),
            model: "claude-sonnet-4-5".into(),
            kind: ModelKind::Chat,
            rates: Rates {
                input: rate(input),
                output: rate(output),
                ..Default::default()
            },
            max_output_tokens: None,
            unit_costs: None,
            metadata: None,
            routing: crate::kinds::RoutingMode::Priority,
            enabled: true,
            cost: None,
            context_window: None,
            below_cost: false,
            price_source: None,
            costs_synced_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn entry(input: &str, output: &str) -> Entry {
        Entry {
            kind: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
            prices: Prices {
                input: Some(input.into()),
                output: Some(output.into()),
                threshold: Some(200_000),
                tier: Some(Box::new(Prices {
                    input: Some("6e-06".into()),
                    output: Some("2.25e-05".into()),
                    ..Default::default()
                })),
                ..Default::default()
            },
            context_window: Some(200_000),
        }
    }

    fn policy(action: BelowCostAction) -> Policy {
        Policy {
            credit_price_usd: "1".into(),
            margin: Percent::parse("20").unwrap(),
            floor: Percent::parse("10"),
            action,
        }
    }

    #[test]
    fn costs_land_and_a_missing_tier_keeps_the_models_margin() {
        let o = plan(
            &model("3.6", "18"),
            &entry("3e-06", "1.5e-05"),
            CatalogueFormat::Litellm,
            &policy(BelowCostAction::Flag),
            5,
        )
        .unwrap();
        let cost = o.patch.cost.unwrap().unwrap();
        assert_eq!((cost.input, cost.output), (rate("3"), rate("15")));
        // Sold 20% over cost: the tier too (6 → 7.2, 22.5 → 27).
        let tier = o.patch.long_context.unwrap().unwrap();
        assert_eq!(
            (tier.input, tier.output, tier.threshold),
            (rate("7.2"), rate("27"), 200_000)
        );
        assert_eq!(o.patch.context_window, Some(Some(200_000)));
        assert!(!o.below_cost && o.patch.below_cost.is_none());
        assert_eq!(o.patch.changed_by.as_deref(), Some(SYNC));
    }

    #[test]
    fn a_cost_above_the_sell_rate_flags_disables_or_reprices() {
        let m = model("3.6", "18");
        let dearer = entry("4e-06", "1.5e-05");
        let flag = plan(&m, &dearer, CatalogueFormat::Litellm, &policy(BelowCostAction::Flag), 5).unwrap();
        assert!(flag.below_cost && !flag.disabled);
        assert_eq!(flag.patch.below_cost, Some(true));
        assert_eq!(flag.patch.enabled, None);
        let off = plan(
            &m,
            &dearer,
            CatalogueFormat::Litellm,
            &policy(BelowCostAction::Disable),
            5,
        )
        .unwrap();
        assert!(off.below_cost && off.disabled);
        assert_eq!(off.patch.enabled, Some(false));
        let up = plan(
            &m,
            &dearer,
            CatalogueFormat::Litellm,
            &policy(BelowCostAction::Reprice),
            5,
        )
        .unwrap();
        assert!(!up.below_cost);
        // The tier the sync made from the flat rates (3.6 × 6/4 = 5.4) was below its cost too.
        assert_eq!(up.repriced, ["input_rate", "input_rate_above_200k"]);
        // 4 × 1.2 and 6 × 1.2, the margin (above the 10% floor).
        assert_eq!(up.patch.input_rate, Some(rate("4.8")));
        assert_eq!(up.patch.long_context.unwrap().unwrap().input, rate("7.2"));
        assert_eq!(up.patch.output_rate, None);
    }
}
