//! Hub's metrics: counters and histograms in atomics, one series per label
//! set, labels from closed sets (endpoint, call status, token kind) or from
//! the configuration (models, providers). A call adds to them once, when it
//! ends, from the call-log rows it writes anyway; nothing here waits, and
//! the only lock is a read lock to find a series (a write lock the first
//! time a label set is seen).
//!
//! Two views of the same figures: the Prometheus text format (`/metrics` on
//! `hub serve`) and OTLP metrics (the Worker and Lambda, which have no
//! address to scrape).

use super::proto::{attributes, Msg, Value};
use crate::kinds::{CallStatus, Endpoint};
use crate::store::CallLog;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

/// Figures only the runtime knows (process memory, the database's write
/// queue), added to `/metrics`.
pub trait RuntimeGauges: crate::ports::MaybeSendSync {
    fn render(&self, page: &mut Exposition);
}

/// Upper bounds of the latency buckets, in microseconds (1 ms to 2 minutes).
pub const LATENCY_BUCKETS_US: [u64; 16] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
];

/// Most label sets a family keeps; a call past it is counted under
/// `model="other"` (configuration bounds them long before).
const MAX_SERIES: usize = 4096;

/// A latency histogram (microseconds in, seconds out).
#[derive(Default)]
pub struct Histogram {
    /// Per bucket (not cumulative), the last one for beyond every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe_us(&self, us: u64) {
        let i = LATENCY_BUCKETS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Bucket counts, not cumulative, beyond-every-bound last.
    fn counts(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.load(Relaxed)).collect()
    }

    fn sum_seconds(&self) -> f64 {
        self.sum_us.load(Relaxed) as f64 / 1e6
    }
}

/// The kinds of tokens counted, as the `kind` label says them.
const TOKEN_KINDS: [&str; 4] = ["input", "output", "cache_read", "cache_write"];

/// What one label set of calls added up to.
#[derive(Default)]
pub struct CallSeries {
    pub calls: AtomicU64,
    pub duration: Histogram,
    /// Until the caller got the first byte.
    pub ttfb: Histogram,
    pub tokens: [AtomicU64; 4],
    pub credits_nanos: AtomicI64,
    /// Calls that read the provider's prompt cache.
    pub cache_hits: AtomicU64,
}

/// The labels of a call's series.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CallKey {
    pub endpoint: Endpoint,
    pub model: String,
    pub provider: String,
    pub status: CallStatus,
}

/// Series by label set, found under a read lock.
pub struct Family<K, V> {
    series: RwLock<HashMap<K, Arc<V>>>,
}

