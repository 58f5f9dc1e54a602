//! Credits that expire, on a real embedded database: the ledger trigger's
//! spending order (SQLite evaluates an UPDATE's correlated subqueries row by
//! row, so the allocation statement is proven here), the expiry job, holds
//! that cannot use expired credit, and the in-memory credit book agreeing
//! with the trigger on random sequences.

mod common;

use hub_core::metering::book::{Bucket, CreditBook};
use hub_core::ports::Clock;
use hub_core::store::{grant_stmt, Grant, GrantIf, Store};
use hub_core::Credits;
use hub_libsql::LibSqlDb;
use std::sync::Arc;

const USER: &str = "usr_expiry";

async fn store(dir: &common::TempDir) -> Store {
    let db = LibSqlDb::open(dir.0.join("hub.db").to_str().unwrap(), None)
        .await
        .unwrap();
    common::store_with_user(Arc::new(db), USER).await
}

/// A grant (an adjustment when negative), expiring at `expires_at`; returns its ledger id.
async fn grant(store: &Store, amount: i64, expires_at: Option<i64>, now: i64) -> i64 {
    let reference = format!("test:{}", unique());
    let g = Grant {
        user_id: USER,
        amount: Credits::from_nanos(amount),
        reason: Some("test"),
        created_by: None,
        reference: Some(reference.clone()),
        expires_at,
        now_ms: now,
    };
    store.commit(vec![grant_stmt(&g, GrantIf::Always)]).await.unwrap();
    store
        .ledger_id(&reference)
        .await
        .unwrap()
        .expect("the grant was written")
}

fn unique() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A call's usage entry, as settlement writes it.
async fn usage(store: &Store, amount: i64, now: i64) {
    let call = format!("call_{}", unique());
    store
        .commit(vec![hub_core::sql!(
            "INSERT INTO ledger (user_id, kind, amount, call_id, reason, created_at) VALUES (?1, 'usage', ?2, ?3, 'm', ?4)",
            USER,
            -amount,
            call,
            now
        )])
        .await
        .unwrap();
}

async fn balance(store: &Store) -> i64 {
    store.get_user(USER).await.unwrap().unwrap().balance.nanos()
}

/// (id, remaining) of the user's buckets with credit left, soonest expiry first.
async fn remaining(store: &Store) -> Vec<(i64, i64)> {
    let live = store.live_buckets(USER).await.unwrap();
    live.iter().map(|b| (b.id, b.remaining.nanos())).collect()
}

/// Expires what is due at `now`; returns (bucket, amount) written.
async fn expire(store: &Store, now: i64) -> Vec<(i64, i64)> {
    let due = store.due_buckets(None, now, 250).await.unwrap();
    let done = store.expire_buckets(&due, now).await.unwrap();
    done.iter().map(|e| (e.bucket, e.amount.nanos())).collect()
}

#[tokio::test]
async fn debits_spend_the_soonest_buckets_first_and_expiry_takes_the_rest() {
    let dir = common::temp_dir("expiry-order");
    let s = store(&dir).await;
    let late = grant(&s, 10, Some(3_000), 1).await;
    grant(&s, 10, Some(1_000), 2).await;
    let mid = grant(&s, 10, Some(2_000), 3).await;
    grant(&s, 5, None, 4).await;
    grant(&s, 10, Some(1_000), 5).await;
    assert_eq!(balance(&s).await, 45);
    // 25 spans three buckets: both expiring at 1000 (oldest first), then 5 of the one at 2000.
    usage(&s, 25, 10).await;
    assert_eq!(remaining(&s).await, [(mid, 5), (late, 10)]);
    assert_eq!(balance(&s).await, 20);

    // At 2000, the 5 left of `mid` expire: an `expiry` entry, and nothing else moves.
    assert_eq!(expire(&s, 2_000).await, [(mid, 5)]);
    assert_eq!(expire(&s, 2_000).await, [], "an expiry is written once");
    assert_eq!((balance(&s).await, remaining(&s).await), (15, vec![(late, 10)]));
    let ledger = s.ledger(USER, None, 50).await.unwrap().items;
    let entry = &ledger[0];
    assert_eq!(
        (entry.kind.as_str(), entry.amount.nanos(), entry.reference.as_deref()),
        ("expiry", -5, Some(format!("expiry:{mid}").as_str()))
    );
    assert_eq!(entry.created_at, 2_000, "dated when the credit expired");

    // A debit larger than every bucket empties them; the balance goes below zero.
    usage(&s, 100, 2_500).await;
    assert_eq!((balance(&s).await, remaining(&s).await), (-85, vec![]));
    assert_eq!(expire(&s, 5_000).await, [], "nothing left to expire");
    // A grant first pays the debt: its bucket holds what is left above zero.
    let paid = grant(&s, 90, Some(9_000), 5_000).await;
    assert_eq!((balance(&s).await, remaining(&s).await), (5, vec![(paid, 5)]));
    let sum: i64 = s
        .ledger(USER, None, 50)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.amount.nanos())
        .sum();
    assert_eq!(sum, balance(&s).await, "the ledger sums to the balance");
}

