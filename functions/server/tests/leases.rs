//! Credit leases: several `hub serve` processes on one remote libSQL
//! database (the Hrana test server) serve one user's calls from leases on
//! the user's balance, and together never spend more than it; an instance
//! killed midway loses its lease only until the lease's TTL.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{cost_nanos, nanos, Api, HranaServer, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

/// A lease lives 3 s unless renewed; an idle one is returned after 1 s.
const LEASE_ENV: [(&str, &str); 3] = [
    ("HUB_LEASE_TTL", "3"),
    ("HUB_CACHE_TTL", "1"),
    ("HUB_TICK_INTERVAL", "1"),
];

struct Fleet {
    hrana: HranaServer,
    hubs: Vec<HubServer>,
    apis: Vec<Api>,
    mock: MockProvider,
    /// Each instance's settlement journal, kept across a restart.
    journals: Vec<PathBuf>,
}

fn launch(hrana: &HranaServer, journal: &Path) -> Launch {
    let mut l = Launch::remote(hrana);
    l.env
        .extend(LEASE_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    l.env.push(("HUB_JOURNAL_DIR".into(), journal.display().to_string()));
    l
}

async fn start(hrana: &HranaServer, journal: &Path) -> HubServer {
    let l = launch(hrana, journal);
    tokio::task::spawn_blocking(move || HubServer::start(bin(), l))
        .await
        .unwrap()
}

/// A mock provider whose model answers 10 + 20 tokens, its headers
/// `header_delay` late.
async fn mock_model(header_delay: Duration) -> MockProvider {
    let mock = MockProvider::start().await;
    mock.set(
        "mock-model",
        Behavior {
            prompt_tokens: 10,
            completion_tokens: 20,
            header_delay,
            ..Default::default()
        },
    );
    mock
}

/// The mock's model offered at 1000 credits per million tokens each way.
async fn offer_model(api: &Api, mock: &MockProvider) {
    let provider = api
        .setup_provider("mock", &mock.base_url(), "sk-mock-secret-0001")
        .await;
    api.add_model(
        &provider,
        "mock-model",
        json!({"input_rate": 1000, "output_rate": 1000}),
    )
    .await;
}

/// Three instances on one database, a mock model at 1000 credits per
/// million tokens each way answering 10 + 20 tokens.
async fn fleet(tag: &str) -> Fleet {
    let dir = hub_e2e::temp_dir(tag);
    let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
    let mock = mock_model(Duration::from_millis(15)).await;
    let journals: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("journal-{i}"))).collect();
    let mut hubs = Vec::new();
    for j in &journals {
        hubs.push(start(&hrana, j).await);
    }
    let apis: Vec<Api> = hubs.iter().map(|h| Api::new(&h.base)).collect();
    offer_model(&apis[0], &mock).await;
    Fleet {
        hrana,
        hubs,
        apis,
        mock,
        journals,
    }
}

fn decimal(n: i128) -> String {
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}.{:09}", n.abs() / 1_000_000_000, n.abs() % 1_000_000_000)
}

fn per_call() -> i128 {
    cost_nanos(&[(10, "1000"), (20, "1000")])
}

/// What the load saw.
#[derive(Default)]
struct Outcome {
    ok: AtomicUsize,
    refused: AtomicUsize,
    /// Calls to an instance that died under them (connection reset or refused).
    lost: AtomicUsize,
}

/// `total` calls by `workers` concurrent clients, round-robin over the
/// instances; `on_done(n)` after each call (n calls done so far).
async fn load(
    apis: &[Api],
    key: &str,
    total: usize,
    workers: usize,
    on_done: impl Fn(usize) + Send + Sync + 'static,
) -> Arc<Outcome> {
    let outcome = Arc::new(Outcome::default());
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let on_done = Arc::new(on_done);
    let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20});
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (apis, key, body) = (apis.to_vec(), key.to_string(), body.clone());
            let (outcome, next, done, on_done) = (outcome.clone(), next.clone(), done.clone(), on_done.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= total {
                        break;
                    }
                    let api = &apis[n % apis.len()];
                    let sent = api
                        .http
                        .post(format!("{}/v1/chat/completions", api.base))
                        .bearer_auth(&key)
                        .json(&body)
                        .timeout(Duration::from_secs(20))
                        .send()
                        .await;
                    let status = match sent {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            // A body cut by a dying instance counts as lost, not as an answer.
                            match r.bytes().await {
                                Ok(_) => Some(s),
                                Err(_) => None,
                            }
                        }
                        Err(_) => None,
                    };
                    match status {
                        Some(200) => outcome.ok.fetch_add(1, Ordering::SeqCst),
                        Some(402) => outcome.refused.fetch_add(1, Ordering::SeqCst),
                        Some(other) => panic!("unexpected status {other}"),
                        None => outcome.lost.fetch_add(1, Ordering::SeqCst),
                    };
                    on_done(done.fetch_add(1, Ordering::SeqCst) + 1);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    outcome
}

