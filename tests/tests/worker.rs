//! The black-box suite against Hub as a Cloudflare Worker: `wrangler dev
//! --local` with a local D1, started and stopped by each test on free ports,
//! and the mock provider on 127.0.0.1.

use hub_e2e::mock::MockProvider;
use hub_e2e::outbound::{self, Expect, MetadataTrap};
use hub_e2e::worker::{d1_execute, WorkerServer};
use hub_e2e::{jobs, suite, Api};
use std::path::PathBuf;
use std::time::Duration;

async fn start() -> (WorkerServer, Api, MockProvider) {
    let mock = MockProvider::start().await;
    let worker = tokio::task::spawn_blocking(|| WorkerServer::start(&[])).await.unwrap();
    let api = Api::new(&worker.base);
    (worker, api, mock)
}

#[tokio::test]
async fn worker_chat_is_billed_exactly_and_streams() {
    let (_w, api, mock) = start().await;
    suite::chat_is_billed_exactly_and_streams(&api, &mock).await;
}

/// The response cache on D1.
#[tokio::test]
async fn worker_response_cache_answers_identical_requests() {
    let (_w, api, mock) = start().await;
    suite::response_cache_answers_identical_requests(&api, &mock).await;
}

#[tokio::test]
async fn worker_no_credit_is_402() {
    let (_w, api, mock) = start().await;
    suite::no_credit_is_402(&api, &mock).await;
}

#[tokio::test]
async fn worker_concurrent_calls_never_overspend() {
    let (_w, api, mock) = start().await;
    suite::concurrent_calls_never_overspend(&api, &mock).await;
}

