//! Wiring: database, master key, ports, the Hub, and an HTTP/1.1 server with
//! graceful shutdown (in-flight streams finish, their usage settles, then exit).

use crate::peers::{PerIp, Slot};
use crate::site::Site;
use crate::{DbArgs, ServeArgs};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hub_core::crypto::MasterKey;
use hub_core::error::ApiError;
use hub_core::options::Runtime;
use hub_core::ports::Rng;
use hub_core::{Hub, HubOptions};
use hub_libsql::LibSqlDb;
use hub_native::{FileJournal, OsRng, ReqwestUpstream, SystemClock, Tracker};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type OutBody = http_body_util::combinators::UnsyncBoxBody<Bytes, hub_core::http::BodyError>;

pub async fn migrate(db: DbArgs) -> Result<(), BoxError> {
    let database = LibSqlDb::open(&db.db, db.db_token.clone()).await?;
    let store = hub_core::store::Store::new(Arc::new(database));
    let applied = store.migrate(now_ms()).await?;
    println!("schema up to date (applied: {applied:?})");
    Ok(())
}

fn now_ms() -> i64 {
    use hub_core::ports::Clock;
    SystemClock::new().now_ms()
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
        tighten(&path).map_err(|e| format!("cannot make the master key file {} private: {e}", path.display()))?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read master key file {}: {e}", path.display()))?;
        return Ok(MasterKey::from_base64(&text).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    let mut bytes = [0u8; 32];
    OsRng.fill(&mut bytes)?;
    let text = B64.encode(bytes);
    write_private(&path, &text).map_err(|e| format!("cannot write master key file {}: {e}", path.display()))?;
    tracing::warn!(path = %path.display(), "no HUB_MASTER_KEY: generated a master key; back it up with the database, provider secrets cannot be read without it");
    Ok(MasterKey::from_bytes(&bytes)?)
}

/// Where finished calls are journaled: the configured directory, else beside
/// an embedded database.
fn journal_dir(args: &ServeArgs, local: bool) -> Option<PathBuf> {
    args.journal_dir.clone().or_else(|| {
        local.then(|| {
            let mut p = Path::new(&args.db.db).as_os_str().to_owned();
            p.push(".journal");
            PathBuf::from(p)
        })
    })
}

/// Makes a file readable by its owner only (a key file copied or created by hand may not be).
fn tighten(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
            tracing::warn!(path = %path.display(), "the master key file was readable by others: now 0600");
        }
    }
    Ok(())
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

/// The admin site to serve: `--ui-dir` overrides the one built into the binary.
fn admin_site(ui_dir: Option<&std::path::Path>) -> Result<Site, BoxError> {
    let site = match ui_dir {
        Some(dir) => Site::open(dir)?,
        None => Site::built_in(),
    };
    if !site.is_present() {
        tracing::warn!("this hub was built without its admin site: `/` says how to get it (or pass --ui-dir)");
    }
    Ok(site)
}