fn count(db: &Path, sql: &str) -> i64 {
    hub_e2e::sqlite(db, sql)[0][0].as_i64().unwrap()
}

/// Waits until no hold or lease is open in the database (leases returned when
/// idle, or expired and swept).
async fn no_open_holds(db: &Path, within: Duration) {
    let db = db.to_path_buf();
    hub_e2e::eventually("every hold and lease closed", within, move || {
        let db = db.clone();
        async move {
            match count(&db, "SELECT COUNT(*) FROM holds WHERE state = 'open'") {
                0 => Ok(()),
                n => Err(format!("{n} open")),
            }
        }
    })
    .await;
}

/// The balance, the ledger and the usage rows agree, and the audit finds nothing.
async fn assert_exact(f: &Fleet, user: &str, grant: i128) -> (Value, i64) {
    let billed = count(
        &f.hrana.db,
        &format!("SELECT COUNT(*) FROM usage WHERE user_id = '{user}' AND credits > 0"),
    );
    let u = f.apis[0]
        .wait_user(user, "every settlement committed", |u| {
            u["held"] == "0" && nanos(&u["balance"]) == grant - billed as i128 * per_call()
        })
        .await;
    assert_eq!(
        f.apis[0].ledger_sum(user).await,
        nanos(&u["balance"]),
        "the ledger sums to the balance"
    );
    assert_eq!(
        count(
            &f.hrana.db,
            &format!("SELECT COUNT(*) FROM ledger WHERE user_id = '{user}' AND kind = 'usage'"),
        ),
        billed,
        "one ledger entry per billed call"
    );
    let audit = hub_e2e::audit_db_settled(&f.hrana.db);
    assert!(audit.problems.is_empty(), "database audit: {:?}", audit.problems);
    (u, billed)
}

#[tokio::test]
async fn three_instances_never_spend_more_than_the_balance() {
    let f = fleet("leases-3").await;
    let grant = 40 * per_call();
    let (user, key) = f.apis[0].user_with_key("lea", &decimal(grant)).await;

    let out = load(&f.apis, &key, 300, 30, |_| {}).await;
    let ok = out.ok.load(Ordering::SeqCst);
    let refused = out.refused.load(Ordering::SeqCst);
    assert_eq!(out.lost.load(Ordering::SeqCst), 0);
    assert_eq!(ok + refused, 300);
    assert!(ok <= 40, "{ok} calls succeeded on a balance that covers 40");
    // Leases set credit aside per instance; near the end of the balance
    // calls hold rows, so little is left unused.
    assert!(ok >= 32, "only {ok} of 40 affordable calls succeeded");
    assert_eq!(
        f.mock.received().len(),
        ok,
        "every call the provider answered was a success"
    );

    no_open_holds(&f.hrana.db, Duration::from_secs(10)).await;
    let (u, billed) = assert_exact(&f, &user, grant).await;
    assert_eq!(billed as usize, ok);
    assert!(nanos(&u["balance"]) >= 0);
    // Leases were taken and charged: the calls' hold rows carry the lease they came from.
    let from_leases = count(
        &f.hrana.db,
        &format!("SELECT COUNT(*) FROM holds WHERE user_id = '{user}' AND lease_id IS NOT NULL"),
    );
    let leases = count(
        &f.hrana.db,
        &format!("SELECT COUNT(*) FROM holds WHERE user_id = '{user}' AND kind = 'lease'"),
    );
    assert!(
        from_leases > 0 && leases > 0,
        "{from_leases} calls from {leases} leases"
    );
    assert!(leases < from_leases as i64, "{leases} leases for {from_leases} calls");
}

