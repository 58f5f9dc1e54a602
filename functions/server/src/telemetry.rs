//! `hub serve`'s side of telemetry: the process's own gauges on `/metrics`,
//! the periodic OTLP exporter, and `/metrics` on a separate address
//! (`HUB_METRICS_LISTEN`).

use bytes::Bytes;
use http_body_util::Full;
use hub_core::telemetry::metrics::{Exposition, CONTENT_TYPE};
use hub_core::Hub;
use hub_libsql::LibSqlDb;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Process memory and the embedded database's write queue.
pub struct ProcessGauges {
    pub db: Arc<LibSqlDb>,
}

impl hub_core::telemetry::metrics::RuntimeGauges for ProcessGauges {
    fn render(&self, page: &mut Exposition) {
        if let Some(bytes) = resident_bytes() {
            page.family(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory of the hub process.",
            );
            page.sample("process_resident_memory_bytes", &[], bytes as f64);
        }
        page.family(
            "hub_db_write_queue",
            "gauge",
            "Writes waiting for the embedded database's writer thread, or batches waiting for a remote database's group committer.",
        );
        page.sample("hub_db_write_queue", &[], self.db.queued_writes() as f64);
    }
}

/// The process's resident set, from `/proc/self/status` (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Exports queued spans every `OTEL_BSP_SCHEDULE_DELAY`, off the workers'
/// threads; a call only ever queues.
pub async fn export_loop(hub: Hub) {
    let every = Duration::from_millis(hub.options().otlp.schedule_delay_ms);
    let mut timer = tokio::time::interval(every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        hub.export_telemetry().await;
    }
}

/// Serves `GET /metrics` alone on `addr`: open to whoever reaches the
/// address, unless `HUB_METRICS_TOKEN` is set.
pub async fn metrics_listener(hub: Hub, addr: SocketAddr) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (HUB_METRICS_LISTEN): {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(addr = %bound, "metrics listening");
    println!("metrics listening on http://{bound}/metrics");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let hub = hub.clone();
            let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let hub = hub.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&hub, req).await) }
            });
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(15))
                    .serve_connection(TokioIo::new(stream), service);
                let _ = conn.await;
            });
        }
    }))
}

async fn answer(hub: &Hub, req: http::Request<hyper::body::Incoming>) -> http::Response<Full<Bytes>> {
    let (parts, _) = req.into_parts();
    let plain = |status: u16, text: &str| {
        let mut res = http::Response::new(Full::new(Bytes::from(text.to_string())));
        *res.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::NOT_FOUND);
        res
    };
    if parts.uri.path() != "/metrics" {
        return plain(404, "Only /metrics is served here.\n");
    }
    if parts.method != http::Method::GET {
        return plain(405, "Only GET /metrics is served here.\n");
    }
    let probe = http::Request::from_parts(parts, Bytes::new());
    if hub.options().metrics_token.is_some() && !hub.metrics_token_ok(&probe) {
        let mut res = plain(401, "Send `Authorization: Bearer <HUB_METRICS_TOKEN>`.\n");
        res.headers_mut()
            .insert("www-authenticate", http::HeaderValue::from_static("Bearer"));
        return res;
    }
    let mut res = http::Response::new(Full::new(Bytes::from(hub.metrics_text().await)));
    res.headers_mut()
        .insert("content-type", http::HeaderValue::from_static(CONTENT_TYPE));
    res
}