pub async fn serve(args: ServeArgs) -> Result<(), BoxError> {
    // Bad options stop the start before anything is opened.
    let mut options = HubOptions::from_lookup(Runtime::Server, |name| std::env::var(name).ok())?;
    let site = admin_site(args.ui_dir.as_deref())?;
    let database = LibSqlDb::open(&args.db.db, args.db.db_token.clone()).await?;
    let local = database.is_local();
    options.exclusive_database = local;
    let key = master_key(&args, local)?;
    let (timeouts, trusted) = (options.timeouts, options.trusted_proxies.clone());
    let max_body = options.max_body_bytes;
    let tick_every = tick_interval(&options);
    let tracker = Tracker::new(tokio::runtime::Handle::current());
    let outbound = hub_core::net::OutboundPolicy::new(options.allow_link_local);
    let database = Arc::new(database);
    let hub = Hub::new(
        database.clone(),
        Arc::new(ReqwestUpstream::new(timeouts.connect, outbound)?),
        Arc::new(SystemClock::new()),
        Arc::new(OsRng),
        Arc::new(tracker.clone()),
        key,
        options,
    );
    hub.set_mailer(Arc::new(hub_mail::SmtpMailer { policy: outbound }));
    hub.set_runtime_gauges(Arc::new(crate::telemetry::ProcessGauges { db: database }));
    if let Some(dir) = journal_dir(&args, local) {
        let journal = FileJournal::open(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        hub.set_journal(Arc::new(journal));
    }
    hub.start().await?;
    if let Ok(admin_key) = std::env::var("HUB_ADMIN_KEY") {
        hub_core::auth::check_admin_key(&admin_key)?;
        if hub.ensure_owner_key(&admin_key).await? {
            tracing::info!("created the owner user for HUB_ADMIN_KEY");
        }
    }

    let ticker = tokio::spawn(run_jobs(hub.clone(), tick_every));

    // Notifications: due deliveries (new events, retries) go out within a
    // second; the check is one indexed read when nothing is due.
    let deliverer = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = hub.deliver_notifications(hub.now_ms()).await {
                    tracing::warn!("notifications: {e}");
                }
            }
        })
    };

    // Credit leases (a shared database): renewed while in use, returned when idle.
    let lease_upkeep = hub.lease_upkeep_loop().map(tokio::spawn);

    let exporter = hub
        .options()
        .otlp
        .traces_url()
        .map(|_| tokio::spawn(crate::telemetry::export_loop(hub.clone())));
    let metrics_server = match args.metrics_listen {
        Some(addr) => Some(crate::telemetry::metrics_listener(hub.clone(), addr).await?),
        None => None,
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, db = %args.db.db, "hub listening");
    // Announce the address on stdout for scripts and tests that pick port 0.
    println!("hub listening on http://{addr}");

    // One single-threaded runtime per core serves connections: a request, its
    // provider call and its relay never hop between threads. This runtime only
    // accepts connections and hands them out.
    let workers = args
        .workers
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(2, |n| n.get());
    let grace = Duration::from_secs(args.shutdown_grace);
    let mut queues = Vec::with_capacity(workers);
    let mut threads = Vec::with_capacity(workers);
    let limits = ConnLimits {
        max_body,
        header_timeout: Duration::from_secs(args.header_timeout),
        body_timeout: Duration::from_secs(args.body_timeout),
    };
    let per_ip = PerIp::new(args.max_connections_per_ip, trusted);
    for i in 0..workers {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (hub, tracker) = (hub.clone(), tracker.clone());
        let site = site.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("hub-worker-{i}"))
                .spawn(
                    move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(rt) => rt.block_on(worker(hub, site, rx, limits, grace, tracker)),
                        Err(e) => tracing::error!("worker {i} could not start: {e}"),
                    },
                )?,
        );
        queues.push(tx);
    }
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let mut next = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let peer = peer.ip().to_canonical();
                let Some(slot) = per_ip.admit(peer) else {
                    crate::peers::refuse(&stream, per_ip.limit);
                    continue;
                };
                let Ok(stream) = stream.into_std() else { continue };
                let _ = queues[next % workers].send(Accepted { stream, peer, slot });
                next = next.wrapping_add(1);
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: letting in-flight calls finish");
    // Closing the queues tells each worker to drain its connections and exit.
    drop(queues);
    ticker.abort();
    deliverer.abort();
    if let Some(m) = metrics_server {
        m.abort();
    }
    tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await?;
    // Settlements spawned outside the workers run here: wait for them too.
    if tokio::time::timeout(Duration::from_secs(30), tracker.wait_idle())
        .await
        .is_err()
    {
        tracing::error!("some settlements did not finish within 30 s");
    }
    // Every settlement is in: what is left of this instance's leases is free again.
    if let Some(upkeep) = lease_upkeep {
        upkeep.abort();
        match hub.return_leases().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(leases = n, "credit leases returned"),
            Err(e) => tracing::warn!("credit leases not returned (they expire on their own): {e}"),
        }
    }
    // The last calls' spans, once their settlements (which queue them) are done.
    if let Some(exporter) = exporter {
        exporter.abort();
        let wait = Duration::from_millis(hub.options().otlp.timeout_ms);
        let _ = tokio::time::timeout(wait, hub.export_telemetry()).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long a client may take to send a request, and how large it may be.
#[derive(Clone, Copy)]
struct ConnLimits {
    max_body: usize,
    /// For the headers, from the connection's start or the previous response's end.
    header_timeout: Duration,
    /// For the whole body, once the headers are in.
    body_timeout: Duration,
}

/// A connection handed to a worker thread, with its place in the per-address count.
struct Accepted {
    stream: std::net::TcpStream,
    peer: IpAddr,
    slot: Slot,
}

/// Serves the connections handed to this thread until the queue closes, then
/// lets in-flight calls finish (up to `grace`) and their settlements complete.
async fn worker(
    hub: Hub,
    site: Site,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Accepted>,
    limits: ConnLimits,
    grace: Duration,
    tracker: Tracker,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    while let Some(Accepted { stream, peer, slot }) = queue.recv().await {
        let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (hub, site) = (hub.clone(), site.clone());
        let service = hyper::service::service_fn(move |req| {
            let (hub, site) = (hub.clone(), site.clone());
            async move { Ok::<_, std::convert::Infallible>(handle(&hub, &site, req, peer, limits).await) }
        });
        // The header timeout also closes a keep-alive connection left idle
        // that long; it never runs while a response (a long stream) is sent.
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(slot);
        });
    }
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            "in-flight calls still running after {} s; closing them (they are billed for what was delivered)",
            grace.as_secs()
        );
    }
    // Streams closed above settle through tasks on this runtime: drive them to the end.
    if tokio::time::timeout(Duration::from_secs(30), tracker.wait_idle())
        .await
        .is_err()
    {
        tracing::error!("some settlements did not finish within 30 s");
    }
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

