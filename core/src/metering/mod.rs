//! Metering: exact money, rates, token usage and the credits a call costs.
//! Owns the arithmetic of billing; knows nothing of storage or HTTP.

pub mod book;
pub mod estimate;
pub mod lease;
pub mod money;

/// Where a call's credit is held until it settles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldIn {
    /// The credit book of the process that owns an embedded database.
    Book,
    /// A hold row of its own in a shared database (`holds.id` is the call id).
    Row,
    /// This instance's lease on the user's balance (`lease::LeaseBook`).
    Lease(lease::LeaseId),
}

use money::{Credits, Rate};
use serde::{Deserialize, Serialize};

/// Token and media counts reported by a provider (or estimated by Hub).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens billed at the input rate (excludes cached tokens).
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    /// Tokens written to the provider's prompt cache (every lifetime).
    pub cache_write_tokens: u64,
    /// Of `cache_write_tokens`, how many were written for an hour (Anthropic's
    /// `ephemeral_1h_input_tokens`), billed at the 1-hour write rate.
    #[serde(default)]
    pub cache_write_1h_tokens: u64,
    /// Of `output_tokens`, how many were reasoning (already included).
    pub reasoning_tokens: u64,
    pub images: u64,
    /// Milliseconds of audio transcribed or translated.
    #[serde(default)]
    pub audio_ms: u64,
    /// Characters of input spoken (text to speech).
    #[serde(default)]
    pub characters: u64,
    /// Seconds of video generated.
    #[serde(default)]
    pub video_seconds: u64,
}

impl Usage {
    /// This usage cut down to `bound`, the most the request could have
    /// produced, and whether anything was cut. A provider reporting more (a
    /// bug, or a hostile endpoint) is billed for the bound, never beyond it:
    /// output up to the output budget, input and cache tokens together up to
    /// the prompt's bound, images up to the number asked for.
    pub fn clamped_to(&self, bound: &Usage) -> (Usage, bool) {
        let output_tokens = self.output_tokens.min(bound.output_tokens);
        let cache_read_tokens = self.cache_read_tokens.min(bound.input_tokens);
        let cache_write_tokens = self.cache_write_tokens.min(bound.input_tokens - cache_read_tokens);
        let input_tokens = self
            .input_tokens
            .min(bound.input_tokens - cache_read_tokens - cache_write_tokens);
        let clamped = Usage {
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            cache_write_1h_tokens: self.cache_write_1h_tokens.min(cache_write_tokens),
            reasoning_tokens: self.reasoning_tokens.min(output_tokens),
            images: self.images.min(bound.images),
            audio_ms: self.audio_ms.min(bound.audio_ms),
            characters: self.characters.min(bound.characters),
            video_seconds: self.video_seconds.min(bound.video_seconds),
        };
        (clamped, clamped != *self)
    }

    /// Every prompt token, cached or not (what OpenAI calls `prompt_tokens`).
    /// Sums saturate: a provider can report any count.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }

    /// Milliseconds as exact decimal seconds (`8.47`), for answers.
    pub fn seconds_text(ms: u64) -> String {
        match ms % 1000 {
            0 => (ms / 1000).to_string(),
            frac => format!("{}.{}", ms / 1000, format!("{frac:03}").trim_end_matches('0')),
        }
    }

    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens().saturating_add(self.output_tokens)
    }
}

/// A model's sell rates, in credits per million tokens (per image for
/// images, per second for video; audio per second or per million characters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    pub input: Rate,
    pub output: Rate,
    /// `None` falls back to the input rate, as AIGNE Hub does.
    pub cache_read: Option<Rate>,
    pub cache_write: Option<Rate>,
    /// Writes kept for an hour; `None` falls back to `cache_write`, then the input rate.
    pub cache_write_1h: Option<Rate>,
    pub image: Rate,
    /// A transcription model's rate per second of audio, a speech model's per
    /// million characters (one model is only ever one of the two).
    pub audio: Rate,
    /// Per second of video generated.
    pub video: Rate,
    /// The rates of prompts above a size (Anthropic's and Gemini's
    /// long-context pricing), if the model has such a tier.
    pub long_context: Option<LongContext>,
}

