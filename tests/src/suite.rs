//! The black-box scenarios every runtime must pass (the native server, the
//! Worker under `wrangler dev`, the Lambda function under its emulator): each
//! takes the runtime's base URL and a mock provider, and drives Hub through
//! its public HTTP API only.

use crate::mock::{Behavior, MockProvider};
use crate::{cost_nanos, nanos, Api};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A provider on the mock with one model at 0.15 / 0.6 credits per million tokens.
pub async fn setup(api: &Api, mock: &MockProvider) -> String {
    setup_at(api, mock, json!({"input_rate": 0.15, "output_rate": 0.6})).await
}

/// The same at other rates. (Set rates when creating the model: a change
/// reaches other instances of a multi-instance runtime within their cache TTL.)
pub async fn setup_at(api: &Api, mock: &MockProvider, rates: Value) -> String {
    let provider = api
        .setup_provider("mock", &mock.base_url(), "sk-mock-secret-0001")
        .await;
    let m = api.add_model(&provider, "mock-model", rates).await;
    m["id"].as_str().expect("model created").to_string()
}

fn chat(stream: bool) -> Value {
    json!({"model": "mock/mock-model", "messages": [{"role": "user", "content": "Say hello"}], "stream": stream, "max_tokens": 1000})
}

async fn post(api: &Api, key: &str, body: &Value) -> reqwest::Response {
    api.http
        .post(format!("{}/v1/chat/completions", api.base))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn calls(api: &Api, user: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = api.calls(&format!("user={user}")).await;
        if log.len() >= n {
            return log;
        }
        assert!(Instant::now() < deadline, "{} of {n} calls logged", log.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Non-streamed and streamed chat, billed to the nano-credit; the stream
/// reaches the client as the provider writes it.
pub async fn chat_is_billed_exactly_and_streams(api: &Api, mock: &MockProvider) {
    setup(api, mock).await;
    mock.set("mock-model", Behavior::default().tokens(1234, 567));
    let (user, key) = api.user_with_key("alice", "10").await;
    let resp = post(api, &key, &chat(false)).await;
    assert_eq!(resp.status(), 200);
    let credits = resp.headers()["x-hub-credits"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hello, world!");
    let one = cost_nanos(&[(1234, "0.15"), (567, "0.6")]);
    assert_eq!(nanos(&Value::String(credits)), one);
    assert_eq!(
        mock.received()[0].authorization.as_deref(),
        Some("Bearer sk-mock-secret-0001")
    );

    let pieces: Vec<String> = (0..6).map(|i| format!("w{i} ")).collect();
    mock.set(
        "mock-model",
        Behavior {
            pieces,
            ..Behavior::default().tokens(20, 16).delay(Duration::from_millis(200))
        },
    );
    let resp = post(api, &key, &chat(true)).await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    let mut first = None;
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if first.is_none() && text.contains("\"w0 \"") {
            first = Some(Instant::now());
        }
    }
    let finished = mock.last_finish().expect("the provider finished");
    let first = first.expect("content arrived");
    assert!(
        finished.duration_since(first) > Duration::from_millis(600),
        "the first words arrived {:?} before the provider finished",
        finished.duration_since(first)
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let two = cost_nanos(&[(20, "0.15"), (16, "0.6")]);
    let u = api
        .wait_user(&user, "settlements", |u| {
            nanos(&u["balance"]) == 10_000_000_000 - one - two
        })
        .await;
    assert_eq!(nanos(&u["held"]), 0);
    assert_eq!(api.ledger_sum(&user).await, nanos(&u["balance"]));
    let log = calls(api, &user, 2).await;
    assert!(
        log.iter().all(|c| c["status"] == "success" && c["estimated"] == false),
        "{log:?}"
    );
    // The usage report counts both, whether it reads the roll-ups the
    // database keeps as calls are logged (an open range) or, for a range
    // that starts minutes ago, partly the call log itself.
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() - 600_000;
    for path in [
        "/api/me/usage?group_by=model".to_string(),
        format!("/api/me/usage?group_by=model&from={since}"),
    ] {
        let (status, usage) = api.call(Method::GET, &path, &key, None).await;
        assert_eq!(status, 200, "{usage}");
        let g = &usage["data"][0];
        assert_eq!(
            (&g["calls"], &g["errors"], &g["input_tokens"], &g["output_tokens"]),
            (&json!(2), &json!(0), &json!(1254), &json!(583)),
            "{path}: {usage}"
        );
        assert_eq!(nanos(&g["credits"]), one + two, "{path}: {usage}");
        assert!(g["ttfb_p95_ms"].as_i64().is_some_and(|ms| ms > 0), "{path}: {usage}");
    }
}

/// No credit: 402 and nothing sent to the provider.
pub async fn no_credit_is_402(api: &Api, mock: &MockProvider) {
    setup(api, mock).await;
    let (_, key) = api.user_with_key("broke", "0").await;
    let (status, body) = api
        .call(Method::POST, "/v1/chat/completions", &key, Some(chat(false)))
        .await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_credits");
    assert!(mock.received().is_empty());
}

/// Concurrent calls in the overspend scenario, and how many the credit covers.
pub const CONCURRENT_CALLS: usize = 8;
pub const AFFORDABLE_CALLS: usize = 3;

/// Many concurrent streams with credit for a few: exactly that many run.
pub async fn concurrent_calls_never_overspend(api: &Api, mock: &MockProvider) {
    setup_at(api, mock, json!({"input_rate": 1000, "output_rate": 1000})).await;
    mock.set("mock-model", Behavior::default().tokens(10, 20));
    mock.pause_streams();
    // "hi" holds (2 bytes + 8 per message + 8 per reply) input + 1000 output tokens.
    let hold = cost_nanos(&[(18 + 1000, "1000")]);
    let credit = AFFORDABLE_CALLS as i128 * hold;
    let amount = hub_core::Credits::from_nanos(credit as i64).to_string();
    let (user, key) = api.user_with_key("dave", &amount).await;
    let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "stream": true, "max_tokens": 1000});
    let answers = futures_util::future::join_all((0..CONCURRENT_CALLS).map(|_| post(api, &key, &body))).await;
    mock.resume_streams();
    let mut ok = 0;
    for resp in answers {
        match resp.status().as_u16() {
            200 => {
                assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));
                ok += 1;
            }
            402 => {}
            other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
        }
    }
    assert_eq!(
        ok, AFFORDABLE_CALLS,
        "credit for exactly {AFFORDABLE_CALLS} calls in flight"
    );
    let per_call = cost_nanos(&[(10, "1000"), (20, "1000")]);
    let u = api
        .wait_user(&user, "all settled", |u| {
            nanos(&u["held"]) == 0 && nanos(&u["balance"]) == credit - AFFORDABLE_CALLS as i128 * per_call
        })
        .await;
    assert_eq!(api.ledger_sum(&user).await, nanos(&u["balance"]));
    assert_eq!(mock.received().len(), AFFORDABLE_CALLS);
}