#[tokio::test]
async fn a_hold_cannot_use_credit_past_its_expiry_before_the_job_runs() {
    let dir = common::temp_dir("expiry-hold");
    let s = store(&dir).await;
    grant(&s, 10, Some(1_000), 1).await;
    grant(&s, 10, None, 1).await;
    usage(&s, 4, 2).await;
    // Before the expiry all 16 may be held; after it only the 10 that never expire.
    assert!(s
        .place_hold("c1", USER, Credits::from_nanos(16), 999, 60_000)
        .await
        .unwrap());
    s.commit(vec![Store::release_hold_stmt("c1", 999)]).await.unwrap();
    assert!(!s
        .place_hold("c2", USER, Credits::from_nanos(11), 1_000, 60_000)
        .await
        .unwrap());
    assert!(s
        .place_hold("c3", USER, Credits::from_nanos(10), 1_000, 60_000)
        .await
        .unwrap());
    // The case: the expiry takes the 6 left, the balance is 10.
    assert_eq!(expire(&s, 1_000).await.len(), 1);
    assert_eq!(balance(&s).await, 10);
}

/// A small deterministic generator (xorshift), so a failing sequence repeats.
struct Rand(u64);

impl Rand {
    fn below(&mut self, n: u64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n) as i64
    }
}

/// One random step applied to the database and to the book alike; returns the new time.
async fn step(s: &Store, book: &CreditBook, r: &mut Rand, now: i64) -> i64 {
    match r.below(5) {
        0 | 1 => {
            let (amount, at) = (1 + r.below(50), now + 1 + r.below(100));
            let id = grant(s, amount, Some(at), now).await;
            book.credit_expiring(USER, id, Credits::from_nanos(amount), at);
        }
        2 => {
            let amount = 1 + r.below(30);
            grant(s, amount, None, now).await;
            book.credit(USER, Credits::from_nanos(amount));
        }
        3 => {
            let amount = 1 + r.below(60);
            if r.below(2) == 0 {
                usage(s, amount, now).await;
                book.settle(USER, Credits::ZERO, Credits::from_nanos(amount));
            } else {
                grant(s, -amount, None, now).await;
                book.credit(USER, Credits::from_nanos(-amount));
            }
        }
        _ => {
            let now = now + r.below(40);
            for (bucket, amount) in expire(s, now).await {
                book.expire(USER, bucket, Credits::from_nanos(amount));
            }
            return now;
        }
    }
    now
}

