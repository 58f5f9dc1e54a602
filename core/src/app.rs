//! The Hub: shared state, the configuration snapshot, authentication, and the
//! router from (method, path) to handlers.

use crate::auth::{hash_key, presented_key, Caller, KeyCache};
use crate::config::Snapshot;
use crate::crypto::MasterKey;
use crate::error::{ApiError, Protocol};
use crate::http::{json, HeaderValue, Method, Request, Response, StatusCode};
use crate::metering::book::CreditBook;
use crate::metering::money::Credits;
use crate::ports::{Background, Clock, Rng, SqlDb, Timeouts, Upstream};
use crate::store::Store;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

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
        }
    }
}

pub(crate) struct Inner {
    pub store: Store,
    pub upstream: Arc<dyn Upstream>,
    pub clock: Arc<dyn Clock>,
    pub rng: Arc<dyn Rng>,
    pub background: Arc<dyn Background>,
    pub master_key: MasterKey,
    pub options: HubOptions,
    pub keys: KeyCache,
    snapshot: RwLock<Option<(Arc<Snapshot>, i64)>>,
    refreshing: AtomicBool,
    /// Balances and holds in memory, when this process owns the database.
    pub book: OnceLock<CreditBook>,
    pub health: crate::gateway::failover::Health,
    /// Model calls being served (see `HubOptions::max_in_flight`).
    in_flight: Arc<AtomicUsize>,
    pub settler: crate::gateway::settle::Settler,
}

/// The gateway. Cheap to clone; every runtime holds one and hands it requests.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

impl Hub {
    pub fn new(
        db: Arc<dyn SqlDb>,
        upstream: Arc<dyn Upstream>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Rng>,
        background: Arc<dyn Background>,
        master_key: MasterKey,
        options: HubOptions,
    ) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                store: Store::new(db),
                upstream,
                clock,
                rng,
                background,
                master_key,
                options,
                keys: KeyCache::default(),
                snapshot: RwLock::new(None),
                refreshing: AtomicBool::new(false),
                book: OnceLock::new(),
                health: Default::default(),
                in_flight: Arc::default(),
                settler: Default::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Where provider requests may go.
    pub fn outbound(&self) -> crate::net::OutboundPolicy {
        crate::net::OutboundPolicy::new(self.inner.options.allow_link_local)
    }

    /// Sends a provider request once its URL passes the outbound policy: a
    /// base URL saved before the policy (or while HUB_ALLOW_LINK_LOCAL was
    /// set) is refused here on every runtime, before anything is sent.
    pub(crate) async fn send_upstream(
        &self,
        req: crate::ports::UpstreamRequest,
    ) -> Result<crate::ports::UpstreamResponse, crate::ports::UpstreamError> {
        if let Err(problem) = self.outbound().check_url(&req.url) {
            return Err(crate::ports::UpstreamError::Refused(format!(
                "the provider URL {problem}"
            )));
        }
        self.inner.upstream.send(req).await
    }

    /// Migrates the schema and, for an exclusive database, releases holds
    /// stranded by a previous process.
    pub async fn start(&self) -> Result<(), crate::store::MigrateError> {
        let now = self.inner.clock.now_ms();
        if self.inner.options.migrate_on_start {
            let applied = self.inner.store.migrate(now).await?;
            if !applied.is_empty() {
                tracing::info!(?applied, "applied schema migrations");
            }
        } else if self.inner.store.config_version().await.is_err() {
            return Err(crate::store::MigrateError::Missing);
        }
        let upgraded = self
            .inner
            .store
            .upgrade_key_hashes(self.inner.master_key.key_hash_secret())
            .await?;
        if upgraded > 0 {
            tracing::info!(upgraded, "API key hashes upgraded to keyed hashes");
        }
        // Calls a previous process finished but never committed: before the
        // credit book reads the balances, so they include them.
        let replayed = self.replay_journal().await?;
        if replayed > 0 {
            tracing::warn!(replayed, "committed settlements a previous process had journaled");
        }
        let released = if self.inner.options.exclusive_database {
            self.inner.store.expire_all_holds(now).await?
        } else {
            self.inner.store.expire_holds(now).await?
        };
        if released > 0 {
            tracing::warn!(released, "released holds left open by calls that never settled");
        }
        if self.inner.options.exclusive_database {
            let book = CreditBook::with_balances(self.inner.store.balances().await?);
            let _ = self.inner.book.set(book);
        }
        Ok(())
    }

