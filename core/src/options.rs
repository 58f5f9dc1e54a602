//! The tunables a runtime gives Hub, and the one place they are read from
//! `HUB_*` variables (the server's environment, a Worker's vars and secrets,
//! a Lambda's environment), so every runtime reads the same names the same
//! way and refuses a bad value naming the variable.

use crate::ports::Timeouts;
use std::time::Duration;

/// Tunables a runtime may set; the defaults suit production.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    pub timeouts: Timeouts,
    /// How long a key lookup is trusted (the worst-case delay of a revocation on other instances).
    pub key_cache_ttl_ms: i64,
    /// How long the configuration snapshot is served before a background reload.
    pub config_ttl_ms: i64,
    /// Whether start-up may release every open hold (an embedded database owned by this process).
    pub exclusive_database: bool,
    /// The first wait before re-checking a credential a provider rejected (doubling after each failed re-check).
    pub recheck_interval_ms: i64,
    /// Origins whose browser pages may call the API (`*` for any); empty:
    /// cross-origin calls are refused (the admin site is served same-origin).
    pub cors_origins: Vec<String>,
    /// Whether provider base URLs may point at link-local and cloud metadata addresses.
    pub allow_link_local: bool,
    /// Whether start-up applies the schema (off where migrations are applied by
    /// the platform's tooling, as `wrangler d1 migrations apply` on D1).
    pub migrate_on_start: bool,
    /// Most model calls served at once (a stream counts until it ends); more
    /// get 503 with `retry-after`. 0: no limit (where the platform limits it).
    pub max_in_flight: usize,
    /// Proxies whose `X-Forwarded-Host` and `X-Forwarded-Proto` are believed,
    /// matched against the request's [`crate::http::PeerAddr`]. Empty (or no
    /// peer address known): forwarded headers are ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The person who becomes the owner when they first sign in with this
    /// (verified) address, lower-case.
    pub admin_email: Option<String>,
    /// How often `hub serve` runs the scheduled jobs ([`crate::Hub::tick`]);
    /// the Worker and Lambda run them on their platform's schedule.
    pub tick_interval_ms: i64,
    /// The first wait before retrying a webhook or mail delivery (doubling
    /// after each failure, with jitter, up to two hours, for 24 hours).
    pub webhook_retry_base_ms: i64,
    /// Whether webhook URLs may point at private networks (10/8, 172.16/12,
    /// 192.168/16, 100.64/10, fc00::/7).
    pub allow_private_webhooks: bool,
    /// Whether notifications are sent in the background right after Hub
    /// writes an event. Off on Lambda, where background work holds the end
    /// of the response: deliveries go out with the scheduled job there.
    pub deliver_in_background: bool,
    /// OTLP export of traces (and, on the Worker and Lambda, metrics).
    pub otlp: crate::telemetry::OtlpOptions,
    /// A bearer token that may read `/metrics` besides owner and admin keys.
    pub metrics_token: Option<String>,
    /// Where Hub runs (whether a periodic exporter sends telemetry, say).
    pub runtime: Runtime,
    /// Whether calls on a shared database (libSQL, or D1 through the
    /// Worker's wallets) hold credit from leases (see `metering::lease`)
    /// rather than one row per call.
    pub credit_leases: bool,
    /// A lease's lifetime from its last renewal: how long a dead instance's
    /// lease keeps credit locked.
    pub lease_ttl_ms: i64,
}

impl HubOptions {
    /// Whether this process holds credit leases itself: on a shared libSQL
    /// database (`hub serve` on a remote database, Lambda) unless switched
    /// off. An embedded database has the credit book; a Worker's leases are
    /// held by its users' wallets (`Hub::set_wallets`), not by an isolate.
    pub fn leases_on(&self) -> bool {
        self.credit_leases && !self.exclusive_database && self.runtime != Runtime::Worker
    }

    /// How leases live and are checked: `HUB_LEASE_TTL`, checked every `HUB_CACHE_TTL`.
    pub fn lease_policy(&self) -> crate::metering::lease::LeasePolicy {
        crate::metering::lease::LeasePolicy::new(self.lease_ttl_ms, self.key_cache_ttl_ms)
    }
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            max_body_bytes: 20 * 1024 * 1024,
            timeouts: Timeouts::default(),
            key_cache_ttl_ms: 5_000,
            config_ttl_ms: 5_000,
            exclusive_database: false,
            recheck_interval_ms: 60_000,
            migrate_on_start: true,
            cors_origins: Vec::new(),
            allow_link_local: false,
            max_in_flight: 0,
            trusted_proxies: Vec::new(),
            admin_email: None,
            tick_interval_ms: 60_000,
            webhook_retry_base_ms: 30_000,
            allow_private_webhooks: false,
            deliver_in_background: true,
            otlp: crate::telemetry::OtlpOptions::new(),
            metrics_token: None,
            runtime: Runtime::Server,
            credit_leases: true,
            lease_ttl_ms: 30_000,
        }
    }
}

