//! Sell rates against cost rates: which rate is below cost, which is below
//! the margin floor, and the rate that earns a margin. Exact: rates are
//! nano-credits per million, percents decimal strings of up to 9 places.

use crate::metering::money::{Credits, Rate};
use crate::metering::{Rates, Usage};
use crate::store::ModelRow;

/// A sell rate and the cost it is held against, by its API field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priced {
    pub field: &'static str,
    pub sell: Rate,
    pub cost: Rate,
}

/// Every sell rate that has a known cost: input, output and cache rates,
/// and the long-context tier's when the provider charges one (a model
/// without a sell tier sells long prompts at its own rates).
pub fn priced(sell: &Rates, cost: &Rates) -> Vec<Priced> {
    let mut out = Vec::new();
    pairs(&mut out, FLAT, sell, cost);
    if let Some(tier) = cost.long_context {
        // What a prompt above the cost tier's threshold is sold at.
        let long = Usage {
            input_tokens: tier.threshold.saturating_add(1),
            ..Default::default()
        };
        let tier_cost = Rates {
            input: tier.input,
            output: tier.output,
            cache_read: tier.cache_read,
            cache_write: tier.cache_write,
            ..Default::default()
        };
        pairs(&mut out, TIER, &sell.for_usage(&long), &tier_cost);
    }
    out
}

const FLAT: [&str; 4] = ["input_rate", "output_rate", "cache_read_rate", "cache_write_rate"];
const TIER: [&str; 4] = [
    "input_rate_above_200k",
    "output_rate_above_200k",
    "cache_read_rate_above_200k",
    "cache_write_rate_above_200k",
];

/// Input, output and (where a cost is known) cache rates, named by `fields`.
fn pairs(out: &mut Vec<Priced>, fields: [&'static str; 4], sell: &Rates, cost: &Rates) {
    let [input, output, read, write] = fields;
    let mut push = |field, sell, cost| out.push(Priced { field, sell, cost });
    push(input, sell.input, cost.input);
    push(output, sell.output, cost.output);
    if let Some(c) = cost.cache_read {
        push(read, sell.cache_read_rate(), c);
    }
    if let Some(c) = cost.cache_write {
        push(write, sell.cache_write_rate(), c);
    }
}

/// A percent over cost, exact (`"10"`, `"12.5"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percent(Credits);

impl Percent {
    /// A non-negative decimal percent, as the settings keep it.
    pub fn parse(text: &str) -> Option<Percent> {
        Credits::parse(text).ok().filter(|c| !c.is_negative()).map(Percent)
    }

    /// 100 + this percent, in nano-percent.
    fn factor(self) -> i128 {
        100 * 1_000_000_000 + i128::from(self.0.nanos())
    }

    pub fn max(self, other: Percent) -> Percent {
        Percent(self.0.max(other.0))
    }
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The least rate earning `margin` over `cost`: rounded up to the nano-credit.
pub fn at_margin(cost: Rate, margin: Percent) -> Rate {
    let hundred = 100 * 1_000_000_000i128;
    let n = i128::from(cost.nanos()) * margin.factor();
    let nanos = (n + hundred - 1).div_euclid(hundred);
    Rate::from_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
}

impl Priced {
    /// Sold below what it costs.
    pub fn below_cost(&self) -> bool {
        self.sell < self.cost
    }

    /// Sold below cost × (1 + floor).
    pub fn below_floor(&self, floor: Percent) -> bool {
        self.sell < at_margin(self.cost, floor)
    }
}

/// Whether a model sells some rate below its cost.
pub fn below_cost(m: &ModelRow) -> bool {
    m.cost
        .is_some_and(|cost| priced(&m.rates, &cost).iter().any(Priced::below_cost))
}

/// The first rate of `new` below cost × (1 + `floor`) that this change made
/// so (its sell or its cost changed since `old`), and the least it may be.
pub fn floor_violation(old: Option<&ModelRow>, new: &ModelRow, floor: Percent) -> Option<(Priced, Rate)> {
    let cost = new.cost?;
    let before: Vec<Priced> = old
        .and_then(|o| o.cost.map(|c| priced(&o.rates, &c)))
        .unwrap_or_default();
    priced(&new.rates, &cost)
        .into_iter()
        .filter(|p| !before.contains(p))
        .find(|p| p.below_floor(floor))
        .map(|p| (p, at_margin(p.cost, floor)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::LongContext;

    fn rate(s: &str) -> Rate {
        Rate::parse(s).unwrap()
    }

    #[test]
    fn floors_and_margins_are_exact() {
        let ten = Percent::parse("10").unwrap();
        assert_eq!(at_margin(rate("3"), ten), rate("3.3"));
        // 0.000000007 × 1.1 = 0.0000000077: rounded up, never below the margin.
        assert_eq!(at_margin(rate("0.000000007"), ten), rate("0.000000008"));
        let p = Priced {
            field: "input_rate",
            sell: rate("3.299999999"),
            cost: rate("3"),
        };
        assert!(p.below_floor(ten) && !p.below_cost());
        assert!(!Priced { sell: rate("3.3"), ..p }.below_floor(ten));
        assert!(Percent::parse("-1").is_none());
    }

    #[test]
    fn the_tier_is_held_against_its_cost() {
        let cost = Rates {
            input: rate("3"),
            output: rate("15"),
            cache_read: Some(rate("0.3")),
            long_context: Some(LongContext {
                threshold: 200_000,
                input: rate("6"),
                output: rate("22.5"),
                cache_read: None,
                cache_write: None,
            }),
            ..Default::default()
        };
        // Flat sell rates above the flat costs, but long prompts would sell at them too.
        let sell = Rates {
            input: rate("4"),
            output: rate("20"),
            ..Default::default()
        };
        let below: Vec<&str> = priced(&sell, &cost)
            .into_iter()
            .filter(Priced::below_cost)
            .map(|p| p.field)
            .collect();
        assert_eq!(below, ["input_rate_above_200k", "output_rate_above_200k"]);
        // Cache reads sold at the input rate (no cache rate) are above their cost.
        assert!(priced(&sell, &cost)
            .iter()
            .any(|p| p.field == "cache_read_rate" && p.sell == rate("4")));
    }
}