/// A client that leaves mid-stream is billed for what it was sent, estimated.
pub async fn client_disconnect_bills_the_delivered_part(api: &Api, mock: &MockProvider) {
    setup(api, mock).await;
    let pieces: Vec<String> = (0..50).map(|_| "word ".to_string()).collect();
    mock.set(
        "mock-model",
        Behavior {
            pieces,
            ..Behavior::default().tokens(9, 50).delay(Duration::from_millis(60))
        },
    );
    let (user, key) = api.user_with_key("erin", "1").await;
    let resp = post(api, &key, &chat(true)).await;
    let mut stream = resp.bytes_stream();
    let mut words = 0;
    while words < 5 {
        let chunk = stream.next().await.unwrap().unwrap();
        words += String::from_utf8_lossy(&chunk).matches("word ").count();
    }
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.abandoned() == 0 {
        assert!(
            Instant::now() < deadline,
            "the provider stream was not closed after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.completed(), 0);
    let c = calls(api, &user, 1).await.remove(0);
    assert_eq!(c["status"], "aborted");
    assert_eq!(c["estimated"], true);
    let out = c["output_tokens"].as_u64().unwrap();
    assert!(
        (5..=20).contains(&out),
        "estimated {out} output tokens of the 50 the provider would have charged"
    );
    let input = c["input_tokens"].as_u64().unwrap();
    assert_eq!(nanos(&c["credits"]), cost_nanos(&[(input, "0.15"), (out, "0.6")]));
    let u = api
        .wait_user(&user, "settlement", |u| {
            nanos(&u["balance"]) == 1_000_000_000 - nanos(&c["credits"])
        })
        .await;
    assert_eq!(nanos(&u["held"]), 0);
    assert_eq!(api.ledger_sum(&user).await, nanos(&u["balance"]));
}

/// The admin API: create, read back (secrets masked), change, list.
pub async fn admin_round_trip(api: &Api, mock: &MockProvider) {
    setup(api, mock).await;
    let providers = api.admin(Method::GET, "/api/admin/providers", None).await;
    let p = &providers["data"][0];
    assert_eq!(p["name"], "mock");
    let id = p["id"].as_str().unwrap();
    let creds = api
        .admin(Method::GET, &format!("/api/admin/providers/{id}/credentials"), None)
        .await;
    let shown = creds.to_string();
    assert!(
        !shown.contains("sk-mock-secret-0001") && shown.contains("****"),
        "{shown}"
    );
    let test = api
        .admin(
            Method::POST,
            &format!(
                "/api/admin/credentials/{}/test",
                creds["data"][0]["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(test["ok"], true, "{test}");
    let s = api
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(json!({"currency_prefix": "€", "max_attempts": 2})),
        )
        .await;
    assert_eq!(
        (s["currency_prefix"].as_str(), s["max_attempts"].as_i64()),
        (Some("€"), Some(2))
    );
    let (user, key) = api.user_with_key("frank", "3").await;
    let grant = api
        .admin(
            Method::POST,
            &format!("/api/admin/users/{user}/grants"),
            Some(json!({"amount": "1.5", "reason": "bonus"})),
        )
        .await;
    assert!(grant.get("error").is_none(), "{grant}");
    let u = api
        .wait_user(&user, "grant", |u| nanos(&u["balance"]) == 4_500_000_000)
        .await;
    assert_eq!(u["name"], "frank");
    let (status, me) = api.call(Method::GET, "/api/me", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(nanos(&me["balance"]), 4_500_000_000, "{me}");
    let (status, _) = api.call(Method::GET, "/api/admin/users", &key, None).await;
    assert_eq!(status, 403, "members are refused");
    let (status, _) = api.call(Method::GET, "/api/admin/users", "hub_nope", None).await;
    assert_eq!(status, 401);
    admin_writes_are_audited(api).await;
}

/// The writes of [`admin_round_trip`] are in the audit log, each finished
/// with its status, and the credential's secret is in none of them.
async fn admin_writes_are_audited(api: &Api) {
    let log = api.admin(Method::GET, "/api/admin/audit?limit=100", None).await;
    let text = log.to_string();
    assert!(!text.contains("sk-mock-secret-0001"), "{text}");
    let entries = log["data"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["resource"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    let wanted = [
        ("provider", "create"),
        ("credential", "create"),
        ("credential", "test"),
        ("settings", "update"),
        ("user", "create"),
        ("key", "create"),
    ];
    for want in wanted {
        assert!(seen.contains(&want), "no {want:?} entry: {text}");
    }
    assert_eq!(seen.iter().filter(|w| **w == ("user", "grant")).count(), 2, "{text}");
    assert!(
        entries
            .iter()
            .all(|e| e["status"].as_u64().is_some_and(|s| s < 300) && e["actor"]["user_id"].is_string()),
        "{text}"
    );
}

/// Money leaves Hub as exact decimal strings: a balance of 1,234,567.123456789
/// credits reads back to the nano-credit in `/api/me`, the admin user view and
/// the ledger, and a call that costs as much in `x-hub-credits`, the call log
/// and the usage report.
pub async fn money_comes_back_exactly(api: &Api, mock: &MockProvider) {
    const AMOUNT: &str = "1234567.123456789";
    let model = setup_at(api, mock, json!({"input_rate": "0", "output_rate": AMOUNT})).await;
    let m = api
        .admin(Method::GET, &format!("/api/admin/models/{model}"), None)
        .await;
    assert_eq!(
        (&m["input_rate"], &m["output_rate"]),
        (&json!("0"), &json!(AMOUNT)),
        "{m}"
    );
    let (user, key) = api.user_with_key("rich", &format!("\"{AMOUNT}\"")).await;

    let u = api.user(&user).await;
    assert_eq!(
        (&u["balance"], &u["available"], &u["held"]),
        (&json!(AMOUNT), &json!(AMOUNT), &json!("0")),
        "{u}"
    );
    let (status, me) = api.call(Method::GET, "/api/me", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&me["balance"], &me["available"]),
        (&json!(AMOUNT), &json!(AMOUNT)),
        "{me}"
    );
    let ledger = api
        .admin(Method::GET, &format!("/api/admin/users/{user}/ledger"), None)
        .await;
    assert_eq!(ledger["data"][0]["amount"], AMOUNT, "{ledger}");

    // A million output tokens (the budget asked for) at AMOUNT credits per million cost exactly AMOUNT.
    mock.set("mock-model", Behavior::default().tokens(12, 1_000_000));
    let mut body = chat(false);
    body["max_tokens"] = json!(1_000_000);
    let resp = post(api, &key, &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-hub-credits"], AMOUNT);
    let log = calls(api, &user, 1).await;
    assert_eq!(log[0]["credits"], AMOUNT, "{log:?}");
    let u = api.wait_user(&user, "settlement", |u| u["balance"] == "0").await;
    assert_eq!(u["held"], "0", "{u}");
    let (status, usage) = api.call(Method::GET, "/api/me/usage?group_by=model", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(usage["data"][0]["credits"], AMOUNT, "{usage}");
}

/// A person signs up with the OpenID provider `op` (which must know
/// `{api.base}/auth/oidc/callback`): starter credits once, a working session,
/// sign-out, sign-in again to the same account, and a forged ID token refused.
pub async fn signs_people_in_with_oidc(api: &Api, op: &crate::oidc::OidcProvider) {
    use crate::oidc::{Browser, CLIENT_ID, CLIENT_SECRET};
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({
            "oidc_issuer": op.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "signup_open": true,
            "starter_credits": "3",
        })),
    )
    .await;
    let me_url = format!("{}/api/me", api.base);
    let mut b = Browser::new();
    let page = b.sign_in_oidc(&api.base, "runtime@example.com", "/#/account").await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert_eq!(page.location, Some(format!("{}/#/account", api.base)));
    let (status, first) = b.get_json(&me_url).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["balance"].as_str(), first["role"].as_str()),
        (Some("3"), Some("member"))
    );
    let csrf = first["session"]["csrf_token"].as_str().unwrap().to_string();
    let out = b
        .request(
            Method::POST,
            &format!("{}/auth/logout", api.base),
            None,
            &[("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.body);
    assert_eq!(b.get_json(&me_url).await.0, 401);
    let again = b.sign_in_oidc(&api.base, "runtime@example.com", "/").await;
    assert_eq!(again.status, 302, "{}", again.body);
    let (_, second) = b.get_json(&me_url).await;
    assert_eq!(second["user"]["id"], first["user"]["id"]);
    assert_eq!(second["balance"], "3", "starter credits once");
    op.tamper("signature").await;
    let forged = Browser::new().sign_in_oidc(&api.base, "forger@example.com", "/").await;
    assert_eq!(forged.status, 403, "{}", forged.body);
}

/// Buying a pack: the checkout creates the session Stripe expects, and the
/// paid webhook, signed by Stripe's own library and delivered three times
/// at once (as Stripe may retry while the first is still being handled),
/// grants the pack's credits exactly once: one ledger entry, the balance
/// up by exactly 100 credits, every delivery recorded.
pub async fn paid_webhook_grants_once(api: &Api, stripe: &crate::stripe::StripeStandIn) {
    use crate::stripe::{completed_session, deliver, event, sign, Shop, WEBHOOK_SECRET};
    let shop = Shop::open(api, stripe).await;
    let (status, answer) = shop.checkout(api).await;
    assert_eq!(status, 201, "{answer}");
    let created = stripe.created().pop().expect("Stripe was asked for a session");
    assert_eq!(answer["url"], created.session["url"]);
    assert_eq!(created.param("client_reference_id"), Some(shop.user.as_str()));

    let event_id = format!("evt_test_{}", crate::unique().replace('-', ""));
    let session = completed_session(&created, "paid", "pi_test_grant_once");
    let payload = event(&event_id, "checkout.session.completed", session);
    let header = sign(&payload, &[WEBHOOK_SECRET], None);
    let deliveries = (0..3).map(|_| deliver(api, &payload, &header));
    let answers = futures_util::future::join_all(deliveries).await;
    let mut outcomes: Vec<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            body["outcome"].as_str().unwrap().to_string()
        })
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["already_granted", "already_granted", "granted"]);

    let hundred = nanos(&json!("100"));
    let u = api.user(&shop.user).await;
    assert_eq!(nanos(&u["balance"]), hundred, "{u}");
    assert_eq!(api.ledger_sum(&shop.user).await, hundred);
    let ledger = api
        .admin(Method::GET, &format!("/api/admin/users/{}/ledger", shop.user), None)
        .await;
    let grants: Vec<&Value> = ledger["data"].as_array().unwrap().iter().collect();
    assert_eq!(grants.len(), 1, "{ledger}");
    assert_eq!(
        grants[0]["ref"],
        json!(format!("stripe:{}", created.session["id"].as_str().unwrap()))
    );

    let me = api.call(Method::GET, "/api/me/payments", &shop.key, None).await.1;
    assert_eq!(me["data"][0]["status"], "paid", "{me}");
    assert_eq!(me["data"][0]["payment_intent"], "pi_test_grant_once");
    let events = api.admin(Method::GET, "/api/admin/payments/events", None).await;
    let mine: Vec<&Value> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_id"] == json!(event_id))
        .collect();
    assert_eq!(mine.len(), 3, "every delivery is recorded: {events}");
}

/// Users redeeming one code at once in the redemption scenario.
pub const REDEEMERS: usize = 8;

/// Redemption codes: a batch minted (codes shown once), `REDEEMERS` users
/// redeeming a two-use code at once get exactly two grants, the ledgers
/// agree with the balances, and the list shows the code used up.
pub async fn redeems_codes_within_their_uses(api: &Api) {
    let minted = api
        .admin(
            Method::POST,
            "/api/admin/redemption-codes",
            Some(json!({"credits": "1.5", "uses": 2})),
        )
        .await;
    let code = minted["codes"][0].as_str().expect("a code").to_string();
    let mut people = Vec::new();
    for i in 0..REDEEMERS {
        people.push(api.user_with_key(&format!("redeemer-{i}"), "0").await);
    }
    let answers = futures_util::future::join_all(people.iter().map(|(_, key)| {
        api.call(
            Method::POST,
            "/api/me/redeem",
            key,
            Some(json!({"code": code.to_lowercase()})),
        )
    }))
    .await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 2, "{answers:?}");
    for (status, v) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*status, &v["error"]["code"]), (400, &json!("code_invalid")), "{v}");
    }
    let mut total = 0;
    for (user, _) in &people {
        let balance = nanos(&api.user(user).await["balance"]);
        assert_eq!(api.ledger_sum(user).await, balance, "{user}");
        total += balance;
    }
    assert_eq!(total, 3_000_000_000, "two grants of 1.5");
    let list = api.admin(Method::GET, "/api/admin/redemption-codes", None).await;
    let listed = &list["data"][0]["codes"][0];
    assert_eq!(
        (&listed["state"], &listed["redemptions"]),
        (&json!("used_up"), &json!(2)),
        "{list}"
    );
    assert!(!list.to_string().contains(&code[4..]), "a code listed: {list}");
}

