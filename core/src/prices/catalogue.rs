//! Price catalogues: LiteLLM's `model_prices_and_context_window.json` and
//! OpenRouter's `/api/v1/models`, read into one shape. Prices stay decimal
//! text (USD per token) until they become cost rates, exactly.

use crate::kinds::named;
use crate::metering::money::{Rate, MAX_NANOS};
use crate::metering::{LongContext, Rates, DEFAULT_LONG_CONTEXT_THRESHOLD};
use serde_json::{Map, Value};

named!(
    /// Which catalogue a file or URL holds.
    CatalogueFormat {
        /// LiteLLM's `model_prices_and_context_window.json`.
        Litellm = "litellm",
        /// OpenRouter's `GET /api/v1/models`.
        Openrouter = "openrouter",
    }
);

/// A price in USD per token, as the catalogue wrote it (`"3e-06"`, `"0.000003"`).
pub type UsdPerToken = String;

/// A model's prices in a catalogue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    pub input: Option<UsdPerToken>,
    pub output: Option<UsdPerToken>,
    pub cache_read: Option<UsdPerToken>,
    pub cache_write: Option<UsdPerToken>,
    /// Prompts above this many tokens cost the `tier` prices.
    pub threshold: Option<u64>,
    pub tier: Option<Box<Prices>>,
}

/// One model of a catalogue, under the name a Hub provider of `kind` calls it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The Hub provider kind that serves it (`anthropic`, `openrouter`, …).
    pub kind: String,
    pub model: String,
    pub prices: Prices,
    /// The most prompt tokens it takes.
    pub context_window: Option<i64>,
}

/// Why a catalogue could not be read.
pub type CatalogueError = String;

/// Reads a catalogue of `format` (parsed JSON).
pub fn parse(format: CatalogueFormat, doc: &Value) -> Result<Vec<Entry>, CatalogueError> {
    match format {
        CatalogueFormat::Litellm => litellm(doc),
        CatalogueFormat::Openrouter => openrouter(doc),
    }
}

/// The Hub provider kind of a LiteLLM `litellm_provider`.
fn kind_of_litellm(provider: &str) -> &str {
    match provider {
        "text-completion-openai" => "openai",
        "bedrock_converse" => "bedrock",
        "vertex_ai-language-models" | "gemini" => "gemini",
        other => other,
    }
}

/// A price field's text: JSON numbers through their shortest exact
/// spelling (what the file wrote), strings as they are.
fn price(v: Option<&Value>) -> Option<UsdPerToken> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

fn count(v: Option<&Value>) -> Option<i64> {
    v?.as_i64().filter(|n| *n > 0)
}

/// LiteLLM's tier fields end `_above_{N}k_tokens`: the tier's threshold.
fn litellm_tier(e: &Map<String, Value>) -> Option<(u64, Prices)> {
    let key = e
        .keys()
        .find(|k| k.starts_with("input_cost_per_token_above_") && k.ends_with("k_tokens"))?;
    let n: u64 = key
        .trim_start_matches("input_cost_per_token_above_")
        .trim_end_matches("k_tokens")
        .parse()
        .ok()?;
    let suffix = format!("_above_{n}k_tokens");
    let at = |name: &str| price(e.get(&format!("{name}{suffix}")));
    let tier = Prices {
        input: at("input_cost_per_token"),
        output: at("output_cost_per_token"),
        cache_read: at("cache_read_input_token_cost"),
        cache_write: at("cache_creation_input_token_cost"),
        ..Default::default()
    };
    Some((n * 1000, tier))
}

fn litellm(doc: &Value) -> Result<Vec<Entry>, CatalogueError> {
    let file = doc
        .as_object()
        .ok_or("a LiteLLM price map is a JSON object of models")?;
    let mut out = Vec::new();
    for (key, e) in file {
        let Some(e) = e.as_object() else { continue };
        // Token-priced models only: images, audio and video keep their own rates.
        let mode = e.get("mode").and_then(Value::as_str).unwrap_or("chat");
        if key == "sample_spec" || !matches!(mode, "chat" | "completion" | "responses" | "embedding") {
            continue;
        }
        let provider = e.get("litellm_provider").and_then(Value::as_str).unwrap_or("");
        let model = key.strip_prefix(&format!("{provider}/")).unwrap_or(key).to_string();
        let mut prices = Prices {
            input: price(e.get("input_cost_per_token")),
            output: price(e.get("output_cost_per_token")),
            cache_read: price(e.get("cache_read_input_token_cost")),
            cache_write: price(e.get("cache_creation_input_token_cost")),
            ..Default::default()
        };
        if prices.input.is_none() {
            continue;
        }
        if let Some((threshold, tier)) = litellm_tier(e) {
            prices.threshold = Some(threshold);
            prices.tier = Some(Box::new(tier));
        }
        out.push(Entry {
            kind: kind_of_litellm(provider).to_string(),
            model,
            prices,
            // Not `max_tokens`: LiteLLM's legacy field is often the output limit.
            context_window: count(e.get("max_input_tokens")),
        });
    }
    Ok(out)
}

