//! The black-box suite against Hub as a Cloudflare Worker: `wrangler dev
//! --local` with a local D1, started and stopped by each test on free ports,
//! and the mock provider on 127.0.0.1.

use hub_e2e::mock::MockProvider;
use hub_e2e::worker::WorkerServer;
use hub_e2e::{suite, Api};

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

#[tokio::test]
async fn worker_client_disconnect_bills_the_delivered_part() {
    let (_w, api, mock) = start().await;
    suite::client_disconnect_bills_the_delivered_part(&api, &mock).await;
}

#[tokio::test]
async fn worker_admin_round_trip() {
    let (_w, api, mock) = start().await;
    suite::admin_round_trip(&api, &mock).await;
}

#[tokio::test]
async fn worker_money_comes_back_exactly() {
    let (_w, api, mock) = start().await;
    suite::money_comes_back_exactly(&api, &mock).await;
}
