//! Which candidates a call tries, in which order.
//!
//! A caller names a model (`provider/model` or bare) or an alias. An alias
//! expands to its targets in order, each target to the providers that serve
//! it; every route keeps the alias target it serves ([`Via`]). Candidates
//! of equal priority are then ordered by the routing mode of the model (the
//! first candidate's row) or of the alias (its whole list is one group):
//!
//! - `priority`: as configured (equal providers take turns by weight);
//! - `latency`: lowest [`Speed::score_ms`] first (time to first byte plus a
//!   failure penalty, measured by this instance, no database read);
//! - `cost`: cheapest [`cost_rank`] first, failing providers last.
//!
//! Under `latency` and `cost`, one choice in [`PROBE_EVERY`] puts another
//! candidate first, so a provider that recovered is measured again and
//! regains its traffic.

use crate::config::{Route, Snapshot, Via};
use crate::hub::speed::Speed;
use crate::kinds::{ModelKind, RoutingMode};
use crate::metering::money::Credits;
use crate::store::{AliasRow, ModelRow};
use std::cmp::Ordering;
use std::sync::Arc;

/// One choice in this many probes a candidate other than the best.
pub const PROBE_EVERY: u64 = 20;

/// A failure rate above which `cost` routing tries a provider last.
const FAILING: f64 = 0.5;

/// The `metadata` fields that give a model's context window, in tokens.
pub const CONTEXT_WINDOW_KEYS: &[&str] = &["context_window", "max_input_tokens"];

/// The most prompt tokens a model takes, when known: its `context_window`
/// (set by hand or by a price sync), else its `metadata`'s.
pub fn context_window(m: &ModelRow) -> Option<u64> {
    if let Some(n) = m.context_window.and_then(|n| u64::try_from(n).ok()).filter(|n| *n > 0) {
        return Some(n);
    }
    let metadata = m.metadata.as_ref()?;
    CONTEXT_WINDOW_KEYS
        .iter()
        .find_map(|k| metadata.get(*k).and_then(serde_json::Value::as_u64))
        .filter(|n| *n > 0)
}

/// What the provider charges for a model, to rank candidates by cost
/// (lower is cheaper): its input and output cost rates added (credits per
/// million tokens, from a price sync or set by hand); a model known only by
/// its `unit_costs` (USD) ranks after every such model, by those. The two
/// are never compared with each other (different units). None: unknown
/// (ranked last).
pub fn cost_rank(m: &ModelRow) -> Option<(u8, i64)> {
    if let Some(cost) = &m.cost {
        return Some((0, cost.input.nanos().saturating_add(cost.output.nanos())));
    }
    let costs = m.unit_costs.as_ref()?;
    let rate = |k: &str| costs.get(k).and_then(|v| Credits::from_json(v).ok()).map(|c| c.nanos());
    match (rate("input"), rate("output")) {
        (None, None) => None,
        (i, o) => Some((1, i.unwrap_or(0).saturating_add(o.unwrap_or(0)))),
    }
}

/// The routes an alias can reach, in its targets' order, without choosing
/// among them (no routing state changes): for model lists.
pub fn alias_routes<'a>(snap: &'a Snapshot, alias: &'a AliasRow) -> impl Iterator<Item = &'a Route> + 'a {
    alias.targets.iter().flat_map(move |t| {
        let (prefix, rest) = match t.model.split_once('/') {
            Some((p, m)) if !snap.routes.contains_key(&t.model) => (Some(p), m),
            _ => (None, t.model.as_str()),
        };
        snap.routes.get(rest).into_iter().flatten().filter(move |r| {
            prefix.is_none_or(|p| {
                r.provider.name == p
                    || r.provider.vendor.kind == p
                    || (p == "google" && r.provider.vendor.kind == "gemini")
            })
        })
    })
}

/// The candidates for what the caller named, best first.
pub(crate) fn resolve(snap: &Snapshot, speed: &Speed, requested: &str, kind: ModelKind) -> Vec<Route> {
    match snap.aliases.get(requested) {
        Some(alias) => through_alias(snap, speed, alias, kind),
        None => model_routes(snap, speed, requested, kind),
    }
}