/// Each user's wallet (a Durable Object) holds their credit lease: a warm
/// call's hold is a wallet call, never a D1 hold row; a grant mid-load lets
/// more calls in, credit taken away mid-load admits none once answered, and
/// the D1 ledger stays exact (audited independently of Hub's code).
#[tokio::test]
async fn worker_wallets_hold_without_d1_and_follow_grants_and_revocations() {
    let (worker, api, mock) = start().await;
    let (mallory, balance) = suite::credit_granted_and_taken_mid_load(&api, &mock).await;
    let (bob, key) = api.user_with_key("bob", "10").await;
    let body = serde_json::json!({"model": "mock/mock-model", "messages": [{"role": "user", "content": "hi"}], "stream": true, "max_tokens": 100});
    let post = || {
        api.http
            .post(format!("{}/v1/chat/completions", api.base))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    const WARM_CALLS: i64 = 5;
    for _ in 0..WARM_CALLS {
        let resp = post().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap();
    }
    // While a call runs, what it holds shows as held (its wallet's count).
    mock.pause_streams();
    let running = post().await.unwrap();
    assert_eq!(running.status(), 200);
    let u = api.user(&bob).await;
    assert_eq!(hub_e2e::nanos(&u["held"]), suite::MID_LOAD_HOLD, "{u}");
    mock.resume_streams();
    running.text().await.unwrap();
    let spent = (WARM_CALLS as i128 + 1) * suite::MID_LOAD_CHARGE;
    let u = api
        .wait_user(&bob, "bob's calls settled", |u| {
            hub_e2e::nanos(&u["held"]) == 0 && hub_e2e::nanos(&u["balance"]) == 10_000_000_000 - spent
        })
        .await;
    assert_eq!(api.ledger_sum(&bob).await, hub_e2e::nanos(&u["balance"]));
    let state = worker.state.clone();
    drop(worker);
    // Every call of bob's was served from his lease: its hold row was written
    // settled, charging the lease, with the settlement; none was placed open
    // before the provider was asked (the charge's INSERT OR IGNORE would then
    // have left the row without its lease).
    let rows = d1(
        &state,
        &format!(
            "SELECT SUM(lease_id IS NOT NULL) AS leased, SUM(lease_id IS NULL) AS own FROM holds WHERE user_id = '{bob}' AND kind = 'call'"
        ),
        &["leased", "own"],
    )
    .await;
    assert_eq!(rows, serde_json::json!([[WARM_CALLS + 1, 0]]));
    // Mallory's leases were revoked with the credit taken (a revoked lease
    // stays counted until its wallet returns it, drained, and takes no new
    // hold); no call's hold is left open.
    let open = d1(
        &state,
        &format!(
            "SELECT (SELECT COUNT(*) FROM holds WHERE user_id = '{mallory}' AND state = 'open' AND revoked_at IS NULL) AS m,
                    (SELECT COUNT(*) FROM holds WHERE kind = 'call' AND state = 'open') AS calls"
        ),
        &["m", "calls"],
    )
    .await;
    assert_eq!(open, serde_json::json!([[0, 0]]));
    let file = hub_e2e::worker::d1_file(&state);
    let audit = tokio::task::spawn_blocking(move || hub_e2e::audit_db_settled(&file))
        .await
        .unwrap();
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
    assert_eq!(audit.balances[&mallory], balance, "the audit's balance is Hub's");
}

/// The team budget's reservation on D1: two members' concurrent calls stop at it exactly.
#[tokio::test]
async fn worker_team_budget_holds_across_members() {
    let (_w, api, mock) = start().await;
    suite::team_budget_holds_across_members(&api, &mock).await;
}

#[tokio::test]
async fn worker_client_disconnect_bills_the_delivered_part() {
    let (_w, api, mock) = start().await;
    suite::client_disconnect_bills_the_delivered_part(&api, &mock).await;
}

#[tokio::test]
async fn worker_audio_and_video_are_billed_exactly() {
    let (_w, api, mock) = start().await;
    suite::audio_and_video_are_billed_exactly(&api, &mock).await;
}

/// A model alias falling back across three targets, on D1.
#[tokio::test]
async fn worker_alias_falls_back_across_its_targets() {
    let (_w, api, _mock) = start().await;
    suite::alias_falls_back_across_its_targets(&api).await;
}

/// `/v1/videos` on D1: the job row, its claim and its settlement.
#[tokio::test]
async fn worker_openai_videos_are_followed_and_billed_exactly() {
    let (_w, api, mock) = start().await;
    suite::openai_videos_are_followed_and_billed_exactly(&api, &mock).await;
}

/// The Cron Trigger follows a video job nobody polls to its end and settles it.
#[tokio::test]
async fn worker_cron_trigger_settles_a_video_nobody_polls() {
    let (worker, api, mock) = start().await;
    let provider = api.setup_provider("mock", &mock.base_url(), "sk-mock-videos").await;
    api.add_model(
        &provider,
        "sora-mock",
        serde_json::json!({"type": "video", "video_rate": "0.1"}),
    )
    .await;
    mock.set(
        "sora-mock",
        hub_e2e::mock::Behavior {
            video_polls: 2,
            ..Default::default()
        },
    );
    let (user, key) = api.user_with_key("videos", "10").await;
    suite::create_video(&api, &key, "mock/sora-mock", "4").await;
    // In progress, in progress, completed: three runs of the handler.
    for _ in 0..3 {
        let res = api
            .http
            .get(format!("{}/__scheduled?cron=*+*+*+*+*", worker.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{}", worker.logs());
    }
    suite::settled(&api, &user, "9.6").await;
}

/// `aigne hub connect` on the Worker: the session in D1 from open to end.
#[tokio::test]
async fn worker_aigne_cli_connects() {
    let worker = tokio::task::spawn_blocking(|| WorkerServer::start(&[])).await.unwrap();
    let callback = format!("{}/auth/oidc/callback", worker.base);
    let op = tokio::task::spawn_blocking(move || hub_e2e::oidc::OidcProvider::start(&[callback], "RS256"))
        .await
        .unwrap();
    suite::aigne_cli_connects(&Api::new(&worker.base), &op).await;
}

/// OpenID Connect sign-in on the Worker: discovery, keys and the token
/// exchange through the Worker's fetch, the session in D1.
#[tokio::test]
async fn worker_signs_people_in_with_openid_connect() {
    let worker = tokio::task::spawn_blocking(|| WorkerServer::start(&[])).await.unwrap();
    let callback = format!("{}/auth/oidc/callback", worker.base);
    let op = tokio::task::spawn_blocking(move || hub_e2e::oidc::OidcProvider::start(&[callback], "RS256"))
        .await
        .unwrap();
    let api = Api::new(&worker.base);
    suite::signs_people_in_with_oidc(&api, &op).await;
    // No SMTP on Workers: even configured, email links are reported unavailable.
    api.admin(
        reqwest::Method::PATCH,
        "/api/admin/settings",
        Some(serde_json::json!({"smtp_host": "127.0.0.1", "smtp_from": "hub@example.test"})),
    )
    .await;
    let (_, methods) = hub_e2e::oidc::Browser::new()
        .get_json(&format!("{}/auth/methods", worker.base))
        .await;
    assert_eq!(
        (methods["oidc"].as_bool(), methods["email"].as_bool()),
        (Some(true), Some(false))
    );
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            "/auth/email",
            "",
            Some(serde_json::json!({"email": "a@example.com"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn worker_admin_round_trip() {
    let (_w, api, mock) = start().await;
    suite::admin_round_trip(&api, &mock).await;
}

/// Provider URLs that lead to metadata services, however spelled: refused
/// when saved, and (saved while allowed) refused before the Worker fetches.
/// Host names are resolved by the platform, out of the Worker's sight (see
/// docs/security.md), so only address spellings are tried here.
#[tokio::test]
async fn worker_metadata_addresses_are_refused_however_spelled() {
    let env = outbound_env();
    let Some(net) = outbound::private_network("worker_metadata_addresses_are_refused_however_spelled", &env) else {
        return;
    };
    let trap = MetadataTrap::start(&net).await;
    let rows: Vec<_> = outbound::spellings()
        .into_iter()
        .filter(|(_, e)| *e != Expect::Name)
        .collect();
    assert!(rows.len() >= 20);
    let allowing = tokio::task::spawn_blocking(|| WorkerServer::start(&[("HUB_ALLOW_LINK_LOCAL", "1")]))
        .await
        .unwrap();
    let saved = outbound::save_allowed(&Api::new(&allowing.base), &rows).await;
    let state = allowing.state.clone();
    drop(allowing);
    let worker = tokio::task::spawn_blocking(move || WorkerServer::start_on(&state, &[]))
        .await
        .unwrap();
    let api = Api::new(&worker.base);
    let (_, key) = api.user_with_key("ssrf", "10").await;
    outbound::refused_before_connecting(&api, &saved, &key, &trap).await;
    for p in &saved {
        api.admin(
            reqwest::Method::DELETE,
            &format!("/api/admin/providers/{}", p.provider),
            None,
        )
        .await;
    }
    outbound::save_spellings(&api, &rows).await;
    trap.assert_untouched("after every refusal");
}

/// A provider that redirects (to another provider, or to a metadata
/// address) is reported as failing; the target hears nothing.
#[tokio::test]
async fn worker_provider_redirects_are_reported_not_followed() {
    let env = outbound_env();
    let Some(net) = outbound::private_network("worker_provider_redirects_are_reported_not_followed", &env) else {
        return;
    };
    let trap = std::sync::Arc::new(MetadataTrap::start(&net).await);
    let (_w, api, redirector) = start().await;
    let elsewhere = MockProvider::start().await;
    let to_mock = format!("{}/models", elsewhere.base_url());
    let seen_elsewhere = {
        let m = elsewhere.clone();
        move || m.received().len()
    };
    let seen_by_metadata = {
        let t = trap.clone();
        move || t.hits().len()
    };
    outbound::redirects_are_not_followed(
        &api,
        &redirector,
        &[
            (to_mock.as_str(), &seen_elsewhere),
            (
                "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                &seen_by_metadata,
            ),
        ],
    )
    .await;
    trap.assert_untouched("redirects");
}

/// The Worker built once here, for the test re-executed in its namespace.
fn outbound_env() -> Vec<(&'static str, String)> {
    if outbound::inside() {
        return Vec::new();
    }
    hub_e2e::worker::prepared_env()
}

#[tokio::test]
async fn worker_money_comes_back_exactly() {
    let (_w, api, mock) = start().await;
    suite::money_comes_back_exactly(&api, &mock).await;
}

/// Buying credits on the Worker: the checkout through the Worker's fetch to
/// the Stripe stand-in, the signed webhook delivered three times at once,
/// one grant in D1.
#[tokio::test]
async fn worker_paid_webhook_grants_once() {
    let stripe = hub_e2e::stripe::StripeStandIn::start().await;
    let worker = tokio::task::spawn_blocking(|| WorkerServer::start(&[])).await.unwrap();
    let api = Api::new(&worker.base);
    suite::paid_webhook_grants_once(&api, &stripe).await;
}

#[tokio::test]
async fn worker_redeems_codes_within_their_uses() {
    let (_w, api, _mock) = start().await;
    suite::redeems_codes_within_their_uses(&api).await;
}

/// Credits expire on the Worker between Cron runs: reading the balance expires them.
#[tokio::test]
async fn worker_credits_expire_through_the_ledger() {
    let (_w, api, _mock) = start().await;
    suite::credits_expire_through_the_ledger(&api).await;
}

/// A webhook from the Worker: sent under `waitUntil` right after the grant
/// that caused it, verified by the Standard Webhooks reference library.
#[tokio::test]
async fn worker_delivers_signed_webhooks() {
    let (_w, api, _mock) = start().await;
    suite::webhook_is_delivered_signed(&api).await;
}

/// SQL on a stopped Worker's D1 state.
async fn d1(state: &std::path::Path, sql: &str, columns: &'static [&'static str]) -> serde_json::Value {
    let (state, sql): (PathBuf, String) = (state.to_path_buf(), sql.to_string());
    tokio::task::spawn_blocking(move || d1_execute(&state, &sql, columns))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The Cron Trigger's handler, run through `/__scheduled` under `wrangler
/// dev --test-scheduled`, releases a hold that expired while the Worker ran
/// (requests alone do not) and prunes month-old key-limit rows.
#[tokio::test]
async fn worker_cron_trigger_releases_expired_holds_and_prunes_old_rows() {
    let first = tokio::task::spawn_blocking(|| WorkerServer::start(&[])).await.unwrap();
    // The stale hold outlives the restart below: an isolate releases holds
    // already expired when it starts, and this is about one that expires later.
    let seed = jobs::seed(&Api::new(&first.base), Duration::from_secs(30)).await;
    let state = first.state.clone();
    drop(first);
    d1(&state, &seed.sql, &[]).await;
    let worker = tokio::task::spawn_blocking(move || WorkerServer::start_on(&state, &[]))
        .await
        .unwrap();
    let api = Api::new(&worker.base);
    jobs::both_holds_count(&api, &seed).await;
    jobs::until_expired(&seed).await;
    jobs::both_holds_count(&api, &seed).await;

    let res = api
        .http
        .get(format!("{}/__scheduled?cron=*+*+*+*+*", worker.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "{}", worker.logs());
    jobs::expired_hold_released(&api, &seed, Duration::from_secs(5)).await;
    // wrangler writes the Worker's console to its log a moment later.
    let report = r#"scheduled jobs (* * * * *): {"at":"#;
    hub_e2e::eventually("the handler's report in the log", Duration::from_secs(10), || {
        let logs = worker.logs();
        async move { logs.contains(report).then_some(()).ok_or(logs) }
    })
    .await;
    let state = worker.state.clone();
    drop(worker);
    jobs::rows_after_jobs(
        &d1(&state, jobs::HOLDS_QUERY, &["id", "state"]).await,
        &d1(&state, jobs::KEY_EVENTS_QUERY, &["call_id"]).await,
    );
}

/// Telemetry on the Worker, which has no address to scrape: a call's spans
/// (continuing the caller's trace) and the metrics go out over OTLP through
/// `ctx.waitUntil`, to a receiver that decodes them with `opentelemetry-proto`.
#[tokio::test]
async fn worker_exports_spans_and_metrics_over_otlp() {
    use hub_e2e::telemetry::OtlpReceiver;
    let rx = tokio::task::spawn_blocking(OtlpReceiver::start).await.unwrap();
    let endpoint = rx.endpoint();
    let mock = MockProvider::start().await;
    let worker = tokio::task::spawn_blocking(move || {
        WorkerServer::start(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "hub-worker"),
        ])
    })
    .await
    .unwrap();
    let api = Api::new(&worker.base);
    let provider = api.setup_provider("mock", &mock.base_url(), "sk-worker-0001").await;
    api.add_model(
        &provider,
        "mock-model",
        serde_json::json!({"input_rate": 0.15, "output_rate": 0.6}),
    )
    .await;
    mock.set("mock-model", hub_e2e::mock::Behavior::default().tokens(30, 10));
    let (user, key) = api.user_with_key("ada", "5").await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let resp = api
        .http
        .post(format!("{}/v1/chat/completions", api.base))
        .bearer_auth(&key)
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .json(&serde_json::json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();

    let (spans, metrics) =
        hub_e2e::eventually("spans and metrics at the receiver", Duration::from_secs(20), || async {
            let spans: Vec<serde_json::Value> = rx.spans().into_iter().filter(|s| s["trace_id"] == trace).collect();
            let metrics = rx.metrics();
            match spans.len() >= 2 && metrics.iter().any(|m| m["name"] == "hub.calls") {
                true => Ok((spans, metrics)),
                false => Err(format!("{:?}", rx.received())),
            }
        })
        .await;
    let call = spans
        .iter()
        .find(|s| s["parent_span_id"] == "b7ad6b7169203331")
        .unwrap();
    assert_eq!(call["service"], "hub-worker");
    assert_eq!(call["attributes"]["gen_ai.request.model"], "mock-model");
    assert_eq!(call["attributes"]["gen_ai.usage.input_tokens"], 30);
    assert_eq!(call["attributes"]["gen_ai.usage.output_tokens"], 10);
    assert_eq!(call["attributes"]["hub.user.id"], user.as_str());
    let attempt = spans.iter().find(|s| s["parent_span_id"] == call["span_id"]).unwrap();
    let sent = format!("00-{trace}-{}-01", attempt["span_id"].as_str().unwrap());
    assert_eq!(mock.received()[0].header("traceparent"), Some(sent.as_str()));
    let calls = metrics.iter().rev().find(|m| m["name"] == "hub.calls").unwrap();
    let total: f64 = calls["sum"]["data_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["as_double"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 1.0, "{calls}");
}

/// Price sync, long-context billing, below cost notified and disabled, on D1
/// (the schema's rate-history and notification triggers included).
#[tokio::test(flavor = "multi_thread")]
async fn worker_prices_sync_and_bill_the_tier() {
    let (_worker, api, mock) = start().await;
    suite::prices_sync_and_bill_the_tier(&api, &mock).await;
}
