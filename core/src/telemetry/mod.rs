//! Telemetry: metrics (Prometheus text on `hub serve`, OTLP on the Worker and
//! Lambda) and traces (OTLP/HTTP protobuf), from one place in the call path:
//! a call's end, with the call-log rows it writes anyway. See
//! docs/operations.md for the figures and their configuration.

pub mod metrics;
pub mod proto;
pub mod trace;

use metrics::Metrics;
use trace::SpanQueue;

/// Where and how OTLP exports go: the standard `OTEL_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtlpOptions {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the base URL (`/v1/traces`, `/v1/metrics` appended).
    pub endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the traces URL, used as is.
    pub traces_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`: the metrics URL, used as is.
    pub metrics_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_HEADERS`: sent with every export (an API key, say).
    pub headers: Vec<(String, String)>,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, in milliseconds.
    pub timeout_ms: u64,
    /// `OTEL_SERVICE_NAME`.
    pub service_name: String,
    /// `OTEL_BSP_SCHEDULE_DELAY`: how often `hub serve` exports, in milliseconds.
    pub schedule_delay_ms: u64,
    /// `OTEL_SDK_DISABLED=true`: nothing is exported.
    pub disabled: bool,
    /// `HUB_TRACE_CONTENT`: the most bytes of a prompt and of an answer
    /// recorded on a call's span (0, the default: none).
    pub content_bytes: usize,
}

impl OtlpOptions {
    pub fn new() -> OtlpOptions {
        OtlpOptions {
            timeout_ms: 10_000,
            service_name: "hub".into(),
            schedule_delay_ms: 5_000,
            ..Default::default()
        }
    }

    fn url(&self, specific: &Option<String>, path: &str) -> Option<String> {
        if self.disabled {
            return None;
        }
        specific.clone().or_else(|| {
            self.endpoint
                .as_ref()
                .map(|e| format!("{}/{path}", e.trim_end_matches('/')))
        })
    }

    /// Where spans go, if anywhere (tracing is on when this is set).
    pub fn traces_url(&self) -> Option<String> {
        self.url(&self.traces_endpoint, "v1/traces")
    }

    /// Where metrics go, if anywhere.
    pub fn metrics_url(&self) -> Option<String> {
        self.url(&self.metrics_endpoint, "v1/metrics")
    }
}

/// Reads `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs, comma-separated,
/// values percent-encoded.
pub fn parse_headers(v: &str) -> Result<Vec<(String, String)>, String> {
    v.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').ok_or("must be key=value pairs, comma-separated")?;
            let k = k.trim();
            let v = url::form_urlencoded::parse(format!("v={}", v.trim().replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            if k.is_empty() || http::HeaderName::try_from(k).is_err() || http::HeaderValue::try_from(&v).is_err() {
                return Err(format!("`{k}` is not a header Hub can send"));
            }
            Ok((k.to_string(), v))
        })
        .collect()
}

/// An OTLP URL from a variable: http or https.
pub fn parse_url(v: &str) -> Result<String, String> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(v.to_string()),
        _ => Err("must be an http:// or https:// URL".into()),
    }
}

/// This instance's telemetry state.
#[derive(Default)]
pub struct Telemetry {
    pub metrics: Metrics,
    pub spans: SpanQueue,
    /// When this instance started counting (the start of cumulative OTLP sums).
    pub started_ns: std::sync::atomic::AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_otel_rules() {
        let mut o = OtlpOptions::new();
        assert_eq!(o.traces_url(), None);
        o.endpoint = Some("http://collector:4318/".into());
        assert_eq!(o.traces_url().as_deref(), Some("http://collector:4318/v1/traces"));
        assert_eq!(o.metrics_url().as_deref(), Some("http://collector:4318/v1/metrics"));
        o.traces_endpoint = Some("http://other/traces".into());
        assert_eq!(o.traces_url().as_deref(), Some("http://other/traces"));
        o.disabled = true;
        assert_eq!(o.traces_url(), None);
    }

    #[test]
    fn headers_are_pairs_with_encoded_values() {
        assert_eq!(
            parse_headers("api-key=a%20b, x-team=ml").unwrap(),
            vec![("api-key".into(), "a b".into()), ("x-team".into(), "ml".into())]
        );
        assert!(parse_headers("novalue").is_err());
        assert!(parse_headers("bad header=1").is_err());
    }
}
