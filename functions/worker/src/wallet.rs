//! Wallets: one Durable Object per user (`WALLETS`, `id_from_name(user)`)
//! holds that user's credit lease, so a call's hold is one wallet call and no
//! D1 query. D1 stays the ledger of record: a lease is a hold row of kind
//! `lease` there (taken, renewed, charged and returned as on a shared libSQL
//! database, see `hub_core::hub::lessee::Lessee`); the wallet only keeps in
//! memory what of it calls hold.
//!
//! A wallet keeps nothing in its own storage. Evicted or restarted (a
//! deploy restarts every wallet), it forgets its lease: the row lapses at its expiry (`HUB_LEASE_TTL`) and the
//! cron tick releases it (what was left of it is free again), calls still
//! open on it settle against the ledger as always, and the next call takes a
//! new lease. So at worst a TTL's worth of the lease is locked; a call still
//! open then is charged without its reservation (the balance can dip by it).
//! The upkeep alarm, due every few seconds while a lease is held, keeps the
//! object in use meanwhile.
//!
//! Internal API (JSON over the binding, never routed from outside; amounts
//! in nano-credits):
//! * `POST /hold {user, call, amount}` → `{lease}`, or `{lease: null}`: no
//!   lease covers it (near the end of the balance), the call holds a D1 row;
//! * `POST /close {user, lease, call, charge}`: `call` ended; its charge, if
//!   any, is already committed to D1. Applied once per call (a retry, or a
//!   close with `lease: null` for a hold whose answer never arrived, of a
//!   call it does not hold, changes nothing);
//! * `POST /held {user}` → `{held}`: what calls open on the leases hold;
//! * `POST /revoke {user}`: credit was taken from the user (their leases
//!   were revoked in D1 with it): holds stop coming from them now, and they
//!   are returned once the calls open on them end.
//!
//! A D1 failure inside the wallet answers 503; the caller answers its own
//! 503 before anything is sent to a provider.

use crate::runtime::WorkerRng;
use futures_util::future::{select, Either};
use hub_core::hub::lessee::Lessee;
use hub_core::metering::lease::{LeaseId, LeasePolicy};
use hub_core::metering::money::Credits;
use hub_core::options::{HubOptions, Runtime};
use hub_core::ports::{DbError, Wallets};
use hub_core::store::Store;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;
use worker::{durable_object, DurableObject, Env, Method, ObjectNamespace, Request, RequestInit, Response, State};

/// The binding of the wallets' namespace.
pub const BINDING: &str = "WALLETS";

/// How long a call waits for its wallet before answering 503: a hold that
/// takes a lease waits for one D1 write, normally a few milliseconds.
const WALLET_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize)]
struct HoldAsk {
    user: String,
    call: String,
    amount: i64,
    /// How long the hold lives if the call's end is never heard of.
    ttl_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct HoldAnswer {
    lease: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Close {
    user: String,
    /// None: a hold whose answer never reached the caller, dropped.
    lease: Option<String>,
    call: String,
    charge: i64,
}

/// `/held` and `/revoke` name only the user.
#[derive(Serialize, Deserialize)]
struct Of {
    user: String,
}

#[derive(Serialize, Deserialize)]
struct Held {
    held: i64,
}

fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}

/// One user's wallet.
#[durable_object(alarm)]
pub struct Wallet {
    state: State,
    /// The lease holder on D1; an error when the environment lacks what it needs.
    lessee: Result<Lessee, String>,
    /// Whether an upkeep alarm is set (by this instance).
    alarm_set: Cell<bool>,
}

impl Wallet {
    async fn hold(&self, ask: HoldAsk) -> worker::Result<Response> {
        let lessee = match self.lessee.as_ref() {
            Ok(l) => l,
            Err(msg) => return unavailable(msg),
        };
        let held = lessee
            .hold(
                &ask.user,
                &ask.call,
                Credits::from_nanos(ask.amount),
                ask.ttl_ms,
                now_ms,
                || hub_core::ids::new_id("lse", now_ms(), &WorkerRng),
            )
            .await;
        match held {
            Ok(lease) => {
                if lease.is_some() {
                    self.keep_up().await;
                }
                Response::from_json(&HoldAnswer {
                    lease: lease.map(|l| l.to_string()),
                })
            }
            Err(e) => unavailable(&e.to_string()),
        }
    }