#[tokio::test]
async fn the_credit_book_spends_buckets_exactly_as_the_trigger_does() {
    let dir = common::temp_dir("expiry-book");
    let s = store(&dir).await;
    let book = CreditBook::with_balances([(USER.to_string(), Credits::ZERO)], []);
    for seed in 1..=4u64 {
        let mut r = Rand(0x9e37_79b9_7f4a_7c15 ^ seed);
        let mut now = seed as i64 * 1_000_000;
        for i in 0..150 {
            now = step(&s, &book, &mut r, now).await;
            let db: Vec<Bucket> = s
                .live_buckets(USER)
                .await
                .unwrap()
                .iter()
                .map(|b| b.book_bucket())
                .collect();
            let bal = balance(&s).await;
            assert_eq!(book.buckets(USER), db, "seed {seed}, step {i}: buckets");
            assert_eq!(
                book.account(USER).unwrap().balance,
                bal,
                "seed {seed}, step {i}: balance"
            );
            let left: i64 = db.iter().map(|b| b.remaining).sum();
            assert!(
                left <= bal.max(0),
                "seed {seed}, step {i}: {left} left in buckets, balance {bal}"
            );
            // Both refuse to hold credit past its expiry, and agree on what may be held.
            let free = bal
                - db.iter()
                    .filter(|b| b.expires_at <= now)
                    .map(|b| b.remaining)
                    .sum::<i64>();
            for (amount, ok) in [(free, true), (free + 1, false)] {
                let amount = Credits::from_nanos(amount.max(0));
                let ok = ok && free >= 0;
                let call = format!("hold_{}", unique());
                assert_eq!(
                    s.place_hold(&call, USER, amount, now, 60_000).await.unwrap(),
                    ok,
                    "seed {seed}, step {i}"
                );
                s.commit(vec![Store::release_hold_stmt(&call, now)]).await.unwrap();
                assert_eq!(book.try_hold(USER, amount, now), ok, "seed {seed}, step {i}: book");
                book.settle(USER, if ok { amount } else { Credits::ZERO }, Credits::ZERO);
            }
        }
    }
}

const ADMIN: &str = "hub_expiry_admin_key_0123456789ab";

async fn admin(hub: &hub_core::Hub, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(bytes::Bytes::from(body.to_string()))
        .unwrap();
    let res = hub.handle(req).await;
    let status = res.status().as_u16();
    let bytes = match res.into_body() {
        hub_core::http::Body::Full(b) => b,
        hub_core::http::Body::Stream(_) => panic!("{path}: a stream"),
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(status < 300, "{path}: {status} {v}");
    v
}

/// `Hub::tick` (the scheduled jobs) expires due buckets of every user, and
/// is idempotent.
#[tokio::test]
async fn the_scheduled_tick_expires_due_credit() {
    let setup = common::Setup {
        options: hub_core::HubOptions {
            exclusive_database: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let f = common::start(common::temp_dir("expiry-sweep"), ADMIN, setup).await;
    let hub = &f.hub;
    let u = admin(hub, "POST", "/api/admin/users", serde_json::json!({"name": "a"})).await;
    let user = u["id"].as_str().unwrap().to_string();
    let grants = format!("/api/admin/users/{user}/grants");
    let start = f.clock.now_ms();
    admin(
        hub,
        "POST",
        &grants,
        serde_json::json!({"amount": 3, "expires_at": start + 1_000}),
    )
    .await;
    admin(hub, "POST", &grants, serde_json::json!({"amount": 2})).await;
    // The users list does not expire anything itself: only the scheduled job changes it.
    let balance = |v: &serde_json::Value| {
        let users = v["data"].as_array().unwrap();
        users.iter().find(|u| u["id"] == user.as_str()).unwrap()["balance"].clone()
    };
    let report = f.hub.tick(f.clock.now_ms()).await;
    assert!(!report.failed(), "{report:?}");
    assert_eq!(
        balance(&admin(hub, "GET", "/api/admin/users", serde_json::json!({})).await),
        "5"
    );
    f.clock.advance_ms(1_000);
    let report = f.hub.tick(f.clock.now_ms()).await;
    assert!(!report.failed(), "{report:?}");
    let report = f.hub.tick(f.clock.now_ms()).await;
    assert!(!report.failed(), "{report:?}");
    assert_eq!(
        balance(&admin(hub, "GET", "/api/admin/users", serde_json::json!({})).await),
        "2"
    );
    let ledger = admin(
        hub,
        "GET",
        &format!("/api/admin/users/{user}/ledger"),
        serde_json::json!({}),
    )
    .await;
    let kinds: Vec<&str> = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["expiry", "grant", "grant"], "{ledger}");
}