/// Where Hub runs: it decides the defaults and which variables apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `hub serve`: applies the schema itself, bounds calls in flight, sees peer addresses.
    Server,
    /// A Cloudflare Worker: D1 is migrated by wrangler; the platform bounds concurrency.
    Worker,
    /// AWS Lambda: one call per instance, a 6 MiB payload limit, migrations on request.
    Lambda,
}

/// A variable with a value Hub cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem} (got `{value}`)")]
pub struct OptionError {
    pub name: &'static str,
    pub value: String,
    pub problem: String,
}

/// One `HUB_*` variable: where it applies, what it means, how it sets the options.
pub struct Variable {
    pub name: &'static str,
    /// Runtimes that read it; the others ignore it (their platform decides).
    pub runtimes: &'static [Runtime],
    pub help: &'static str,
    apply: fn(&mut HubOptions, &str) -> Result<(), String>,
}

const ALL: &[Runtime] = &[Runtime::Server, Runtime::Worker, Runtime::Lambda];

/// Every variable the options are read from.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "HUB_MAX_BODY_BYTES",
        runtimes: ALL,
        help: "largest request body accepted, in bytes (20 MiB; 6 MiB on Lambda)",
        apply: |o, v| {
            o.max_body_bytes = whole(v)?.try_into().map_err(|_| "is too large")?;
            Ok(())
        },
    },
    Variable {
        name: "HUB_CONNECT_TIMEOUT",
        runtimes: ALL,
        help: "seconds to wait for a provider connection (10)",
        apply: |o, v| {
            o.timeouts.connect = Duration::from_secs(whole(v)?);
            Ok(())
        },
    },
    Variable {
        name: "HUB_FIRST_BYTE_TIMEOUT",
        runtimes: ALL,
        help: "seconds to wait for a provider's response headers (120)",
        apply: |o, v| {
            o.timeouts.first_byte = Duration::from_secs(whole(v)?);
            Ok(())
        },
    },
    Variable {
        name: "HUB_IDLE_TIMEOUT",
        runtimes: ALL,
        help: "seconds to wait between two chunks of a provider's stream (120)",
        apply: |o, v| {
            o.timeouts.idle = Duration::from_secs(whole(v)?);
            Ok(())
        },
    },
    Variable {
        name: "HUB_CACHE_TTL",
        runtimes: ALL,
        help: "seconds a cached API key or configuration is trusted (5)",
        apply: |o, v| {
            let ms = millis(whole(v)?)?;
            o.key_cache_ttl_ms = ms;
            o.config_ttl_ms = ms;
            Ok(())
        },
    },
    Variable {
        name: "HUB_CREDENTIAL_RECHECK",
        runtimes: ALL,
        help: "seconds before re-checking a credential a provider rejected, doubling after each failure (60)",
        apply: |o, v| match whole(v)? {
            0 => Err("must be at least 1 second".into()),
            s => {
                o.recheck_interval_ms = millis(s)?;
                Ok(())
            }
        },
    },
    Variable {
        name: "HUB_ALLOW_LINK_LOCAL",
        runtimes: ALL,
        help: "1: provider URLs may lead to link-local and cloud metadata addresses (refused otherwise)",
        apply: |o, v| {
            o.allow_link_local = flag(v)?;
            Ok(())
        },
    },
    Variable {
        name: "HUB_CORS_ORIGINS",
        runtimes: ALL,
        help: "origins whose pages may call the API from a browser, comma-separated (`*`: any; default none)",
        apply: |o, v| {
            o.cors_origins = list(v).map(str::to_owned).collect();
            Ok(())
        },
    },
    Variable {
        name: "HUB_MAX_IN_FLIGHT",
        runtimes: &[Runtime::Server],
        help: "most model calls served at once; more get 503 with retry-after (4096; 0: no limit)",
        apply: |o, v| {
            o.max_in_flight = whole(v)?.try_into().map_err(|_| "is too large")?;
            Ok(())
        },
    },
    Variable {
        name: "HUB_TRUSTED_PROXIES",
        runtimes: &[Runtime::Server],
        help: "proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-Host and -Proto are believed",
        apply: |o, v| {
            o.trusted_proxies = list(v).map(network).collect::<Result<_, _>>()?;
            Ok(())
        },
    },
    Variable {
        name: "HUB_ADMIN_EMAIL",
        runtimes: ALL,
        help: "the email address whose first sign-in makes that person the owner",
        apply: |o, v| {
            let email = v.trim().to_ascii_lowercase();
            if !crate::accounts::is_email(&email) {
                return Err("must be an email address".into());
            }
            o.admin_email = Some(email);
            Ok(())
        },
    },
    Variable {
        name: "HUB_TICK_INTERVAL",
        runtimes: &[Runtime::Server],
        help: "seconds between two runs of the scheduled jobs: expired holds, old key-limit and call-log rows, credential re-checks (60)",
        apply: |o, v| match whole(v)? {
            0 => Err("must be at least 1 second".into()),
            s => {
                o.tick_interval_ms = millis(s)?;
                Ok(())
            }
        },
    },
    Variable {
        name: "HUB_CREDIT_LEASES",
        runtimes: ALL,
        help: "on a shared database (libSQL, or D1 through the Worker's wallets), serve holds from credit leases (on) or place one hold row per call (off) (on)",
        apply: |o, v| {
            o.credit_leases = match v {
                "on" => true,
                "off" => false,
                v => flag(v).map_err(|_| "must be on or off".to_string())?,
            };
            Ok(())
        },
    },
    Variable {
        name: "HUB_LEASE_TTL",
        runtimes: ALL,
        help: "seconds a credit lease lives unless renewed: what a stopped instance, or an evicted wallet, keeps locked (30)",
        apply: |o, v| match whole(v)? {
            0..=2 => Err("must be at least 3 seconds".into()),
            s => {
                o.lease_ttl_ms = millis(s)?;
                Ok(())
            }
        },
    },
    Variable {
        name: "HUB_WEBHOOK_RETRY_BASE_MS",
        runtimes: ALL,
        help: "milliseconds before retrying a failed webhook or mail delivery, doubling (with jitter) up to 2 hours, for 24 hours (30000)",
        apply: |o, v| match whole(v)? {
            0 => Err("must be at least 1 millisecond".into()),
            ms => {
                o.webhook_retry_base_ms = i64::try_from(ms).map_err(|_| "is too large")?.min(3_600_000);
                Ok(())
            }
        },
    },
    Variable {
        name: "HUB_ALLOW_PRIVATE_WEBHOOKS",
        runtimes: ALL,
        help: "1: webhook URLs may point at private networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7; refused otherwise)",
        apply: |o, v| {
            o.allow_private_webhooks = flag(v)?;
            Ok(())
        },
    },
    Variable {
        name: "HUB_METRICS_TOKEN",
        runtimes: &[Runtime::Server],
        help: "a bearer token that may read /metrics (owner and admin keys always may; at least 24 characters)",
        apply: |o, v| {
            if v.len() < 24 {
                return Err("must be at least 24 characters".into());
            }
            o.metrics_token = Some(v.to_string());
            Ok(())
        },
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        runtimes: ALL,
        help: "OTLP/HTTP base URL: traces go to <url>/v1/traces (and on the Worker and Lambda metrics to <url>/v1/metrics)",
        apply: |o, v| {
            o.otlp.endpoint = Some(crate::telemetry::parse_url(v)?);
            Ok(())
        },
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        runtimes: ALL,
        help: "OTLP/HTTP URL of traces, used as is",
        apply: |o, v| {
            o.otlp.traces_endpoint = Some(crate::telemetry::parse_url(v)?);
            Ok(())
        },
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        runtimes: &[Runtime::Worker, Runtime::Lambda],
        help: "OTLP/HTTP URL of metrics, used as is",
        apply: |o, v| {
            o.otlp.metrics_endpoint = Some(crate::telemetry::parse_url(v)?);
            Ok(())
        },
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_HEADERS",
        runtimes: ALL,
        help: "headers sent with every OTLP export: key=value pairs, comma-separated, values percent-encoded",
        apply: |o, v| {
            o.otlp.headers = crate::telemetry::parse_headers(v)?;
            Ok(())
        },
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_PROTOCOL",
        runtimes: ALL,
        help: "http/protobuf, the only protocol Hub exports in",
        apply: |_, v| match v {
            "http/protobuf" => Ok(()),
            _ => Err("Hub exports OTLP over http/protobuf only".into()),
        },
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_TIMEOUT",
        runtimes: ALL,
        help: "milliseconds an OTLP export may take (10000)",
        apply: |o, v| {
            o.otlp.timeout_ms = whole(v)?.max(1);
            Ok(())
        },
    },
    Variable {
        name: "OTEL_SERVICE_NAME",
        runtimes: ALL,
        help: "the service.name of exported traces and metrics (hub)",
        apply: |o, v| {
            o.otlp.service_name = v.to_string();
            Ok(())
        },
    },
    Variable {
        name: "OTEL_BSP_SCHEDULE_DELAY",
        runtimes: &[Runtime::Server],
        help: "milliseconds between two span exports of hub serve (5000)",
        apply: |o, v| {
            o.otlp.schedule_delay_ms = whole(v)?.max(1);
            Ok(())
        },
    },
    Variable {
        name: "OTEL_SDK_DISABLED",
        runtimes: ALL,
        help: "true: export nothing over OTLP",
        apply: |o, v| {
            o.otlp.disabled = v.eq_ignore_ascii_case("true");
            Ok(())
        },
    },
    Variable {
        name: "HUB_TRACE_CONTENT",
        runtimes: ALL,
        help: "most bytes of each prompt and answer recorded on a call's span as events (0: none, the default)",
        apply: |o, v| {
            o.otlp.content_bytes = whole(v)?.try_into().map_err(|_| "is too large")?;
            Ok(())
        },
    },
    Variable {
        name: "HUB_MIGRATE",
        runtimes: &[Runtime::Lambda],
        help: "1: apply the schema at start",
        apply: |o, v| {
            o.migrate_on_start = flag(v)?;
            Ok(())
        },
    },
];