    /// Releases expired holds (and forgets month-old key-limit rows); runtimes call this periodically.
    pub async fn sweep(&self) -> Result<u64, crate::ports::DbError> {
        let now = self.inner.clock.now_ms();
        self.inner.store.prune_key_events(now).await?;
        self.inner.store.expire_holds(now).await
    }

    /// The stored hash of an API key (keyed with a secret from the master key).
    pub(crate) fn key_hash(&self, plaintext: &str) -> String {
        hash_key(self.inner.master_key.key_hash_secret(), plaintext)
    }

    /// Makes sure `plaintext` is a working owner key: created with its owner
    /// user if missing; otherwise un-revoked, unrestricted, and its user an
    /// enabled owner again, whatever happened to them since (so restarting
    /// with `HUB_ADMIN_KEY` always restores the operator's access).
    pub async fn ensure_owner_key(&self, plaintext: &str) -> Result<bool, crate::ports::DbError> {
        let now = self.inner.clock.now_ms();
        let hash = self.key_hash(plaintext);
        let hint = crate::auth::key_hint(plaintext);
        let user_id = crate::ids::new_id("usr", now, &*self.inner.rng);
        let key_id = crate::ids::new_id("key", now, &*self.inner.rng);
        let key = crate::store::NewKeyRow {
            id: &key_id,
            user_id: &user_id,
            label: "HUB_ADMIN_KEY",
            key_hash: &hash,
            key_hint: &hint,
            expires_at: None,
            allowed_models: None,
            rpm_limit: None,
            tpm_limit: None,
            daily_spend_cap: None,
            monthly_spend_cap: None,
            now_ms: now,
            parent_key_id: None,
        };
        let created = self.inner.store.ensure_owner_key(&user_id, key).await?;
        if let Some(book) = self.inner.book.get() {
            book.open(&user_id, Credits::ZERO);
        }
        self.inner.keys.clear();
        Ok(created)
    }

    /// Reserves credit for a call: in the credit book when this process owns
    /// the database, else with the database's conditional INSERT.
    pub(crate) async fn place_hold(
        &self,
        call_id: &str,
        user: &str,
        amount: Credits,
        ttl_ms: i64,
    ) -> Result<bool, ApiError> {
        let now = self.inner.clock.now_ms();
        match self.inner.book.get() {
            Some(book) => {
                if !book.contains(user) {
                    if let Some(u) = self.inner.store.get_user(user).await? {
                        book.open(user, u.balance);
                    }
                }
                Ok(book.try_hold(user, amount))
            }
            None => Ok(self.inner.store.place_hold(call_id, user, amount, now, ttl_ms).await?),
        }
    }

    /// Whether holds are rows in the database (a shared database).
    pub(crate) fn holds_in_database(&self) -> bool {
        self.inner.book.get().is_none()
    }

    /// A user row as callers should see it: with the holds in flight.
    pub(crate) fn live_user(&self, mut u: crate::store::UserRow) -> crate::store::UserRow {
        if let Some(acc) = self.inner.book.get().and_then(|b| b.account(&u.id)) {
            u.held = Credits::from_nanos(acc.held);
        }
        u
    }

    /// The CORS origin to allow for a request, if it comes from an allowed page.
    fn cors_origin(&self, req: &Request) -> Option<HeaderValue> {
        let origin = req.headers().get("origin")?;
        let allowed = &self.inner.options.cors_origins;
        let text = origin.to_str().ok()?;
        allowed
            .iter()
            .any(|a| a == "*" || a.trim_end_matches('/') == text)
            .then(|| origin.clone())
    }

    /// Serves one request. Never panics on input; every failure is a response.
    pub async fn handle(&self, req: Request) -> Response {
        self.answer(req, None).await
    }

    /// Answers a request the runtime could not take in whole (a body over the
    /// limit or too slow to arrive; `req` carries no body) with `error`,
    /// rendered as every other failure: in the caller's protocol, with its
    /// request id and CORS headers.
    pub async fn reject(&self, req: Request, error: ApiError) -> Response {
        self.answer(req, Some(error)).await
    }

