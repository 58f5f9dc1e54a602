//! The Hub's side of telemetry: starting a call's trace, taking a finished
//! call into the metrics and the span queue, exporting over OTLP, and the
//! `/metrics` page with the gauges read at scrape time.

use crate::http::Request;
use crate::kinds::CredentialStatus;
use crate::options::Runtime;
use crate::ports::{Timeouts, UpstreamRequest};
use crate::store::CallLog;
use crate::telemetry::metrics::{Exposition, GaugeValue, RuntimeGauges};
use crate::telemetry::proto;
use crate::telemetry::trace::{CallTrace, TraceParent};
use crate::telemetry::Telemetry;
use crate::Hub;
use futures_util::StreamExt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

impl Hub {
    pub(crate) fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    /// Gives `/metrics` the runtime's own figures; set once, at start.
    pub fn set_runtime_gauges(&self, gauges: std::sync::Arc<dyn RuntimeGauges>) {
        let _ = self.inner.runtime_gauges.set(gauges);
    }

    /// The trace of a call starting now, when spans are exported: the
    /// caller's `traceparent` continued (not when it says the caller does
    /// not sample), else a new trace.
    pub(crate) fn start_trace(&self, req: &Request, started_us: u64) -> Option<CallTrace> {
        if !self.inner.traces_on {
            return None;
        }
        let parent = crate::http::header(req.headers(), "traceparent").and_then(TraceParent::parse);
        if parent.is_some_and(|p| !p.sampled) {
            return None;
        }
        let capture = self.options().otlp.content_bytes;
        let mut trace = CallTrace::start(self.rng(), parent, self.now_ms(), started_us, capture).ok()?;
        trace.capture_prompt(req.body());
        Some(trace)
    }

    /// Takes a finished call (its attempts' call-log rows, oldest first) into
    /// the metrics and, when traced, the span queue. Never waits.
    pub(crate) fn call_ended(&self, trace: Option<CallTrace>, logs: &[&CallLog]) {
        let t = self.telemetry();
        t.metrics.observe_call(logs);
        if let Some(trace) = trace {
            let dropped = t.spans.push(trace.spans(logs, self.clock().monotonic_us()));
            if dropped > 0 {
                t.metrics.spans_dropped.fetch_add(dropped as u64, Relaxed);
            }
        }
        // Without a periodic exporter (the Worker, Lambda), the call's
        // figures leave with it, as background work of its request.
        if self.options_runtime() != Runtime::Server && self.inner.exports_on {
            let hub = self.clone();
            self.background()
                .spawn(Box::pin(async move { hub.export_telemetry().await }));
        }
    }

    fn options_runtime(&self) -> Runtime {
        self.inner.runtime
    }

    /// Sends what is queued: spans, and on the Worker and Lambda the metrics.
    /// A failed export is counted and logged; what it carried is dropped.
    pub async fn export_telemetry(&self) {
        let otlp = &self.options().otlp;
        let spans = self.telemetry().spans.take();
        if let (false, Some(url)) = (spans.is_empty(), otlp.traces_url()) {
            self.export(url, proto::trace_request(&otlp.service_name, &spans)).await;
        }
        if self.options_runtime() != Runtime::Server {
            if let Some(url) = otlp.metrics_url() {
                let now_ns = (self.now_ms().max(0) as u64) * 1_000_000;
                let start_ns = self.telemetry().started_ns.load(Relaxed);
                let metrics = self.telemetry().metrics.otlp(start_ns, now_ns, &self.gauges_for_otlp());
                self.export(url, proto::metrics_request(&otlp.service_name, &metrics))
                    .await;
            }
        }
    }

    async fn export(&self, url: String, body: Vec<u8>) {
        let otlp = &self.options().otlp;
        let wait = Duration::from_millis(otlp.timeout_ms);
        let mut headers = vec![("content-type".to_string(), "application/x-protobuf".to_string())];
        headers.extend(otlp.headers.iter().cloned());
        let req = UpstreamRequest {
            method: http::Method::POST,
            url,
            headers,
            body: body.into(),
            timeouts: Timeouts {
                connect: wait,
                first_byte: wait,
                idle: wait,
            },
        };
        let problem = match self.send_upstream(req).await {
            Ok(mut res) => {
                while let Some(Ok(_)) = res.body.next().await {}
                (!(200..300).contains(&res.status)).then(|| format!("the collector answered {}", res.status))
            }
            Err(e) => Some(e.to_string()),
        };
        if let Some(problem) = problem {
            self.telemetry().metrics.exports_failed.fetch_add(1, Relaxed);
            tracing::warn!("OTLP export failed: {problem}");
        }
    }

