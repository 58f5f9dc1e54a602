//! Wiring: database, master key, ports, the Hub, and an HTTP/1.1 server with
//! graceful shutdown (in-flight streams finish, their usage settles, then exit).

use crate::runtime::{OsRng, SystemClock, Tracker};
use crate::upstream::ReqwestUpstream;
use crate::{DbArgs, ServeArgs};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hub_core::crypto::MasterKey;
use hub_core::error::{ApiError, Protocol};
use hub_core::ports::{Rng, Timeouts};
use hub_core::{Hub, HubOptions};
use hub_libsql::LibSqlDb;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type OutBody = http_body_util::combinators::UnsyncBoxBody<Bytes, hub_core::http::BodyError>;

pub async fn migrate(db: DbArgs) -> Result<(), BoxError> {
    let database = LibSqlDb::open(&db.db, db.db_token.clone()).await?;
    let store = hub_core::store::Store::new(Arc::new(database));
    let applied = store.migrate(SystemClock::new_now_ms()).await?;
    println!("schema up to date (applied: {applied:?})");
    Ok(())
}

impl SystemClock {
    fn new_now_ms() -> i64 {
        use hub_core::ports::Clock;
        SystemClock::new().now_ms()
    }
}

/// The master key: `HUB_MASTER_KEY`, or for an embedded database a key file
/// beside it, created on first start.
fn master_key(args: &ServeArgs, local: bool) -> Result<MasterKey, BoxError> {
    if let Ok(text) = std::env::var("HUB_MASTER_KEY") {
        return Ok(MasterKey::from_base64(&text).map_err(|e| format!("HUB_MASTER_KEY: {e}"))?);
    }
    if !local {
        return Err("HUB_MASTER_KEY must be set with a remote database (every instance must share it); generate one with `openssl rand -base64 32`".into());
    }
    let path = args.master_key_file.clone().unwrap_or_else(|| {
        let mut p = Path::new(&args.db.db).as_os_str().to_owned();
        p.push(".key");
        PathBuf::from(p)
    });
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read master key file {}: {e}", path.display()))?;
        return Ok(MasterKey::from_base64(&text).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    let mut bytes = [0u8; 32];
    OsRng.fill(&mut bytes);
    let text = B64.encode(bytes);
    write_private(&path, &text).map_err(|e| format!("cannot write master key file {}: {e}", path.display()))?;
    tracing::warn!(path = %path.display(), "no HUB_MASTER_KEY: generated a master key; back it up with the database, provider secrets cannot be read without it");
    Ok(MasterKey::from_bytes(&bytes)?)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

pub async fn serve(args: ServeArgs) -> Result<(), BoxError> {
    let database = LibSqlDb::open(&args.db.db, args.db.db_token.clone()).await?;
    let local = database.is_local();
    let key = master_key(&args, local)?;
    let timeouts = Timeouts {
        connect: Duration::from_secs(args.connect_timeout),
        first_byte: Duration::from_secs(args.first_byte_timeout),
        idle: Duration::from_secs(args.idle_timeout),
    };
    let tracker = Tracker::default();
    let options = HubOptions {
        max_body_bytes: args.max_body_bytes,
        timeouts,
        key_cache_ttl_ms: args.cache_ttl as i64 * 1000,
        config_ttl_ms: args.cache_ttl as i64 * 1000,
        exclusive_database: local,
    };
    let hub = Hub::new(
        Arc::new(database),
        Arc::new(ReqwestUpstream::new(timeouts.connect)?),
        Arc::new(SystemClock::new()),
        Arc::new(OsRng),
        Arc::new(tracker.clone()),
        key,
        options,
    );
    hub.start().await?;
    if let Ok(admin_key) = std::env::var("HUB_ADMIN_KEY") {
        if admin_key.len() < 16 {
            return Err("HUB_ADMIN_KEY must be at least 16 characters".into());
        }
        if hub.ensure_owner_key(&admin_key).await? {
            tracing::info!("created the owner user for HUB_ADMIN_KEY");
        }
    }

    let sweeper = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match hub.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(released = n, "released expired holds"),
                    Err(e) => tracing::warn!("hold sweeper: {e}"),
                }
            }
        })
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, db = %args.db.db, "hub listening");
    // Announce the address on stdout for scripts and tests that pick port 0.
    println!("hub listening on http://{addr}");

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let max_body = args.max_body_bytes;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let hub = hub.clone();
                let service = hyper::service::service_fn(move |req| {
                    let hub = hub.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(&hub, req, max_body).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: letting in-flight calls finish");
    if tokio::time::timeout(Duration::from_secs(args.shutdown_grace), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight calls still running after {} s; closing them (they are billed for what was delivered)",
            args.shutdown_grace
        );
    }
    sweeper.abort();
    // Streams closed above settle through background tasks: wait for them all.
    if tokio::time::timeout(Duration::from_secs(30), tracker.wait_idle())
        .await
        .is_err()
    {
        tracing::error!("some settlements did not finish within 30 s");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn handle(hub: &Hub, req: http::Request<Incoming>, max_body: usize) -> http::Response<OutBody> {
    let (parts, body) = req.into_parts();
    let protocol = if parts.uri.path().starts_with("/v1/") {
        Protocol::OpenAi
    } else {
        Protocol::Hub
    };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let res = if declared.is_some_and(|n| n > max_body) {
        ApiError::payload_too_large(max_body).into_response(protocol)
    } else {
        match Limited::new(body, max_body).collect().await {
            Ok(collected) => hub.handle(http::Request::from_parts(parts, collected.to_bytes())).await,
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                ApiError::payload_too_large(max_body).into_response(protocol)
            }
            Err(e) => ApiError::bad_request(format!("Could not read the request body: {e}")).into_response(protocol),
        }
    };
    let (parts, body) = res.into_parts();
    let body: OutBody = match body {
        hub_core::http::Body::Full(b) => Full::new(b).map_err(|never| match never {}).boxed_unsync(),
        hub_core::http::Body::Stream(s) => StreamBody::new(s.map(|r| r.map(Frame::data))).boxed_unsync(),
    };
    http::Response::from_parts(parts, body)
}
