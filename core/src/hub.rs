//! The Hub and its state: the ports, the store, the configuration snapshot
//! and its reload, the credit book, key lookups. Everything above it (the
//! gateway, the admin API, the AIGNE API, the route table in [`crate::app`])
//! reaches the state through [`Hub`]'s accessors; nothing here knows about
//! routes or handlers.

use crate::auth::{hash_key, presented_key, Caller, KeyCache};
use crate::config::Snapshot;
use crate::crypto::MasterKey;
use crate::error::ApiError;
use crate::http::Request;
use crate::metering::book::CreditBook;
use crate::metering::money::Credits;
use crate::ports::{Background, Clock, Rng, SqlDb, Upstream};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

pub use crate::options::{HubOptions, Runtime};

pub(crate) mod cache;
pub(crate) mod credits;
pub(crate) mod health;
pub mod leases;
pub mod lessee;
pub(crate) mod settler;
pub(crate) mod speed;
pub mod telemetry;

struct Inner {
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
    /// Credit leased from a shared database, serving holds in memory.
    lessee: Option<lessee::Lessee>,
    /// Per-user wallets holding credit leases outside this process (a
    /// Worker's Durable Objects): used instead of `lessee` when set.
    wallets: OnceLock<Arc<dyn crate::ports::Wallets>>,
    pub health: health::Health,
    /// Providers' measured speed and failures (latency routing).
    speed: speed::Speed,
    /// Model calls being served (see `HubOptions::max_in_flight`).
    in_flight: Arc<AtomicUsize>,
    pub settler: settler::Settler,
    /// The OpenID provider's discovery document and keys, as last fetched.
    oidc: crate::accounts::discovery::Cache,
    /// How this runtime sends mail, if it can.
    mailer: OnceLock<Arc<dyn crate::ports::Mailer>>,
    /// Once-per-window notices this instance raised: what → the last window.
    notices: Mutex<HashMap<String, i64>>,
    /// The background delivery run of this instance (see `deliver_soon`).
    delivery_run: DeliveryRun,
    /// Metrics and the spans waiting for export.
    telemetry: crate::telemetry::Telemetry,
    /// Whether calls are traced (an OTLP traces endpoint is set).
    traces_on: bool,
    /// Whether anything is exported over OTLP.
    exports_on: bool,
    runtime: crate::options::Runtime,
    runtime_gauges: OnceLock<Arc<dyn crate::telemetry::metrics::RuntimeGauges>>,
    /// The response cache's answers this instance keeps in memory.
    response_cache: cache::Memory,
}

/// Whether a background delivery run is going on, and whether another was
/// asked for while it ran (it then goes round once more), so a burst of
/// events starts one run, not one each.
#[derive(Default)]
pub(crate) struct DeliveryRun {
    pub running: AtomicBool,
    pub again: AtomicBool,
}