    async fn answer(&self, req: Request, early: Option<ApiError>) -> Response {
        let cors = self.cors_origin(&req);
        if req.method() == Method::OPTIONS && req.headers().contains_key("origin") {
            return preflight(cors);
        }
        let mut res = self.handle_inner(req, early).await;
        if let Some(origin) = cors {
            let h = res.headers_mut();
            h.insert("access-control-allow-origin", origin);
            h.insert(
                "access-control-expose-headers",
                HeaderValue::from_static("x-hub-call-id, x-hub-credits, x-request-id"),
            );
            h.append("vary", HeaderValue::from_static("origin"));
        }
        res
    }

    async fn handle_inner(&self, req: Request, early: Option<ApiError>) -> Response {
        let request_id = crate::http::header(req.headers(), "x-request-id")
            .filter(|v| v.len() <= 128)
            .map(str::to_owned)
            .unwrap_or_else(|| crate::ids::new_id("req", self.inner.clock.now_ms(), &*self.inner.rng));
        let protocol = protocol_of(req.uri().path());
        // AIGNE Hub answers every failure of a streaming request as one SSE frame, with HTTP 200.
        let sse_errors = protocol == Protocol::Aigne && crate::aigne::accepts_sse(&req);
        // Model calls take a slot for as long as their answer lasts.
        let limit = self.inner.options.max_in_flight;
        let wants_slot = early.is_none() && limit > 0 && req.method() == Method::POST && protocol != Protocol::Hub;
        let slot = if wants_slot {
            InFlight::acquire(&self.inner.in_flight, limit)
        } else {
            None
        };
        let refused = wants_slot && slot.is_none();
        let result = if let Some(e) = early {
            Err(e)
        } else if refused {
            Err(ApiError::unavailable(format!(
                "Hub is serving as many calls as it is configured for ({limit}); retry in a moment."
            )))
        } else if req.body().len() > self.inner.options.max_body_bytes {
            Err(ApiError::payload_too_large(self.inner.options.max_body_bytes))
        } else {
            self.route(req, &request_id).await
        };
        let mut res = result.unwrap_or_else(|e| {
            if e.status.is_server_error() {
                tracing::warn!(request_id = %request_id, status = e.status.as_u16(), "{}", e.message);
            }
            if sse_errors {
                crate::protocols::aigne::sse_error(&e)
            } else {
                e.into_response(protocol)
            }
        });
        if refused {
            res.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            res.headers_mut().insert("x-request-id", v);
        }
        if let Some(slot) = slot {
            // A stream keeps its slot until it ends or its caller leaves.
            let body = std::mem::replace(res.body_mut(), crate::http::Body::empty());
            *res.body_mut() = match body {
                crate::http::Body::Stream(inner) => crate::http::Body::Stream(Box::pin(Holding { inner, _slot: slot })),
                whole => whole,
            };
        }
        res
    }