    /// Whether the request may read `/metrics`: `HUB_METRICS_TOKEN` as its bearer token.
    pub fn metrics_token_ok(&self, req: &Request) -> bool {
        use subtle::ConstantTimeEq;
        match (&self.options().metrics_token, crate::auth::presented_key(req.headers())) {
            (Some(token), Some(given)) => bool::from(token.as_bytes().ct_eq(given.as_bytes())),
            _ => false,
        }
    }

    /// The `/metrics` page: what Hub counts, the gauges read now, the runtime's.
    pub async fn metrics_text(&self) -> String {
        let mut page = Exposition::default();
        self.telemetry().metrics.render(&mut page);
        for g in self.gauges().await {
            page.family(g.name, "gauge", g.help);
            for (labels, v) in &g.points {
                let l: Vec<(&str, String)> = labels.iter().map(|(k, v)| (*k, label_text(v))).collect();
                let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
                page.sample(g.name, &l, *v);
            }
        }
        if let Some(extra) = self.inner.runtime_gauges.get() {
            extra.render(&mut page);
        }
        page.into_string()
    }

    /// Gauges read at the moment: calls in flight, settlements waiting, and
    /// (from the database, once per scrape) credential health.
    async fn gauges(&self) -> Vec<GaugeValue<'static>> {
        let mut out = self.gauges_for_otlp();
        let Ok(creds) = self.store().list_credentials(None).await else {
            return out;
        };
        let snap = self
            .inner
            .snapshot
            .read()
            .ok()
            .and_then(|s| s.as_ref().map(|(s, _)| s.clone()));
        let now = self.now_ms();
        let mut up = Vec::new();
        let mut cooling = Vec::new();
        for c in creds.iter().filter(|c| c.enabled) {
            let provider = snap
                .as_ref()
                .and_then(|s| s.providers.values().find(|p| p.id == c.provider_id))
                .map_or_else(|| c.provider_id.clone(), |p| p.name.clone());
            let labels: Vec<(&str, proto::Value)> =
                vec![("provider", provider.into()), ("credential", c.name.clone().into())];
            let healthy = c.status == CredentialStatus::Active && !self.health().is_disabled(&c.id);
            up.push((labels.clone(), f64::from(u8::from(healthy))));
            cooling.push((labels, f64::from(u8::from(self.health().cooling(&c.id, now)))));
        }
        out.push(GaugeValue {
            name: "hub_credential_up",
            help: "1 while an enabled credential is in rotation, 0 once a provider rejected it (until a re-check or an admin re-enables it).",
            points: up,
        });
        out.push(GaugeValue {
            name: "hub_credential_cooling",
            help: "1 while a credential weighs less after the provider rate-limited it.",
            points: cooling,
        });
        out
    }

    /// The gauges every runtime knows without a database read.
    fn gauges_for_otlp(&self) -> Vec<GaugeValue<'static>> {
        let settler = self.settler();
        let pending = settler.retrying.load(Relaxed) + settler.spilled.load(Relaxed);
        let m = &self.telemetry().metrics;
        vec![
            GaugeValue {
                name: "hub_calls_in_flight",
                help: "Model calls being served (a stream counts until it ends).",
                points: vec![(Vec::new(), self.in_flight().load(Relaxed) as f64)],
            },
            GaugeValue {
                name: "hub_holds_open",
                help: "Credit holds of calls in flight.",
                points: vec![(Vec::new(), m.holds_open.load(Relaxed) as f64)],
            },
            GaugeValue {
                name: "hub_settlements_pending",
                help: "Finished calls' writes not yet committed to the database (the write queue).",
                points: vec![(Vec::new(), pending as f64)],
            },
        ]
    }
}

fn label_text(v: &proto::Value) -> String {
    match v {
        proto::Value::Str(s) => s.clone(),
        proto::Value::Int(i) => i.to_string(),
        proto::Value::Double(d) => d.to_string(),
        proto::Value::Bool(b) => b.to_string(),
        proto::Value::Strs(s) => s.join(","),
    }
}
