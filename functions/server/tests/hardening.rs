//! Money and access that hostile callers, admins and providers cannot bend:
//! output budgets that would overflow a hold, providers reporting absurd
//! usage, balances pushed out of range, keys minting stronger keys, admins
//! climbing to owner, a provider's echo of the caller disabling a shared
//! credential, an admin's re-enable ignored, settlements dropped while the
//! database is locked, and keys recoverable from a copy of the database.
//! Balances spend down to exactly zero and then refuse, on the embedded book
//! and on a shared database.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{audit_db, cost_nanos, nanos, Api, HranaServer, HubServer, Launch, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

async fn start_with(launch: Launch) -> (HubServer, Api, MockProvider, String) {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(move || HubServer::start(bin(), launch))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let p = api.setup_provider("mock", &mock.base_url(), "sk-hard-0001").await;
    (hub, api, mock, p)
}

async fn start() -> (HubServer, Api, MockProvider, String) {
    start_with(Launch::default()).await
}

async fn restart(hub: HubServer, launch: Launch) -> (HubServer, Api) {
    let dir = hub.dir.clone();
    drop(hub);
    let hub = tokio::task::spawn_blocking(move || HubServer::start_in(bin(), launch, dir))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    (hub, api)
}

fn db_of(hub: &HubServer) -> PathBuf {
    hub.dir.join("hub.db")
}