/// The threshold of a long-context tier when the catalogue states none.
pub const DEFAULT_LONG_CONTEXT_THRESHOLD: u64 = 200_000;

/// A long-context tier: the rates a call is billed at, instead of the
/// model's own, when its prompt (input, cache reads and cache writes
/// together, as Anthropic and Gemini count it) is above `threshold` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongContext {
    pub threshold: u64,
    pub input: Rate,
    pub output: Rate,
    /// `None` falls back to the tier's input rate.
    pub cache_read: Option<Rate>,
    pub cache_write: Option<Rate>,
}

impl Rates {
    /// The rates `usage` is billed at: the long-context tier's when its
    /// prompt crosses the tier's threshold, else these. The result has no
    /// tier of its own: it is what a usage row records.
    ///
    /// In the tier, 1-hour cache writes cost the dearer of the model's 1-hour
    /// write rate and the tier's write rate (catalogues state no tier for them).
    pub fn for_usage(&self, usage: &Usage) -> Rates {
        let flat = Rates {
            long_context: None,
            ..*self
        };
        match self.long_context {
            Some(tier) if usage.prompt_tokens() > tier.threshold => {
                let cache_write = tier.cache_write.unwrap_or(tier.input);
                Rates {
                    input: tier.input,
                    output: tier.output,
                    cache_read: tier.cache_read,
                    cache_write: Some(cache_write),
                    cache_write_1h: Some(self.cache_write_1h_rate().max(cache_write)),
                    ..flat
                }
            }
            _ => flat,
        }
    }

    /// The exact cost of `usage` at these rates, tier aside (a call's usage is
    /// priced at [`Rates::for_usage`]'s): each count times its rate, summed, then rounded once
    /// (half up) to the nano-credit.
    ///
    /// Saturating throughout: a count times a rate always fits i128, but four
    /// such products may not; whatever saturates is far above `Credits::MAX`
    /// and clamps to it.
    pub fn cost(&self, usage: &Usage) -> Credits {
        let per_million = self.token_numerator(usage).saturating_add(self.media_numerator(usage));
        let images = i128::from(usage.images) * i128::from(self.image.nanos());
        Credits::from_nanos_saturating(round_per_million(per_million).saturating_add(images))
    }

    /// Audio and video, over the same denominator as tokens (credits per
    /// million), so a call mixing them is still rounded once: characters at
    /// the per-million rate, audio milliseconds at the per-second rate
    /// (× 1,000), video seconds at the per-second rate (× 1,000,000).
    fn media_numerator(&self, usage: &Usage) -> i128 {
        // A count times a rate fits i128; times a further 10⁶ it may not.
        let audio = i128::from(self.audio.nanos());
        let per_second = |count: u64, rate: i128, scale: i128| (i128::from(count) * rate).saturating_mul(scale);
        per_second(usage.characters, audio, 1)
            .saturating_add(per_second(usage.audio_ms, audio, 1_000))
            .saturating_add(per_second(
                usage.video_seconds,
                i128::from(self.video.nanos()),
                1_000_000,
            ))
    }

    /// The rate cache reads are billed at.
    pub fn cache_read_rate(&self) -> Rate {
        self.cache_read.unwrap_or(self.input)
    }

    /// The rate 5-minute cache writes are billed at.
    pub fn cache_write_rate(&self) -> Rate {
        self.cache_write.unwrap_or(self.input)
    }

    /// The rate 1-hour cache writes are billed at.
    pub fn cache_write_1h_rate(&self) -> Rate {
        self.cache_write_1h.or(self.cache_write).unwrap_or(self.input)
    }

