//! The response cache's in-memory front: each instance keeps the answers it
//! stored or read lately, so a hit is answered without the database.
//! Least recently used answers go first once the memory bound is reached;
//! expired ones are dropped when met.

use crate::store::CachedAnswer;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// The most the front keeps per instance, whatever the cache's cap.
pub const MEMORY_BYTES: usize = 64 * 1024 * 1024;

#[derive(Default)]
pub struct Memory {
    lru: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    /// Key → answer and its last use.
    entries: HashMap<String, (Arc<CachedAnswer>, u64)>,
    /// Last use → key: the least recently used first.
    by_use: BTreeMap<u64, String>,
    uses: u64,
    bytes: usize,
}

impl Memory {
    /// The unexpired answer under `key`, marked used.
    pub fn get(&self, key: &str, now_ms: i64) -> Option<Arc<CachedAnswer>> {
        let mut lru = self.lru.lock().ok()?;
        let (answer, used) = lru.entries.get(key)?.clone();
        if answer.expires_at <= now_ms {
            lru.remove(key);
            return None;
        }
        lru.uses += 1;
        let now = lru.uses;
        lru.by_use.remove(&used);
        lru.by_use.insert(now, key.to_string());
        if let Some(e) = lru.entries.get_mut(key) {
            e.1 = now;
        }
        Some(answer)
    }

    /// Keeps `answer` under `key` (replacing any), then forgets the least
    /// recently used answers until the front holds at most `max_bytes`.
    pub fn put(&self, key: &str, answer: Arc<CachedAnswer>, max_bytes: usize) {
        let Ok(mut lru) = self.lru.lock() else { return };
        lru.remove(key);
        let max_bytes = max_bytes.min(MEMORY_BYTES);
        if answer.body.len() > max_bytes {
            return;
        }
        lru.uses += 1;
        let used = lru.uses;
        lru.bytes += answer.body.len();
        lru.entries.insert(key.to_string(), (answer, used));
        lru.by_use.insert(used, key.to_string());
        while lru.bytes > max_bytes {
            let Some((_, oldest)) = lru.by_use.pop_first() else {
                break;
            };
            lru.remove(&oldest);
        }
    }
}

impl Lru {
    fn remove(&mut self, key: &str) {
        if let Some((answer, used)) = self.entries.remove(key) {
            self.by_use.remove(&used);
            self.bytes -= answer.body.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str, expires_at: i64) -> Arc<CachedAnswer> {
        Arc::new(CachedAnswer {
            stream: false,
            content_type: "application/json".into(),
            body: bytes::Bytes::from(body.to_string()),
            provider_id: "prv".into(),
            model: "m".into(),
            usage: Default::default(),
            created_at: 0,
            expires_at,
        })
    }

    #[test]
    fn the_least_recently_used_goes_first_and_expired_answers_are_gone() {
        let m = Memory::default();
        m.put("a", answer("aaaa", 100), 8);
        m.put("b", answer("bbbb", 100), 8);
        assert!(m.get("a", 0).is_some()); // a is now the more recent
        m.put("c", answer("cccc", 100), 8);
        assert!(m.get("b", 0).is_none());
        assert!(m.get("a", 0).is_some() && m.get("c", 0).is_some());
        assert!(m.get("a", 100).is_none(), "expired at its time");
        m.put("big", answer("123456789", 100), 8);
        assert!(m.get("big", 0).is_none(), "larger than the bound: not kept");
        assert!(m.get("c", 0).is_some());
    }
}