impl HubOptions {
    /// The defaults of a runtime, before any variable.
    pub fn defaults(runtime: Runtime) -> HubOptions {
        let base = HubOptions {
            runtime,
            ..HubOptions::default()
        };
        match runtime {
            Runtime::Server => HubOptions {
                max_in_flight: 4096,
                ..base
            },
            Runtime::Worker => HubOptions {
                migrate_on_start: false,
                ..base
            },
            Runtime::Lambda => HubOptions {
                max_body_bytes: 6 * 1024 * 1024,
                migrate_on_start: false,
                deliver_in_background: false,
                ..base
            },
        }
    }

    /// The runtime's defaults overridden by the variables `lookup` finds (an
    /// empty value counts as unset). The first bad value is an error naming it.
    pub fn from_lookup(runtime: Runtime, lookup: impl Fn(&str) -> Option<String>) -> Result<HubOptions, OptionError> {
        let mut options = HubOptions::defaults(runtime);
        for var in VARIABLES.iter().filter(|v| v.runtimes.contains(&runtime)) {
            let Some(value) = lookup(var.name).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            (var.apply)(&mut options, value.trim()).map_err(|problem| OptionError {
                name: var.name,
                value,
                problem,
            })?;
        }
        Ok(options)
    }
}

fn whole(v: &str) -> Result<u64, String> {
    v.parse().map_err(|_| "must be a whole number".into())
}