    /// The dearest rate any prompt token can be billed at: a hold prices the
    /// prompt at it, since a provider may report every prompt token as a
    /// cache write.
    pub fn dearest_prompt_rate(&self) -> Rate {
        [
            self.cache_read_rate(),
            self.cache_write_rate(),
            self.cache_write_1h_rate(),
        ]
        .into_iter()
        .fold(self.input, Rate::max)
    }

    /// What prompt caching saved on `usage`: its cached tokens (read and
    /// written) at the input rate, less what they cost. Negative when the
    /// writes cost more than the reads saved.
    pub fn cache_savings(&self, usage: &Usage) -> Credits {
        let cached = Usage {
            cache_read_tokens: usage.cache_read_tokens,
            cache_write_tokens: usage.cache_write_tokens,
            cache_write_1h_tokens: usage.cache_write_1h_tokens,
            ..Default::default()
        };
        let at_input = Usage {
            input_tokens: usage.cache_read_tokens.saturating_add(usage.cache_write_tokens),
            ..Default::default()
        };
        let diff = self.token_numerator(&at_input) - self.token_numerator(&cached);
        Credits::from_nanos_saturating(round_per_million(diff))
    }

    /// Every token count times its rate, summed (credits per million).
    ///
    /// Saturating throughout: a count times a rate always fits i128, but
    /// several such products may not; whatever saturates is far above
    /// `Credits::MAX` and clamps to it.
    fn token_numerator(&self, usage: &Usage) -> i128 {
        let per_million = |tokens: u64, rate: Rate| i128::from(tokens) * i128::from(rate.nanos());
        let write_1h = usage.cache_write_1h_tokens.min(usage.cache_write_tokens);
        per_million(usage.input_tokens, self.input)
            .saturating_add(per_million(usage.output_tokens, self.output))
            .saturating_add(per_million(usage.cache_read_tokens, self.cache_read_rate()))
            .saturating_add(per_million(
                usage.cache_write_tokens - write_1h,
                self.cache_write_rate(),
            ))
            .saturating_add(per_million(write_1h, self.cache_write_1h_rate()))
    }
}

