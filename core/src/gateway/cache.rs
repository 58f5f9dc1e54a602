//! The response cache: an identical request is answered with the answer a
//! provider gave before, without asking a provider.
//!
//! Identical means the same inbound protocol, the same normalized body
//! (every field, keys in any order: model, messages, tools, every sampling
//! parameter, `stream` and its options), the same `anthropic-beta` header
//! and, unless the operator shares the cache, the same user; through an
//! alias, also the alias's targets as they stand (an edit of its targets or
//! their parameter overrides starts afresh). The answer is
//! kept as the caller received it — the JSON body, or the server-sent events
//! of a stream, in the caller's protocol — and replayed as it is: a stream
//! as a stream. Only complete answers are kept; errors, failed or abandoned
//! streams never are. Concurrent identical misses are not coalesced: each
//! is sent to a provider, and the last to finish is the one kept.

use crate::auth::Caller;
use crate::codec::Billed;
use crate::config::{ResponseCacheSettings, Route, MAX_CACHE_TTL_SECONDS};
use crate::error::ApiError;
use crate::http::{Body, Request, Response};
use crate::kinds::Endpoint;
use crate::metering::money::Credits;
use crate::store::{AliasRow, CachedAnswer};
use crate::Hub;
use bytes::{Bytes, BytesMut};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The request header that asks for (`on`), skips (`off`) or renews
/// (`refresh`) the cache; the response header that says `hit` or `miss`.
pub(crate) const CACHE_HEADER: &str = "x-hub-cache";
/// The request header that sets, in seconds, how long this answer is kept.
pub(crate) const TTL_HEADER: &str = "x-hub-cache-ttl";

/// The largest answer kept (a D1 row holds at most 2 MB).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

const MIB: usize = 1024 * 1024;

/// Whether a request reads the cache before asking a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Use,
    /// Asks a provider whatever is stored, and stores its answer.
    Refresh,
}

/// A request the cache answers or keeps the answer of.
#[derive(Debug, Clone)]
pub(crate) struct Lookup {
    key: String,
    ask: Ask,
    ttl_ms: i64,
    stream: bool,
    max_bytes: usize,
}

/// What a hit costs: a share of what its usage costs at the route's rates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HitCost {
    pub original: Credits,
    pub charge: Credits,
}

impl HitCost {
    /// `fraction` (0 to 1) of `original`, rounded down to the nano-credit.
    pub fn new(original: Credits, fraction: Credits) -> HitCost {
        let charge = original.nanos() as i128 * fraction.nanos() as i128 / 1_000_000_000;
        HitCost {
            original,
            charge: Credits::from_nanos_saturating(charge),
        }
    }

    pub fn saved(&self) -> Credits {
        self.original.saturating_sub(self.charge)
    }
}

impl Lookup {
    /// How the cache takes a request, or None when it does not: the cache
    /// is off, the key or the request turned it off, or the request is one
    /// never cached (`store: true`, or not deterministic when the operator
    /// caches only those). A malformed cache header is a 400.
    pub(crate) fn plan(
        settings: &ResponseCacheSettings,
        caller: &Caller,
        req: &Request,
        call: Called<'_>,
    ) -> Result<Option<Lookup>, ApiError> {
        if !settings.enabled {
            return Ok(None);
        }
        let headers = req.headers();
        let ask = match crate::http::header(headers, CACHE_HEADER).map(str::trim) {
            None if caller.response_cache => Ask::Use,
            None => return Ok(None),
            Some(v) if v.eq_ignore_ascii_case("on") => Ask::Use,
            Some(v) if v.eq_ignore_ascii_case("refresh") => Ask::Refresh,
            Some(v) if v.eq_ignore_ascii_case("off") => return Ok(None),
            Some(_) => return Err(ApiError::bad_request("`x-hub-cache` must be `on`, `off` or `refresh`.")),
        };
        let ttl_seconds = match crate::http::header(headers, TTL_HEADER) {
            None => settings.ttl_seconds,
            Some(v) => v
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|s| (1..=MAX_CACHE_TTL_SECONDS).contains(s))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`x-hub-cache-ttl` must be a whole number of seconds from 1 to {MAX_CACHE_TTL_SECONDS}."
                    ))
                })?,
        };
        let Ok(body) = serde_json::from_slice::<Value>(req.body()) else {
            return Ok(None);
        };
        if !cacheable(&body, settings) {
            return Ok(None);
        }
        let scope = if settings.shared { "" } else { caller.user_id.as_str() };
        let beta = crate::http::header(headers, "anthropic-beta").unwrap_or("");
        Ok(Some(Lookup {
            key: key(call.endpoint, scope, beta, call.alias, &body),
            ask,
            ttl_ms: ttl_seconds * 1000,
            stream: call.stream,
            max_bytes: usize::try_from(settings.max_mb)
                .unwrap_or(usize::MAX)
                .saturating_mul(MIB),
        }))
    }

    /// The stored answer to this request, and the route that gave it, if
    /// the caller may still use that route. A cache that cannot be read is
    /// a miss, never a failed call.
    pub(crate) async fn find(&self, hub: &Hub, routes: &[Route]) -> Option<(Arc<CachedAnswer>, Route)> {
        if self.ask == Ask::Refresh {
            return None;
        }
        let now = hub.now_ms();
        let answer = match hub.response_cache().get(&self.key, now) {
            Some(a) => a,
            None => {
                let stored = hub
                    .store()
                    .cached_answer(&self.key, now)
                    .await
                    .inspect_err(|e| tracing::warn!("the response cache could not be read: {e}"))
                    .ok()??;
                let stored = Arc::new(stored);
                hub.response_cache().put(&self.key, stored.clone(), self.max_bytes);
                stored
            }
        };
        let route = routes
            .iter()
            .find(|r| r.provider.id == answer.provider_id && r.model.model == answer.model)?;
        Some((answer, route.clone()))
    }

    /// What records an attempt's answer for the cache.
    pub(crate) fn recorder(&self) -> Recorder {
        Recorder {
            key: self.key.clone(),
            ttl_ms: self.ttl_ms,
            stream: self.stream,
            max_bytes: self.max_bytes,
            buf: Some(BytesMut::new()),
        }
    }
}