fn millis(seconds: u64) -> Result<i64, String> {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| s.checked_mul(1000))
        .ok_or_else(|| "is too large".into())
}

fn flag(v: &str) -> Result<bool, String> {
    match v {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err("must be 1 or true, 0 or false".into()),
    }
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// An address (`10.0.0.2`, `::1`) or a network (`10.0.0.0/8`).
fn network(entry: &str) -> Result<ipnet::IpNet, String> {
    entry
        .parse::<ipnet::IpNet>()
        .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{entry}` is not an IP address or network (CIDR)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(runtime: Runtime, vars: &[(&str, &str)]) -> Result<HubOptions, OptionError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        HubOptions::from_lookup(runtime, |name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_differ_by_runtime() {
        let server = load(Runtime::Server, &[]).unwrap();
        assert_eq!((server.max_in_flight, server.migrate_on_start), (4096, true));
        let lambda = load(Runtime::Lambda, &[]).unwrap();
        assert_eq!(
            (lambda.max_body_bytes, lambda.migrate_on_start),
            (6 * 1024 * 1024, false)
        );
        let worker = load(Runtime::Worker, &[]).unwrap();
        assert_eq!((worker.max_in_flight, worker.migrate_on_start), (0, false));
        assert_eq!(worker.timeouts, Timeouts::default());
    }

    #[test]
    fn reads_every_runtime_the_same_way() {
        let vars = [
            ("HUB_MAX_BODY_BYTES", "65536"),
            ("HUB_FIRST_BYTE_TIMEOUT", "7"),
            ("HUB_CACHE_TTL", "2"),
            ("HUB_CREDENTIAL_RECHECK", "3"),
            ("HUB_ALLOW_LINK_LOCAL", "true"),
            ("HUB_CORS_ORIGINS", " https://a.example , ,https://b.example"),
        ];
        for runtime in [Runtime::Server, Runtime::Worker, Runtime::Lambda] {
            let o = load(runtime, &vars).unwrap();
            assert_eq!(o.max_body_bytes, 65536);
            assert_eq!(o.timeouts.first_byte, Duration::from_secs(7));
            assert_eq!(
                (o.key_cache_ttl_ms, o.config_ttl_ms, o.recheck_interval_ms),
                (2000, 2000, 3000)
            );
            assert!(o.allow_link_local);
            assert_eq!(o.cors_origins, ["https://a.example", "https://b.example"]);
        }
    }

    #[test]
    fn variables_of_another_runtime_are_ignored() {
        let vars = [
            ("HUB_MAX_IN_FLIGHT", "2"),
            ("HUB_TRUSTED_PROXIES", "10.0.0.0/8,::1"),
            ("HUB_MIGRATE", "1"),
            ("HUB_TICK_INTERVAL", "5"),
        ];
        let server = load(Runtime::Server, &vars).unwrap();
        assert_eq!((server.max_in_flight, server.trusted_proxies.len()), (2, 2));
        assert_eq!(server.tick_interval_ms, 5000);
        let v6_loopback: std::net::IpAddr = "::1".parse().unwrap();
        assert!(
            server.trusted_proxies[1].contains(&v6_loopback),
            "an address is a network of one"
        );
        let worker = load(Runtime::Worker, &vars).unwrap();
        assert_eq!(
            (
                worker.max_in_flight,
                worker.trusted_proxies.len(),
                worker.migrate_on_start
            ),
            (0, 0, false)
        );
        assert_eq!(worker.tick_interval_ms, 60_000, "the Worker ticks on its Cron Trigger");
        assert!(load(Runtime::Lambda, &vars).unwrap().migrate_on_start);
    }

    #[test]
    fn lease_variables_apply_to_the_worker_wallets() {
        let vars = [("HUB_LEASE_TTL", "60"), ("HUB_CACHE_TTL", "10")];
        let worker = load(Runtime::Worker, &vars).unwrap();
        assert!(!worker.leases_on(), "an isolate holds no leases itself");
        assert_eq!(
            worker.lease_policy(),
            crate::metering::lease::LeasePolicy::new(60_000, 10_000)
        );
        let off = load(Runtime::Worker, &[("HUB_CREDIT_LEASES", "off")]).unwrap();
        assert!(!off.credit_leases, "no wallets then");
    }

    #[test]
    fn a_bad_value_is_an_error_naming_the_variable() {
        let cases = [
            (
                "HUB_MAX_BODY_BYTES",
                "20MB",
                "HUB_MAX_BODY_BYTES: must be a whole number (got `20MB`)",
            ),
            (
                "HUB_IDLE_TIMEOUT",
                "-1",
                "HUB_IDLE_TIMEOUT: must be a whole number (got `-1`)",
            ),
            (
                "HUB_CREDENTIAL_RECHECK",
                "0",
                "HUB_CREDENTIAL_RECHECK: must be at least 1 second (got `0`)",
            ),
            (
                "HUB_TICK_INTERVAL",
                "0",
                "HUB_TICK_INTERVAL: must be at least 1 second (got `0`)",
            ),
            (
                "HUB_ALLOW_LINK_LOCAL",
                "yes",
                "HUB_ALLOW_LINK_LOCAL: must be 1 or true, 0 or false (got `yes`)",
            ),
            (
                "HUB_TRUSTED_PROXIES",
                "10.0.0.0/8,proxy",
                "HUB_TRUSTED_PROXIES: `proxy` is not an IP address or network (CIDR) (got `10.0.0.0/8,proxy`)",
            ),
            (
                "HUB_CACHE_TTL",
                "99999999999999999",
                "HUB_CACHE_TTL: is too large (got `99999999999999999`)",
            ),
        ];
        for (name, value, message) in cases {
            let err = load(Runtime::Server, &[(name, value)]).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn empty_values_are_unset() {
        let o = load(
            Runtime::Server,
            &[("HUB_MAX_BODY_BYTES", ""), ("HUB_CORS_ORIGINS", " ")],
        )
        .unwrap();
        assert_eq!(o.max_body_bytes, HubOptions::default().max_body_bytes);
    }
}