/// Credits that expire, on a runtime without a timer: a grant expiring in
/// three seconds beside one that never does; once it is past, reading the
/// balance shows the expiring credit gone through an `expiry` ledger entry
/// and the ledger still summing to the balance.
pub async fn credits_expire_through_the_ledger(api: &Api) {
    let (user, key) = api.user_with_key("expiring", "0").await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let expires_at = now_ms + 3_000;
    let grants = format!("/api/admin/users/{user}/grants");
    let body = json!({"amount": "2", "reason": "trial", "expires_at": expires_at});
    let g = api.admin(Method::POST, &grants, Some(body)).await;
    assert_eq!(
        g["expires_at"].as_str().map(str::len),
        Some(24),
        "an ISO-8601 time: {g}"
    );
    api.admin(Method::POST, &grants, Some(json!({"amount": "1"}))).await;
    let (_, me) = api.call(Method::GET, "/api/me", &key, None).await;
    assert_eq!(
        (&me["balance"], &me["expiring"]["amount"]),
        (&json!("3"), &json!("2")),
        "{me}"
    );
    let (_, buckets) = api.call(Method::GET, "/api/me/credit-buckets", &key, None).await;
    let bucket = buckets["data"][0].clone();
    assert_eq!(
        (&bucket["amount"], &bucket["remaining"], &bucket["reason"]),
        (&json!("2"), &json!("2"), &json!("trial")),
        "{buckets}"
    );

    // Bounded: the expiry is three seconds away.
    let wait = Duration::from_millis((expires_at - now_ms + 300) as u64);
    tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
    let (_, me) = api.call(Method::GET, "/api/me", &key, None).await;
    assert_eq!(
        (&me["balance"], &me["expiring"]["amount"]),
        (&json!("1"), &json!("0")),
        "{me}"
    );
    let (_, ledger) = api.call(Method::GET, "/api/me/ledger", &key, None).await;
    let entry = &ledger["data"][0];
    let reference = format!("expiry:{}", bucket["id"]);
    assert_eq!(
        (&entry["kind"], &entry["amount"], entry["ref"].as_str()),
        (&json!("expiry"), &json!("-2"), Some(reference.as_str())),
        "{ledger}"
    );
    assert_eq!(api.ledger_sum(&user).await, 1_000_000_000);
    let (_, buckets) = api.call(Method::GET, "/api/me/credit-buckets", &key, None).await;
    assert_eq!(buckets["data"], json!([]), "no credit left to expire");
}

/// A webhook delivered by this runtime right after the event (an admin's
/// grant), its signature verified by the Standard Webhooks reference
/// library, and its one attempt logged.
pub async fn webhook_is_delivered_signed(api: &Api) {
    let mut rx = tokio::task::spawn_blocking(|| crate::webhooks::Receiver::start(None))
        .await
        .unwrap();
    let w = api
        .admin(
            Method::POST,
            "/api/admin/webhooks",
            Some(json!({"url": rx.url(), "events": ["credits.granted"]})),
        )
        .await;
    rx.set_secret(w["secret"].as_str().unwrap());
    let u = api
        .admin(Method::POST, "/api/admin/users", Some(json!({"name": "wes"})))
        .await;
    let user = u["id"].as_str().unwrap();
    api.admin(
        Method::POST,
        &format!("/api/admin/users/{user}/grants"),
        Some(json!({"amount": "7.25", "reason": "welcome"})),
    )
    .await;
    let got = crate::eventually("the webhook delivery", Duration::from_secs(30), || async {
        let got = rx.received();
        got.first().cloned().ok_or_else(|| "nothing yet".to_string())
    })
    .await;
    assert_eq!(got["verified"], true, "{got}");
    let body = crate::webhooks::body_of(&got);
    assert_eq!(body["type"], "credits.granted");
    assert_eq!(body["data"]["credits"], "7.25");
    assert_eq!(body["data"]["user_id"], user);
    let id = w["id"].as_str().unwrap();
    let log = crate::eventually("the logged attempt", Duration::from_secs(10), || async {
        let log = api
            .admin(Method::GET, &format!("/api/admin/webhooks/{id}/deliveries"), None)
            .await;
        (log["data"][0]["state"] == "delivered")
            .then_some(log)
            .ok_or_else(|| "not yet".to_string())
    })
    .await;
    assert_eq!(log["data"][0]["attempts"][0]["status"], 204);
    assert_eq!(rx.received().len(), 1);
}