/// Credits per million, rounded once (half up) to the nano-credit.
fn round_per_million(numerator: i128) -> i128 {
    numerator.saturating_add(500_000).div_euclid(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Rate {
        Rate::parse(s).unwrap()
    }

    #[test]
    fn cost_is_exact_and_rounds_once() {
        let rates = Rates {
            input: rate("0.15"),
            output: rate("0.6"),
            cache_read: Some(rate("0.075")),
            cache_write: None,
            cache_write_1h: None,
            image: Rate::ZERO,
            ..Default::default()
        };
        let usage = Usage {
            input_tokens: 1234,
            output_tokens: 567,
            cache_read_tokens: 1000,
            cache_write_tokens: 10,
            ..Default::default()
        };
        // 1234*0.15 + 567*0.6 + 1000*0.075 + 10*0.15 = 185.1 + 340.2 + 75 + 1.5 = 601.8 per million
        assert_eq!(rates.cost(&usage).to_string(), "0.0006018");
        let one = Usage {
            output_tokens: 1,
            ..Default::default()
        };
        // 0.6 / 1e6 = 0.0000006 credits = 600 nanos
        assert_eq!(rates.cost(&one).nanos(), 600);
    }

    #[test]
    fn cache_writes_are_billed_by_lifetime_and_savings_are_exact() {
        let mut rates = Rates {
            input: rate("3"),
            output: rate("15"),
            cache_read: Some(rate("0.3")),
            cache_write: Some(rate("3.75")),
            cache_write_1h: Some(rate("6")),
            image: Rate::ZERO,
            ..Default::default()
        };
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 7,
            cache_read_tokens: 2000,
            cache_write_tokens: 1000,
            cache_write_1h_tokens: 400,
            ..Default::default()
        };
        // 30 + 105 + 600 + 600×3.75 + 400×6 = 5385 per million.
        assert_eq!(rates.cost(&usage).to_string(), "0.005385");
        // 3000×3 = 9000 at the input rate, less 600 + 2250 + 2400.
        assert_eq!(rates.cache_savings(&usage).to_string(), "0.00375");
        assert_eq!(rates.dearest_prompt_rate(), rate("6"));
        // Unset, the 1-hour rate falls back to the 5-minute one, then to the input rate.
        rates.cache_write_1h = None;
        assert_eq!(rates.cache_write_1h_rate(), rate("3.75"));
        rates.cache_write = None;
        assert_eq!(rates.cache_write_1h_rate(), rate("3"));
        // Writes alone cost more than they save.
        let writes = Usage {
            cache_write_tokens: 1000,
            ..Default::default()
        };
        rates.cache_write = Some(rate("3.75"));
        assert_eq!(rates.cache_savings(&writes).to_string(), "-0.00075");
    }

    #[test]
    fn sub_nano_costs_round_half_up() {
        let rates = Rates {
            input: rate("0.0005"),
            ..Default::default()
        };
        // 1 token * 0.0005 credits/M = 0.5 nano -> 1 nano
        assert_eq!(
            rates
                .cost(&Usage {
                    input_tokens: 1,
                    ..Default::default()
                })
                .nanos(),
            1
        );
        let rates = Rates {
            input: rate("0.0004"),
            ..Default::default()
        };
        assert_eq!(
            rates
                .cost(&Usage {
                    input_tokens: 1,
                    ..Default::default()
                })
                .nanos(),
            0
        );
    }

    #[test]
    fn usage_is_clamped_to_what_the_request_could_produce() {
        let bound = Usage {
            input_tokens: 100,
            output_tokens: 5,
            images: 1,
            ..Default::default()
        };
        let honest = Usage {
            input_tokens: 60,
            cache_read_tokens: 30,
            output_tokens: 5,
            reasoning_tokens: 2,
            ..Default::default()
        };
        assert_eq!(honest.clamped_to(&bound), (honest, false));
        let hostile = Usage {
            input_tokens: u64::MAX,
            output_tokens: 1_000_000_000_000,
            cache_read_tokens: 80,
            cache_write_tokens: u64::MAX,
            cache_write_1h_tokens: u64::MAX,
            reasoning_tokens: u64::MAX,
            images: 7,
            audio_ms: u64::MAX,
            characters: 9,
            video_seconds: 3,
        };
        let (cut, clamped) = hostile.clamped_to(&bound);
        assert!(clamped);
        assert_eq!(
            cut,
            Usage {
                input_tokens: 0,
                output_tokens: 5,
                cache_read_tokens: 80,
                cache_write_tokens: 20,
                cache_write_1h_tokens: 20,
                reasoning_tokens: 5,
                images: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn costs_saturate_instead_of_wrapping() {
        let rates = Rates {
            input: Rate::parse("1000000000").unwrap(),
            output: Rate::parse("1000000000").unwrap(),
            cache_read: Some(Rate::parse("1000000000").unwrap()),
            cache_write: Some(Rate::parse("1000000000").unwrap()),
            cache_write_1h: None,
            image: Rate::parse("1000000000").unwrap(),
            audio: Rate::parse("1000000000").unwrap(),
            video: Rate::parse("1000000000").unwrap(),
            long_context: None,
        };
        let usage = Usage {
            input_tokens: u64::MAX,
            output_tokens: u64::MAX,
            cache_read_tokens: u64::MAX,
            cache_write_tokens: u64::MAX,
            cache_write_1h_tokens: u64::MAX,
            reasoning_tokens: u64::MAX,
            images: u64::MAX,
            audio_ms: u64::MAX,
            characters: u64::MAX,
            video_seconds: u64::MAX,
        };
        assert_eq!(rates.cost(&usage), Credits::MAX);
    }

    #[test]
    fn audio_and_video_cost_per_second_and_per_character() {
        let seconds = Rates {
            audio: rate("0.006"),
            video: rate("0.1"),
            ..Default::default()
        };
        // 8.47 s at 0.006 per second = 0.05082; 4 s of video at 0.1 = 0.4.
        let usage = Usage {
            audio_ms: 8_470,
            video_seconds: 4,
            ..Default::default()
        };
        assert_eq!(seconds.cost(&usage).to_string(), "0.45082");
        // 43 characters at 15 per million = 0.000645.
        let chars = Rates {
            audio: rate("15"),
            ..Default::default()
        };
        let spoken = Usage {
            characters: 43,
            ..Default::default()
        };
        assert_eq!(chars.cost(&spoken).to_string(), "0.000645");
        // One millisecond at 0.0000001 per second is 0.1 nano: rounded once, half up, with the rest.
        let tiny = Rates {
            audio: rate("0.0000001"),
            ..Default::default()
        };
        let ms = |audio_ms| Usage {
            audio_ms,
            ..Default::default()
        };
        assert_eq!(tiny.cost(&ms(4)).nanos(), 0);
        assert_eq!(tiny.cost(&ms(5)).nanos(), 1);
    }

    #[test]
    fn a_prompt_above_the_tier_is_billed_at_the_tier_to_the_nano_credit() {
        // Claude Sonnet 4.5's prices as credits per million: 3/15 (cache 0.3 read,
        // 3.75 write), and 6/22.5 (0.6, 7.5) above 200k prompt tokens.
        let rates = Rates {
            input: rate("3"),
            output: rate("15"),
            cache_read: Some(rate("0.3")),
            cache_write: Some(rate("3.75")),
            long_context: Some(LongContext {
                threshold: DEFAULT_LONG_CONTEXT_THRESHOLD,
                input: rate("6"),
                output: rate("22.5"),
                cache_read: Some(rate("0.6")),
                cache_write: Some(rate("7.5")),
            }),
            ..Default::default()
        };
        let long = Usage {
            input_tokens: 250_001,
            cache_read_tokens: 40_000,
            cache_write_tokens: 9_999,
            output_tokens: 1_234,
            ..Default::default()
        };
        assert_eq!(long.prompt_tokens(), 300_000);
        // 250001×6 + 40000×0.6 + 9999×7.5 + 1234×22.5 = 1500006 + 24000 + 74992.5 + 27765 = 1626763.5 per million.
        assert_eq!(rates.for_usage(&long).cost(&long).nanos(), 1_626_763_500);
        assert_eq!(rates.for_usage(&long).cost(&long).to_string(), "1.6267635");
        let billed = rates.for_usage(&long);
        assert_eq!((billed.input, billed.output), (rate("6"), rate("22.5")));
        assert_eq!(billed.long_context, None, "a usage row records flat rates");
        // At the threshold itself the prompt is not above it: the model's own rates.
        let at = Usage {
            input_tokens: 200_000,
            output_tokens: 1,
            ..Default::default()
        };
        assert_eq!(rates.for_usage(&at).cost(&at).nanos(), 600_015_000);
        assert_eq!(rates.for_usage(&at).input, rate("3"));
        // Without cache rates in the tier, cache tokens cost the tier's input rate;
        // 1-hour writes the dearer of the model's 1-hour rate and the tier's write rate.
        let mut bare = rates;
        bare.long_context = Some(LongContext {
            cache_read: None,
            cache_write: None,
            ..rates.long_context.unwrap()
        });
        let tiered = bare.for_usage(&long);
        assert_eq!(tiered.cache_read_rate(), rate("6"));
        assert_eq!(tiered.cache_write_1h_rate(), rate("6"));
    }

    #[test]
    fn images_cost_per_image() {
        let rates = Rates {
            image: rate("0.04"),
            ..Default::default()
        };
        assert_eq!(
            rates
                .cost(&Usage {
                    images: 3,
                    ..Default::default()
                })
                .to_string(),
            "0.12"
        );
    }
}
