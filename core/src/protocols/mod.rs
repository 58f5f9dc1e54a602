//! Inbound wire protocols: parsing and validating what callers send, and
//! rendering what they receive. One module per protocol.

pub mod aigne;
pub mod anthropic;
pub mod openai;

use crate::error::ApiError;

/// The largest output budget (`max_tokens` and its peers) a caller may ask
/// for: far above any model's real limit, and small enough that the worst
/// case of a request (budget × `n` × any rate) is exact when Hub sizes the
/// hold and the key's token and spend limits from it.
pub const MAX_OUTPUT_TOKENS: u64 = u32::MAX as u64;

/// A requested output budget, refused (400 naming `field`) above `MAX_OUTPUT_TOKENS`.
pub(crate) fn output_budget(field: &str, tokens: Option<u64>) -> Result<Option<u64>, ApiError> {
    match tokens {
        Some(t) if t > MAX_OUTPUT_TOKENS => Err(ApiError::invalid_field(
            field,
            format!("must be at most {MAX_OUTPUT_TOKENS}"),
        )),
        other => Ok(other),
    }
}