/// A model's providers, equal priorities ordered by the model's routing mode.
fn model_routes(snap: &Snapshot, speed: &Speed, requested: &str, kind: ModelKind) -> Vec<Route> {
    let mut routes = snap.resolve(requested, kind);
    let Some(mode) = routes.first().map(|r| r.model.routing) else {
        return routes;
    };
    if mode == RoutingMode::Priority {
        return routes;
    }
    let mut start = 0;
    while start < routes.len() {
        let priority = routes[start].provider.priority;
        let len = routes[start..]
            .iter()
            .take_while(|r| r.provider.priority == priority)
            .count();
        let group = format!("{kind}\u{0}{requested}\u{0}{priority}");
        order(&mut routes[start..start + len], mode, speed, &group);
        start += len;
    }
    routes
}

/// An alias's targets in order, each with its providers; a route reached
/// twice keeps its first place.
fn through_alias(snap: &Snapshot, speed: &Speed, alias: &AliasRow, kind: ModelKind) -> Vec<Route> {
    let mut out: Vec<Route> = Vec::new();
    for target in &alias.targets {
        let via = Arc::new(Via {
            alias: alias.name.clone(),
            target: target.model.clone(),
            overrides: target.overrides.clone(),
            fallback_on_refusal: alias.fallback_on_refusal,
        });
        for r in model_routes(snap, speed, &target.model, kind) {
            if out.iter().any(|o| o.model.id == r.model.id) {
                continue;
            }
            out.push(Route {
                via: Some(via.clone()),
                ..r
            });
        }
    }
    if alias.routing != RoutingMode::Priority {
        let group = format!("{kind}\u{0}{}", alias.name);
        order(&mut out, alias.routing, speed, &group);
    }
    out
}

/// Orders one group of candidates by `mode` (a stable sort: ties keep the
/// configured order), then, one time in [`PROBE_EVERY`], puts another
/// candidate first, taking each in turn.
fn order(group: &mut [Route], mode: RoutingMode, speed: &Speed, key: &str) {
    match mode {
        RoutingMode::Priority => return,
        RoutingMode::Latency => group.sort_by(|a, b| by_latency(speed, a, b)),
        RoutingMode::Cost => group.sort_by(|a, b| by_cost(speed, a, b)),
    }
    let n = speed.pick(key);
    if group.len() > 1 && n % PROBE_EVERY == PROBE_EVERY - 1 {
        let probe = 1 + (n / PROBE_EVERY) as usize % (group.len() - 1);
        group[..=probe].rotate_right(1);
    }
}

/// Unmeasured first (to measure them), then the lowest score.
fn by_latency(speed: &Speed, a: &Route, b: &Route) -> Ordering {
    let score = |r: &Route| speed.score_ms(&r.model.id).unwrap_or(-1.0);
    score(a).partial_cmp(&score(b)).unwrap_or(Ordering::Equal)
}