/// The gateway. Cheap to clone; every runtime holds one and hands it requests.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
    /// The store requests use: the shared one, or for an admin write the
    /// same database with the request's audit entry riding on every write.
    store: Store,
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
        let store = Store::new(db);
        let telemetry = crate::telemetry::Telemetry::default();
        telemetry
            .started_ns
            .store((clock.now_ms().max(0) as u64) * 1_000_000, Ordering::Relaxed);
        let traces_on = options.otlp.traces_url().is_some();
        let exports_on = traces_on || (options.runtime != Runtime::Server && options.otlp.metrics_url().is_some());
        let runtime = options.runtime;
        let lessee = options
            .leases_on()
            .then(|| lessee::Lessee::new(store.clone(), options.lease_policy()));
        Hub {
            store: store.clone(),
            inner: Arc::new(Inner {
                store,
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
                lessee,
                wallets: OnceLock::new(),
                health: Default::default(),
                speed: Default::default(),
                in_flight: Arc::default(),
                settler: Default::default(),
                oidc: Default::default(),
                mailer: OnceLock::new(),
                notices: Mutex::default(),
                delivery_run: DeliveryRun::default(),
                telemetry,
                traces_on,
                exports_on,
                runtime,
                runtime_gauges: OnceLock::new(),
                response_cache: cache::Memory::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This Hub, with every write carrying an admin request's audit entry.
    pub(crate) fn audited(&self, trail: Arc<crate::store::AuditTrail>) -> Hub {
        Hub {
            inner: self.inner.clone(),
            store: self.inner.store.audited(trail),
        }
    }

    pub fn options(&self) -> &HubOptions {
        &self.inner.options
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// Milliseconds since the Unix epoch, by the Hub's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock().now_ms()
    }

    pub(crate) fn rng(&self) -> &dyn Rng {
        &*self.inner.rng
    }

    pub(crate) fn background(&self) -> &dyn Background {
        &*self.inner.background
    }

    pub(crate) fn master_key(&self) -> &MasterKey {
        &self.inner.master_key
    }

    /// Credentials' health as this instance sees it (cool-downs, re-checks).
    pub(crate) fn settler(&self) -> &settler::Settler {
        &self.inner.settler
    }

    pub(crate) fn health(&self) -> &health::Health {
        &self.inner.health
    }

    /// Providers' speed and failures as this instance measured them.
    pub(crate) fn speed(&self) -> &speed::Speed {
        &self.inner.speed
    }

    /// Gives this Hub a way to send mail (email sign-in links); set once, at start.
    pub fn set_mailer(&self, mailer: Arc<dyn crate::ports::Mailer>) {
        let _ = self.inner.mailer.set(mailer);
    }

    pub(crate) fn mailer(&self) -> Option<&dyn crate::ports::Mailer> {
        self.inner.mailer.get().map(|m| &**m)
    }

    /// Whether `what` was not yet announced by this instance for `window`
    /// (and now is). Bounded: old windows are forgotten.
    pub(crate) fn first_notice(&self, what: &str, window: i64) -> bool {
        let Ok(mut seen) = self.inner.notices.lock() else {
            return true;
        };
        if seen.get(what).is_some_and(|w| *w >= window) {
            return false;
        }
        if seen.len() >= 10_000 {
            seen.clear();
        }
        seen.insert(what.to_string(), window);
        true
    }

    pub(crate) fn delivery_run(&self) -> &DeliveryRun {
        &self.inner.delivery_run
    }

    pub(crate) fn oidc_cache(&self) -> &crate::accounts::discovery::Cache {
        &self.inner.oidc
    }

    /// The cache of key lookups; cleared whenever a key or its user changes.
    pub(crate) fn keys(&self) -> &KeyCache {
        &self.inner.keys
    }

    /// Balances and holds in memory, when this process owns the database.
    pub(crate) fn response_cache(&self) -> &cache::Memory {
        &self.inner.response_cache
    }

    pub(crate) fn book(&self) -> Option<&CreditBook> {
        self.inner.book.get()
    }

    pub(crate) fn leases(&self) -> Option<&crate::metering::lease::LeaseBook> {
        self.inner.lessee.as_ref().map(lessee::Lessee::book)
    }

    pub(crate) fn lessee(&self) -> Option<&lessee::Lessee> {
        self.inner.lessee.as_ref()
    }

    /// Gives this Hub per-user wallets to hold calls' credit from (a
    /// Worker's wallet Durable Objects); set once, before serving.
    pub fn set_wallets(&self, wallets: Arc<dyn crate::ports::Wallets>) {
        let _ = self.inner.wallets.set(wallets);
    }

    pub(crate) fn wallets(&self) -> Option<&Arc<dyn crate::ports::Wallets>> {
        self.inner.wallets.get()
    }

    /// Model calls being served, counted against `HubOptions::max_in_flight`.
    pub(crate) fn in_flight(&self) -> &Arc<AtomicUsize> {
        &self.inner.in_flight
    }

    /// A secret sealed with the master key, for storing.
    pub(crate) fn seal(&self, secret: &str) -> Result<String, ApiError> {
        self.inner.master_key.encrypt(secret, self.rng()).map_err(no_randomness)
    }

    /// A new API key (its plaintext, hash and hint).
    pub(crate) fn generate_key(&self) -> Result<crate::auth::NewKey, ApiError> {
        crate::auth::generate_key(self.rng(), self.master_key().key_hash_secret()).map_err(no_randomness)
    }

    /// Where provider requests may go.
    pub fn outbound(&self) -> crate::net::OutboundPolicy {
        crate::net::OutboundPolicy::new(self.inner.options.allow_link_local)
    }

    /// Where webhook deliveries may go: the provider policy, and no private
    /// networks unless `HUB_ALLOW_PRIVATE_WEBHOOKS=1`.
    pub fn webhook_policy(&self) -> crate::net::OutboundPolicy {
        crate::net::OutboundPolicy {
            allow_link_local: self.inner.options.allow_link_local,
            refuse_private: !self.inner.options.allow_private_webhooks,
        }
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
        let now = self.now_ms();
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
        // Video jobs decided but never settled (the process ended in
        // between): likewise before the book reads the balances. (On a
        // shared database the scheduled job commits them.)
        if self.inner.options.exclusive_database {
            let settled = self
                .settle_all_lost_video_jobs(now)
                .await
                .map_err(|e| crate::store::MigrateError::Db(crate::ports::DbError::Other(e.message)))?;
            if settled > 0 {
                tracing::warn!(
                    settled,
                    "committed video job settlements a previous process had decided"
                );
            }
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
            let buckets = self.inner.store.all_live_buckets().await?;
            let book = CreditBook::with_balances(
                self.inner.store.balances().await?,
                buckets.iter().map(|b| (b.user_id.clone(), b.book_bucket())),
            );
            // A running video job's hold outlives the process that placed it.
            for (user, held) in self.inner.store.open_video_holds().await? {
                book.restore_hold(&user, held);
            }
            let _ = self.inner.book.set(book);
        }
        Ok(())
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
        let now = self.now_ms();
        let hash = self.key_hash(plaintext);
        let hint = crate::auth::key_hint(plaintext);
        let user_id = crate::ids::new_id("usr", now, self.rng());
        let key_id = crate::ids::new_id("key", now, self.rng());
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
            team_id: None,
        };
        let created = self.inner.store.ensure_owner_key(&user_id, key).await?;
        if let Some(book) = self.inner.book.get() {
            book.open(&user_id, Credits::ZERO, Vec::new());
        }
        self.inner.keys.clear();
        Ok(created)
    }

    /// Whether holds are rows in the database (a shared database).
    pub(crate) fn holds_in_database(&self) -> bool {
        self.inner.book.get().is_none()
    }

    /// A user row as callers should see it: with the holds in flight. Credit
    /// leases are the user's own credit set aside for their calls: of them,
    /// only what this instance's calls hold counts as held.
    pub(crate) fn live_user(&self, mut u: crate::store::UserRow) -> crate::store::UserRow {
        if let Some(acc) = self.inner.book.get().and_then(|b| b.account(&u.id)) {
            u.held = Credits::from_nanos(acc.held);
        } else if u.leased > Credits::ZERO {
            let (_, in_calls) = self.leases().map_or((0, 0), |b| b.leased(&u.id));
            u.held = u
                .held
                .saturating_sub(u.leased)
                .saturating_add(Credits::from_nanos(in_calls));
        }
        u
    }

    /// The caller behind the request's key: 401 when missing, unknown,
    /// revoked or expired. (Browser sessions are the front door's, see
    /// `app::caller`.)
    pub(crate) async fn authenticate(&self, req: &Request) -> Result<Arc<Caller>, ApiError> {
        let key = presented_key(req.headers()).ok_or_else(|| {
            ApiError::unauthorized("Missing API key: send `Authorization: Bearer <key>` (or `x-api-key`), or sign in.")
        })?;
        let hash = self.key_hash(key);
        let now = self.now_ms();
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
        let now = self.now_ms();
        let current = self.inner.snapshot.read().ok().and_then(|s| s.clone());
        match current {
            Some((snap, at)) => {
                if now - at > self.inner.options.config_ttl_ms && !self.inner.refreshing.swap(true, Ordering::AcqRel) {
                    let hub = self.clone();
                    self.background().spawn(Box::pin(async move {
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
        self.health()
            .sync(snap.credentials().map(|c| (c.id.as_str(), c.updated_at)));
        let now = self.now_ms();
        if let Ok(mut slot) = self.inner.snapshot.write() {
            *slot = Some((snap.clone(), now));
        }
        Ok(snap)
    }

    /// A user's balance not held by calls in flight (credit past its expiry
    /// expired first).
    pub(crate) async fn free_credit(&self, user: &str) -> Result<Credits, ApiError> {
        let u = self
            .current_user(user)
            .await?
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

/// A 503 for a failed random source: nothing was written, the caller may retry.
pub(crate) fn no_randomness(e: crate::ports::RngError) -> ApiError {
    tracing::error!("{e}");
    ApiError::unavailable("Hub could not get randomness from the platform; nothing was changed, retry in a moment.")
}
