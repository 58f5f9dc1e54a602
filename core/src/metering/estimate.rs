//! Token estimates. Two different questions get two different answers:
//!
//! * how much to hold before a call: an upper bound, so a call that settles
//!   within its hold can never take a balance below zero (every tokenizer Hub
//!   fronts spends at least one byte of text per token);
//! * how much to bill when a provider's count never arrives (the client left):
//!   a best guess, about four bytes of text per token, flagged `estimated`.

/// Tokens a chat template adds per message and per reply, generously.
const PER_MESSAGE_OVERHEAD: u64 = 8;
const PER_REPLY_OVERHEAD: u64 = 8;
/// What one image in a prompt may cost at most, in tokens.
const PER_IMAGE_BOUND: u64 = 2_000;
/// What one image may be billed at most, however large (Gemini tiles a large
/// image into 258-token crops; a 4096-pixel square is about 7,000 tokens).
const PER_IMAGE_CEILING: u64 = 20_000;
/// Prompt text providers add themselves (Anthropic's tool-use system prompt
/// is about 350 tokens).
const HIDDEN_PROMPT_CEILING: u64 = 4_096;

/// The output tokens one answer may be billed for when neither the caller nor
/// Hub sent a budget and the model has no configured `max_output_tokens`: the
/// provider's own limit applies then, and no model's is near this.
pub const UNSENT_OUTPUT_BOUND: u64 = 1_000_000;

/// Counts over a chat request's prompt, gathered once while parsing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromptSize {
    /// UTF-8 bytes of every text the model reads (messages, tool definitions).
    pub text_bytes: u64,
    pub messages: u64,
    pub images: u64,
}

impl PromptSize {
    /// An upper bound on the prompt's input tokens.
    pub fn input_token_bound(&self) -> u64 {
        self.text_bytes + self.messages * PER_MESSAGE_OVERHEAD + PER_REPLY_OVERHEAD + self.images * PER_IMAGE_BOUND
    }

    /// The most input tokens a provider may bill this prompt for before Hub
    /// cuts its report down (see `Usage::clamped_to`). Looser than the hold's
    /// bound, which sizes a reservation: providers add prompts of their own
    /// (tool-use instructions, a few hundred tokens) and tile large images
    /// into thousands of tokens, and an honest count must never be cut.
    ///
    /// `body_bytes` is the size of the whole request: at least one byte per
    /// token of anything the provider reads, whether or not Hub measured it.
    pub fn input_token_ceiling(&self, body_bytes: u64) -> u64 {
        self.text_bytes
            .max(body_bytes)
            .saturating_add(self.messages.saturating_mul(PER_MESSAGE_OVERHEAD))
            .saturating_add(PER_REPLY_OVERHEAD)
            .saturating_add(self.images.saturating_mul(PER_IMAGE_CEILING))
            .saturating_add(HIDDEN_PROMPT_CEILING)
    }

    /// A best guess at the prompt's input tokens.
    pub fn input_token_guess(&self) -> u64 {
        tokens_in_text(self.text_bytes) + self.messages * 4 + 3 + self.images * 765
    }
}

/// A best guess at the tokens in `bytes` bytes of generated text.
pub fn tokens_in_text(bytes: u64) -> u64 {
    bytes.div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_exceeds_guess() {
        let p = PromptSize {
            text_bytes: 4000,
            messages: 3,
            images: 1,
        };
        assert!(p.input_token_bound() > p.input_token_guess());
        assert_eq!(p.input_token_bound(), 4000 + 24 + 8 + 2000);
        assert_eq!(tokens_in_text(9), 3);
        assert_eq!(tokens_in_text(0), 0);
    }
}