    async fn route(&self, req: Request, request_id: &str) -> Result<Response, ApiError> {
        let path = req.uri().path().trim_end_matches('/').to_string();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let method = req.method().clone();
        match (method, segments.as_slice()) {
            (Method::GET, ["healthz"]) => Ok(json(StatusCode::OK, &json!({"status": "ok"}))),
            (Method::GET, ["readyz"]) => match self.inner.store.ping().await {
                Ok(()) => Ok(json(StatusCode::OK, &json!({"status": "ready"}))),
                Err(_) => Err(ApiError::unavailable("The database is not reachable.")),
            },
            (Method::POST, ["v1", "chat", "completions"]) => {
                let caller = self.authenticate(&req).await?;
                crate::gateway::chat::completions(self, caller, req, request_id).await
            }
            (Method::POST, ["v1", "messages"]) => {
                let caller = self.authenticate(&req).await?;
                crate::gateway::chat::messages(self, caller, req, request_id).await
            }
            (Method::POST, ["v1", "embeddings"]) => {
                let caller = self.authenticate(&req).await?;
                crate::gateway::media::embeddings(self, caller, req, request_id).await
            }
            (Method::POST, ["v1", "images", "generations"]) => {
                let caller = self.authenticate(&req).await?;
                crate::gateway::media::images(self, caller, req, request_id).await
            }
            (Method::GET, ["__blocklet__.js"]) => crate::aigne::blocklet(self, &req).await,
            (Method::GET, ["api", "ai" | "ai-providers", "models"]) => crate::aigne::catalogue(self, &req).await,
            (Method::GET, ["api", "v2", "status"]) => crate::aigne::status(self, &req).await,
            (Method::GET, ["api", "user", "info"]) => {
                let caller = self.authenticate(&req).await?;
                crate::aigne::user_info(self, &caller).await
            }
            (Method::POST, ["api", "v2", "chat"]) => {
                let caller = self.authenticate(&req).await?;
                crate::aigne::chat(self, caller, req, request_id).await
            }
            (Method::POST, ["api", "v2", "chat", "completions"]) | (Method::POST, ["api", "v2", "completions"]) => {
                let caller = self.authenticate(&req).await?;
                crate::aigne::completions(self, caller, req, request_id).await
            }
            (Method::POST, ["api", "v2", "embeddings"]) => {
                let caller = self.authenticate(&req).await?;
                crate::aigne::embeddings(self, caller, req, request_id).await
            }
            (Method::POST, ["api", "v2", "image"]) => {
                let caller = self.authenticate(&req).await?;
                crate::aigne::image(self, caller, req, request_id).await
            }
            (Method::POST, ["api", "v2", "image", "generations"]) => {
                let caller = self.authenticate(&req).await?;
                crate::aigne::image_generations(self, caller, req, request_id).await
            }
            (Method::GET, ["v1", "models"]) => {
                let caller = self.authenticate(&req).await?;
                crate::gateway::models::list(self, &caller).await
            }
            (_, ["v1", "chat", "completions"])
            | (_, ["v1", "messages"])
            | (_, ["v1", "embeddings"])
            | (_, ["v1", "images", "generations"])
            | (_, ["v1", "models"]) => Err(ApiError::method_not_allowed()),
            (_, ["api", "me", ..]) => {
                let caller = self.authenticate(&req).await?;
                crate::admin::me(self, &caller, req).await
            }
            (_, ["api", "admin", ..]) => {
                let caller = self.authenticate(&req).await?;
                if !caller.role.is_admin() {
                    return Err(ApiError::forbidden("This endpoint needs an owner or admin key."));
                }
                crate::admin::route(self, &caller, req).await
            }
            _ => Err(ApiError::not_found(format!(
                "No route for {} {}.",
                req.method(),
                req.uri().path()
            ))),
        }
    }

    /// The caller behind the request's key: 401 when missing, unknown, revoked or expired.
    pub(crate) async fn authenticate(&self, req: &Request) -> Result<Arc<Caller>, ApiError> {
        let key = presented_key(req.headers()).ok_or_else(|| {
            ApiError::unauthorized("Missing API key: send `Authorization: Bearer <key>` (or `x-api-key`).")
        })?;
        let hash = self.key_hash(key);
        let now = self.inner.clock.now_ms();
        let caller = match self.inner.keys.get(&hash, now, self.inner.options.key_cache_ttl_ms) {
            Some(c) => c,
            None => {
                let generation = self.inner.keys.generation();
                let found = self.inner.store.caller_by_key_hash(&hash).await?;
                let caller = Arc::new(found.ok_or_else(|| ApiError::unauthorized("Incorrect API key provided."))?);
                self.inner.keys.put(caller.clone(), now, generation);
                caller
            }
        };
        if caller.revoked {
            return Err(ApiError::unauthorized("This API key has been revoked."));
        }
        if caller.expires_at.is_some_and(|t| t <= now) {
            return Err(ApiError::unauthorized("This API key has expired."));
        }
        Ok(caller)
    }

    /// The configuration snapshot: loaded on first use, then served while a
    /// reload runs in the background once it is older than the TTL.
    pub(crate) async fn snapshot(&self) -> Result<Arc<Snapshot>, ApiError> {
        let now = self.inner.clock.now_ms();
        let current = self.inner.snapshot.read().ok().and_then(|s| s.clone());
        match current {
            Some((snap, at)) => {
                if now - at > self.inner.options.config_ttl_ms && !self.inner.refreshing.swap(true, Ordering::AcqRel) {
                    let hub = self.clone();
                    self.inner.background.spawn(Box::pin(async move {
                        if let Err(e) = hub.reload().await {
                            tracing::warn!("configuration reload failed: {}", e.message);
                        }
                        hub.inner.refreshing.store(false, Ordering::Release);
                    }));
                }
                Ok(snap)
            }
            None => self.reload().await,
        }
    }

