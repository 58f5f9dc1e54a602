//! The black-box suite against Hub as a Lambda function: cargo-lambda's
//! emulated Function URL, function processes as Lambda would run them (one
//! per concurrent invocation), a remote libSQL database (the Hrana test
//! server), and the mock provider on 127.0.0.1.

use hub_e2e::lambda::LambdaServer;
use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{jobs, suite, Api, HranaServer};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// What EventBridge sends on a schedule (`AWS::Events::Rule`, `rate(1 minute)`).
const SCHEDULED_EVENT: &str = include_str!("data/scheduled_event.json");

struct World {
    lambda: LambdaServer,
    hrana: HranaServer,
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
        lambda,
        hrana,
        api,
        mock,
    }
}

/// A stream that lasts longer than a credit lease's TTL keeps the lease it
/// holds from: the function renews it while the invocation runs, so its
/// reservation is never freed under it for another call to spend.
#[tokio::test]
async fn lambda_a_stream_outliving_the_lease_ttl_keeps_its_lease() {
    let mock = MockProvider::start().await;
    let (lambda, hrana) = tokio::task::spawn_blocking(move || {
        let dir = hub_e2e::temp_dir("lambda-db");
        let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
        let env = [("HUB_LEASE_TTL", "3"), ("HUB_CACHE_TTL", "1")];
        let lambda = LambdaServer::start_with(Path::new(env!("CARGO_BIN_EXE_hub-lambda")), &hrana.url, 1, &env);
        (lambda, hrana)
    })
    .await
    .unwrap();
    let api = Api::new(&lambda.base);
    let provider = api
        .setup_provider("mock", &mock.base_url(), "sk-mock-secret-0001")
        .await;
    api.add_model(
        &provider,
        "slow-model",
        serde_json::json!({"input_rate": 1, "output_rate": 1}),
    )
    .await;
    mock.set(
        "slow-model",
        Behavior {
            pieces: (0..16).map(|i| format!("piece {i} ")).collect(),
            delay: Duration::from_millis(500),
            prompt_tokens: 10,
            completion_tokens: 20,
            ..Default::default()
        },
    );
    let (user, key) = api.user_with_key("lena", "100").await;
    let call = {
        let (http, url) = (api.http.clone(), format!("{}/v1/chat/completions", api.base));
        let body = serde_json::json!({"model": "slow-model", "stream": true, "max_tokens": 50,
                                      "messages": [{"role": "user", "content": "take your time"}]});
        tokio::spawn(async move {
            let r = http.post(url).bearer_auth(key).json(&body).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.text().await.unwrap()
        })
    };
    // Twice the TTL into the 8 s stream, its lease is still open and not past its expiry.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let open = hub_e2e::sqlite(
        &hrana.db,
        &format!(
            "SELECT COUNT(*) FROM holds WHERE kind = 'lease' AND state = 'open' \
             AND user_id = '{user}' AND expires_at > {now_ms}"
        ),
    );
    assert_eq!(open[0][0], 1, "the stream's lease, renewed while it runs");
    let text = call.await.unwrap();
    assert!(text.contains("piece 15"), "{text}");
    let cost = hub_e2e::cost_nanos(&[(10, "1"), (20, "1")]);
    let left = hub_core::Credits::from_nanos((100_000_000_000i128 - cost) as i64).to_string();
    suite::settled(&api, &user, &left).await;
}

#[tokio::test]
async fn lambda_chat_is_billed_exactly_and_streams() {
    let w = start(1).await;
    suite::chat_is_billed_exactly_and_streams(&w.api, &w.mock).await;
}

#[tokio::test]
async fn lambda_audio_and_video_are_billed_exactly() {
    let w = start(1).await;
    suite::audio_and_video_are_billed_exactly(&w.api, &w.mock).await;
}

/// Two function processes: the polls that race to see a job end run in either.
#[tokio::test]
async fn lambda_openai_videos_are_followed_and_billed_exactly() {
    let w = start(2).await;
    suite::openai_videos_are_followed_and_billed_exactly(&w.api, &w.mock).await;
}

/// The response cache on the shared database.
#[tokio::test]
async fn lambda_response_cache_answers_identical_requests() {
    let w = start(1).await;
    suite::response_cache_answers_identical_requests(&w.api, &w.mock).await;
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
async fn lambda_team_budget_holds_across_members() {
    // Several processes on one remote database: the team's reservation is the database's.
    let w = start(4).await;
    suite::team_budget_holds_across_members(&w.api, &w.mock).await;
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

/// `aigne hub connect` on Lambda: each step may reach another function
/// process; the session lives in the remote database.
#[tokio::test]
async fn lambda_aigne_cli_connects() {
    let w = start(2).await;
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
    suite::aigne_cli_connects(&w.api, &op).await;
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

/// The same function, invoked with EventBridge's scheduled event, runs the
/// scheduled jobs and answers with their report: the expired hold a call
/// never settled is released, the old key-limit row pruned.
#[tokio::test]
async fn lambda_scheduled_event_releases_expired_holds_and_prunes_old_rows() {
    let w = start(1).await;
    // The instance is running: its start-up release of expired holds is past.
    let seed = jobs::seed(&w.api, Duration::from_secs(1)).await;
    hub_e2e::sqlite(&w.hrana.db, &seed.sql);
    jobs::until_expired(&seed).await;
    // Expired, and requests alone do not release it.
    jobs::both_holds_count(&w.api, &seed).await;

    let res = w
        .api
        .http
        .post(&w.lambda.invocations)
        .body(SCHEDULED_EVENT)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let report: Value = res.json().await.unwrap();
    let done = |job: &str| {
        let j = report["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["job"] == job))
            .unwrap_or_else(|| panic!("no {job} in the report: {report}"));
        assert!(j.get("error").is_none(), "{report}");
        j["count"].as_u64().unwrap()
    };
    assert_eq!((done("expire_holds"), done("prune_key_events")), (1, 1), "{report}");

    jobs::expired_hold_released(&w.api, &seed, Duration::from_secs(1)).await;
    jobs::rows_after_jobs(
        &hub_e2e::sqlite(&w.hrana.db, jobs::HOLDS_QUERY),
        &hub_e2e::sqlite(&w.hrana.db, jobs::KEY_EVENTS_QUERY),
    );
    // A Function URL request still gets its streamed answer afterwards.
    suite::no_credit_is_402(&w.api, &w.mock).await;
}