/// Audio and video on every runtime: a transcription form parsed and passed
/// on, speech relayed as raw audio, a video polled to its end, each billed to
/// the nano-credit; a failed video leaves nothing held.
pub async fn audio_and_video_are_billed_exactly(api: &Api, mock: &MockProvider) {
    let provider = api
        .setup_provider("mock", &mock.base_url(), "sk-mock-secret-0001")
        .await;
    for (model, kind, rate, value) in [
        ("whisper-mock", "transcription", "audio_rate", "0.006"),
        ("tts-mock", "speech", "audio_rate", "15"),
        ("sora-mock", "video", "video_rate", "0.1"),
        ("sora-fail", "video", "video_rate", "0.1"),
    ] {
        let m = api
            .add_model(&provider, model, json!({"type": kind, rate: value}))
            .await;
        assert!(m["id"].is_string(), "{m}");
    }
    mock.set(
        "whisper-mock",
        Behavior {
            transcript_usage: json!({"type": "duration", "seconds": 9}),
            ..Default::default()
        },
    );
    mock.set(
        "sora-fail",
        Behavior {
            video_failure: Some("refused".into()),
            ..Default::default()
        },
    );
    let (user, key) = api.user_with_key("media", "10").await;
    let boundary = "----suite-media";
    let mut form = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nmock/whisper-mock\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n").into_bytes();
    form.extend_from_slice(&[7u8; 10_000]);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let post = |path: &str| api.http.post(format!("{}{path}", api.base)).bearer_auth(&key);
    let r = post("/v1/audio/transcriptions")
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-hub-credits"], "0.054");
    let input = "Hello, wörld";
    let r = post("/v1/audio/speech")
        .json(&json!({"model": "mock/tts-mock", "input": input, "voice": "alloy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), crate::mock::speech_audio(input).concat());
    let video = |model: &str| json!({"input": {"prompt": "waves", "seconds": "4", "modelOptions": {"model": model}}});
    let r = post("/api/v2/video")
        .json(&video("mock/sora-mock"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["seconds"], 4);
    let r = post("/api/v2/video")
        .json(&video("mock/sora-fail"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    // 9 s at 0.006, 12 characters at 15 per million, 4 s of video at 0.1.
    settled(api, &user, "9.54582").await;
}

/// OpenAI's asynchronous `/v1/videos`, on any runtime: a job created from a
/// form holds the seconds asked for × the rate, is polled (queued, in
/// progress, completed) under Hub's own id, and its MP4 downloaded is the
/// provider's; it is billed once, exactly, however many polls race to see
/// it end; a failed job releases its hold; another user's key sees none of
/// it; the ledger sums to the balance throughout.
pub async fn openai_videos_are_followed_and_billed_exactly(api: &Api, mock: &MockProvider) {
    let provider = api
        .setup_provider("mock", &mock.base_url(), "sk-mock-secret-0001")
        .await;
    for model in ["sora-mock", "sora-fail"] {
        let m = api
            .add_model(&provider, model, json!({"type": "video", "video_rate": "0.1"}))
            .await;
        assert!(m["id"].is_string(), "{m}");
    }
    let polls = |n| Behavior {
        video_polls: n,
        ..Default::default()
    };
    mock.set("sora-mock", polls(2));
    mock.set(
        "sora-fail",
        Behavior {
            video_failure: Some("refused by the safety system".into()),
            ..polls(1)
        },
    );
    let (user, key) = api.user_with_key("videos", "10").await;
    let (_, other) = api.user_with_key("someone-else", "1").await;
    let url = |path: &str| format!("{}/v1/videos{path}", api.base);
    let get = |path: String, key: String| {
        let req = api.http.get(path).bearer_auth(key);
        async move { req.send().await.unwrap() }
    };

    // Created from a form, as the SDK sends it: queued, under Hub's own id.
    let video = create_video(api, &key, "mock/sora-mock", "8").await;
    let id = video["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("video_") && !id.contains("mock"), "{video}");
    assert_eq!(
        (&video["object"], &video["status"], &video["seconds"], &video["size"]),
        (&json!("video"), &json!("queued"), &json!("8"), &json!("1280x720")),
        "{video}"
    );
    // 8 s × 0.1 is held while it runs.
    api.wait_user(&user, "0.8 held", |u| nanos(&u["held"]) == nanos(&json!("0.8")))
        .await;
    // Someone else's key finds nothing; the content is not ready yet.
    for path in [format!("/{id}"), format!("/{id}/content")] {
        let r = get(url(&path), other.clone()).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = get(url(&format!("/{id}/content")), key.clone()).await;
    assert_eq!(r.status(), 400, "content before completion");
    // Polled to completion.
    let mut seen = Vec::new();
    let done = loop {
        let v: Value = get(url(&format!("/{id}")), key.clone()).await.json().await.unwrap();
        seen.push((v["status"].clone(), v["progress"].clone()));
        if v["status"] != "queued" && v["status"] != "in_progress" {
            break v;
        }
        assert!(seen.len() < 20, "never finished: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(seen.contains(&(json!("in_progress"), json!(50))), "{seen:?}");
    assert_eq!(
        (&done["status"], &done["progress"], &done["seconds"]),
        (&json!("completed"), &json!(100), &json!("8")),
        "{done}"
    );
    assert!(done["completed_at"].is_i64() && done["error"].is_null(), "{done}");
    let r = get(url(&format!("/{id}/content")), key.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert_eq!(r.bytes().await.unwrap(), crate::mock::VIDEO_BYTES);
    settled(api, &user, "9.2").await;

    // Many polls see the next job end at once: it is billed once.
    mock.set("sora-mock", polls(0));
    let second = create_video(api, &key, "mock/sora-mock", "4").await;
    let path = url(&format!("/{}", second["id"].as_str().unwrap()));
    let polls = futures_util::future::join_all((0..8).map(|_| get(path.clone(), key.clone()))).await;
    for r in polls {
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], "completed", "{v}");
    }
    settled(api, &user, "8.8").await;
    let ledger = api
        .admin(Method::GET, &format!("/api/admin/users/{user}/ledger?limit=500"), None)
        .await;
    let usage = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "usage")
        .count();
    assert_eq!(usage, 2, "one usage entry per video: {ledger}");

    // A failed generation: its hold released, nothing billed.
    let failed = create_video(api, &key, "mock/sora-fail", "4").await;
    let path = url(&format!("/{}", failed["id"].as_str().unwrap()));
    let mut polls = 0;
    let failed = loop {
        let v: Value = get(path.clone(), key.clone()).await.json().await.unwrap();
        if v["status"] == "failed" {
            break v;
        }
        assert_eq!(v["status"], "in_progress", "{v}");
        polls += 1;
        assert!(polls < 200, "the failed video never ended: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let why = failed["error"]["message"].as_str().unwrap_or_default();
    assert!(why.contains("refused by the safety system"), "{failed}");
    settled(api, &user, "8.8").await;

    // Listed newest first, for their owner only; deleted, gone.
    let list: Value = get(url("?limit=2"), key.clone()).await.json().await.unwrap();
    let ids: Vec<&Value> = list["data"].as_array().unwrap().iter().map(|v| &v["id"]).collect();
    assert_eq!(ids, [&failed["id"], &second["id"]], "{list}");
    assert_eq!(list["has_more"], true, "{list}");
    let theirs: Value = get(url(""), other.clone()).await.json().await.unwrap();
    assert_eq!(theirs["data"], json!([]), "{theirs}");
    let (status, deleted) = api.call(Method::DELETE, &format!("/v1/videos/{id}"), &key, None).await;
    assert_eq!((status, &deleted["deleted"]), (200, &json!(true)), "{deleted}");
    assert_eq!(get(url(&format!("/{id}")), key.clone()).await.status(), 404);
    settled(api, &user, "8.8").await;
}

/// Waits until the user's balance is `balance` with nothing held, and checks
/// the ledger sums to it; returns the user.
pub async fn settled(api: &Api, user: &str, balance: &str) -> Value {
    let want = nanos(&json!(balance));
    let u = api
        .wait_user(user, &format!("balance {balance}, nothing held"), |u| {
            nanos(&u["balance"]) == want && nanos(&u["held"]) == 0
        })
        .await;
    assert_eq!(api.ledger_sum(user).await, want, "the ledger sums to the balance");
    u
}

/// `POST /v1/videos` as OpenAI's SDK sends it (a multipart form); returns the video object.
pub async fn create_video(api: &Api, key: &str, model: &str, seconds: &str) -> Value {
    let boundary = "----suite-videos";
    let mut form = String::new();
    for (k, v) in [
        ("model", model),
        ("prompt", "waves at dawn"),
        ("seconds", seconds),
        ("size", "1280x720"),
    ] {
        form.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    form.push_str(&format!("--{boundary}--\r\n"));
    let r = api
        .http
        .post(format!("{}/v1/videos", api.base))
        .bearer_auth(key)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

/// `aigne hub connect` over HTTP, on any runtime: the CLI's session opened,
/// approved by a person signed in with OpenID Connect (`op` must know
/// `{api.base}/auth/oidc/callback`) through the session cookie and its CSRF
/// token, picked up and decrypted with the CLI's own `crypto.js`, ended; the
/// key is that person's, and the ended session hands out nothing.
pub async fn aigne_cli_connects(api: &Api, op: &crate::oidc::OidcProvider) {
    use crate::oidc::{Body, Browser, CLIENT_ID, CLIENT_SECRET};
    use base64::Engine;
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({"oidc_issuer": op.issuer, "oidc_client_id": CLIENT_ID, "oidc_client_secret": CLIENT_SECRET, "signup_open": true})),
    )
    .await;
    api.wait_oidc_everywhere().await;
    let mut b = Browser::new();
    let signed_in = b.sign_in_oidc(&api.base, "connect@example.com", "/").await;
    assert_eq!(signed_in.status, 302, "{}", signed_in.body);
    let (_, me) = b.get_json(&format!("{}/api/me", api.base)).await;
    let csrf = me["session"]["csrf_token"].as_str().unwrap().to_string();

    let session = format!("{}/.well-known/service/api/access-key/session", api.base);
    let http = reqwest::Client::new();
    let opened: Value = http.post(&session).send().await.unwrap().json().await.unwrap();
    let sid = opened["id"].as_str().expect("a session id").to_string();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sid);
    let decide = |approve: bool| Body::Json(json!({"token": token, "approve": approve, "app_name": " AIGNE CLI"}));
    let url = format!("{}/api/me/connect", api.base);
    let refused = b.request(Method::POST, &url, Some(decide(true)), &[]).await;
    assert_eq!(
        refused.status, 403,
        "a cookie write without its CSRF token: {}",
        refused.body
    );
    let approved = b
        .request(Method::POST, &url, Some(decide(true)), &[("x-csrf-token", &csrf)])
        .await;
    assert_eq!(approved.status, 201, "{}", approved.body);

    let got: Value = http
        .get(format!("{session}?sid={sid}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = cli_decrypt(&got);
    let (status, mine) = api.call(Method::GET, "/api/me", &key, None).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(
        (&mine["user"]["id"], mine["key"]["label"].as_str()),
        (&me["user"]["id"], Some("AIGNE CLI"))
    );

    let ended = http.delete(format!("{session}?sid={sid}")).send().await.unwrap();
    assert_eq!(ended.status(), 200);
    for probe in [sid.as_str(), "not-a-session"] {
        let r = http.get(format!("{session}?sid={probe}")).send().await.unwrap();
        assert_eq!(r.status(), 404);
        let v: Value = r.json().await.unwrap();
        assert!(v.get("accessKeySecret").is_none(), "{v}");
    }
}

/// The key in a session answer, as the AIGNE CLI decrypts it (its own crypto.js, run by node).
fn cli_decrypt(session: &Value) -> String {
    let dir = crate::worker::repo_root().join("tests/agents/aigne-cli");
    crate::node::ensure_installed(&dir).expect("npm ci in tests/agents/aigne-cli");
    let script = "import { decrypt } from '@aigne/cli/utils/aigne-hub/crypto.js';\n\
                  const [secret, id, challenge] = process.argv.slice(1);\n\
                  console.log(decrypt(secret, id, challenge));";
    let mut cmd = std::process::Command::new("node");
    cmd.current_dir(&dir).args(["--input-type=module", "-e", script]);
    for field in ["accessKeySecret", "accessKeyId", "challenge"] {
        cmd.arg(
            session[field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field}: {session}")),
        );
    }
    let out = crate::run_bounded(cmd, std::time::Duration::from_secs(60), "the CLI's decrypt").unwrap();
    let key = out.trim().to_string();
    assert!(key.starts_with("hub_"), "decrypted: {out}");
    key
}

/// A team budget of 1 credit, two members firing ten calls of 0.1 each at
/// once: exactly ten get through (one conditional write per call reserves
/// the team's spend, whichever instance or runtime admits it), the rest are
/// 429 naming the team's budget, and the team has spent exactly 1.
pub async fn team_budget_holds_across_members(api: &Api, mock: &MockProvider) {
    // Output only, 0.01 credits a token: `max_tokens: 10` holds 0.1 and, answering 10 tokens, costs exactly that.
    setup_at(api, mock, json!({"input_rate": 0, "output_rate": 10000})).await;
    mock.set("mock-model", Behavior::default().tokens(7, 10));
    let team = api
        .admin(
            Method::POST,
            "/api/admin/teams",
            Some(json!({"name": "budgeted", "budget": 1, "budget_period": "monthly", "time_zone": "America/New_York"})),
        )
        .await;
    let team = team["id"].as_str().expect("team created").to_string();
    let mut keys = Vec::new();
    for name in ["ana", "ben"] {
        let (user, _) = api.user_with_key(name, "100").await;
        api.admin(
            Method::POST,
            &format!("/api/teams/{team}/members"),
            Some(json!({"user_id": user})),
        )
        .await;
        // Being added to a team does not move a member's keys: a key joins it when asked.
        let own = api
            .admin(Method::POST, &format!("/api/admin/users/{user}/keys"), Some(json!({})))
            .await;
        assert_eq!(own["team_id"], Value::Null, "{own}");
        let k = api
            .admin(
                Method::POST,
                &format!("/api/admin/users/{user}/keys"),
                Some(json!({"team_id": team})),
            )
            .await;
        assert_eq!(k["team_id"], json!(team), "{k}");
        keys.push(k["key"].as_str().unwrap().to_string());
    }
    let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10});
    let calls = (0..20).map(|i| api.call(Method::POST, "/v1/chat/completions", &keys[i % 2], Some(body.clone())));
    let answers = futures_util::future::join_all(calls).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 10, "{answers:?}");
    for (status, v) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 429, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap_or("").contains("team's budget"),
            "{v}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let t = api.admin(Method::GET, &format!("/api/teams/{team}"), None).await;
        if nanos(&t["spent"]) == nanos(&json!("1")) {
            assert_eq!(t["remaining"], json!("0"), "{t}");
            break;
        }
        assert!(Instant::now() < deadline, "the team's spend never settled at 1: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The response cache, on this runtime's own storage: an identical request,
/// whole and streamed, is answered without the provider, the same bytes,
/// marked `hit` and billed the hit fraction (half here); the call log and
/// the balance agree. (On a multi-instance runtime the setting reaches the
/// other instances within their cache TTL, and each finds the answer in the
/// database.)
pub async fn response_cache_answers_identical_requests(api: &Api, mock: &MockProvider) {
    setup_at(api, mock, json!({"input_rate": 2, "output_rate": 8})).await;
    mock.set("mock-model", Behavior::default().tokens(1000, 500));
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({"response_cache_enabled": true, "response_cache_hit_fraction": "0.5"})),
    )
    .await;
    let (user, key) = api.user_with_key("cached", "10").await;
    let full = cost_nanos(&[(1000, "2"), (500, "8")]);
    // Read whole (a stream as the bytes of all its events).
    let send = |stream: bool| {
        let key = key.clone();
        async move {
            let resp = post(api, &key, &chat(stream)).await;
            assert_eq!(resp.status(), 200);
            let cache = resp
                .headers()
                .get("x-hub-cache")
                .map(|v| v.to_str().unwrap().to_string());
            (cache, resp.bytes().await.unwrap())
        }
    };
    for stream in [false, true] {
        // The first: a miss once every instance has the setting.
        let deadline = Instant::now() + Duration::from_secs(15);
        let (first, body) = loop {
            let (cache, body) = send(stream).await;
            if cache.is_some() {
                break (cache, body);
            }
            assert!(Instant::now() < deadline, "the cache never turned on");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(first.as_deref(), Some("miss"));
        let reached = mock.received().len();
        let (again, replayed) = send(stream).await;
        assert_eq!(again.as_deref(), Some("hit"), "stream: {stream}");
        assert_eq!(replayed, body, "the same answer, byte for byte");
        assert_eq!(mock.received().len(), reached, "a hit does not reach the provider");
    }
    let log = calls(api, &user, 4).await;
    let hits: Vec<&Value> = log.iter().filter(|c| c["response_cache"] == "hit").collect();
    assert_eq!(hits.len(), 2, "{log:?}");
    assert!(hits
        .iter()
        .all(|h| nanos(&h["credits"]) == full / 2 && nanos(&h["response_cache_saved"]) == full / 2));
    let spent: i128 = log.iter().map(|c| nanos(&c["credits"])).sum();
    let left = hub_core::Credits::from_nanos((10_000_000_000 - spent) as i64).to_string();
    settled(api, &user, &left).await;
}

/// A copy of a price catalogue kept under `tests/fixtures/prices`.
pub fn price_fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/prices")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn admin_model(api: &Api, id: &str) -> Value {
    api.admin(Method::GET, &format!("/api/admin/models/{id}"), None).await
}

/// What [`prices_sync_and_bill_the_tier`] set up, for a runtime's further checks.
pub struct PricedModels {
    /// `ant/claude-sonnet-4-5`: disabled at the end, below cost.
    pub claude: String,
    /// `oai/gpt-4o-mini`: costs 0.15 / 0.6, sold at 0.2 / 0.8.
    pub mini: String,
    /// The provider `or` (kind openrouter), without models.
    pub openrouter: String,
}

/// Price sync from LiteLLM's price map (the fixture copy, uploaded): costs,
/// context windows and the long-context tier land (a sell tier at the
/// model's own margin); a 300k-token prompt is billed at the tier to the
/// nano-credit and its usage row keeps the tier rates; a cost rising above
/// the sell rate flags the model, notifies a webhook and, with auto-disable
/// on, stops it being served; both changes are in the rate history.
pub async fn prices_sync_and_bill_the_tier(api: &Api, mock: &MockProvider) -> PricedModels {
    let root = mock.root_url();
    let ant = api
        .provider(
            json!({"name": "ant", "kind": "anthropic", "base_url": format!("{root}/v1")}),
            "sk-ant-0001",
        )
        .await;
    let oai = api
        .provider(
            json!({"name": "oai", "kind": "openai", "base_url": mock.base_url()}),
            "sk-oai-0001",
        )
        .await;
    let openrouter = api
        .provider(
            json!({"name": "or", "kind": "openrouter", "base_url": mock.base_url()}),
            "sk-or-0001",
        )
        .await;
    let model_id = |m: Value| m["id"].as_str().unwrap().to_string();
    // Sold 20% over today's costs, without a long-context tier.
    let rates = json!({"input_rate": "3.6", "output_rate": "18", "cache_read_rate": "0.36", "cache_write_rate": "4.5"});
    let claude = model_id(api.add_model(&ant, "claude-sonnet-4-5", rates).await);
    let mini = model_id(
        api.add_model(&oai, "gpt-4o-mini", json!({"input_rate": "0.2", "output_rate": "0.8"}))
            .await,
    );
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({"margin_percent": "20", "margin_floor_percent": "10"})),
    )
    .await;

    let report = api
        .admin(
            Method::POST,
            "/api/admin/prices/sync",
            Some(json!({"format": "litellm", "catalogue": price_fixture("litellm.json")})),
        )
        .await;
    let matched: Vec<&str> = report["matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(matched, ["ant/claude-sonnet-4-5", "oai/gpt-4o-mini"], "{report}");
    let c = admin_model(api, &claude).await;
    for (field, want) in [
        ("cost_input_rate", "3"),
        ("cost_output_rate", "15"),
        ("cost_cache_read_rate", "0.3"),
        ("cost_cache_write_rate", "3.75"),
        ("cost_input_rate_above_200k", "6"),
        ("cost_output_rate_above_200k", "22.5"),
        ("cost_cache_read_rate_above_200k", "0.6"),
        // The sell tier keeps the model's own 20% over cost.
        ("input_rate_above_200k", "7.2"),
        ("output_rate_above_200k", "27"),
        ("cache_read_rate_above_200k", "0.72"),
        ("cache_write_rate_above_200k", "9"),
        ("input_rate", "3.6"),
    ] {
        assert_eq!(c[field], want, "{field}: {c}");
    }
    assert_eq!(
        (&c["long_context_threshold"], &c["context_window"]),
        (&json!(200_000), &json!(200_000))
    );
    assert_eq!(
        (&c["price_source"], &c["below_cost"]),
        (&json!("litellm"), &json!(false))
    );
    let m = admin_model(api, &mini).await;
    assert_eq!(
        (&m["cost_input_rate"], &m["below_cost"]),
        (&json!("0.15"), &json!(false))
    );

    // A 300k-token prompt is billed at the tier: 300000 × 7.2 + 1000 × 27 = 2.187 credits.
    mock.set("claude-sonnet-4-5", Behavior::default().tokens(300_000, 1_000));
    let (user, key) = api.user_with_key("long", "10").await;
    let prompt = "x".repeat(310_000);
    let body = json!({"model": "ant/claude-sonnet-4-5", "messages": [{"role": "user", "content": prompt}]});
    let (status, answer) = api.call(Method::POST, "/v1/chat/completions", &key, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    settled(api, &user, "7.813").await;

    // A cost rising above the sell rate: flagged, notified and, with auto-disable, no longer served.
    let mut rx = tokio::task::spawn_blocking(|| crate::webhooks::Receiver::start(None))
        .await
        .unwrap();
    let w = api
        .admin(
            Method::POST,
            "/api/admin/webhooks",
            Some(json!({"url": rx.url(), "events": ["model.below_cost"]})),
        )
        .await;
    rx.set_secret(w["secret"].as_str().unwrap());
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({"below_cost_action": "disable"})),
    )
    .await;
    let mut dearer = price_fixture("litellm.json");
    dearer["claude-sonnet-4-5"]["input_cost_per_token"] = json!(4e-06);
    let report = api
        .admin(
            Method::POST,
            "/api/admin/prices/sync",
            Some(json!({"format": "litellm", "catalogue": dearer})),
        )
        .await;
    let flagged = report["matched"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == claude.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (&flagged["below_cost"], &flagged["disabled"]),
        (&json!(true), &json!(true)),
        "{report}"
    );
    let c = admin_model(api, &claude).await;
    assert_eq!(
        (&c["below_cost"], &c["enabled"], &c["cost_input_rate"]),
        (&json!(true), &json!(false), &json!("4"))
    );
    let got = crate::eventually("the below-cost webhook", Duration::from_secs(30), || async {
        rx.of_type("model.below_cost")
            .first()
            .cloned()
            .ok_or("nothing yet".to_string())
    })
    .await;
    assert_eq!(got["verified"], true, "{got}");
    let body = crate::webhooks::body_of(&got);
    assert_eq!(
        (&body["data"]["model_id"], &body["data"]["model"]),
        (&json!(claude), &json!("claude-sonnet-4-5"))
    );
    let served = mock.received().len();
    let (status, err) = api.chat(&key, "ant/claude-sonnet-4-5").await;
    assert_ne!(status, 200, "a disabled model is not served: {err}");
    assert_eq!(mock.received().len(), served, "nothing reached the provider");

    let history = api
        .admin(Method::GET, &format!("/api/admin/models/{claude}/rate-history"), None)
        .await;
    let rows = history["data"].as_array().unwrap();
    let cost_change = rows
        .iter()
        .find(|r| r["field"] == "cost_input_rate" && r["new"] == "4")
        .unwrap();
    assert_eq!(
        (&cost_change["old"], &cost_change["source"]),
        (&json!("3"), &json!("sync"))
    );
    assert!(rows
        .iter()
        .any(|r| r["field"] == "input_rate_above_200k" && r["new"] == "7.2" && r["source"] == "sync"));
    PricedModels {
        claude,
        mini,
        openrouter,
    }
}

/// A prompt of about 500 tokens (Hub estimates four bytes a token).
fn long_prompt() -> String {
    "All work and no play. ".repeat(90)
}

/// A call that must answer 200: its call id and its body's text.
async fn post_ok(api: &Api, path: &str, key: &str, body: Value) -> (String, String) {
    let resp = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let call_id = resp
        .headers()
        .get("x-hub-call-id")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{path}: {text}");
    (call_id, text)
}

/// The call log's rows for one call, by attempt.
fn attempts_of(rows: &[Value], call_id: &str) -> Vec<Value> {
    let mut mine: Vec<Value> = rows.iter().filter(|r| r["call_id"] == call_id).cloned().collect();
    mine.sort_by_key(|r| r["attempt"].as_i64());
    mine
}

/// A model alias of three targets: the first provider fails (500), the
/// second's context window is too small for the prompt (passed over without
/// being asked), the third answers with its override, in OpenAI's protocol
/// (whole), Anthropic's (streamed) and AIGNE Hub's; billed at the third's rates, every
/// attempt logged with its reason. Then a content-policy refusal moving on
/// only when the alias asks for it, a key allowed only the alias, and the
/// admin API's refusals and audit.
pub async fn alias_falls_back_across_its_targets(api: &Api) {
    let (a, b, c) = (
        MockProvider::start().await,
        MockProvider::start().await,
        MockProvider::start().await,
    );
    let pa = api
        .provider(
            json!({"name": "a", "kind": "openai", "base_url": a.base_url()}),
            "sk-a-0001",
        )
        .await;
    let pb = api
        .provider(
            json!({"name": "b", "kind": "openai", "base_url": b.base_url()}),
            "sk-b-0001",
        )
        .await;
    let pc = api
        .provider(
            json!({"name": "c", "kind": "anthropic", "base_url": c.base_url()}),
            "sk-c-0001",
        )
        .await;
    api.add_model(&pa, "first", json!({"input_rate": 1, "output_rate": 1}))
        .await;
    api.add_model(&pa, "risky", json!({"input_rate": 1, "output_rate": 1}))
        .await;
    api.add_model(
        &pb,
        "small",
        json!({"input_rate": 1, "output_rate": 1, "metadata": {"context_window": 100}}),
    )
    .await;
    let big = api
        .add_model(
            &pc,
            "big",
            json!({"input_rate": 3, "output_rate": 7, "metadata": {"context_window": 200000}}),
        )
        .await;
    assert_eq!(big["context_window"], 200000);
    a.set("first", Behavior::status(500));
    a.set(
        "risky",
        Behavior {
            status: 400,
            error_message: Some("Your request was rejected as a result of our safety system.".into()),
            ..Default::default()
        },
    );
    c.set("big", Behavior::text(&["Served", " by big"]).tokens(100, 20));

    // Refused with the field named, nothing created.
    for (body, field, why) in [
        (json!({"name": "x", "targets": ["nope"]}), "targets", "names no model"),
        (json!({"name": "big", "targets": ["first"]}), "name", "model's name"),
        (json!({"name": "a/x", "targets": ["first"]}), "name", "`/`"),
        (
            json!({"name": "x", "targets": [{"model": "big", "overrides": {"model": "y"}}]}),
            "targets",
            "`model`",
        ),
        (
            json!({"name": "x", "targets": ["big"], "routing": "fastest"}),
            "routing",
            "priority",
        ),
        (json!({"name": "x", "targets": []}), "targets", "1 to 10"),
    ] {
        let (status, err) = api
            .call(Method::POST, "/api/admin/aliases", crate::ADMIN_KEY, Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["param"], field, "{err}");
        assert!(err["error"]["message"].as_str().unwrap().contains(why), "{err}");
    }
    let alias = api
        .admin(
            Method::POST,
            "/api/admin/aliases",
            Some(json!({"name": "smart", "description": "first, then small, then big",
                "targets": ["a/first", {"model": "small"}, {"model": "big", "overrides": {"top_k": 5}}]})),
        )
        .await;
    assert_eq!(alias["routing"], "priority");
    assert_eq!(alias["targets"][2], json!({"model": "big", "overrides": {"top_k": 5}}));
    let (status, dup) = api
        .call(
            Method::POST,
            "/api/admin/aliases",
            crate::ADMIN_KEY,
            Some(json!({"name": "smart", "targets": ["big"]})),
        )
        .await;
    assert_eq!(status, 409, "{dup}");

    let (user, key) = api.user_with_key("alias", "1").await;
    let models = api.call(Method::GET, "/v1/models", &key, None).await.1;
    let listed: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"smart"), "{listed:?}");

    // OpenAI's protocol, whole.
    let prompt = long_prompt();
    let (openai_call, answer) = post_ok(
        api,
        "/v1/chat/completions",
        &key,
        json!({"model": "smart", "messages": [{"role": "user", "content": prompt}]}),
    )
    .await;
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "Served by big");

    // Anthropic's protocol, streamed.
    let (anthropic_call, stream) = post_ok(
        api,
        "/v1/messages",
        &key,
        json!({"model": "smart", "max_tokens": 50, "stream": true,
            "messages": [{"role": "user", "content": prompt}]}),
    )
    .await;
    assert!(
        stream.contains("Served") && stream.contains("by big") && stream.contains("message_stop"),
        "{stream}"
    );

    // AIGNE Hub's protocol, whole.
    let (aigne_call, answer) = post_ok(
        api,
        "/api/v2/chat/completions",
        &key,
        json!({"model": "smart", "stream": false, "messages": [{"role": "user", "content": prompt}]}),
    )
    .await;
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["text"], "Served by big", "{answer}");

    // The small target was passed over without being asked; the big one got its override.
    assert!(b.received().is_empty(), "the small target is never called");
    let sent = c.received();
    assert_eq!(sent.len(), 3);
    assert!(
        sent.iter().all(|r| r.body["top_k"] == 5 && r.body["model"] == "big"),
        "{sent:?}"
    );

    // Billed at the serving target's rates, exactly.
    let cost = cost_nanos(&[(100, "3"), (20, "7")]);
    let left = hub_core::Credits::from_nanos((1_000_000_000 - 3 * cost) as i64).to_string();
    settled(api, &user, &left).await;

    // Three attempts each, with their reasons; the alias and the model each asked for.
    let rows = api.calls(&format!("user={user}&limit=50")).await;
    for call_id in [&openai_call, &anthropic_call, &aigne_call] {
        let tries = attempts_of(&rows, call_id);
        assert_eq!(tries.len(), 3, "{tries:?}");
        let seen: Vec<(Value, Value, Value, Value)> = tries
            .iter()
            .map(|t| {
                (
                    t["attempt"].clone(),
                    t["provider"].clone(),
                    t["upstream_model"].clone(),
                    t["status"].clone(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (json!(1), json!("a"), json!("first"), json!("failed")),
                (json!(2), json!("b"), json!("small"), json!("failed")),
                (json!(3), json!("c"), json!("big"), json!("success")),
            ]
        );
        assert!(tries.iter().all(|t| t["alias"] == "smart" && t["model"] == "smart"));
        assert!(tries[0]["error"].as_str().unwrap().contains("500"), "{}", tries[0]);
        assert!(
            tries[1]["error"].as_str().unwrap().contains("context window"),
            "{}",
            tries[1]
        );
        assert_eq!(tries[1]["credential_id"], Value::Null, "never sent");
        assert_eq!(nanos(&tries[2]["credits"]), cost);
        assert_eq!(nanos(&tries[0]["credits"]) + nanos(&tries[1]["credits"]), 0);
    }

    // A content-policy refusal moves on only when the alias asks for it.
    let careful = api
        .admin(
            Method::POST,
            "/api/admin/aliases",
            Some(json!({"name": "careful", "targets": ["risky", "big"], "fallback_on_refusal": true})),
        )
        .await;
    let (status, answer) = api.chat(&key, "careful").await;
    assert_eq!(
        (status, &answer["choices"][0]["message"]["content"]),
        (200, &json!("Served by big")),
        "{answer}"
    );
    let path = format!("/api/admin/aliases/{}", careful["id"].as_str().unwrap());
    api.admin(Method::PATCH, &path, Some(json!({"fallback_on_refusal": false})))
        .await;
    let (status, refused) = api.chat(&key, "careful").await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("safety system"),
        "{refused}"
    );

    // A key's allow-list takes the alias's name.
    let allowed = api
        .admin(
            Method::POST,
            &format!("/api/admin/users/{user}/keys"),
            Some(json!({"label": "only-smart", "allowed_models": ["smart"]})),
        )
        .await;
    let only_smart = allowed["key"].as_str().unwrap();
    assert_eq!(api.chat(only_smart, "smart").await.0, 200);
    assert_eq!(api.chat(only_smart, "careful").await.0, 404);
    let listed = api.call(Method::GET, "/v1/models", only_smart, None).await.1;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["smart"]);

    // Deleted, it is gone; every write was audited.
    api.admin(Method::DELETE, &path, None).await;
    assert_eq!(api.chat(&key, "careful").await.0, 404);
    let audit = api
        .admin(Method::GET, "/api/admin/audit?resource=alias&limit=50", None)
        .await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "create").count(),
        9,
        "refused creates are audited too: {actions:?}"
    );
    assert!(
        actions.contains(&"update") && actions.contains(&"delete"),
        "{actions:?}"
    );
}

