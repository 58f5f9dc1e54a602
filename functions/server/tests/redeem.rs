//! Redemption codes against `hub serve`: minted in a batch and shown once,
//! listed by hint only, redeemed for credits by key, and refused clearly
//! (unknown, used up, expired, disabled, redeemed twice, too many failed
//! attempts) with nothing changed. Concurrent redemptions never exceed a
//! code's uses, on the embedded database and on remote libSQL. The customer
//! finds the grant in their own history (`/api/me/ledger`).

use futures_util::future::join_all;
use hub_e2e::{nanos, Api, HranaServer, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CODES: &str = "/api/admin/redemption-codes";

async fn start(launch: Launch) -> (HubServer, Api) {
    let hub = tokio::task::spawn_blocking(move || HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), launch))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    (hub, api)
}

/// Mints a batch; returns the answer (its `codes` and `batch_id`).
async fn mint(api: &Api, body: Value) -> Value {
    let v = api.admin(Method::POST, CODES, Some(body)).await;
    assert!(v["batch_id"].is_string(), "{v}");
    v
}

fn codes(minted: &Value) -> Vec<String> {
    minted["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

async fn redeem(api: &Api, key: &str, code: &str) -> (u16, Value) {
    api.call(Method::POST, "/api/me/redeem", key, Some(json!({"code": code})))
        .await
}

/// `n` users with keys and no credits.
async fn users(api: &Api, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(api.user_with_key(&format!("customer-{i}"), "0").await);
    }
    out
}

/// The batch as the admin list shows it.
async fn listed(api: &Api, batch_id: &str) -> Value {
    let list = api.admin(Method::GET, CODES, None).await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == batch_id)
        .unwrap_or_else(|| panic!("batch {batch_id} not listed: {list}"))
        .clone()
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test]
async fn codes_are_shown_once_listed_by_hint_and_redeemed_for_credits() {
    let (hub, api) = start(Launch::default()).await;
    let minted = mint(&api, json!({"credits": "2.5", "count": 3, "label": "launch week"})).await;
    let all = codes(&minted);
    assert_eq!(all.len(), 3);
    for c in &all {
        let groups: Vec<&str> = c.split('-').collect();
        assert_eq!(groups.len(), 4, "{c}");
        assert_eq!(groups[0], "HUB");
        assert!(groups[1..].iter().all(|g| g.len() == 4), "{c}");
    }
    assert_ne!(all[0], all[1]);

    // The list shows hints, never the codes; neither does the database.
    let batch_id = minted["batch_id"].as_str().unwrap();
    let b = listed(&api, batch_id).await;
    let text = b.to_string();
    for c in &all {
        assert!(!text.contains(&c[4..]), "{c} listed: {b}");
        assert!(
            b["codes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["hint"] == format!("HUB-…-{}", &c[14..])),
            "no hint for {c}: {b}"
        );
    }
    assert_eq!(
        (&b["credits"], &b["uses"], &b["once_per_user"]),
        (&json!("2.5"), &json!(1), &json!(true))
    );
    assert_eq!(b["label"], "launch week");
    let stored = db_bytes(&hub);
    for c in &all {
        let body: String = c[4..].chars().filter(|ch| *ch != '-').collect();
        assert!(
            !contains(&stored, c.as_bytes()) && !contains(&stored, body.as_bytes()),
            "{c} stored in plaintext"
        );
    }

    // Typed in lower case with spaces instead of dashes, it still redeems.
    let (user, key) = api.user_with_key("alice", "1").await;
    let typed = all[0].to_lowercase().replace('-', " ");
    let (status, v) = redeem(&api, &key, &typed).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((&v["credits"], &v["balance"]), (&json!("2.5"), &json!("3.5")), "{v}");
    let u = api.user(&user).await;
    assert_eq!(u["balance"], "3.5");
    assert_eq!(api.ledger_sum(&user).await, nanos(&u["balance"]));
    let ledger = api
        .admin(Method::GET, &format!("/api/admin/users/{user}/ledger"), None)
        .await;
    let entry = &ledger["data"][0];
    assert_eq!(
        (&entry["kind"], &entry["amount"]),
        (&json!("grant"), &json!("2.5")),
        "{ledger}"
    );
    assert!(entry["ref"].as_str().unwrap().starts_with("redemption:"), "{entry}");
    assert!(entry["reason"].as_str().unwrap().contains(&all[0][14..]), "{entry}");
    // The customer's own history is the same ledger, and only theirs.
    let (status, mine) = api.call(Method::GET, "/api/me/ledger", &key, None).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(
        (&mine["data"], &mine["balance"]),
        (&ledger["data"], &json!("3.5")),
        "{mine}"
    );
    let (_, bob) = api.user_with_key("bob", "0").await;
    let (status, theirs) = api.call(Method::GET, "/api/me/ledger", &bob, None).await;
    assert_eq!(status, 200, "{theirs}");
    assert!(!theirs.to_string().contains("redemption:"), "{theirs}");

    let b = listed(&api, batch_id).await;
    assert_eq!(b["redemptions"], 1);
    let used: Vec<&Value> = b["codes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["redemptions"] == 1)
        .collect();
    assert_eq!(used.len(), 1, "{b}");
    assert_eq!(
        (&used[0]["state"], &used[0]["uses_left"]),
        (&json!("used_up"), &json!(0))
    );
    assert!(!hub.logs().contains(&all[1][4..]), "a code in the server log");
}

/// The database file and its write-ahead log, as bytes.
fn db_bytes(hub: &HubServer) -> Vec<u8> {
    let mut out = Vec::new();
    for name in ["hub.db", "hub.db-wal"] {
        out.extend(std::fs::read(hub.dir.join(name)).unwrap_or_default());
    }
    assert!(!out.is_empty(), "no database file in {}", hub.dir.display());
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// 50 users redeem one single-use code at once: one grant, 49 refusals.
async fn fifty_race_for_one_use(launch: Launch) {
    let (_hub, api) = start(launch).await;
    let code = codes(&mint(&api, json!({"credits": "7"})).await).remove(0);
    let people = users(&api, 50).await;
    let answers = join_all(people.iter().map(|(_, key)| {
        let (api, code) = (api.clone(), code.clone());
        async move { redeem(&api, key, &code).await }
    }))
    .await;
    let won: Vec<&(u16, Value)> = answers.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (status, v) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*status, error_code(v)), (400, "code_invalid"), "{v}");
    }
    let mut total = 0;
    for (user, _) in &people {
        let balance = nanos(&api.user(user).await["balance"]);
        assert_eq!(api.ledger_sum(user).await, balance, "{user}");
        total += balance;
    }
    assert_eq!(total, 7_000_000_000, "exactly one grant of 7");
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_redemptions_of_a_single_use_code_grant_once() {
    fifty_race_for_one_use(Launch::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_redemptions_grant_once_on_remote_libsql() {
    let dir = hub_e2e::temp_dir("hrana-redeem");
    let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
    fifty_race_for_one_use(Launch::remote(&hrana)).await;
}

/// 10 users at once on a code good for 5: five grants.
async fn ten_race_for_five_uses(launch: Launch) {
    let (_hub, api) = start(launch).await;
    let minted = mint(&api, json!({"credits": "1", "uses": 5})).await;
    let code = codes(&minted).remove(0);
    let people = users(&api, 10).await;
    let answers = join_all(people.iter().map(|(_, key)| {
        let (api, code) = (api.clone(), code.clone());
        async move { redeem(&api, key, &code).await }
    }))
    .await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 5, "{answers:?}");
    let mut total = 0;
    for (user, _) in &people {
        total += nanos(&api.user(user).await["balance"]);
    }
    assert_eq!(total, 5_000_000_000);
    let b = listed(&api, minted["batch_id"].as_str().unwrap()).await;
    assert_eq!(
        (&b["redemptions"], &b["codes"][0]["state"]),
        (&json!(5), &json!("used_up")),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_five_use_code_redeemed_by_ten_users_at_once_grants_five_times() {
    ten_race_for_five_uses(Launch::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_five_use_code_grants_five_times_on_remote_libsql() {
    let dir = hub_e2e::temp_dir("hrana-redeem5");
    let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
    ten_race_for_five_uses(Launch::remote(&hrana)).await;
}

/// The scenario every runtime runs (the Worker's and Lambda's suites run it too).
#[tokio::test(flavor = "multi_thread")]
async fn redeems_codes_within_their_uses() {
    let (_hub, api) = start(Launch::default()).await;
    hub_e2e::suite::redeems_codes_within_their_uses(&api).await;
}

#[tokio::test]
async fn once_per_user_refuses_a_second_redemption_by_the_same_user() {
    let (_hub, api) = start(Launch::default()).await;
    let people = users(&api, 2).await;
    let (alice, bob) = (&people[0], &people[1]);
    let code = codes(&mint(&api, json!({"credits": "1", "uses": 3})).await).remove(0);
    assert_eq!(redeem(&api, &alice.1, &code).await.0, 200);
    let (status, v) = redeem(&api, &alice.1, &code).await;
    assert_eq!((status, error_code(&v)), (409, "code_already_redeemed"), "{v}");
    assert_eq!(api.user(&alice.0).await["balance"], "1");
    assert_eq!(redeem(&api, &bob.1, &code).await.0, 200, "another user still may");

    // Without the rule, one user may use every use of a code, and no more.
    let code = codes(&mint(&api, json!({"credits": "1", "uses": 2, "once_per_user": false})).await).remove(0);
    assert_eq!(redeem(&api, &alice.1, &code).await.0, 200);
    assert_eq!(redeem(&api, &alice.1, &code).await.0, 200);
    let (status, v) = redeem(&api, &alice.1, &code).await;
    assert_eq!((status, error_code(&v)), (400, "code_invalid"), "{v}");
    let u = api.user(&alice.0).await;
    assert_eq!(u["balance"], "3");
    assert_eq!(api.ledger_sum(&alice.0).await, nanos(&u["balance"]));
}

#[tokio::test]
async fn expired_and_disabled_codes_are_refused_with_nothing_changed() {
    let (_hub, api) = start(Launch::default()).await;
    let (user, key) = api.user_with_key("carol", "0").await;
    let expires = now_ms() + 1500;
    let expiring = mint(&api, json!({"credits": "1", "expires_at": expires})).await;
    let b = listed(&api, expiring["batch_id"].as_str().unwrap()).await;
    assert!(b["expires_at"].as_str().unwrap().ends_with('Z'), "{b}");
    let code = codes(&expiring).remove(0);
    tokio::time::sleep(Duration::from_millis((expires - now_ms()).max(0) as u64 + 100)).await;
    let (status, v) = redeem(&api, &key, &code).await;
    assert_eq!((status, error_code(&v)), (400, "code_expired"), "{v}");

    // One code of a batch disabled, then the whole batch.
    let batch = mint(
        &api,
        json!({"credits": "1", "count": 2, "expires_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    let two = codes(&batch);
    let listed_batch = listed(&api, batch["batch_id"].as_str().unwrap()).await;
    let first_id = listed_batch["codes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["hint"] == format!("HUB-…-{}", &two[0][14..]))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.admin(Method::DELETE, &format!("{CODES}/{first_id}"), None).await;
    let (status, v) = redeem(&api, &key, &two[0]).await;
    assert_eq!((status, error_code(&v)), (400, "code_disabled"), "{v}");
    api.admin(
        Method::DELETE,
        &format!("{CODES}/{}", batch["batch_id"].as_str().unwrap()),
        None,
    )
    .await;
    let (status, v) = redeem(&api, &key, &two[1]).await;
    assert_eq!((status, error_code(&v)), (400, "code_disabled"), "{v}");
    let b = listed(&api, batch["batch_id"].as_str().unwrap()).await;
    assert!(
        b["codes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "disabled" && c["uses_left"] == 0),
        "{b}"
    );
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("{CODES}/rdc_nothing"),
            hub_e2e::ADMIN_KEY,
            None,
        )
        .await;
    assert_eq!(status, 404);

    assert_eq!(api.user(&user).await["balance"], "0");
    assert_eq!(api.ledger_sum(&user).await, 0);
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_mints_nothing() {
    let (_hub, api) = start(Launch::default()).await;
    let admin = hub_e2e::ADMIN_KEY;
    for (body, field) in [
        (json!({}), "credits"),
        (json!({"credits": "0"}), "credits"),
        (json!({"credits": "-1"}), "credits"),
        (json!({"credits": "1000000001"}), "credits"),
        (json!({"credits": "1", "count": 0}), "count"),
        (json!({"credits": "1", "count": 1001}), "count"),
        (json!({"credits": "1", "uses": 0}), "uses"),
        (json!({"credits": "1", "expires_at": "tomorrow"}), "expires_at"),
        (json!({"credits": "1", "expires_at": 1000}), "expires_at"),
        (json!({"credits": "1", "once_per_user": "yes"}), "once_per_user"),
        (json!({"credits": "1", "colour": "red"}), "colour"),
    ] {
        let (status, v) = api.call(Method::POST, CODES, admin, Some(body.clone())).await;
        assert_eq!(
            (status, v["error"]["param"].as_str()),
            (400, Some(field)),
            "{body}: {v}"
        );
    }
    assert_eq!(api.admin(Method::GET, CODES, None).await["data"], json!([]));
    let minted = mint(&api, json!({"credits": "1", "count": 1000})).await;
    assert_eq!(codes(&minted).len(), 1000);

    let (user, key) = api.user_with_key("dave", "0").await;
    for body in [
        json!({}),
        json!({"code": 12}),
        json!({"code": "HUB-1234"}),
        json!({"code": "HUB-UUUU-UUUU-UUUU"}),
        json!({"code": "HUB-1234-5678-9ABC", "extra": true}),
    ] {
        let (status, v) = api.call(Method::POST, "/api/me/redeem", &key, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"]["param"].is_string(), "{v}");
    }
    let (status, _) = api
        .call(
            Method::POST,
            "/api/me/redeem",
            "hub_not_a_key",
            Some(json!({"code": "x"})),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(api.user(&user).await["balance"], "0");
}

#[tokio::test]
async fn ten_failed_attempts_lock_redemption_for_that_user() {
    let (_hub, api) = start(Launch::default()).await;
    let people = users(&api, 2).await;
    let (mallory, erin) = (&people[0], &people[1]);
    let minted = mint(&api, json!({"credits": "1", "count": 2})).await;
    let good = codes(&minted);
    // A success does not count against the limit.
    assert_eq!(redeem(&api, &mallory.1, &good[0]).await.0, 200);
    for i in 0..10 {
        let guess = format!("HUB-0000-0000-{i:04}");
        let (status, v) = redeem(&api, &mallory.1, &guess).await;
        assert_eq!((status, error_code(&v)), (400, "code_invalid"), "guess {i}: {v}");
    }
    let (status, v) = redeem(&api, &mallory.1, &good[1]).await;
    assert_eq!(status, 429, "even a good code, once locked: {v}");
    assert_eq!(api.user(&mallory.0).await["balance"], "1");
    // Someone else is not locked out, and the code was not spent.
    let (status, v) = redeem(&api, &erin.1, &good[1]).await;
    assert_eq!(status, 200, "{v}");
}

/// Signed in by browser session, a redemption needs the session's CSRF token.
#[tokio::test(flavor = "multi_thread")]
async fn a_signed_in_customer_redeems_with_the_csrf_token_only() {
    use hub_e2e::oidc::{Body, Browser, OidcProvider, CLIENT_ID, CLIENT_SECRET};
    let (hub, api) = start(Launch::default()).await;
    let callback = hub.url("/auth/oidc/callback");
    let op = tokio::task::spawn_blocking(move || OidcProvider::start(&[callback], "RS256"))
        .await
        .unwrap();
    let settings = json!({"oidc_issuer": op.issuer, "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET, "signup_open": true});
    api.admin(Method::PATCH, "/api/admin/settings", Some(settings)).await;
    let mut b = Browser::new();
    let page = b.sign_in_oidc(&api.base, "frank@example.com", "/").await;
    assert_eq!(page.status, 302, "{}", page.body);
    let (_, me) = b.get_json(&hub.url("/api/me")).await;
    let csrf = me["session"]["csrf_token"].as_str().unwrap().to_string();
    let code = codes(&mint(&api, json!({"credits": "4"})).await).remove(0);

    let body = || Some(Body::Json(json!({"code": code})));
    let url = hub.url("/api/me/redeem");
    let refused = b.request(Method::POST, &url, body(), &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(b.get_json(&hub.url("/api/me")).await.1["balance"], "0");
    let done = b.request(Method::POST, &url, body(), &[("x-csrf-token", &csrf)]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(b.get_json(&hub.url("/api/me")).await.1["balance"], "4");
}