/// The Hub provider kind serving an OpenRouter id's vendor directly.
fn kind_of_vendor(vendor: &str) -> Option<&'static str> {
    Some(match vendor {
        "openai" => "openai",
        "anthropic" => "anthropic",
        "google" => "gemini",
        "x-ai" => "xai",
        "deepseek" => "deepseek",
        _ => return None,
    })
}

/// OpenRouter lists each model as `vendor/name` with prices in USD per
/// token (strings). Each is an `openrouter` model under its id, and a model
/// of the vendor's own kind under its name (OpenRouter passes the vendor's
/// prices through). OpenRouter states no long-context tiers.
fn openrouter(doc: &Value) -> Result<Vec<Entry>, CatalogueError> {
    let data = doc
        .get("data")
        .and_then(Value::as_array)
        .ok_or("an OpenRouter model list is an object with a `data` array")?;
    let mut out = Vec::new();
    for m in data {
        let Some(id) = m.get("id").and_then(Value::as_str) else {
            continue;
        };
        let p = m.get("pricing");
        let at = |k: &str| price(p.and_then(|p| p.get(k)));
        let prices = Prices {
            input: at("prompt"),
            output: at("completion"),
            cache_read: at("input_cache_read"),
            cache_write: at("input_cache_write"),
            ..Default::default()
        };
        if prices.input.is_none() {
            continue;
        }
        let context_window = count(m.get("context_length"))
            .or_else(|| count(m.get("top_provider").and_then(|t| t.get("context_length"))));
        let entry = |kind: &str, model: &str| Entry {
            kind: kind.to_string(),
            model: model.to_string(),
            prices: prices.clone(),
            context_window,
        };
        out.push(entry("openrouter", id));
        if let Some((kind, name)) = id.split_once('/').and_then(|(v, n)| Some((kind_of_vendor(v)?, n))) {
            out.push(entry(kind, name));
        }
    }
    Ok(out)
}

/// A decimal as digits × 10^-scale.
fn decimal(text: &str) -> Option<(i128, i32)> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    let value: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    Some((value, i32::try_from(frac.len()).ok()?.checked_sub(exponent)?))
}

/// A price in USD per token as a rate in credits per million tokens at
/// `credit_price_usd` USD per credit, rounded half up to the nano-credit.
/// `None` for a negative, malformed or out-of-range price.
pub fn rate_of(usd_per_token: &str, credit_price_usd: &str) -> Option<Rate> {
    let (p, ps) = decimal(usd_per_token)?;
    let (c, cs) = decimal(credit_price_usd)?;
    if c == 0 {
        return None;
    }
    // nanos = p·10^-ps · 10^6 tokens · 10^9 nanos / (c·10^-cs)
    let shift = 15 - ps + cs;
    let pow = |n: i32| 10i128.checked_pow(u32::try_from(n).ok()?);
    let (num, den) = if shift >= 0 {
        (p.checked_mul(pow(shift)?)?, c)
    } else {
        (p, c.checked_mul(pow(-shift)?)?)
    };
    let nanos = (num.checked_mul(2)? + den) / (den * 2);
    (nanos <= i128::from(MAX_NANOS)).then(|| Rate::from_nanos(nanos as i64))
}

