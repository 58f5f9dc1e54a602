//! Anthropic prompt caching, as Anthropic documents it: the prompt is read
//! in order (tools, system, messages); each block marked `cache_control`
//! (and, with a top-level `cache_control`, the last block) ends a cacheable
//! prefix; a prefix shorter than the model's minimum is not cached. A
//! request reads the longest marked prefix already cached, writes the rest
//! up to its last breakpoint (each part for its breakpoint's lifetime), and
//! pays input for what follows the last breakpoint. The mock counts a
//! block's tokens as a quarter of its JSON (without its `cache_control`).

use serde_json::Value;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// The shortest prefix Anthropic caches for Sonnet and Opus models.
pub const MIN_CACHEABLE_TOKENS: u64 = 1024;

/// What one request read from, wrote to and sent past the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    pub read: u64,
    pub write_5m: u64,
    pub write_1h: u64,
    pub uncached: u64,
}

/// The prefixes cached so far, by hash (the model is part of the prefix).
#[derive(Default)]
pub(crate) struct PromptCache {
    prefixes: Mutex<HashSet<u64>>,
}

/// A breakpoint: the prefix's hash, its length in tokens, and whether it is kept an hour.
struct Breakpoint {
    hash: u64,
    tokens: u64,
    one_hour: bool,
}

impl PromptCache {
    /// Serves one Messages request's prompt from the cache, and caches its prefixes.
    pub fn serve(&self, body: &Value) -> CacheUsage {
        let (total, points) = breakpoints(body);
        let mut cached = self.prefixes.lock().unwrap();
        let read = points
            .iter()
            .filter(|p| cached.contains(&p.hash))
            .map(|p| p.tokens)
            .max()
            .unwrap_or(0);
        let mut usage = CacheUsage {
            read,
            ..Default::default()
        };
        let mut written_to = read;
        for p in points.iter().filter(|p| p.tokens > read) {
            let part = p.tokens - written_to.min(p.tokens);
            if p.one_hour {
                usage.write_1h += part;
            } else {
                usage.write_5m += part;
            }
            written_to = written_to.max(p.tokens);
        }
        usage.uncached = total - written_to;
        cached.extend(points.iter().map(|p| p.hash));
        usage
    }
}

/// The prompt's total tokens and its cacheable breakpoints, shortest first.
fn breakpoints(body: &Value) -> (u64, Vec<Breakpoint>) {
    let mut hasher = DefaultHasher::new();
    body["model"].to_string().hash(&mut hasher);
    let blocks = prompt_blocks(body);
    let last = blocks.len().saturating_sub(1);
    let automatic = body.get("cache_control").map(one_hour);
    let mut tokens = 0;
    let mut points = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let mut bare = block.clone();
        let mark = bare.as_object_mut().and_then(|o| o.remove("cache_control"));
        let text = bare.to_string();
        text.hash(&mut hasher);
        tokens += (text.len() as u64).div_ceil(4);
        let one_hour = match (&mark, automatic) {
            (Some(m), _) => Some(one_hour(m)),
            (None, Some(auto)) if i == last => Some(auto),
            _ => None,
        };
        if let Some(one_hour) = one_hour.filter(|_| tokens >= MIN_CACHEABLE_TOKENS) {
            points.push(Breakpoint {
                hash: hasher.finish(),
                tokens,
                one_hour,
            });
        }
    }
    (tokens, points)
}

fn one_hour(cache_control: &Value) -> bool {
    cache_control["ttl"] == "1h"
}

/// The prompt's blocks in cache order: tools, system, then each message's content.
fn prompt_blocks(body: &Value) -> Vec<Value> {
    let list = |v: &Value| match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    let mut blocks = list(&body["tools"]);
    blocks.extend(list(&body["system"]));
    for m in body["messages"].as_array().into_iter().flatten() {
        blocks.extend(list(&m["content"]));
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_then_reads_the_marked_prefix() {
        let long = "x".repeat(8000);
        let body = |question: &str| {
            json!({"model": "m", "system": [{"type": "text", "text": long, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
                   "messages": [{"role": "user", "content": [{"type": "text", "text": question}]}]})
        };
        let cache = PromptCache::default();
        let first = cache.serve(&body("a"));
        assert_eq!((first.read, first.write_5m), (0, 0));
        assert!(first.write_1h >= 2000 && first.uncached > 0, "{first:?}");
        let second = cache.serve(&body("b"));
        assert_eq!(
            (second.read, second.write_1h, second.uncached),
            (first.write_1h, 0, first.uncached)
        );
    }
}