/// Runs one SQL statement on the database file with Python's sqlite3; returns its rows as JSON.
fn sql(db: &Path, statement: &str) -> Value {
    let script = "import json, sqlite3, sys\n\
                  c = sqlite3.connect(sys.argv[1], timeout=30)\n\
                  rows = c.execute(sys.argv[2]).fetchall()\n\
                  c.commit()\n\
                  print(json.dumps(rows))";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(statement)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn chat_body(max: Value, n: u64) -> Value {
    json!({"model": "m", "n": n, "max_tokens": max, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn output_budgets_that_cannot_be_held_exactly_are_refused_and_holds_never_wrap() {
    let (hub, api, mock, p) = start().await;
    api.add_model(&p, "m", json!({"input_rate": 1, "output_rate": 1})).await;
    let (user, key) = api.user_with_key("olga", "60").await;
    let post = |path: &'static str, body: Value| {
        let api = api.clone();
        let key = key.clone();
        async move { api.call(Method::POST, path, &key, Some(body)).await }
    };
    // 2^63 × 2 and 2^57 × 128 wrap a u64; both are refused before anything is held or sent.
    let (status, v) = post("/v1/chat/completions", chat_body(json!(9223372036854775808u64), 2)).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["param"], "max_tokens", "{v}");
    let mut wide = chat_body(json!(null), 128);
    wide["max_completion_tokens"] = json!(1u64 << 57);
    let (status, v) = post("/v1/chat/completions", wide).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["param"], "max_completion_tokens");
    let (status, v) = post(
        "/v1/messages",
        json!({"model": "m", "max_tokens": 9223372036854775808u64, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["type"], "error", "Anthropic-shaped: {v}");

    // The largest budget allowed, 128 times, is held exactly: ~549,756 credits, far above 60.
    let calls = (0..20).map(|_| post("/v1/chat/completions", chat_body(json!(4294967295u64), 128)));
    for (status, v) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 402, "{v}");
    }
    assert!(mock.received().is_empty(), "nothing reached the provider");
    let u = api.user(&user).await;
    assert_eq!(nanos(&u["balance"]), 60_000_000_000);
    assert_eq!(nanos(&u["held"]), 0);

    // Key limits see the same exact bound: a tpm of 100 and a daily cap of 50 refuse it.
    for limits in [json!({"tpm_limit": 100}), json!({"daily_spend_cap": 50})] {
        let (_, limited) = key_for(&api, &user, limits.clone()).await;
        let (status, v) = api
            .call(
                Method::POST,
                "/v1/chat/completions",
                &limited,
                Some(chat_body(json!(4294967295u64), 2)),
            )
            .await;
        assert_eq!(status, 429, "{limits}: {v}");
    }
    assert!(mock.received().is_empty());
    assert!(audit_db(&db_of(&hub)).problems.is_empty());
}

#[tokio::test]
async fn usage_a_provider_reports_beyond_the_request_is_cut_to_the_bound() {
    let (hub, api, mock, p) = start().await;
    api.add_model(&p, "m", json!({"input_rate": 3, "output_rate": 600}))
        .await;
    let (user, key) = api.user_with_key("paul", "10").await;
    let mut expected_spent = 0i128;
    let mut ceilings = Vec::new();
    for (stream, reported) in [(false, u64::MAX), (true, u64::MAX), (false, 1_000_000_000_000)] {
        mock.set("m", Behavior::default().tokens(reported, reported));
        let mut body = chat_body(json!(5), 1);
        body["stream"] = json!(stream);
        let ceiling = body.to_string().len() as u64 + 8 + 8 + 4096;
        let (status, v) = api.call(Method::POST, "/v1/chat/completions", &key, Some(body)).await;
        assert_eq!(status, 200, "{v}");
        // Input is billed at most the request's bytes (a token is at least a byte), 8 for its
        // message, 8 for the reply and 4096 a provider may add itself; output at most the 5 asked for.
        expected_spent += cost_nanos(&[(ceiling, "3"), (5, "600")]);
        ceilings.push(ceiling);
        let u = api
            .wait_user(&user, "the call settled", |u| {
                10_000_000_000 - nanos(&u["balance"]) == expected_spent
            })
            .await;
        assert_eq!(nanos(&u["held"]), 0);
    }
    let calls = api.calls(&format!("user={user}")).await;
    assert_eq!(calls.len(), 3);
    for c in &calls {
        assert_eq!(c["clamped"], true, "{c}");
        assert_eq!(c["output_tokens"], 5, "{c}");
        assert!(ceilings.contains(&c["input_tokens"].as_u64().unwrap()), "{c}");
    }
    let audit = audit_db(&db_of(&hub));
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
    assert_eq!(audit.balances[&user], 10_000_000_000 - expected_spent);
}

#[tokio::test]
async fn balances_and_amounts_stay_within_the_documented_range() {
    let (hub, api, _mock, _p) = start().await;
    let (user, _) = api.user_with_key("bea", "0").await;
    let grant = |amount: Value| {
        let api = api.clone();
        let user = user.clone();
        async move {
            api.call(
                Method::POST,
                &format!("/api/admin/users/{user}/grants"),
                ADMIN_KEY,
                Some(json!({"amount": amount})),
            )
            .await
        }
    };
    for too_big in [
        json!(9223372036u64),
        json!(-9223372036i64),
        json!("1000000000.000000001"),
        json!(1e300),
    ] {
        let (status, v) = grant(too_big.clone()).await;
        assert_eq!(status, 400, "{too_big}: {v}");
        assert_eq!(v["error"]["param"], "amount");
    }
    assert_eq!(grant(json!(999_999_999)).await.0, 201);
    let (status, v) = grant(json!(2)).await;
    assert_eq!(status, 400, "the balance would pass a billion: {v}");
    assert_eq!(grant(json!(1)).await.0, 201, "exactly a billion is allowed");
    assert_eq!(grant(json!(-1_000_000_000)).await.0, 201);
    assert_eq!(grant(json!(-1_000_000_000)).await.0, 201);
    let (status, _) = grant(json!(-1)).await;
    assert_eq!(status, 400, "nor below minus a billion");
    let u = api.user(&user).await;
    assert_eq!(nanos(&u["balance"]), -1_000_000_000_000_000_000);
    let (status, v) = api
        .call(
            Method::PATCH,
            "/api/admin/settings",
            ADMIN_KEY,
            Some(json!({"starter_credits": 9223372036u64})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    // A grant may not say it expires while credits cannot expire.
    let (status, v) = api
        .call(
            Method::POST,
            &format!("/api/admin/users/{user}/grants"),
            ADMIN_KEY,
            Some(json!({"amount": 1, "expires_at": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["param"], "expires_at");
    let audit = audit_db(&db_of(&hub));
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
    assert_eq!(audit.balances[&user], -1_000_000_000_000_000_000);
}

async fn key_for(api: &Api, user: &str, fields: Value) -> (String, String) {
    let k = api
        .admin(Method::POST, &format!("/api/admin/users/{user}/keys"), Some(fields))
        .await;
    (
        k["id"].as_str().unwrap().to_string(),
        k["key"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_key_never_mints_a_key_stronger_than_itself() {
    let (_hub, api, mock, p) = start().await;
    api.add_model(&p, "m", json!({"input_rate": 1, "output_rate": 1})).await;
    mock.set("m", Behavior::default());
    let (user, parent) = api.user_with_key("kim", "5").await;
    for restriction in [
        json!({"allowed_models": ["m"]}),
        json!({"daily_spend_cap": 1}),
        json!({"expires_at": "2099-01-01T00:00:00Z"}),
    ] {
        let (_, restricted) = key_for(&api, &user, restriction.clone()).await;
        let (status, v) = api
            .call(
                Method::POST,
                "/api/me/keys",
                &restricted,
                Some(json!({"label": "escape"})),
            )
            .await;
        assert_eq!(status, 403, "{restriction}: {v}");
    }
    // Nor through the admin API, when the restricted key is an admin's.
    let boss = api
        .admin(
            Method::POST,
            "/api/admin/users",
            Some(json!({"name": "boss", "role": "admin"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, boss_capped) = key_for(&api, &boss, json!({"daily_spend_cap": 1})).await;
    let (status, v) = api
        .call(
            Method::POST,
            &format!("/api/admin/users/{boss}/keys"),
            &boss_capped,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    // A restricted key revokes only itself, not its user's other keys.
    let (sibling_id, _) = key_for(&api, &user, json!({"label": "sibling"})).await;
    let (capped_id, capped) = key_for(&api, &user, json!({"rpm_limit": 5})).await;
    let (status, _) = api
        .call(Method::DELETE, &format!("/api/me/keys/{sibling_id}"), &capped, None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = api
        .call(Method::DELETE, &format!("/api/me/keys/{capped_id}"), &capped, None)
        .await;
    assert_eq!(status, 200);
    // An unrestricted key mints; revoking it revokes what it minted, at any depth.
    let (status, child) = api
        .call(Method::POST, "/api/me/keys", &parent, Some(json!({"label": "child"})))
        .await;
    assert_eq!(status, 201, "{child}");
    let child = child["key"].as_str().unwrap().to_string();
    let (_, grandchild) = api
        .call(
            Method::POST,
            "/api/me/keys",
            &child,
            Some(json!({"label": "grandchild"})),
        )
        .await;
    let grandchild = grandchild["key"].as_str().unwrap().to_string();
    assert_eq!(api.chat(&grandchild, "m").await.0, 200);
    let keys = api
        .admin(Method::GET, &format!("/api/admin/users/{user}/keys"), None)
        .await;
    let parent_id = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == "test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = api
        .call(Method::DELETE, &format!("/api/me/keys/{parent_id}"), &parent, None)
        .await;
    assert_eq!(status, 200);
    for key in [&parent, &child, &grandchild] {
        let (status, v) = api.chat(key, "m").await;
        assert_eq!(status, 401, "{v}");
    }
}

#[tokio::test]
async fn nobody_acts_on_a_higher_role_and_the_owner_key_always_comes_back() {
    let (hub, api, _mock, _p) = start().await;
    let me = api.admin(Method::GET, "/api/me", None).await;
    let owner = me["user"]["id"].as_str().unwrap().to_string();
    let owner_key_id = me["key"]["id"].as_str().unwrap().to_string();
    let admin = api
        .admin(
            Method::POST,
            "/api/admin/users",
            Some(json!({"name": "ada", "role": "admin"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, admin_key) = key_for(&api, &admin, json!({"label": "ada"})).await;
    let as_admin = |method: Method, path: String, body: Option<Value>| {
        let api = api.clone();
        let key = admin_key.clone();
        async move { api.call(method, &path, &key, body).await }
    };
    let refused = [
        (
            Method::POST,
            format!("/api/admin/users/{owner}/keys"),
            Some(json!({"label": "mine now"})),
        ),
        (Method::DELETE, format!("/api/admin/keys/{owner_key_id}"), None),
        (
            Method::PATCH,
            format!("/api/admin/users/{admin}"),
            Some(json!({"role": "owner"})),
        ),
        (
            Method::PATCH,
            format!("/api/admin/users/{owner}"),
            Some(json!({"disabled": true})),
        ),
        (
            Method::POST,
            "/api/admin/users".to_string(),
            Some(json!({"name": "o2", "role": "owner"})),
        ),
    ];
    for (method, path, body) in refused {
        let (status, v) = as_admin(method.clone(), path.clone(), body).await;
        assert_eq!(status, 403, "{method} {path}: {v}");
    }
    assert_eq!(api.admin(Method::GET, "/api/me", None).await["role"], "owner");

    // The last owner cannot be demoted or disabled, not even by themself.
    for change in [json!({"role": "admin"}), json!({"disabled": true})] {
        let (status, v) = api
            .call(
                Method::PATCH,
                &format!("/api/admin/users/{owner}"),
                ADMIN_KEY,
                Some(change),
            )
            .await;
        assert_eq!(status, 409, "{v}");
    }
    // With a second owner, the first may step down, and revoke the HUB_ADMIN_KEY key…
    api.admin(
        Method::PATCH,
        &format!("/api/admin/users/{admin}"),
        Some(json!({"role": "owner"})),
    )
    .await;
    api.admin(
        Method::PATCH,
        &format!("/api/admin/users/{owner}"),
        Some(json!({"role": "member"})),
    )
    .await;
    let (status, _) = api
        .call(Method::DELETE, &format!("/api/me/keys/{owner_key_id}"), ADMIN_KEY, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(api.call(Method::GET, "/api/me", ADMIN_KEY, None).await.0, 401);
    // …and a restart with the same HUB_ADMIN_KEY restores a working owner key.
    let (_hub, api) = restart(hub, Launch::default()).await;
    let me = api.admin(Method::GET, "/api/me", None).await;
    assert_eq!(me["role"], "owner", "{me}");
    assert_eq!(me["user"]["id"], owner.as_str(), "the same owner, not a new one");
    api.admin(Method::GET, "/api/admin/users", None).await;
}

#[tokio::test]
async fn a_provider_quoting_the_caller_cannot_disable_a_shared_credential() {
    let (_hub, api, mock, p) = start().await;
    api.add_model(&p, "m", json!({"input_rate": 1, "output_rate": 1})).await;
    api.add_model(&p, "echo", json!({"input_rate": 1, "output_rate": 1}))
        .await;
    mock.set("m", Behavior::default());
    mock.set(
        "echo",
        Behavior {
            error_message: Some("Unrecognized request argument supplied: api key not valid".into()),
            ..Behavior::status(400)
        },
    );
    let (_, key) = api.user_with_key("eve", "5").await;
    for _ in 0..3 {
        let (status, v) = api
            .call(
                Method::POST,
                "/v1/chat/completions",
                &key,
                Some(json!({"model": "echo", "api key not valid": 1, "messages": [{"role": "user", "content": "hi"}]})),
            )
            .await;
        assert_eq!(status, 400, "{v}");
    }
    let creds = api
        .admin(Method::GET, &format!("/api/admin/providers/{p}/credentials"), None)
        .await;
    assert_eq!(creds["data"][0]["status"], "active", "{creds}");
    let (status, v) = api.chat(&key, "m").await;
    assert_eq!(status, 200, "the credential still serves everyone: {v}");
}

#[tokio::test]
async fn an_admin_re_enable_takes_effect_at_once() {
    let launch = Launch {
        env: vec![("HUB_CREDENTIAL_RECHECK".into(), "3600".into())],
        ..Default::default()
    };
    let (_hub, api, mock, p) = start_with(launch).await;
    api.add_model(&p, "m", json!({"input_rate": 1, "output_rate": 1})).await;
    mock.set("m", Behavior::default());
    let (_, key) = api.user_with_key("rex", "5").await;
    mock.reject("sk-hard-0001");
    let (status, _) = api.chat(&key, "m").await;
    assert!(status >= 500, "the only credential was rejected: {status}");
    let creds = api
        .admin(Method::GET, &format!("/api/admin/providers/{p}/credentials"), None)
        .await;
    let cred = creds["data"][0]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = api
            .admin(Method::GET, &format!("/api/admin/providers/{p}/credentials"), None)
            .await;
        if c["data"][0]["status"] == "disabled" {
            break;
        }
        assert!(Instant::now() < deadline, "never disabled: {c}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The key is fixed at the provider; the admin turns the credential back on.
    mock.accept("sk-hard-0001");
    api.admin(
        Method::PATCH,
        &format!("/api/admin/credentials/{cred}"),
        Some(json!({"status": "active"})),
    )
    .await;
    let (status, v) = api.chat(&key, "m").await;
    assert_eq!(status, 200, "the next call uses it: {v}");
}

#[tokio::test]
async fn a_settlement_waits_out_a_long_database_lock_instead_of_being_dropped() {
    let (hub, api, mock, p) = start().await;
    api.add_model(&p, "m", json!({"input_rate": 1000, "output_rate": 1000}))
        .await;
    mock.set("m", Behavior::default().tokens(10, 10));
    let (user, key) = api.user_with_key("lou", "5").await;
    // Another process holds the write lock for longer than three busy timeouts (3 × 10 s).
    let db = db_of(&hub);
    let mut locker = std::process::Command::new("python3");
    locker
        .args([
            "-c",
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(float(sys.argv[2]))\n\
             c.execute('COMMIT')",
        ])
        .arg(&db)
        .arg("34")
        .stdout(std::process::Stdio::piped());
    // Stopped by its guard if the test fails while it holds the lock.
    std::os::unix::process::CommandExt::process_group(&mut locker, 0);
    let mut locker = hub_e2e::ProcessGroup(locker.spawn().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(locker.0.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let (status, v) = api.chat(&key, "m").await;
    assert_eq!(status, 200, "{v}");
    let call_id = v["id"].clone();
    tokio::task::spawn_blocking(move || locker.0.wait().unwrap())
        .await
        .unwrap();
    let u = api
        .wait_user(&user, "the settlement once the lock is gone", |u| {
            nanos(&u["balance"]) == 5_000_000_000 - cost_nanos(&[(10, "1000"), (10, "1000")])
        })
        .await;
    assert_eq!(nanos(&u["held"]), 0, "{call_id}");
    let audit = audit_db(&db);
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
    assert_eq!(audit.calls.len(), 1);
}

#[tokio::test]
async fn keys_cannot_be_recovered_from_a_copy_of_the_database() {
    let (hub, api, mock, p) = start().await;
    api.add_model(&p, "m", json!({"input_rate": 1, "output_rate": 1})).await;
    mock.set("m", Behavior::default());
    let (_, member_key) = api.user_with_key("max", "5").await;
    let db = db_of(&hub);
    let sha256 = |k: &str| {
        use sha2::Digest;
        sha2::Sha256::digest(k.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let rows = sql(&db, "SELECT key_hash, key_hint, label FROM api_keys");
    for row in rows.as_array().unwrap() {
        let (hash, hint) = (row[0].as_str().unwrap(), row[1].as_str().unwrap());
        assert_ne!(hash, sha256(ADMIN_KEY));
        assert_ne!(hash, sha256(&member_key));
        assert!(hint.chars().filter(|c| *c != '…').count() <= 8, "{hint}");
    }
    let admin_hint = &rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[2] == "HUB_ADMIN_KEY")
        .unwrap()[1];
    assert_eq!(admin_hint, "hub_…cdef");

    // A database from before keyed hashes: its rows are upgraded at start-up and keep working.
    drop(api);
    let dir = hub.dir.clone();
    drop(hub);
    sql(
        &db,
        &format!(
            "UPDATE api_keys SET hash_scheme = 1, key_hint = 'hub_abcd…wxyz', key_hash = CASE label WHEN 'HUB_ADMIN_KEY' THEN '{}' ELSE '{}' END",
            sha256(ADMIN_KEY),
            sha256(&member_key)
        ),
    );
    let hub = tokio::task::spawn_blocking(move || HubServer::start_in(bin(), Launch::default(), dir))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    assert_eq!(api.chat(&member_key, "m").await.0, 200);
    assert_eq!(
        api.admin(Method::GET, "/api/admin/users", None).await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let rows = sql(
        &db,
        "SELECT hash_scheme, key_hash, key_hint FROM api_keys WHERE label <> 'HUB_ADMIN_KEY'",
    );
    assert_eq!(rows[0][0], 2);
    assert_ne!(rows[0][1], sha256(&member_key).as_str());
    assert_eq!(rows[0][2], "hub_…wxyz");

    // A short HUB_ADMIN_KEY is refused at start-up.
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(hub.dir.join("other.db"))
        .env("HUB_ADMIN_KEY", "hub_only_20_chars_xx")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 24 characters"));
}

/// Calls costing 0.06 each spend 0.3 credits down to exactly zero; the sixth is refused.
async fn spends_down_to_zero(api: &Api, mock: &MockProvider, p: &str) {
    api.add_model(p, "m", json!({"input_rate": 0, "output_rate": 1000}))
        .await;
    mock.set("m", Behavior::default().tokens(10, 60));
    let (user, key) = api.user_with_key("sam", "0.3").await;
    let body = chat_body(json!(60), 1);
    let mut served = 0;
    for i in 0..6 {
        let (status, v) = api
            .call(Method::POST, "/v1/chat/completions", &key, Some(body.clone()))
            .await;
        match status {
            200 => served += 1,
            402 => {
                assert_eq!(i, 5, "refused too early, after {served}: {v}");
                break;
            }
            other => panic!("{other}: {v}"),
        }
        // The next call sees this one settled (or still held): either way it is counted.
        api.wait_user(&user, "settled", |u| nanos(&u["held"]) == 0).await;
    }
    assert_eq!(served, 5);
    api.wait_user(&user, "every call settled", |u| nanos(&u["balance"]) == 0)
        .await;
    assert_eq!(api.ledger_sum(&user).await, 0);
}

#[tokio::test]
async fn a_balance_spends_down_to_zero_on_the_embedded_book() {
    let (hub, api, mock, p) = start().await;
    spends_down_to_zero(&api, &mock, &p).await;
    let audit = audit_db(&db_of(&hub));
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
    assert_eq!(audit.calls.len(), 5);
}

#[tokio::test]
async fn a_balance_spends_down_to_zero_on_a_shared_database() {
    let dir = hub_e2e::temp_dir("spend-remote");
    let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
    let launch = Launch {
        db: Some(hrana.url.clone()),
        env: vec![("HUB_MASTER_KEY".into(), hub_e2e::TEST_MASTER_KEY.into())],
        ..Default::default()
    };
    let (_hub, api, mock, p) = start_with(launch).await;
    spends_down_to_zero(&api, &mock, &p).await;
    let audit = audit_db(&dir.join("remote.db"));
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
    assert_eq!(audit.calls.len(), 5);
    drop(hrana);
}