async fn handle(
    hub: &Hub,
    site: &Site,
    mut req: http::Request<Incoming>,
    peer: IpAddr,
    limits: ConnLimits,
) -> http::Response<OutBody> {
    let path = req.uri().path();
    if matches!(*req.method(), http::Method::GET | http::Method::HEAD) && !hub_core::app::is_api_path(path) {
        return site_response(site.get(path).await);
    }
    req.extensions_mut().insert(hub_core::http::PeerAddr(peer));
    let (parts, body) = req.into_parts();
    let res = match read_body(&parts, body, limits).await {
        Ok(body) => hub.handle(http::Request::from_parts(parts, body)).await,
        Err(e) => {
            let mut res = hub.reject(http::Request::from_parts(parts, Bytes::new()), e).await;
            // What is left of the body may still arrive: this connection carries no other request.
            res.headers_mut()
                .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            res
        }
    };
    let (parts, body) = res.into_parts();
    let body: OutBody = match body {
        hub_core::http::Body::Full(b) => Full::new(b).map_err(|never| match never {}).boxed_unsync(),
        hub_core::http::Body::Stream(s) => StreamBody::new(s.map(|r| r.map(Frame::data))).boxed_unsync(),
    };
    http::Response::from_parts(parts, body)
}

/// The whole request body, within the size limit and the body timeout. A
/// body that stops short of its length is answered 408 (and the connection
/// closed, since the rest of the body may still come) instead of waiting.
async fn read_body(parts: &http::request::Parts, body: Incoming, limits: ConnLimits) -> Result<Bytes, ApiError> {
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_body) {
        return Err(ApiError::payload_too_large(limits.max_body));
    }
    match tokio::time::timeout(limits.body_timeout, Limited::new(body, limits.max_body).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::payload_too_large(limits.max_body))
        }
        Ok(Err(e)) => Err(ApiError::bad_request(format!("Could not read the request body: {e}"))),
        Err(_) => Err(ApiError::request_timeout(limits.body_timeout)),
    }
}

/// A file of the admin site, with headers that keep it from being framed,
/// sniffed or leaking its URL.
fn site_response(asset: crate::site::Asset) -> http::Response<OutBody> {
    let mut res = http::Response::new(Full::new(asset.body).map_err(|never| match never {}).boxed_unsync());
    *res.status_mut() = http::StatusCode::from_u16(asset.status).unwrap_or(http::StatusCode::OK);
    let h = res.headers_mut();
    let pairs: [(&str, &str); 7] = [
        ("content-type", asset.content_type),
        ("cache-control", asset.cache_control),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self' http: https:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
        ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
    ];
    for (name, value) in pairs {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    res
}

/// How often the scheduled jobs run: `HUB_TICK_INTERVAL`, or more often when
/// a rejected credential is to be re-checked sooner (`HUB_CREDENTIAL_RECHECK`).
fn tick_interval(options: &HubOptions) -> Duration {
    let ms = options.tick_interval_ms.min(options.recheck_interval_ms).max(1000);
    Duration::from_millis(ms as u64)
}

/// Runs the scheduled jobs ([`Hub::tick`]) every `every`, the first time at
/// once (start-up already released what a previous process left). A tick that
/// overruns delays the next rather than overlapping it.
async fn run_jobs(hub: Hub, every: Duration) {
    let mut timer = tokio::time::interval(every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        let report = hub.tick(hub.now_ms()).await;
        tracing::debug!(report = %serde_json::to_string(&report).unwrap_or_default(), "scheduled jobs ran");
    }
}