/// The hold of one call in [`credit_granted_and_taken_mid_load`]: "hi" (18
/// tokens with the framing) plus 100 output tokens at 1000 credits per million.
pub const MID_LOAD_HOLD: i128 = 118_000_000;
/// What each of those calls is charged: 10 + 20 tokens at 1000 per million.
pub const MID_LOAD_CHARGE: i128 = 30_000_000;

/// Fires `n` streamed calls at once and returns how many were admitted (their
/// streams held open by the paused mock) and how many refused with 402.
async fn burst(api: &Api, key: &str, n: usize) -> (Vec<reqwest::Response>, usize) {
    let body = json!({"model": "mock/mock-model", "messages": [{"role": "user", "content": "hi"}], "stream": true, "max_tokens": 100});
    let answers = futures_util::future::join_all((0..n).map(|_| post(api, key, &body))).await;
    let mut admitted = Vec::new();
    let mut refused = 0;
    for resp in answers {
        match resp.status().as_u16() {
            200 => admitted.push(resp),
            402 => refused += 1,
            other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
        }
    }
    (admitted, refused)
}

/// Many concurrent calls of one user whose balance covers a few: a grant
/// landing while they run lets more in; credit taken away while they run
/// (a negative adjustment) admits no call once the adjustment has answered,
/// whatever a lease had set aside, and only the calls already in flight are
/// charged beyond it. The final balance is exact, the ledger sums to it,
/// nothing stays held. Returns the user and their final balance.
pub async fn credit_granted_and_taken_mid_load(api: &Api, mock: &MockProvider) -> (String, i128) {
    setup_at(api, mock, json!({"input_rate": 1000, "output_rate": 1000})).await;
    mock.set("mock-model", Behavior::default().tokens(10, 20));
    let (user, key) = api.user_with_key("mallory", "1").await;
    let credit = 1_000_000_000;
    mock.pause_streams();
    // Credit for eight holds (1 / 0.118): a lease's and rows' together never more.
    let (first, refused) = burst(api, &key, 12).await;
    let covered = (credit / MID_LOAD_HOLD) as usize;
    assert!(
        (1..=covered).contains(&first.len()) && refused == 12 - first.len(),
        "{} admitted on credit for {covered}",
        first.len()
    );
    // A grant while they run: more calls get in, within the new credit. Two
    // only: where leases serve holds, the lease taken for them has credit
    // left over for more, which the adjustment below must take away.
    api.admin(
        Method::POST,
        &format!("/api/admin/users/{user}/grants"),
        Some(json!({"amount": "1", "reason": "top-up"})),
    )
    .await;
    let (second, _) = burst(api, &key, 2).await;
    let in_flight = first.len() + second.len();
    assert_eq!(second.len(), 2, "the grant admitted them");
    assert!(
        in_flight as i128 * MID_LOAD_HOLD <= 2 * credit,
        "{in_flight} calls in flight on credit for {}",
        2 * credit / MID_LOAD_HOLD
    );
    // Everything taken away while they run: no call is admitted any more.
    let u = api.user(&user).await;
    let balance = nanos(&u["balance"]);
    assert_eq!(balance, 2 * credit, "nothing settled while the streams are paused: {u}");
    api.admin(
        Method::POST,
        &format!("/api/admin/users/{user}/grants"),
        Some(json!({"amount": hub_core::Credits::from_nanos(-(balance as i64)).to_string(), "reason": "taken back"})),
    )
    .await;
    let (third, _) = burst(api, &key, 8).await;
    assert_eq!(third.len(), 0, "a call was admitted on credit taken away");
    mock.resume_streams();
    for resp in first.into_iter().chain(second) {
        assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    }
    // The calls in flight are charged; nothing else is.
    let want = -(in_flight as i128) * MID_LOAD_CHARGE;
    let u = api
        .wait_user(&user, "every call settled", |u| {
            nanos(&u["held"]) == 0 && nanos(&u["balance"]) == want
        })
        .await;
    assert_eq!(api.ledger_sum(&user).await, nanos(&u["balance"]));
    assert_eq!(mock.received().len(), in_flight);
    (user, want)
}