#[tokio::test]
async fn an_instance_killed_midway_loses_its_lease_only_until_the_ttl() {
    let mut f = fleet("leases-kill").await;
    let grant = 40 * per_call();
    let (user, key) = f.apis[0].user_with_key("kim", &decimal(grant)).await;

    // SIGKILL the second instance once a third of the calls are done.
    let victim = Arc::new(std::sync::Mutex::new(Some(f.hubs.remove(1))));
    let killer = victim.clone();
    let out = load(&f.apis, &key, 300, 30, move |n| {
        if n == 100 {
            if let Some(mut hub) = killer.lock().unwrap().take() {
                hub.child.kill().unwrap();
                hub.child.wait().unwrap();
                // Dropped here: its directory stays (the journal is elsewhere).
            }
        }
    })
    .await;
    assert!(victim.lock().unwrap().is_none(), "the instance was killed");
    let ok = out.ok.load(Ordering::SeqCst);
    assert!(out.lost.load(Ordering::SeqCst) > 0, "calls to the dead instance failed");
    assert!(ok <= 40, "{ok} calls succeeded on a balance that covers 40");

    // Its lease and holds expire (3 s) and the tick of a live instance sweeps them.
    no_open_holds(&f.hrana.db, Duration::from_secs(15)).await;
    // Restarted on its journal, it commits whatever it answered but had not written.
    let restarted = start(&f.hrana, &f.journals[1]).await;
    let (u, billed) = assert_exact(&f, &user, grant).await;
    assert!(
        billed as usize >= ok,
        "every answered call is billed ({billed} of {ok})"
    );
    assert!(
        billed as usize <= f.mock.received().len(),
        "no call billed that the provider did not answer"
    );
    // Calls the dead instance answered and had not committed are billed when
    // its journal replays, possibly after its lease had expired and others
    // spent that credit: at most the calls it had in flight.
    assert!(nanos(&u["balance"]) >= -10 * per_call(), "balance {}", u["balance"]);
    drop(restarted);
}

#[tokio::test]
async fn credit_taken_away_revokes_leases_and_a_grant_is_used_at_once() {
    let f = fleet("leases-revoke").await;
    let (user, key) = f.apis[0].user_with_key("rev", &decimal(100 * per_call())).await;
    // Warm every instance: each holds a lease now.
    let out = load(&f.apis, &key, 30, 3, |_| {}).await;
    assert_eq!(out.ok.load(Ordering::SeqCst), 30);
    let open_leases =
        format!("SELECT COUNT(*) FROM holds WHERE user_id = '{user}' AND kind = 'lease' AND state = 'open'");
    assert!(count(&f.hrana.db, &open_leases) >= 1);

    // Taking away all but 5 calls' worth revokes the leases in the database:
    // they stay counted in `held` until the calls open on them end, and take
    // no new hold.
    let u = f.apis[0].user(&user).await;
    let left = nanos(&u["balance"]) - 5 * per_call();
    f.apis[0]
        .admin(
            Method::POST,
            &format!("/api/admin/users/{user}/grants"),
            Some(json!({"amount": decimal(-left), "reason": "revoked"})),
        )
        .await;
    let unrevoked = format!("{open_leases} AND revoked_at IS NULL");
    assert_eq!(count(&f.hrana.db, &unrevoked), 0, "the adjustment revoked every lease");
    // Within a check (1 s) every instance has stopped using its lease: at
    // most 5 more calls pass, however many are tried.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = load(&f.apis, &key, 60, 6, |_| {}).await;
    let ok = after.ok.load(Ordering::SeqCst);
    assert!(ok <= 5, "{ok} calls passed on 5 calls' worth");

    // A grant is usable at once from any instance.
    f.apis[0]
        .admin(
            Method::POST,
            &format!("/api/admin/users/{user}/grants"),
            Some(json!({"amount": decimal(20 * per_call()), "reason": "top-up"})),
        )
        .await;
    // (A call holds its worst case, a little more than it costs: 20 calls'
    // worth covers 10 calls with room to spare.)
    let more = load(&f.apis, &key, 10, 2, |_| {}).await;
    assert_eq!(more.ok.load(Ordering::SeqCst), 10, "the grant covers 10 more calls");
    no_open_holds(&f.hrana.db, Duration::from_secs(10)).await;
    let grants = 100 * per_call() - left + 20 * per_call();
    let (u, _) = assert_exact(&f, &user, grants).await;
    assert!(nanos(&u["balance"]) >= 0);
}