    /// A newer snapshot when a lookup missed and the configuration changed
    /// since this one was loaded (one read of the version): a model or
    /// provider just added through another instance is found at once.
    pub(crate) async fn refresh_on_miss(&self, current: &Snapshot) -> Result<Option<Arc<Snapshot>>, ApiError> {
        if self.inner.store.config_version().await? == current.version {
            return Ok(None);
        }
        self.reload().await.map(Some)
    }

    /// Reloads the snapshot now (after a configuration change through this instance).
    pub(crate) async fn reload(&self) -> Result<Arc<Snapshot>, ApiError> {
        let snap = Arc::new(Snapshot::load(&self.inner.store, &self.inner.master_key).await?);
        self.inner.health.sync(&snap);
        let now = self.inner.clock.now_ms();
        if let Ok(mut slot) = self.inner.snapshot.write() {
            *slot = Some((snap.clone(), now));
        }
        Ok(snap)
    }

    /// A user's balance not held by calls in flight.
    pub(crate) async fn free_credit(&self, user: &str) -> Result<Credits, ApiError> {
        let u = self
            .inner
            .store
            .get_user(user)
            .await?
            .map(|u| self.live_user(u))
            .ok_or_else(|| ApiError::unauthorized("The key's user no longer exists."))?;
        Ok(u.balance.saturating_sub(u.held))
    }

    /// The 402 for a caller without enough free credit, with the payment link when there is one.
    pub(crate) fn not_enough(&self, settings: &crate::config::Settings, needed: Option<Credits>) -> ApiError {
        let mut msg = match needed {
            Some(amount) => format!(
                "Insufficient credits: this call needs up to {}{} of free balance.",
                settings.currency_prefix, amount
            ),
            None => "Insufficient credits: the balance is used up.".to_string(),
        };
        if let Some(link) = &settings.payment_link {
            msg.push_str(&format!(" Buy more credits at {link}"));
        }
        let mut e = ApiError::insufficient_credits(msg);
        e.payment = Some(Box::new(crate::error::Payment {
            link: settings.payment_link.clone(),
            timestamp: crate::time::iso8601(self.inner.clock.now_ms()),
        }));
        e
    }

    pub(crate) fn new_id(&self, prefix: &str) -> String {
        crate::ids::new_id(prefix, self.inner.clock.now_ms(), &*self.inner.rng)
    }
}

/// One model call being served; the count drops when it is dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn acquire(count: &Arc<AtomicUsize>, limit: usize) -> Option<InFlight> {
        if count.fetch_add(1, Ordering::AcqRel) >= limit {
            count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InFlight(count.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A streamed body that holds its call's slot.
struct Holding {
    inner: crate::http::ByteStream,
    _slot: InFlight,
}

impl futures_core::Stream for Holding {
    type Item = Result<bytes::Bytes, crate::http::BodyError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// The protocol a path's callers speak, which decides the error shape.
pub fn protocol_of(path: &str) -> Protocol {
    if path == "/v1/messages" {
        Protocol::Anthropic
    } else if path.starts_with("/api/v2/") || path.starts_with("/api/ai") || path == "/api/user/info" {
        Protocol::Aigne
    } else if path.starts_with("/v1/") {
        Protocol::OpenAi
    } else {
        Protocol::Hub
    }
}

/// Whether a path belongs to Hub's API (everything else may be the admin site).
pub fn is_api_path(path: &str) -> bool {
    path.starts_with("/v1/")
        || path.starts_with("/api/")
        || path.starts_with("/__blocklet__")
        || matches!(path, "/v1" | "/api" | "/healthz" | "/readyz")
}

/// The answer to a CORS preflight: allowed with the methods and headers Hub
/// takes, or refused (no CORS headers, so the browser blocks the call).
fn preflight(origin: Option<HeaderValue>) -> Response {
    let Some(origin) = origin else {
        return ApiError::forbidden("This origin may not call Hub from a browser (see HUB_CORS_ORIGINS).")
            .into_response(Protocol::Hub);
    };
    let mut res = http::Response::new(crate::http::Body::Full(bytes::Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    let h = res.headers_mut();
    h.insert("access-control-allow-origin", origin);
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static(
            "authorization, content-type, x-api-key, x-request-id, x-hub-app, anthropic-version, x-aigne-hub-client-did",
        ),
    );
    h.insert("access-control-max-age", HeaderValue::from_static("600"));
    h.insert("vary", HeaderValue::from_static("origin"));
    res
}

/// Adds a header to a response, ignoring values that are not valid header text.
pub(crate) fn set_header(res: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, v);
    }
}