/// Whether a request may be cached at all.
fn cacheable(body: &Value, settings: &ResponseCacheSettings) -> bool {
    // A stored response (Responses-style state) is the provider's to keep, per call.
    if body.get("store").and_then(Value::as_bool) == Some(true) {
        return false;
    }
    if settings.deterministic_only {
        let temperature_zero = body.get("temperature").and_then(Value::as_f64) == Some(0.0);
        let one_answer = body.get("n").and_then(Value::as_u64).unwrap_or(1) <= 1;
        return temperature_zero && one_answer;
    }
    true
}

/// What a call asks for, as far as the cache's key goes.
#[derive(Clone, Copy)]
pub(crate) struct Called<'a> {
    pub endpoint: Endpoint,
    pub stream: bool,
    /// The alias the caller named, if any: its targets decide what is sent.
    pub alias: Option<&'a AliasRow>,
}

/// The request's key: a SHA-256 of everything that makes it identical.
fn key(endpoint: Endpoint, scope: &str, beta: &str, alias: Option<&AliasRow>, body: &Value) -> String {
    let mut text = Vec::with_capacity(1024);
    for part in [endpoint.as_str(), scope, beta] {
        text.extend_from_slice(part.as_bytes());
        text.push(0);
    }
    if let Some(alias) = alias {
        // Each target with the parameters it overrides, in the alias's order:
        // an answer given under other overrides is not this request's.
        canonical(&serde_json::to_value(&alias.targets).unwrap_or_default(), &mut text);
        text.push(0);
    }
    canonical(body, &mut text);
    let digest = Sha256::digest(&text);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with every object's keys in order: the same request written with
/// its fields in another order, or other spacing, is the same text.
fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
                out.push(b':');
                canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// An attempt's answer as the caller receives it, kept if it completes.
pub(crate) struct Recorder {
    key: String,
    ttl_ms: i64,
    stream: bool,
    max_bytes: usize,
    /// None once the answer outgrew what is kept.
    buf: Option<BytesMut>,
}

impl Recorder {
    /// Output the caller received.
    pub fn push(&mut self, bytes: &[u8]) {
        let Some(buf) = self.buf.as_mut() else { return };
        if buf.len() + bytes.len() > MAX_ANSWER_BYTES.min(self.max_bytes) {
            self.buf = None;
        } else {
            buf.extend_from_slice(bytes);
        }
    }

    /// Keeps a complete answer: in this instance's memory at once, in the
    /// database in the background.
    pub fn keep(mut self, hub: &Hub, route: &Route, billed: &Billed, content_type: &str) {
        // A hit's usage is the usage billed (cut to the request's bound).
        let Some(body) = self.buf.take().map(BytesMut::freeze) else {
            return;
        };
        if body.is_empty() {
            return;
        }
        let now = hub.now_ms();
        let answer = Arc::new(CachedAnswer {
            stream: self.stream,
            content_type: content_type.to_string(),
            body,
            provider_id: route.provider.id.clone(),
            model: route.model.model.clone(),
            usage: billed.usage,
            created_at: now,
            expires_at: now + self.ttl_ms,
        });
        hub.response_cache().put(&self.key, answer.clone(), self.max_bytes);
        let store = hub.store().clone();
        let key = self.key;
        hub.background().spawn(Box::pin(async move {
            if let Err(e) = store.put_cached_answer(&key, &answer).await {
                tracing::warn!("an answer could not be stored in the response cache: {e}");
            }
        }));
    }
}

/// A stored answer as the caller gets it: the same body, a stream event by event.
pub(crate) fn replay(answer: &CachedAnswer) -> Response {
    let content_type = http::HeaderValue::from_str(&answer.content_type)
        .unwrap_or_else(|_| http::HeaderValue::from_static("application/json"));
    let mut res = if answer.stream {
        let events = events(&answer.body).into_iter().map(Ok);
        let mut res = http::Response::new(Body::Stream(Box::pin(futures_util::stream::iter(events))));
        let h = res.headers_mut();
        h.insert("cache-control", http::HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
        res
    } else {
        http::Response::new(Body::Full(answer.body.clone()))
    };
    res.headers_mut().insert("content-type", content_type);
    res
}

/// Server-sent events, one slice each (a blank line ends an event).
fn events(body: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < body.len() {
        if body[i] == b'\n' && body[i + 1] == b'\n' {
            out.push(body.slice(start..i + 2));
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    if start < body.len() {
        out.push(body.slice(start..));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_order_and_spacing_do_not_change_the_key_but_any_value_does() {
        let a = json!({"model": "m", "temperature": 0.2, "messages": [{"role": "user", "content": "hi"}]});
        let b: Value = serde_json::from_str(
            r#"{ "messages": [{"content": "hi", "role": "user"}], "temperature": 0.2, "model": "m" }"#,
        )
        .unwrap();
        let k = |v: &Value, scope: &str| key(Endpoint::Chat, scope, "", None, v);
        assert_eq!(k(&a, "usr_1"), k(&b, "usr_1"));
        assert_ne!(k(&a, "usr_1"), k(&a, "usr_2"), "another user");
        assert_ne!(
            k(&a, "usr_1"),
            key(Endpoint::Messages, "usr_1", "", None, &a),
            "another protocol"
        );
        let mut c = a.clone();
        c["temperature"] = json!(0.3);
        assert_ne!(k(&a, "usr_1"), k(&c, "usr_1"));
        c = a.clone();
        c["tools"] = json!([]);
        assert_ne!(k(&a, "usr_1"), k(&c, "usr_1"));
    }

    #[test]
    fn an_aliases_targets_and_overrides_are_part_of_the_key() {
        let body = json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]});
        let alias = |overrides: Value| AliasRow {
            id: "als_1".into(),
            name: "smart".into(),
            description: None,
            targets: vec![crate::store::AliasTarget {
                model: "m".into(),
                overrides: overrides.as_object().cloned(),
            }],
            routing: crate::kinds::RoutingMode::Priority,
            fallback_on_refusal: false,
            enabled: true,
            created_at: 0,
            updated_at: 0,
        };
        let k = |a: &AliasRow| key(Endpoint::Chat, "usr_1", "", Some(a), &body);
        let cold = alias(json!({"temperature": 0}));
        assert_eq!(k(&cold), k(&alias(json!({"temperature": 0}))));
        assert_ne!(k(&cold), k(&alias(json!({"temperature": 1}))), "other overrides");
        assert_ne!(k(&cold), k(&alias(Value::Null)), "no overrides");
        assert_ne!(
            k(&cold),
            key(Endpoint::Chat, "usr_1", "", None, &body),
            "a model of that name"
        );
    }

    #[test]
    fn stored_and_sampled_requests_are_not_cached_when_excluded() {
        let on = ResponseCacheSettings {
            enabled: true,
            ..Default::default()
        };
        let strict = ResponseCacheSettings {
            deterministic_only: true,
            ..on.clone()
        };
        assert!(cacheable(&json!({"model": "m"}), &on));
        assert!(!cacheable(&json!({"model": "m", "store": true}), &on));
        assert!(!cacheable(&json!({"model": "m"}), &strict));
        assert!(cacheable(&json!({"model": "m", "temperature": 0}), &strict));
        assert!(!cacheable(&json!({"model": "m", "temperature": 0, "n": 2}), &strict));
    }

    #[test]
    fn a_hit_costs_its_fraction_rounded_down() {
        let c = HitCost::new(Credits::from_nanos(1_000_000_001), Credits::parse("0.5").unwrap());
        assert_eq!(c.charge, Credits::from_nanos(500_000_000));
        assert_eq!(c.saved(), Credits::from_nanos(500_000_001));
        assert_eq!(
            HitCost::new(Credits::from_nanos(7), Credits::ZERO).charge,
            Credits::ZERO
        );
    }

    #[test]
    fn a_stream_replays_event_by_event() {
        let body = Bytes::from_static(b"data: a\n\ndata: b\n\ndata: [DONE]\n\n");
        let ev = events(&body);
        assert_eq!(ev.len(), 3);
        assert_eq!(&ev[2][..], b"data: [DONE]\n\n");
    }
}