/// A shared database that cannot be reached: a call that needs it for its
/// hold is refused with 503 in the caller's protocol before any provider is
/// asked, and a lease is never used past its expiry to avoid asking.
#[tokio::test]
async fn an_unreachable_database_is_a_503_before_the_provider() {
    let dir = hub_e2e::temp_dir("leases-down");
    let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
    let mock = mock_model(Duration::ZERO).await;
    // Keys and configuration stay cached all along: only holds need the database.
    let mut l = launch(&hrana, &dir.join("journal"));
    l.env.push(("HUB_CACHE_TTL".into(), "30".into()));
    let hub = tokio::task::spawn_blocking(move || HubServer::start(bin(), l))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    offer_model(&api, &mock).await;
    let (_, warm) = api.user_with_key("warm", &decimal(100 * per_call())).await;
    let (_, cold) = api.user_with_key("cold", &decimal(100 * per_call())).await;
    let chat = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20});
    let messages = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20});
    let post = |path: &'static str, key: String, body: Value| {
        let api = api.clone();
        async move {
            let r = api
                .http
                .post(format!("{}{path}", api.base))
                .bearer_auth(&key)
                .header("anthropic-version", "2023-06-01")
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // `warm` holds a lease; `cold` held one, returned once idle (1 s).
    assert_eq!(post("/v1/chat/completions", warm.clone(), chat.clone()).await.0, 200);
    assert_eq!(post("/v1/messages", cold.clone(), messages.clone()).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(post("/v1/chat/completions", warm.clone(), chat.clone()).await.0, 200);
    drop(hrana);

    // Without a lease the hold needs the database: 503 in the caller's protocol.
    let (status, body) = post("/v1/messages", cold.clone(), messages.clone()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "overloaded_error", "{body}");
    // A lease that could not be renewed takes no holds once a third of its
    // TTL (3 s) is left: 503 too, never a call past the lease.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let answered = mock.received().len();
    let (status, body) = post("/v1/chat/completions", warm.clone(), chat.clone()).await;
    assert_eq!(status, 503, "a lease past its time is not used: {body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert_eq!(mock.received().len(), answered, "no provider was asked without a hold");
}

/// With the database 20 ms away (every request to it answered 20 ms late),
/// a warm call served from a lease costs what it costs on the embedded
/// database, and the database sees far fewer writes than calls.
#[tokio::test]
async fn warm_calls_on_a_distant_database_cost_what_they_cost_embedded() {
    let dir = hub_e2e::temp_dir("leases-far");
    let hrana = HranaServer::start_with(&hub_e2e::hrana_script(), &dir, 20);
    let mock = mock_model(Duration::ZERO).await;
    let remote = Launch::remote(&hrana);
    let (far, near) = tokio::task::spawn_blocking(|| {
        (
            HubServer::start(bin(), remote),
            HubServer::start(bin(), Launch::default()),
        )
    })
    .await
    .unwrap();
    let mut keys = Vec::new();
    for hub in [&far, &near] {
        let api = Api::new(&hub.base);
        offer_model(&api, &mock).await;
        let (_, key) = api.user_with_key("ada", "1000").await;
        keys.push((api, key));
    }
    let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20});
    let call = |api: &Api, key: &str| {
        let req = api
            .http
            .post(format!("{}/v1/chat/completions", api.base))
            .bearer_auth(key)
            .json(&body);
        async move {
            let started = std::time::Instant::now();
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
            started.elapsed().as_secs_f64() * 1000.0
        }
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    // Warm: keys cached, leases taken and grown to the rate of calls.
    for _ in 0..40 {
        for (api, key) in &keys {
            call(api, key).await;
        }
    }
    // Three rounds of 100 interleaved calls; the best round counts (a
    // machine shared with other tests adds noise to both sides, never less).
    let mut best = f64::MAX;
    let mut report = String::new();
    for _ in 0..3 {
        let before = hrana.stats();
        let (mut far_ms, mut near_ms) = (Vec::new(), Vec::new());
        for _ in 0..100 {
            far_ms.push(call(&keys[0].0, &keys[0].1).await);
            near_ms.push(call(&keys[1].0, &keys[1].1).await);
        }
        // Settlements commit in the background: count the writes they made.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let used = hrana.stats() - before;
        let (far_p50, near_p50) = (median(far_ms), median(near_ms));
        let ratio = used.write_transactions as f64 / 100.0;
        report = format!(
            "p50 {far_p50:.2} ms on the distant database, {near_p50:.2} ms embedded; \
             {} write transactions and {} requests for 100 calls ({ratio:.2} writes per call)",
            used.write_transactions, used.requests
        );
        println!("{report}");
        assert!(ratio < 0.5, "{report}");
        best = best.min(far_p50 - near_p50);
        if best < 1.0 {
            break;
        }
    }
    assert!(
        best < 1.0,
        "a warm call adds {best:.2} ms at p50 over the embedded database: {report}"
    );
}