/// Working before failing, then cheapest, unknown costs last.
fn by_cost(speed: &Speed, a: &Route, b: &Route) -> Ordering {
    let key = |r: &Route| {
        let failing = speed.get(&r.model.id).is_some_and(|e| e.failure_rate > FAILING);
        (failing, cost_rank(&r.model).unwrap_or((u8::MAX, i64::MAX)))
    };
    key(a).cmp(&key(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CredentialEntry, ProviderEntry};
    use crate::store::AliasTarget;
    use serde_json::json;
    use std::collections::HashMap;

    fn provider(name: &str) -> Arc<ProviderEntry> {
        Arc::new(ProviderEntry::for_tests(
            name,
            0,
            vec![CredentialEntry {
                id: format!("{name}-c"),
                name: "c".into(),
                secret: String::new(),
                weight: 1,
                updated_at: 0,
            }],
        ))
    }

    fn model(provider: &str, name: &str, routing: RoutingMode, extra: serde_json::Value) -> ModelRow {
        ModelRow {
            id: format!("{provider}-{name}"),
            provider_id: provider.into(),
            model: name.into(),
            kind: ModelKind::Chat,
            rates: Default::default(),
            max_output_tokens: None,
            unit_costs: extra.get("unit_costs").cloned(),
            metadata: extra.get("metadata").cloned(),
            routing,
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

    fn snapshot(models: Vec<ModelRow>, aliases: Vec<AliasRow>) -> Snapshot {
        let mut routes: HashMap<String, Vec<Route>> = HashMap::new();
        let mut providers = HashMap::new();
        for m in models {
            let p = providers
                .entry(m.provider_id.clone())
                .or_insert_with(|| provider(&m.provider_id))
                .clone();
            routes.entry(m.model.clone()).or_default().push(Route {
                provider: p,
                model: Arc::new(m),
                via: None,
            });
        }
        for list in routes.values_mut() {
            list.sort_by(|a, b| a.provider.name.cmp(&b.provider.name));
        }
        Snapshot {
            providers,
            routes,
            aliases: aliases.into_iter().map(|a| (a.name.clone(), Arc::new(a))).collect(),
            ..Default::default()
        }
    }

    fn names(routes: &[Route]) -> Vec<String> {
        routes
            .iter()
            .map(|r| format!("{}/{}", r.provider.name, r.model.model))
            .collect()
    }

    #[test]
    fn latency_prefers_the_faster_and_probes_the_other() {
        let speed = Speed::default();
        let snap = snapshot(
            vec![
                model("a", "m", RoutingMode::Latency, json!({})),
                model("b", "m", RoutingMode::Latency, json!({})),
            ],
            vec![],
        );
        for _ in 0..3 {
            speed.succeeded("a-m", 300.0);
            speed.succeeded("b-m", 10.0);
        }
        let firsts: Vec<String> = (0..40)
            .map(|_| resolve(&snap, &speed, "m", ModelKind::Chat)[0].provider.name.clone())
            .collect();
        assert_eq!(
            firsts.iter().filter(|f| *f == "a").count(),
            2,
            "one probe in 20: {firsts:?}"
        );
        assert_eq!(firsts[19], "a");
        // Failures put the fast one behind.
        speed.failed("b-m");
        speed.failed("b-m");
        assert_eq!(resolve(&snap, &speed, "m", ModelKind::Chat)[0].provider.name, "a");
    }

    #[test]
    fn cost_orders_by_the_providers_cost_and_sets_failing_ones_last() {
        let speed = Speed::default();
        let cost = |i: &str, o: &str| json!({"unit_costs": {"input": i, "output": o}});
        let snap = snapshot(
            vec![
                model("a", "m", RoutingMode::Cost, cost("3", "15")),
                model("b", "m", RoutingMode::Cost, cost("1", "4")),
                model("c", "m", RoutingMode::Cost, json!({})),
            ],
            vec![],
        );
        assert_eq!(cost_rank(&snap.routes["m"][1].model), Some((1, 5_000_000_000)));
        assert_eq!(
            names(&resolve(&snap, &speed, "m", ModelKind::Chat)),
            ["b/m", "a/m", "c/m"]
        );
        for _ in 0..3 {
            speed.failed("b-m");
        }
        assert_eq!(
            names(&resolve(&snap, &speed, "m", ModelKind::Chat)),
            ["a/m", "c/m", "b/m"]
        );
    }

    #[test]
    fn an_alias_expands_to_its_targets_in_order() {
        let speed = Speed::default();
        let snap = snapshot(
            vec![
                model(
                    "a",
                    "big",
                    RoutingMode::Priority,
                    json!({"metadata": {"context_window": 200000}}),
                ),
                model(
                    "b",
                    "small",
                    RoutingMode::Priority,
                    json!({"metadata": {"max_input_tokens": 8000}}),
                ),
                model("c", "small", RoutingMode::Priority, json!({})),
            ],
            vec![AliasRow {
                id: "als_1".into(),
                name: "smart".into(),
                description: None,
                targets: vec![
                    AliasTarget {
                        model: "b/small".into(),
                        overrides: None,
                    },
                    AliasTarget {
                        model: "big".into(),
                        overrides: Some(json!({"reasoning_effort": "high"}).as_object().unwrap().clone()),
                    },
                    AliasTarget {
                        model: "small".into(),
                        overrides: None,
                    },
                ],
                routing: RoutingMode::Priority,
                fallback_on_refusal: false,
                enabled: true,
                created_at: 0,
                updated_at: 0,
            }],
        );
        let routes = resolve(&snap, &speed, "smart", ModelKind::Chat);
        // b/small appears once, where the alias first names it.
        assert_eq!(names(&routes), ["b/small", "a/big", "c/small"]);
        let via = routes[1].via.as_ref().unwrap();
        assert_eq!((via.alias.as_str(), via.target.as_str()), ("smart", "big"));
        assert_eq!(via.overrides.as_ref().unwrap()["reasoning_effort"], "high");
        assert_eq!(context_window(&routes[0].model), Some(8000));
        assert_eq!(context_window(&routes[1].model), Some(200000));
        assert_eq!(context_window(&routes[2].model), None);
        assert!(resolve(&snap, &speed, "smart", ModelKind::Image).is_empty());
        assert!(resolve(&snap, &speed, "small", ModelKind::Chat)[0].via.is_none());
    }
}