impl<K, V> Default for Family<K, V> {
    fn default() -> Self {
        Family {
            series: RwLock::default(),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Default> Family<K, V> {
    /// The series of `key`; `overflow` names where a label set past the
    /// bound goes.
    pub fn get(&self, key: &K, overflow: impl FnOnce() -> K) -> Arc<V> {
        if let Some(s) = self.series.read().ok().and_then(|m| m.get(key).cloned()) {
            return s;
        }
        let Ok(mut map) = self.series.write() else {
            return Arc::new(V::default());
        };
        let key = match map.len() >= MAX_SERIES && !map.contains_key(key) {
            true => overflow(),
            false => key.clone(),
        };
        map.entry(key).or_default().clone()
    }

    /// Every series, in no particular order.
    pub fn all(&self) -> Vec<(K, Arc<V>)> {
        self.series
            .read()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

/// Every figure Hub counts itself (gauges read elsewhere are added when rendering).
#[derive(Default)]
pub struct Metrics {
    pub calls: Family<CallKey, CallSeries>,
    /// Failed attempts another attempt followed, by the provider that failed.
    pub failovers: Family<String, AtomicU64>,
    /// Holds placed and not yet settled or released.
    pub holds_open: AtomicI64,
    /// Settlement commits to the database, and how long each took.
    pub commits: Histogram,
    /// Settlement commits the database refused (each is retried).
    pub commit_failures: AtomicU64,
    /// Finished spans dropped because the export queue was full.
    pub spans_dropped: AtomicU64,
    /// OTLP exports that failed (their spans are lost; calls are not affected).
    pub exports_failed: AtomicU64,
}

impl Metrics {
    /// Adds a finished call: its attempts' call-log rows, oldest first (the
    /// last is how the call ended).
    pub fn observe_call(&self, attempts: &[&CallLog]) {
        let Some((last, failed)) = attempts.split_last() else {
            return;
        };
        for f in failed {
            let provider = f.provider.clone().unwrap_or_default();
            self.failovers
                .get(&provider, || "other".to_string())
                .fetch_add(1, Relaxed);
        }
        let key = CallKey {
            endpoint: last.endpoint,
            model: last.model.clone(),
            provider: last.provider.clone().unwrap_or_default(),
            status: last.status,
        };
        let s = self.calls.get(&key, || CallKey {
            model: "other".into(),
            ..key.clone()
        });
        s.calls.fetch_add(1, Relaxed);
        s.duration.observe_us(last.duration_ms.max(0) as u64 * 1000);
        if let Some(t) = last.ttfb_ms {
            s.ttfb.observe_us(t.max(0) as u64 * 1000);
        }
        let u = &last.usage;
        for (slot, n) in s.tokens.iter().zip([
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
        ]) {
            slot.fetch_add(n, Relaxed);
        }
        s.credits_nanos.fetch_add(last.credits.nanos(), Relaxed);
        if u.cache_read_tokens > 0 {
            s.cache_hits.fetch_add(1, Relaxed);
        }
    }
}

// ---------------------------------------------------------------- Prometheus text

/// The Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes one call series' samples under its labels.
type WriteSeries = dyn Fn(&mut Exposition, &[(&str, &str)], &CallSeries);

/// A page of metrics being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn into_string(self) -> String {
        self.out
    }

    /// Starts a family: its help and type lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(
            self.out,
            "# HELP {name} {}",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// A histogram's buckets, sum and count under `name`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        let counts = h.counts();
        for (i, n) in counts.iter().enumerate() {
            cumulative += n;
            let le = match LATENCY_BUCKETS_US.get(i) {
                Some(us) => number(*us as f64 / 1e6),
                None => "+Inf".to_string(),
            };
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &with_le, cumulative as f64);
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_seconds());
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Metrics {
    /// Writes the figures Hub counts itself.
    pub fn render(&self, page: &mut Exposition) {
        let mut calls = self.calls.all();
        calls.sort_by(|(a, _), (b, _)| {
            (a.endpoint.as_str(), &a.model, &a.provider, a.status.as_str()).cmp(&(
                b.endpoint.as_str(),
                &b.model,
                &b.provider,
                b.status.as_str(),
            ))
        });
        let labels = |k: &CallKey| {
            [
                ("endpoint", k.endpoint.as_str().to_string()),
                ("model", k.model.clone()),
                ("provider", k.provider.clone()),
                ("status", k.status.as_str().to_string()),
            ]
        };
        let each = |page: &mut Exposition, f: &WriteSeries| {
            for (k, s) in &calls {
                let owned = labels(k);
                let l: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
                f(page, &l, s);
            }
        };
        page.family(
            "hub_calls_total",
            "counter",
            "Model calls that ended, by endpoint, model (as the caller named it), provider and status.",
        );
        each(page, &|p, l, s| {
            p.sample("hub_calls_total", l, s.calls.load(Relaxed) as f64)
        });
        page.family(
            "hub_call_duration_seconds",
            "histogram",
            "From the request to the call's end (a stream's last byte).",
        );
        each(page, &|p, l, s| {
            p.histogram("hub_call_duration_seconds", l, &s.duration)
        });
        page.family(
            "hub_time_to_first_byte_seconds",
            "histogram",
            "From the request to the first byte of the answer sent to the caller.",
        );
        each(page, &|p, l, s| {
            if s.ttfb.count() > 0 {
                p.histogram("hub_time_to_first_byte_seconds", l, &s.ttfb)
            }
        });
        page.family("hub_tokens_total", "counter", "Tokens billed, by kind.");
        each(page, &|p, l, s| {
            for (kind, n) in TOKEN_KINDS.iter().zip(&s.tokens) {
                let mut with_kind = l.to_vec();
                with_kind.push(("kind", *kind));
                p.sample("hub_tokens_total", &with_kind, n.load(Relaxed) as f64);
            }
        });
        page.family(
            "hub_credits_total",
            "counter",
            "Credits the calls cost, at their sell rates.",
        );
        each(page, &|p, l, s| {
            p.sample("hub_credits_total", l, s.credits_nanos.load(Relaxed) as f64 / 1e9)
        });
        page.family(
            "hub_cache_hits_total",
            "counter",
            "Calls that read from the provider's prompt cache.",
        );
        each(page, &|p, l, s| {
            p.sample("hub_cache_hits_total", l, s.cache_hits.load(Relaxed) as f64)
        });
        page.family(
            "hub_failovers_total",
            "counter",
            "Failed attempts that Hub followed with another attempt, by the provider that failed.",
        );
        let mut failovers = self.failovers.all();
        failovers.sort_by(|a, b| a.0.cmp(&b.0));
        for (provider, n) in failovers {
            page.sample(
                "hub_failovers_total",
                &[("provider", &provider)],
                n.load(Relaxed) as f64,
            );
        }
        page.family(
            "hub_db_commit_duration_seconds",
            "histogram",
            "Settlement commits to the database (usage, ledger, hold, call log).",
        );
        page.histogram("hub_db_commit_duration_seconds", &[], &self.commits);
        page.family(
            "hub_db_commit_failures_total",
            "counter",
            "Settlement commits the database refused; each is retried until it succeeds.",
        );
        page.sample(
            "hub_db_commit_failures_total",
            &[],
            self.commit_failures.load(Relaxed) as f64,
        );
        page.family(
            "hub_trace_spans_dropped_total",
            "counter",
            "Finished spans dropped because the export queue was full.",
        );
        page.sample(
            "hub_trace_spans_dropped_total",
            &[],
            self.spans_dropped.load(Relaxed) as f64,
        );
        page.family("hub_otlp_export_failures_total", "counter", "OTLP exports that failed.");
        page.sample(
            "hub_otlp_export_failures_total",
            &[],
            self.exports_failed.load(Relaxed) as f64,
        );
    }
}

// ---------------------------------------------------------------- OTLP

/// A gauge read when exporting (in flight, settlements pending, ...).
pub struct GaugeValue<'a> {
    pub name: &'a str,
    pub help: &'a str,
    pub points: Vec<(Vec<(&'a str, Value)>, f64)>,
}

impl Metrics {
    /// The same figures as OTLP `metrics.v1.Metric`s: cumulative since
    /// `start_ns` (when this instance started counting), at `now_ns`.
    pub fn otlp(&self, start_ns: u64, now_ns: u64, gauges: &[GaugeValue]) -> Vec<Msg> {
        let calls = self.calls.all();
        let attrs = |k: &CallKey| -> Vec<(&'static str, Value)> {
            vec![
                ("endpoint", k.endpoint.as_str().into()),
                ("model", k.model.clone().into()),
                ("provider", k.provider.clone().into()),
                ("status", k.status.as_str().into()),
            ]
        };
        let sum = |name: &str, help: &str, unit: &str, points: Vec<(Vec<(&str, Value)>, f64)>| {
            let mut data = Msg::new();
            for (a, v) in &points {
                data.msg(1, &number_point(a, start_ns, now_ns, *v));
            }
            data.uint(2, 2).bool(3, true);
            let mut m = Msg::new();
            m.str(1, name).str(2, help).str(3, unit).msg(7, &data);
            m
        };
        let hist = |name: &str, help: &str, points: Vec<(Vec<(&str, Value)>, &Histogram)>| {
            let mut data = Msg::new();
            for (a, h) in &points {
                data.msg(1, &histogram_point(a, start_ns, now_ns, h));
            }
            data.uint(2, 2);
            let mut m = Msg::new();
            m.str(1, name).str(2, help).str(3, "s").msg(9, &data);
            m
        };
        let mut out = vec![
            sum(
                "hub.calls",
                "Model calls that ended.",
                "{call}",
                calls
                    .iter()
                    .map(|(k, s)| (attrs(k), s.calls.load(Relaxed) as f64))
                    .collect(),
            ),
            hist(
                "hub.call.duration",
                "From the request to the call's end.",
                calls.iter().map(|(k, s)| (attrs(k), &s.duration)).collect(),
            ),
            hist(
                "hub.time_to_first_byte",
                "From the request to the first byte sent to the caller.",
                calls
                    .iter()
                    .filter(|(_, s)| s.ttfb.count() > 0)
                    .map(|(k, s)| (attrs(k), &s.ttfb))
                    .collect(),
            ),
            sum(
                "hub.tokens",
                "Tokens billed, by kind.",
                "{token}",
                calls
                    .iter()
                    .flat_map(|(k, s)| {
                        TOKEN_KINDS.iter().zip(&s.tokens).map(move |(kind, n)| {
                            let mut a = attrs(k);
                            a.push(("kind", (*kind).into()));
                            (a, n.load(Relaxed) as f64)
                        })
                    })
                    .collect(),
            ),
            sum(
                "hub.credits",
                "Credits the calls cost.",
                "{credit}",
                calls
                    .iter()
                    .map(|(k, s)| (attrs(k), s.credits_nanos.load(Relaxed) as f64 / 1e9))
                    .collect(),
            ),
            sum(
                "hub.cache_hits",
                "Calls that read the provider's prompt cache.",
                "{call}",
                calls
                    .iter()
                    .map(|(k, s)| (attrs(k), s.cache_hits.load(Relaxed) as f64))
                    .collect(),
            ),
            sum(
                "hub.failovers",
                "Failed attempts followed by another.",
                "{attempt}",
                self.failovers
                    .all()
                    .into_iter()
                    .map(|(p, n)| (vec![("provider", p.into())], n.load(Relaxed) as f64))
                    .collect(),
            ),
            hist(
                "hub.db.commit.duration",
                "Settlement commits to the database.",
                vec![(Vec::new(), &self.commits)],
            ),
        ];
        for g in gauges {
            let mut data = Msg::new();
            for (a, v) in &g.points {
                data.msg(1, &number_point(a, start_ns, now_ns, *v));
            }
            let mut m = Msg::new();
            m.str(1, &g.name.replacen("hub_", "hub.", 1))
                .str(2, g.help)
                .msg(5, &data);
            out.push(m);
        }
        out
    }
}

fn number_point(attrs: &[(&str, Value)], start_ns: u64, now_ns: u64, v: f64) -> Msg {
    let mut p = Msg::new();
    attributes(&mut p, 7, attrs);
    p.fixed64(2, start_ns).fixed64(3, now_ns).double(4, v);
    p
}

fn histogram_point(attrs: &[(&str, Value)], start_ns: u64, now_ns: u64, h: &Histogram) -> Msg {
    let counts = h.counts();
    let mut p = Msg::new();
    attributes(&mut p, 9, attrs);
    p.fixed64(2, start_ns)
        .fixed64(3, now_ns)
        .fixed64(4, counts.iter().sum())
        .double(5, h.sum_seconds())
        .packed_fixed64(6, counts.into_iter())
        .packed_double(7, LATENCY_BUCKETS_US.iter().map(|us| *us as f64 / 1e6));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_put_each_latency_in_its_bucket() {
        let h = Histogram::default();
        h.observe_us(300);
        h.observe_us(1_000);
        h.observe_us(1_001);
        h.observe_us(1_000_000_000);
        let c = h.counts();
        assert_eq!((c[0], c[1], c[LATENCY_BUCKETS_US.len()]), (2, 1, 1));
        let mut page = Exposition::default();
        page.histogram("x", &[("a", "q\"b")], &h);
        let text = page.into_string();
        assert!(text.contains("x_bucket{a=\"q\\\"b\",le=\"0.001\"} 2\n"), "{text}");
        assert!(text.contains("x_bucket{a=\"q\\\"b\",le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("x_count{a=\"q\\\"b\"} 4\n"), "{text}");
    }
}
