//! Notifications on `hub serve`: webhooks verified by the Standard Webhooks
//! reference library in a receiver process, retried with backoff and logged
//! attempt by attempt, re-sendable, surviving a restart, refused for
//! metadata and private addresses; a low balance announced once per
//! crossing, and mailed to the customer (an aiosmtpd server) until they opt
//! out; a key's budget announced once per window; a rejected credential.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::smtpd::Smtpd;
use hub_e2e::webhooks::{body_of, Receiver};
use hub_e2e::{eventually, Api, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// Polls `probe` until it answers, for at most `secs` seconds.
async fn soon<T, F, Fut>(what: &str, secs: u64, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually(what, Duration::from_secs(secs), || {
        let next = probe();
        async move { next.await.ok_or_else(|| "not yet".to_string()) }
    })
    .await
}

/// Retries in milliseconds instead of minutes.
fn fast_retries() -> Vec<(String, String)> {
    vec![("HUB_WEBHOOK_RETRY_BASE_MS".into(), "200".into())]
}

async fn start_in(dir: Option<std::path::PathBuf>) -> (HubServer, Api) {
    let hub = tokio::task::spawn_blocking(move || {
        let launch = Launch {
            env: fast_retries(),
            ..Default::default()
        };
        let bin = Path::new(env!("CARGO_BIN_EXE_hub"));
        match dir {
            Some(d) => HubServer::start_in(bin, launch, d),
            None => HubServer::start(bin, launch),
        }
    })
    .await
    .unwrap();
    let api = Api::new(&hub.base);
    (hub, api)
}

async fn receiver(port: Option<u16>) -> Receiver {
    tokio::task::spawn_blocking(move || Receiver::start(port))
        .await
        .unwrap()
}

/// A webhook for `events` at `url`; returns (id, secret).
async fn webhook(api: &Api, url: &str, events: Value) -> (String, String) {
    let w = api
        .admin(
            Method::POST,
            "/api/admin/webhooks",
            Some(json!({"url": url, "events": events, "description": "test"})),
        )
        .await;
    let secret = w["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{w}");
    (w["id"].as_str().unwrap().to_string(), secret)
}

async fn grant(api: &Api, user: &str, amount: &str) {
    api.admin(
        Method::POST,
        &format!("/api/admin/users/{user}/grants"),
        Some(json!({"amount": amount, "reason": "top-up"})),
    )
    .await;
}

async fn deliveries(api: &Api, webhook: &str) -> Vec<Value> {
    api.admin(Method::GET, &format!("/api/admin/webhooks/{webhook}/deliveries"), None)
        .await["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_endpoint_gets_the_event_three_times_then_no_more_and_every_attempt_is_logged() {
    let (_hub, api) = start_in(None).await;
    let mut rx = receiver(None).await;
    let (id, secret) = webhook(&api, &rx.url(), json!(["credits.granted"])).await;
    rx.set_secret(&secret);
    rx.fail_next(2);
    let u = api
        .admin(Method::POST, "/api/admin/users", Some(json!({"name": "ada"})))
        .await;
    let user = u["id"].as_str().unwrap().to_string();
    grant(&api, &user, "12.5").await;

    let got = soon("three deliveries", 20, || async {
        let got = rx.received();
        (got.len() >= 3).then_some(got)
    })
    .await;
    assert!(got.iter().all(|r| r["verified"] == true), "{got:?}");
    assert_eq!(
        got.iter().map(|r| r["status"].as_u64().unwrap()).collect::<Vec<_>>(),
        vec![500, 500, 204]
    );
    let ids: Vec<&str> = got.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one webhook-id across retries: {ids:?}"
    );
    let body = body_of(&got[0]);
    assert_eq!(body["type"], "credits.granted");
    assert_eq!(body["data"]["credits"], "12.5", "money is decimal text");
    assert_eq!(body["data"]["user_id"], user.as_str());
    assert_eq!(body["data"]["source"], "admin");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(got[0]["content_type"], "application/json");

    // Delivered: nothing more comes, however long one waits past the backoff.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rx.received().len(), 3);
    let log = deliveries(&api, &id).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["state"], "delivered");
    let attempts = log[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{log:?}");
    for (n, a) in attempts.iter().enumerate() {
        assert_eq!(a["attempt"], n as u64 + 1);
        assert!(a["duration_ms"].is_u64() && a["at"].is_string(), "{a}");
    }
    assert_eq!(attempts[0]["status"], 500);
    assert_eq!(attempts[0]["error"], "the endpoint answered 500");
    assert_eq!(attempts[2]["status"], 204);
    assert!(attempts[2]["error"].is_null());

    // A resend sends the same event again, with the same webhook-id.
    let delivery = log[0]["id"].as_str().unwrap();
    api.admin(
        Method::POST,
        &format!("/api/admin/webhooks/{id}/deliveries/{delivery}/resend"),
        None,
    )
    .await;
    let again = soon("the resend", 10, || async {
        let got = rx.received();
        (got.len() == 4).then(|| got[3].clone())
    })
    .await;
    assert_eq!(again["id"], ids[0]);
    assert_eq!(again["verified"], true);

    // The verification can fail: the same delivery with its body changed
    // by one byte is rejected by the reference library.
    let tampered = again["body"].as_str().unwrap().replace("12.5", "99.5");
    let status = reqwest::Client::new()
        .post(rx.url())
        .header("webhook-id", again["id"].as_str().unwrap())
        .header("webhook-timestamp", again["timestamp"].as_str().unwrap())
        .header("webhook-signature", again["signature"].as_str().unwrap())
        .body(tampered)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400);
    assert_eq!(rx.received()[4]["problem"], "No matching signature found");

    // The listing shows the webhook, never its secret.
    let list = api.admin(Method::GET, "/api/admin/webhooks", None).await;
    assert_eq!(list["data"][0]["events"], json!(["credits.granted"]));
    assert!(!list.to_string().contains(&secret));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_event_and_a_rotated_secret_both_verify() {
    let (_hub, api) = start_in(None).await;
    let mut rx = receiver(None).await;
    let (id, old) = webhook(&api, &rx.url(), json!(["*"])).await;
    let rotated = api
        .admin(Method::POST, &format!("/api/admin/webhooks/{id}/rotate"), None)
        .await;
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    // During the grace period either secret verifies (one signature each).
    for secret in [&old, &new] {
        rx.set_secret(secret);
        let before = rx.received().len();
        api.admin(Method::POST, &format!("/api/admin/webhooks/{id}/test"), None)
            .await;
        let got = soon("the test event", 10, || async {
            let got = rx.received();
            (got.len() > before).then(|| got[before].clone())
        })
        .await;
        assert_eq!(got["verified"], true, "{got}");
        assert_eq!(body_of(&got)["type"], "webhook.test");
        assert_eq!(got["signature"].as_str().unwrap().split(' ').count(), 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_deliveries_survive_a_restart() {
    let dir = hub_e2e::temp_dir("notify-restart");
    let (mut hub, api) = start_in(Some(dir.clone())).await;
    // Nothing listens there yet: every attempt fails to connect.
    let port = hub_e2e::free_port();
    let (id, secret) = webhook(&api, &format!("http://127.0.0.1:{port}/hooks"), json!(["*"])).await;
    let u = api
        .admin(Method::POST, "/api/admin/users", Some(json!({"name": "bo"})))
        .await;
    grant(&api, u["id"].as_str().unwrap(), "3").await;
    let failed = soon("a failed attempt", 10, || async {
        let log = deliveries(&api, &id).await;
        (log.first()
            .is_some_and(|d| !d["attempts"].as_array().unwrap().is_empty()))
        .then_some(log)
    })
    .await;
    assert_eq!(failed[0]["state"], "pending", "{failed:?}");
    assert!(failed[0]["attempts"][0]["status"].is_null());
    assert!(
        failed[0]["last_error"].as_str().unwrap().contains("connect"),
        "{failed:?}"
    );
    // Killed (SIGKILL: nothing is flushed on the way out) while it retries.
    let _ = hub.child.kill();
    let _ = hub.child.wait();
    drop(hub);

    let mut rx = receiver(Some(port)).await;
    rx.set_secret(&secret);
    let (_hub, api) = start_in(Some(dir)).await;
    let got = soon("the delivery after the restart", 15, || async {
        let got = rx.received();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(got[0]["verified"], true);
    assert_eq!(body_of(&got[0])["type"], "credits.granted");
    let log = soon("delivered", 5, || async {
        let log = deliveries(&api, &id).await;
        (log[0]["state"] == "delivered").then_some(log)
    })
    .await;
    assert!(log[0]["attempts"].as_array().unwrap().len() >= 2, "{log:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_urls_to_metadata_and_private_addresses_are_refused_at_save() {
    let (_hub, api) = start_in(None).await;
    for (url, says) in [
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://0xa9fea9fe/", "link-local"),
        ("http://metadata.google.internal/", "metadata"),
        ("http://10.1.2.3/hooks", "private network"),
        ("http://192.168.0.10:8080/", "private network"),
        ("http://[::ffff:10.0.0.1]/", "private network"),
        ("ftp://127.0.0.1/", "http"),
    ] {
        let (status, v) = api
            .call(
                Method::POST,
                "/api/admin/webhooks",
                hub_e2e::ADMIN_KEY,
                Some(json!({"url": url, "events": ["*"]})),
            )
            .await;
        assert_eq!(status, 400, "{url}: {v}");
        assert_eq!(v["error"]["param"], "url", "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(says), "{url}: {v}");
    }
    let (status, v) = api
        .call(
            Method::POST,
            "/api/admin/webhooks",
            hub_e2e::ADMIN_KEY,
            Some(json!({"url": "http://127.0.0.1:9/", "events": ["balance.lowish"]})),
        )
        .await;
    assert_eq!((status, v["error"]["param"].as_str()), (400, Some("events")), "{v}");
    let list = api.admin(Method::GET, "/api/admin/webhooks", None).await;
    assert_eq!(list["data"], json!([]), "nothing was saved");

    // Nor can a saved webhook be moved there.
    let (id, _) = webhook(&api, "http://127.0.0.1:9/hooks", json!(["*"])).await;
    let (status, v) = api
        .call(
            Method::PATCH,
            &format!("/api/admin/webhooks/{id}"),
            hub_e2e::ADMIN_KEY,
            Some(json!({"url": "http://169.254.169.254/"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let w = api.admin(Method::GET, &format!("/api/admin/webhooks/{id}"), None).await;
    assert_eq!(w["url"], "http://127.0.0.1:9/hooks");
}

/// A model whose every call costs 0.2 credits (10 + 10 tokens at 10000 per million).
async fn priced_model(api: &Api) -> MockProvider {
    let mock = MockProvider::start().await;
    let p = api.setup_provider("mock", &mock.base_url(), "sk-0001").await;
    api.add_model(&p, "m", json!({"input_rate": 10000, "output_rate": 10000}))
        .await;
    mock.set("m", Behavior::default().tokens(10, 10));
    mock
}

async fn call(api: &Api, key: &str) -> u16 {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10});
    api.call(Method::POST, "/v1/chat/completions", key, Some(body)).await.0
}

async fn settle_to(api: &Api, user: &str, balance: &str) {
    api.wait_user(user, &format!("balance {balance}"), |u| u["balance"] == balance)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_low_balance_is_announced_once_per_crossing_and_mailed_until_the_customer_opts_out() {
    let (_hub, api) = start_in(None).await;
    let smtpd = tokio::task::spawn_blocking(|| Smtpd::start(&[])).await.unwrap();
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({
            "smtp_host": "127.0.0.1", "smtp_port": smtpd.port, "smtp_security": "none",
            "smtp_from": "Hub <hub@example.com>", "app_name": "Acme AI",
            "low_balance_threshold": "0.5",
        })),
    )
    .await;
    let _mock = priced_model(&api).await;
    let mut rx = receiver(None).await;
    let (_, secret) = webhook(&api, &rx.url(), json!(["balance.low", "balance.exhausted"])).await;
    rx.set_secret(&secret);
    let u = api
        .admin(
            Method::POST,
            "/api/admin/users",
            Some(json!({"name": "Ada", "email": "ada@example.com"})),
        )
        .await;
    let user = u["id"].as_str().unwrap().to_string();
    grant(&api, &user, "1").await;
    let key = api
        .admin(
            Method::POST,
            &format!("/api/admin/users/{user}/keys"),
            Some(json!({"label": "k"})),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let prefs = api.call(Method::GET, "/api/me/notifications", &key, None).await.1;
    assert_eq!(
        prefs,
        json!({"email_low_balance": true, "email_receipts": true, "low_balance_threshold": null,
               "default_low_balance_threshold": "0.5", "email_available": true})
    );

    // 1 → 0.8 → 0.6 → 0.4 (crosses 0.5) → 0.2: one balance.low.
    for expected in ["0.8", "0.6", "0.4", "0.2"] {
        assert_eq!(call(&api, &key).await, 200);
        settle_to(&api, &user, expected).await;
    }
    let low = soon("balance.low", 10, || async {
        let low = rx.of_type("balance.low");
        (!low.is_empty()).then_some(low)
    })
    .await;
    let data = &body_of(&low[0])["data"];
    assert_eq!(data["balance"], "0.4");
    assert_eq!(data["threshold"], "0.5");
    assert_eq!(data["change"], "-0.2");
    assert_eq!(data["email"], "ada@example.com");
    let mail = soon("the low-balance mail", 15, || async {
        let m = smtpd.received();
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(mail[0]["rcpt_tos"], json!(["ada@example.com"]));
    assert_eq!(mail[0]["subject"], "Your Acme AI balance is low");
    assert!(mail[0]["text"].as_str().unwrap().contains("$0.4"), "{}", mail[0]);

    // An adjustment takes it to zero (any path that changes a balance counts):
    // exhausted, once; then calls are refused.
    grant(&api, &user, "-0.2").await;
    settle_to(&api, &user, "0").await;
    assert_eq!(call(&api, &key).await, 402);
    soon("balance.exhausted", 10, || async {
        (rx.of_type("balance.exhausted").len() == 1).then_some(())
    })
    .await;
    soon("the exhausted mail", 15, || async {
        (smtpd.received().len() == 2).then_some(())
    })
    .await;
    assert_eq!(rx.of_type("balance.low").len(), 1, "no notice for later calls");

    // Opted out of mail: the next crossing still reaches the webhook, not the inbox.
    let (status, v) = api
        .call(
            Method::PATCH,
            "/api/me/notifications",
            &key,
            Some(json!({"email_low_balance": false})),
        )
        .await;
    assert_eq!((status, &v["email_low_balance"]), (200, &json!(false)), "{v}");
    grant(&api, &user, "0.6").await;
    assert_eq!(call(&api, &key).await, 200);
    settle_to(&api, &user, "0.4").await;
    soon("a second balance.low", 10, || async {
        (rx.of_type("balance.low").len() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtpd.received().len(), 2, "no mail after opting out");
    assert!(rx.received().iter().all(|r| r["verified"] == true));

    // A bad threshold is refused and changes nothing.
    let (status, _) = api
        .call(
            Method::PATCH,
            "/api/me/notifications",
            &key,
            Some(json!({"low_balance_threshold": "-1", "email_receipts": false})),
        )
        .await;
    assert_eq!(status, 400);
    let prefs = api.call(Method::GET, "/api/me/notifications", &key, None).await.1;
    assert_eq!(prefs["email_receipts"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_budget_is_announced_once_per_window_and_a_rejected_credential_once() {
    let (_hub, api) = start_in(None).await;
    let mock = priced_model(&api).await;
    let mut rx = receiver(None).await;
    let (_, secret) = webhook(&api, &rx.url(), json!(["key.budget_reached", "credential.disabled"])).await;
    rx.set_secret(&secret);
    let (user, _) = api.user_with_key("kim", "100").await;
    let key = api
        .admin(
            Method::POST,
            &format!("/api/admin/users/{user}/keys"),
            Some(json!({"label": "capped", "rpm_limit": 1})),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(call(&api, &key).await, 200);
    for _ in 0..5 {
        assert_eq!(call(&api, &key).await, 429);
    }
    let got = soon("key.budget_reached", 10, || async {
        let got = rx.of_type("key.budget_reached");
        (!got.is_empty()).then_some(got)
    })
    .await;
    let data = &body_of(&got[0])["data"];
    assert_eq!(data["limit"], "rpm_limit");
    assert_eq!(data["user_id"], user.as_str());
    assert!(data["key_id"].as_str().unwrap().starts_with("key_"));

    // The provider rejects the credential: disabled, announced once.
    mock.reject("sk-0001");
    let (_, key2) = api.user_with_key("lee", "100").await;
    for _ in 0..3 {
        call(&api, &key2).await;
    }
    let got = soon("credential.disabled", 10, || async {
        let got = rx.of_type("credential.disabled");
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert!(body_of(&got[0])["data"]["credential_id"]
        .as_str()
        .unwrap()
        .starts_with("crd_"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.of_type("key.budget_reached").len(), 1, "once per window");
    assert_eq!(rx.of_type("credential.disabled").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_that_is_gone_disables_its_webhook() {
    let (_hub, api) = start_in(None).await;
    let mut rx = receiver(None).await;
    let (id, secret) = webhook(&api, &rx.url(), json!(["*"])).await;
    rx.set_secret(&secret);
    rx.gone();
    api.admin(Method::POST, &format!("/api/admin/webhooks/{id}/test"), None)
        .await;
    let w = soon("disabled", 10, || async {
        let w = api.admin(Method::GET, &format!("/api/admin/webhooks/{id}"), None).await;
        (w["enabled"] == false).then_some(w)
    })
    .await;
    assert_eq!(w["disabled_reason"], "the endpoint answered 410 Gone");
    assert_eq!(deliveries(&api, &id).await[0]["state"], "failed");
    // Disabled: new events do not go there.
    let u = api
        .admin(Method::POST, "/api/admin/users", Some(json!({"name": "cy"})))
        .await;
    grant(&api, u["id"].as_str().unwrap(), "1").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.received().len(), 1);
}
