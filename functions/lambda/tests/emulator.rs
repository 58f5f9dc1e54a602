//! The black-box suite against Hub as a Lambda function: cargo-lambda's
//! emulated Function URL, function processes as Lambda would run them (one
//! per concurrent invocation), a remote libSQL database (the Hrana test
//! server), and the mock provider on 127.0.0.1.

use hub_e2e::lambda::LambdaServer;
use hub_e2e::mock::MockProvider;
use hub_e2e::{suite, Api, HranaServer};
use std::path::Path;

struct World {
    _lambda: LambdaServer,
    _hrana: HranaServer,
    api: Api,
    mock: MockProvider,
}

async fn start(instances: usize) -> World {
    let mock = MockProvider::start().await;
    let (lambda, hrana) = tokio::task::spawn_blocking(move || {
        let dir = hub_e2e::temp_dir("lambda-db");
        let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
        let lambda = LambdaServer::start(Path::new(env!("CARGO_BIN_EXE_hub-lambda")), &hrana.url, instances);
        (lambda, hrana)
    })
    .await
    .unwrap();
    let api = Api::new(&lambda.base);
    World {
        _lambda: lambda,
        _hrana: hrana,
        api,
        mock,
    }
}

#[tokio::test]
async fn lambda_chat_is_billed_exactly_and_streams() {
    let w = start(1).await;
    suite::chat_is_billed_exactly_and_streams(&w.api, &w.mock).await;
}

#[tokio::test]
async fn lambda_no_credit_is_402() {
    let w = start(1).await;
    suite::no_credit_is_402(&w.api, &w.mock).await;
}

#[tokio::test]
async fn lambda_concurrent_calls_never_overspend() {
    // One process per concurrent invocation, as Lambda scales out, on one database.
    let w = start(suite::CONCURRENT_CALLS).await;
    suite::concurrent_calls_never_overspend(&w.api, &w.mock).await;
}

#[tokio::test]
async fn lambda_client_disconnect_bills_the_delivered_part() {
    let w = start(1).await;
    suite::client_disconnect_bills_the_delivered_part(&w.api, &w.mock).await;
}

#[tokio::test]
async fn lambda_admin_round_trip() {
    let w = start(1).await;
    suite::admin_round_trip(&w.api, &w.mock).await;
}

#[tokio::test]
async fn lambda_money_comes_back_exactly() {
    let w = start(1).await;
    suite::money_comes_back_exactly(&w.api, &w.mock).await;
}

/// OpenID Connect sign-in through the Function URL: the flow cookie, the
/// token exchange and the session in the remote database.
#[tokio::test]
async fn lambda_signs_people_in_with_openid_connect() {
    let w = start(1).await;
    // A Function URL is https, which the function assumes; the emulator's is
    // plain http on loopback, so it is given as this Hub's public URL.
    w.api
        .admin(
            http::Method::PATCH,
            "/api/admin/settings",
            Some(serde_json::json!({"app_url": w.api.base})),
        )
        .await;
    let callback = format!("{}/auth/oidc/callback", w.api.base);
    let op = tokio::task::spawn_blocking(move || hub_e2e::oidc::OidcProvider::start(&[callback], "ES256"))
        .await
        .unwrap();
    suite::signs_people_in_with_oidc(&w.api, &op).await;
}

#[tokio::test]
async fn lambda_redeems_codes_within_their_uses() {
    // One process per concurrent invocation, on one database.
    let w = start(suite::REDEEMERS).await;
    suite::redeems_codes_within_their_uses(&w.api).await;
}

/// Buying credits on Lambda: the checkout through the function's upstream to
/// the Stripe stand-in, the signed webhook delivered three times at once to
/// three function processes, one grant in the remote database.
#[tokio::test]
async fn lambda_paid_webhook_grants_once() {
    let stripe = hub_e2e::stripe::StripeStandIn::start().await;
    let w = start(3).await;
    suite::paid_webhook_grants_once(&w.api, &stripe).await;
}

#[tokio::test]
async fn lambda_credits_expire_through_the_ledger() {
    let w = start(1).await;
    suite::credits_expire_through_the_ledger(&w.api).await;
}
