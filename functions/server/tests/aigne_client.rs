//! The published AIGNE client packages (`@aigne/aigne-hub` 0.10.16 with
//! `@aigne/core` 1.72.0, installed from the committed lockfile) against a
//! running `hub serve` and the mock provider: `AIGNEHubChatModel` streamed and
//! not, `AIGNEHubImageModel`, the model catalogue, and the errors a user sees
//! for a bad key and for no credit (tests/aigne-client/test.mjs).

use hub_e2e::mock::MockProvider;
use hub_e2e::{Api, HubServer, Launch};
use reqwest::Method;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

#[tokio::test]
async fn the_aigne_client_works_unchanged() {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    // Not named after a vendor: the client sends `openai/…` models to OpenAI itself.
    let p = api.setup_provider("mock", &mock.base_url(), "sk-aigne-0001").await;
    api.add_model(&p, "gpt-mock", json!({"input_rate": 2.5, "output_rate": 10}))
        .await;
    let image = api
        .admin(
            Method::POST,
            "/api/admin/models",
            Some(json!({"provider_id": p, "model": "image-mock", "type": "image", "image_rate": 0.04})),
        )
        .await;
    assert!(image["id"].is_string(), "{image}");
    let (_, key) = api.user_with_key("aigne-user", "10").await;
    let (_, poor) = api.user_with_key("aigne-poor", "0").await;
    let env = [
        ("HUB_URL", hub.base.clone()),
        ("HUB_KEY", key),
        ("HUB_POOR_KEY", poor),
        ("HUB_CHAT_MODEL", "mock/gpt-mock".to_string()),
        ("HUB_IMAGE_MODEL", "mock/image-mock".to_string()),
        ("HUB_EXPECT_TEXT", "Hello, world!".to_string()),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/aigne-client");
    let result =
        tokio::task::spawn_blocking(move || hub_e2e::node::run_script(&dir, "test", &env, Duration::from_secs(300)))
            .await
            .unwrap();
    match result {
        Ok(out) => {
            assert!(out.contains("# fail 0"), "{out}");
            assert!(out.contains("# skipped 0"), "no check may be skipped:\n{out}");
        }
        Err(e) => panic!("{e}\n--- hub log ---\n{}", hub.logs()),
    }
}