impl Prices {
    /// These prices as cost rates (input and output are required; a tier
    /// needs its input price).
    pub fn rates(&self, credit_price_usd: &str) -> Option<Rates> {
        let rate = |p: &Option<UsdPerToken>| p.as_deref().and_then(|p| rate_of(p, credit_price_usd));
        let tier = self.tier.as_deref().and_then(|t| {
            Some(LongContext {
                threshold: self.threshold.unwrap_or(DEFAULT_LONG_CONTEXT_THRESHOLD),
                input: rate(&t.input)?,
                // A tier without an output price keeps the normal one (never free output).
                output: rate(&t.output).or_else(|| rate(&self.output)).unwrap_or(Rate::ZERO),
                cache_read: rate(&t.cache_read),
                cache_write: rate(&t.cache_write),
            })
        });
        Some(Rates {
            input: rate(&self.input)?,
            output: rate(&self.output).unwrap_or(Rate::ZERO),
            cache_read: rate(&self.cache_read),
            cache_write: rate(&self.cache_write),
            long_context: tier,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rate(s: &str) -> Rate {
        Rate::parse(s).unwrap()
    }

    #[test]
    fn prices_become_exact_rates() {
        assert_eq!(rate_of("3e-06", "1"), Some(rate("3")));
        assert_eq!(rate_of("0.000003", "1"), Some(rate("3")));
        assert_eq!(rate_of("3.75e-06", "0.01"), Some(rate("375")));
        // 1 USD per million at 3 USD per credit: 0.333333333 (half up).
        assert_eq!(rate_of("1e-06", "3"), Some(rate("0.333333333")));
        assert_eq!(rate_of("2e-06", "3"), Some(rate("0.666666667")));
        assert_eq!(rate_of("-1", "1"), None);
        assert_eq!(rate_of("free", "1"), None);
        assert_eq!(rate_of("1", "0"), None);
    }

    #[test]
    fn litellm_tiers_and_context_windows_are_read() {
        let doc = json!({
            "sample_spec": {"input_cost_per_token": 0},
            "claude-sonnet-4-5": {
                "litellm_provider": "anthropic", "mode": "chat", "max_input_tokens": 200000,
                "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06,
                "input_cost_per_token_above_200k_tokens": 6e-06, "output_cost_per_token_above_200k_tokens": 2.25e-05,
                "cache_read_input_token_cost_above_200k_tokens": 6e-07,
                "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06
            },
            "gemini/gemini-1.5-pro": {
                "litellm_provider": "gemini", "mode": "chat", "max_input_tokens": 2097152,
                "input_cost_per_token": 1.25e-06, "output_cost_per_token": 5e-06,
                "input_cost_per_token_above_128k_tokens": 2.5e-06, "output_cost_per_token_above_128k_tokens": 1e-05
            },
            "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.04}
        });
        let entries = parse(CatalogueFormat::Litellm, &doc).unwrap();
        assert_eq!(entries.len(), 2);
        let claude = entries.iter().find(|e| e.model == "claude-sonnet-4-5").unwrap();
        assert_eq!(claude.kind, "anthropic");
        assert_eq!(claude.context_window, Some(200_000));
        let rates = claude.prices.rates("1").unwrap();
        assert_eq!(
            (rates.input, rates.output, rates.cache_read),
            (rate("3"), rate("15"), Some(rate("0.3")))
        );
        let tier = rates.long_context.unwrap();
        assert_eq!(
            (tier.threshold, tier.input, tier.output),
            (200_000, rate("6"), rate("22.5"))
        );
        assert_eq!(
            (tier.cache_read, tier.cache_write),
            (Some(rate("0.6")), Some(rate("7.5")))
        );
        let gemini = entries.iter().find(|e| e.kind == "gemini").unwrap();
        assert_eq!(gemini.model, "gemini-1.5-pro");
        assert_eq!(
            gemini.prices.rates("1").unwrap().long_context.unwrap().threshold,
            128_000
        );
    }

    #[test]
    fn openrouter_models_match_openrouter_and_the_vendor() {
        let doc = json!({"data": [{
            "id": "openai/gpt-4o-mini", "context_length": 128000,
            "pricing": {"prompt": "0.00000015", "completion": "0.0000006", "input_cache_read": "0.000000075"}
        }, {"id": "meta/free", "pricing": {}}]});
        let entries = parse(CatalogueFormat::Openrouter, &doc).unwrap();
        let kinds: Vec<(&str, &str)> = entries.iter().map(|e| (e.kind.as_str(), e.model.as_str())).collect();
        assert_eq!(kinds, [("openrouter", "openai/gpt-4o-mini"), ("openai", "gpt-4o-mini")]);
        let rates = entries[0].prices.rates("1").unwrap();
        assert_eq!((rates.input, rates.output), (rate("0.15"), rate("0.6")));
        assert_eq!(entries[0].context_window, Some(128_000));
        assert!(parse(CatalogueFormat::Openrouter, &json!([])).is_err());
    }
}
