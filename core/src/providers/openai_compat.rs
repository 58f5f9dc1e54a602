//! OpenAI-compatible providers (OpenAI, DeepSeek, xAI, OpenRouter, Ollama,
//! Doubao, Poe, custom URLs): building the upstream request and reading the
//! usage they report.

use crate::metering::Usage;
use crate::ports::{Timeouts, UpstreamRequest};
use bytes::Bytes;
use serde::Deserialize;

pub fn chat_request(base_url: &str, secret: Option<&str>, body: Bytes, timeouts: Timeouts) -> UpstreamRequest {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(secret) = secret {
        headers.push(("authorization".to_string(), format!("Bearer {secret}")));
    }
    UpstreamRequest {
        method: http::Method::POST,
        url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
        headers,
        body,
        timeouts,
    }
}

/// OpenAI's `usage` object (also DeepSeek's cache fields).
#[derive(Debug, Default, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek reports cache hits here instead.
    #[serde(default)]
    pub prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl WireUsage {
    /// OpenAI counts cached tokens inside `prompt_tokens`; Hub bills them once,
    /// at the cache-read rate, and the rest at the input rate.
    pub fn to_usage(&self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .or(self.prompt_cache_hit_tokens)
            .unwrap_or(0)
            .min(self.prompt_tokens);
        Usage {
            input_tokens: self.prompt_tokens - cached,
            output_tokens: self.completion_tokens,
            cache_read_tokens: cached,
            cache_write_tokens: 0,
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            images: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_tokens_are_not_billed_twice() {
        let u: WireUsage = serde_json::from_str(
            r#"{"prompt_tokens":100,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":60},"completion_tokens_details":{"reasoning_tokens":5}}"#,
        )
        .unwrap();
        let u = u.to_usage();
        assert_eq!(
            (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens),
            (40, 60, 20, 5)
        );
        let d: WireUsage =
            serde_json::from_str(r#"{"prompt_tokens":10,"completion_tokens":1,"prompt_cache_hit_tokens":4}"#).unwrap();
        assert_eq!(d.to_usage().cache_read_tokens, 4);
    }
}
