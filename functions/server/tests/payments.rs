//! Selling credits through Stripe Checkout, against a local stand-in of
//! Stripe's API that checks every request against Stripe's reference, with
//! webhooks signed by the official `stripe` library: the checkout asks for
//! the right session; a paid session grants its recorded credits exactly
//! once; forged, stale, unpaid and foreign events grant nothing; a refund
//! takes back its share; unknown events are acknowledged and ignored.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::stripe::{
    completed_session, deliver, event, refunded_charge, sign, Created, Shop, StripeStandIn, SECRET_KEY, WEBHOOK_SECRET,
};
use hub_e2e::{nanos, suite, Api, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

async fn start() -> (HubServer, Api, StripeStandIn) {
    let stripe = StripeStandIn::start().await;
    let hub = tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    (hub, api, stripe)
}

fn event_id() -> String {
    format!("evt_test_{}", hub_e2e::unique().replace('-', ""))
}

async fn balance(api: &Api, user: &str) -> i128 {
    nanos(&api.user(user).await["balance"])
}

/// A checkout for the shop's customer, and the session Stripe created for it.
async fn checkout(api: &Api, stripe: &StripeStandIn, shop: &Shop) -> Created {
    let (status, answer) = shop.checkout(api).await;
    assert_eq!(status, 201, "{answer}");
    stripe.created().pop().expect("a session")
}

/// Delivers `kind` about `object`, signed now with the configured secret.
async fn send(api: &Api, kind: &str, object: Value) -> (u16, Value) {
    let payload = event(&event_id(), kind, object);
    deliver(api, &payload, &sign(&payload, &[WEBHOOK_SECRET], None)).await
}

#[tokio::test]
async fn paid_webhook_delivered_three_times_at_once_grants_once() {
    let (_hub, api, stripe) = start().await;
    suite::paid_webhook_grants_once(&api, &stripe).await;
}

/// The same on a shared remote database (libSQL through the Hrana test
/// server), with two Hub processes taking the deliveries: the batch's
/// conditional INSERT and unique reference decide, not one process's order.
#[tokio::test]
async fn paid_webhook_grants_once_across_two_hubs_on_remote_libsql() {
    let stripe = StripeStandIn::start().await;
    let dir = hub_e2e::temp_dir("hrana-payments");
    let hrana = hub_e2e::HranaServer::start(&hub_e2e::hrana_script(), &dir);
    let launch = Launch {
        db: Some(hrana.url.clone()),
        env: vec![("HUB_MASTER_KEY".into(), hub_e2e::TEST_MASTER_KEY.into())],
        ..Default::default()
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_hub"));
    let (first, second) = (launch.clone(), launch);
    let a = tokio::task::spawn_blocking(move || HubServer::start(bin, first))
        .await
        .unwrap();
    let api_a = Api::new(&a.base);
    let shop = Shop::open(&api_a, &stripe).await;
    let created = checkout(&api_a, &stripe, &shop).await;
    // Started once the settings are in the database, so it reads them at start-up.
    let b = tokio::task::spawn_blocking(move || HubServer::start(bin, second))
        .await
        .unwrap();
    let api_b = Api::new(&b.base);
    let payload = event(
        &event_id(),
        "checkout.session.completed",
        completed_session(&created, "paid", "pi_test_remote"),
    );
    let header = sign(&payload, &[WEBHOOK_SECRET], None);
    let answers =
        futures_util::future::join_all([&api_a, &api_b, &api_a, &api_b].map(|api| deliver(api, &payload, &header)))
            .await;
    let granted = answers.iter().filter(|(_, body)| body["outcome"] == "granted").count();
    assert_eq!(granted, 1, "{answers:?}");
    assert_eq!(balance(&api_b, &shop.user).await, nanos(&json!("100")));
    assert_eq!(api_a.ledger_sum(&shop.user).await, nanos(&json!("100")));
}

#[tokio::test]
async fn checkout_asks_stripe_for_the_session_its_reference_describes() {
    let (hub, api, stripe) = start().await;
    let shop = Shop::open(&api, &stripe).await;
    let settings = api.admin(Method::GET, "/api/admin/settings", None).await;
    assert_eq!(settings["stripe_secret_key_set"], true);
    assert_eq!(settings["stripe_webhook_secret_set"], true);
    assert!(!settings.to_string().contains(SECRET_KEY) && !settings.to_string().contains(WEBHOOK_SECRET));
    let packs = api.call(Method::GET, "/api/me/credit-packs", &shop.key, None).await.1;
    assert_eq!(packs["data"][0]["credits"], "100", "{packs}");
    assert_eq!(packs["checkout_available"], true);

    let (status, answer) = shop.checkout(&api).await;
    assert_eq!(status, 201, "{answer}");
    let created = stripe.created().pop().unwrap();
    let p = |k: &str| created.param(k).map(str::to_owned);
    assert_eq!(p("mode").as_deref(), Some("payment"));
    assert_eq!(p("line_items[0][price_data][currency]").as_deref(), Some("usd"));
    assert_eq!(p("line_items[0][price_data][unit_amount]").as_deref(), Some("2000"));
    assert_eq!(
        p("line_items[0][price_data][product_data][name]").as_deref(),
        Some("100 credits")
    );
    assert_eq!(p("line_items[0][quantity]").as_deref(), Some("1"));
    assert_eq!(p("client_reference_id"), Some(shop.user.clone()));
    assert_eq!(p("metadata[hub_credits]").as_deref(), Some("100"));
    assert_eq!(p("metadata[hub_pack_id]"), Some(shop.pack.clone()));
    assert_eq!(
        p("success_url"),
        Some(format!("{}/#/account?checkout=success", hub.base))
    );
    assert_eq!(p("cancel_url"), Some(format!("{}/#/account?checkout=cancel", hub.base)));
    assert!(p("customer_email").unwrap().ends_with("@example.com"));
    // The payment's id is the idempotency key and travels in the metadata.
    assert_eq!(p("metadata[hub_payment_id]").as_deref(), answer["id"].as_str());
    assert_eq!(created.idempotency_key, answer["id"].as_str().unwrap());
    assert_eq!(answer["url"], created.session["url"]);
    let listed = api.admin(Method::GET, "/api/admin/payments", None).await;
    assert_eq!(listed["data"][0]["status"], "open", "{listed}");
    assert_eq!(listed["data"][0]["session_id"], created.session["id"]);
    assert_eq!(
        balance(&api, &shop.user).await,
        0,
        "a checkout grants nothing by itself"
    );
}

#[tokio::test]
async fn stripe_refusals_are_clear_and_record_nothing_paid() {
    let (_hub, api, stripe) = start().await;
    let shop = Shop::open(&api, &stripe).await;
    stripe.fail_next(
        400,
        json!({"type": "invalid_request_error", "code": "amount_too_small", "message": "The Checkout Session's total amount due must add up to at least $0.50 usd"}),
    );
    let (status, answer) = shop.checkout(&api).await;
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("amount_too_small")
            || answer["error"]["message"].as_str().unwrap().contains("at least"),
        "{answer}"
    );
    // A wrong secret key: the stand-in refuses it as Stripe does.
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({"stripe_secret_key": "sk_test_wrong_0000"})),
    )
    .await;
    let (status, answer) = shop.checkout(&api).await;
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("Invalid API Key"),
        "{answer}"
    );
    assert!(
        !answer.to_string().contains("sk_test_wrong_0000"),
        "the key is never echoed whole"
    );
    let failed = api.admin(Method::GET, "/api/admin/payments?status=failed", None).await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 2, "{failed}");
    assert!(stripe.created().is_empty());
    assert_eq!(balance(&api, &shop.user).await, 0);

    // Bad requests change nothing and never reach Stripe.
    let (status, body) = api
        .call(
            Method::POST,
            "/api/me/checkout",
            &shop.key,
            Some(json!({"pack_id": "pck_nope"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = api
        .call(
            Method::POST,
            "/api/me/checkout",
            &shop.key,
            Some(json!({"pack_id": shop.pack, "credits": 5})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    api.admin(
        Method::PATCH,
        &format!("/api/admin/credit-packs/{}", shop.pack),
        Some(json!({"active": false})),
    )
    .await;
    let (status, _) = shop.checkout(&api).await;
    assert_eq!(status, 404, "a pack off sale cannot be bought");
    // Stripe's address goes through the outbound policy when saved.
    let (status, body) = api
        .call(
            Method::PATCH,
            "/api/admin/settings",
            hub_e2e::ADMIN_KEY,
            Some(json!({"stripe_api_base": "http://169.254.169.254"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["param"].clone()),
        (400, json!("stripe_api_base")),
        "{body}"
    );
}

#[tokio::test]
async fn forged_stale_unpaid_and_foreign_events_grant_nothing() {
    let (_hub, api, stripe) = start().await;
    let shop = Shop::open(&api, &stripe).await;
    let created = checkout(&api, &stripe, &shop).await;
    let paid = event(
        &event_id(),
        "checkout.session.completed",
        completed_session(&created, "paid", "pi_test_1"),
    );

    // Signed with another secret; signed by the right one but six minutes ago; no header; a body changed after signing.
    let forged = sign(&paid, &["whsec_someone_else"], None);
    let stale = sign(&paid, &[WEBHOOK_SECRET], Some(hub_e2e::stripe::now_s() - 360));
    let good = sign(&paid, &[WEBHOOK_SECRET], None);
    let tampered = paid.replace("\"paid\"", "\"paid\" ");
    for (what, payload, header) in [
        ("another secret", &paid, forged.as_str()),
        ("a stale timestamp", &paid, stale.as_str()),
        ("no signature", &paid, ""),
        ("a changed body", &tampered, good.as_str()),
    ] {
        let (status, body) = deliver(&api, payload, header).await;
        assert_eq!(status, 400, "{what}: {body}");
    }
    // Unpaid (an async method still pending) and a session Hub never created: acknowledged, nothing granted.
    let (status, body) = send(
        &api,
        "checkout.session.completed",
        completed_session(&created, "unpaid", "pi_test_1"),
    )
    .await;
    assert_eq!((status, body["outcome"].clone()), (200, json!("not_paid")), "{body}");
    let mut foreign = completed_session(&created, "paid", "pi_test_foreign");
    foreign["id"] = json!("cs_test_not_from_hub");
    let (status, body) = send(&api, "checkout.session.completed", foreign).await;
    assert_eq!(
        (status, body["outcome"].clone()),
        (200, json!("unknown_payment")),
        "{body}"
    );
    // The right session claiming another user: a mismatch, nothing granted.
    let mut other_user = completed_session(&created, "paid", "pi_test_1");
    other_user["client_reference_id"] = json!("usr_someone_else");
    let (_, body) = send(&api, "checkout.session.completed", other_user).await;
    assert_eq!(body["outcome"], "mismatch", "{body}");
    assert_eq!(balance(&api, &shop.user).await, 0);
    assert_eq!(api.ledger_sum(&shop.user).await, 0);
    let events = api.admin(Method::GET, "/api/admin/payments/events", None).await;
    assert_eq!(
        events["data"].as_array().unwrap().len(),
        3,
        "refused deliveries are not recorded: {events}"
    );

    // The async payment succeeds later, delivered while Stripe signs with two secrets (a rotation): granted once.
    let later = event(
        &event_id(),
        "checkout.session.async_payment_succeeded",
        completed_session(&created, "paid", "pi_test_1"),
    );
    let rolled = sign(&later, &["whsec_old_secret", WEBHOOK_SECRET], None);
    let (status, body) = deliver(&api, &later, &rolled).await;
    assert_eq!((status, body["outcome"].clone()), (200, json!("granted")), "{body}");
    let (_, body) = deliver(&api, &paid, &good).await;
    assert_eq!(
        body["outcome"], "already_granted",
        "another event for the same session: {body}"
    );
    assert_eq!(balance(&api, &shop.user).await, nanos(&json!("100")));
}

#[tokio::test]
async fn a_refund_takes_back_its_share_and_may_leave_a_debt() {
    let mock = MockProvider::start().await;
    let (_hub, api, stripe) = start().await;
    suite::setup(&api, &mock).await;
    mock.set("mock-model", Behavior::default().tokens(10, 10));
    let shop = Shop::open(&api, &stripe).await;
    let created = checkout(&api, &stripe, &shop).await;
    let (_, body) = send(
        &api,
        "checkout.session.completed",
        completed_session(&created, "paid", "pi_test_refund"),
    )
    .await;
    assert_eq!(body["outcome"], "granted", "{body}");

    // 5.00 of 20.00 refunded: a quarter of 100 credits; the same total again takes nothing more.
    let quarter = refunded_charge("pi_test_refund", 2000, 500, "usd");
    let (_, body) = send(&api, "charge.refunded", quarter.clone()).await;
    assert_eq!(body["outcome"], "refunded", "{body}");
    let (_, body) = send(&api, "charge.refunded", quarter).await;
    assert_eq!(body["outcome"], "already_refunded", "{body}");
    assert_eq!(balance(&api, &shop.user).await, nanos(&json!("75")));

    // 90 credits spent elsewhere (an admin's adjustment stands for usage), then the rest refunded: the balance goes below zero.
    api.admin(
        Method::POST,
        &format!("/api/admin/users/{}/grants", shop.user),
        Some(json!({"amount": "-70"})),
    )
    .await;
    let (_, body) = send(
        &api,
        "charge.refunded",
        refunded_charge("pi_test_refund", 2000, 2000, "usd"),
    )
    .await;
    assert_eq!(body["outcome"], "refunded", "{body}");
    assert_eq!(balance(&api, &shop.user).await, nanos(&json!("-70")));
    assert_eq!(api.ledger_sum(&shop.user).await, nanos(&json!("-70")));
    let ledger = api
        .admin(Method::GET, &format!("/api/admin/users/{}/ledger", shop.user), None)
        .await;
    let amounts: Vec<String> = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["amount"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(amounts, ["-75", "-70", "-25", "100"], "{ledger}");
    let (status, _) = api.chat(&shop.key, "mock/mock-model").await;
    assert_eq!(status, 402, "a debt refuses new calls");
    let payment = api.admin(Method::GET, "/api/admin/payments", None).await;
    assert_eq!(payment["data"][0]["refunded_amount"], 2000);
    assert_eq!(payment["data"][0]["refunded_credits"], "100");
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged_and_ignored() {
    let (_hub, api, stripe) = start().await;
    let shop = Shop::open(&api, &stripe).await;
    let (status, body) = send(
        &api,
        "customer.created",
        json!({"id": "cus_test_1", "object": "customer"}),
    )
    .await;
    assert_eq!((status, body["outcome"].clone()), (200, json!("ignored")), "{body}");
    let events = api.admin(Method::GET, "/api/admin/payments/events", None).await;
    assert_eq!(events["data"][0]["type"], "customer.created");
    assert_eq!(balance(&api, &shop.user).await, 0);
}