    /// Sets the upkeep alarm unless one is set: leases in use are renewed,
    /// idle ones returned, while the wallet has any.
    async fn keep_up(&self) {
        let Ok(lessee) = self.lessee.as_ref() else { return };
        if self.alarm_set.get() || !lessee.book().has_leases() {
            return;
        }
        let every = lessee.book().policy().upkeep_every_ms();
        match self
            .state
            .storage()
            .set_alarm(Duration::from_millis(every as u64))
            .await
        {
            Ok(()) => self.alarm_set.set(true),
            // The lease then lapses at its expiry (see the module's notes).
            Err(e) => worker::console_error!("wallet: cannot set the upkeep alarm: {e}"),
        }
    }
}

impl DurableObject for Wallet {
    fn new(state: State, env: Env) -> Self {
        Wallet {
            state,
            lessee: lessee(&env),
            alarm_set: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        if req.method() != Method::Post {
            return Response::error("POST only", 405);
        }
        match req.path().as_str() {
            "/hold" => self.hold(req.json().await?).await,
            "/close" => {
                let c: Close = req.json().await?;
                if let Ok(l) = self.lessee.as_ref() {
                    match c.lease.as_deref() {
                        // Its charge is committed already: nothing left unsettled.
                        Some(lease) => {
                            l.book().close(&c.user, Some(lease), &c.call, c.charge, false);
                        }
                        // A hold whose answer was lost: ended, or refused if it comes later.
                        None => l.book().cancel(&c.user, &c.call, now_ms()),
                    }
                }
                Response::empty()
            }
            "/held" => {
                let of: Of = req.json().await?;
                let held = self.lessee.as_ref().map_or(0, |l| l.book().leased(&of.user).1);
                Response::from_json(&Held { held })
            }
            "/revoke" => {
                let of: Of = req.json().await?;
                if let Ok(l) = self.lessee.as_ref() {
                    l.revoke(&of.user);
                }
                Response::empty()
            }
            _ => Response::error("Not found", 404),
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.alarm_set.set(false);
        if let Ok(l) = self.lessee.as_ref() {
            // Calls whose end never arrives are given up on at their hold
            // TTL; their leases, idle then, are returned and the alarm stops.
            if let Err(e) = l.upkeep(now_ms()).await {
                // Tried again at the next alarm; a lease not renewed in time lapses.
                worker::console_error!("wallet: lease upkeep failed: {e}");
            }
        }
        self.keep_up().await;
        Response::empty()
    }
}

/// The wallet's lease holder: on the D1 binding `DB`, with the leases'
/// lifetime and checks from the same variables as the Worker's Hub.
fn lessee(env: &Env) -> Result<Lessee, String> {
    let db = env
        .d1("DB")
        .map_err(|e| format!("the D1 binding `DB` is missing: {e}"))?;
    let policy = policy(env)?;
    Ok(Lessee::new(Store::new(Arc::new(hub_d1::D1Db::new(db))), policy))
}

fn policy(env: &Env) -> Result<LeasePolicy, String> {
    let options = HubOptions::from_lookup(Runtime::Worker, |name| crate::var(env, name)).map_err(|e| e.to_string())?;
    Ok(options.lease_policy())
}

fn unavailable(msg: &str) -> worker::Result<Response> {
    worker::console_error!("wallet: {msg}");
    Response::error(format!("wallet unavailable: {msg}"), 503)
}

/// The Worker's side: each user's wallet reached through the binding.
pub struct DurableWallets {
    namespace: ObjectNamespace,
}

impl DurableWallets {
    pub fn new(namespace: ObjectNamespace) -> Self {
        DurableWallets { namespace }
    }

    /// Sends `body` to `user`'s wallet at `path`; an error unless it answers
    /// 200 within [`WALLET_TIMEOUT`].
    async fn send<B: Serialize>(&self, user: &str, path: &str, body: &B) -> Result<Response, DbError> {
        let down = |what: String| DbError::Unavailable(format!("wallet: {what}"));
        let stub = self
            .namespace
            .id_from_name(user)
            .and_then(|id| id.get_stub())
            .map_err(|e| down(e.to_string()))?;
        let json = serde_json::to_string(body).map_err(|e| down(e.to_string()))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(json.into()));
        let req = Request::new_with_init(&format!("https://wallet{path}"), &init).map_err(|e| down(e.to_string()))?;
        let sending = Box::pin(stub.fetch_with_request(req));
        let timer = worker::Delay::from(WALLET_TIMEOUT);
        let mut resp = match select(sending, timer).await {
            Either::Left((Ok(r), _)) => r,
            Either::Left((Err(e), _)) => return Err(down(e.to_string())),
            Either::Right(_) => return Err(down(format!("no answer within {WALLET_TIMEOUT:?}"))),
        };
        if resp.status_code() != 200 {
            let text = resp.text().await.unwrap_or_default();
            return Err(down(format!("{} {text}", resp.status_code())));
        }
        Ok(resp)
    }
}

#[async_trait::async_trait(?Send)]
impl Wallets for DurableWallets {
    async fn hold(&self, user: &str, call: &str, amount: Credits, ttl_ms: i64) -> Result<Option<LeaseId>, DbError> {
        let ask = HoldAsk {
            user: user.to_string(),
            call: call.to_string(),
            amount: amount.nanos(),
            ttl_ms,
        };
        let mut resp = self.send(user, "/hold", &ask).await?;
        let answer: HoldAnswer = resp
            .json()
            .await
            .map_err(|e| DbError::Unavailable(format!("wallet: a bad answer: {e}")))?;
        Ok(answer.lease.map(LeaseId::from))
    }

    async fn close(&self, user: &str, lease: Option<&str>, call: &str, charge: Credits) -> Result<(), DbError> {
        let close = Close {
            user: user.to_string(),
            lease: lease.map(str::to_string),
            call: call.to_string(),
            charge: charge.nanos(),
        };
        self.send(user, "/close", &close).await.map(drop)
    }

    async fn held(&self, user: &str) -> Result<Credits, DbError> {
        let of = Of { user: user.to_string() };
        let mut resp = self.send(user, "/held", &of).await?;
        let held: Held = resp
            .json()
            .await
            .map_err(|e| DbError::Unavailable(format!("wallet: a bad answer: {e}")))?;
        Ok(Credits::from_nanos(held.held))
    }

    async fn revoke(&self, user: &str) -> Result<(), DbError> {
        let of = Of { user: user.to_string() };
        self.send(user, "/revoke", &of).await.map(drop)
    }
}
