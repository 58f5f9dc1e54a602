//! `aigne hub connect`, as a person runs it: the published AIGNE CLI
//! (`@aigne/cli` 1.59.0, tests/agents/aigne-cli) against `hub serve` with the
//! admin site, a real OpenID provider and the mock provider. The CLI opens
//! the approval page through `$BROWSER`; headless Chromium signs in and
//! approves (tests/agents/aigne-cli/connect.mjs); the CLI stores the key it
//! decrypted, and an AIGNE chat call with that key is billed to the person
//! who approved. The session the CLI ended hands out nothing afterwards.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::oidc::{OidcProvider, CLIENT_ID, CLIENT_SECRET};
use hub_e2e::worker::repo_root;
use hub_e2e::{nanos, Api, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LOGIN: &str = "cli-person";
const EMAIL: &str = "cli-person@example.test";

/// Builds the admin site Hub serves (the page the CLI opens is part of it).
fn build_site() -> std::path::PathBuf {
    let dir = repo_root().join("admin-ui");
    if let Err(e) = hub_e2e::node::run_script(&dir, "build", &[], Duration::from_secs(300)) {
        panic!("building the admin site: {e}");
    }
    dir.join("dist")
}

/// Runs connect.mjs; returns what it reports.
fn run_connect(hub_url: &str) -> Value {
    let dir = repo_root().join("tests/agents/aigne-cli");
    hub_e2e::node::ensure_installed(&dir).expect("npm ci in tests/agents/aigne-cli");
    hub_e2e::node::ensure_installed(&repo_root().join("admin-ui")).expect("npm ci in admin-ui");
    let shots = repo_root().join("admin-ui/test-output/screenshots");
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("connect.mjs"))
        .current_dir(&dir)
        .env("HUB_URL", hub_url)
        .env("HUB_LOGIN", LOGIN)
        .env("SHOTS", shots);
    let out = hub_e2e::run_bounded(cmd, Duration::from_secs(200), "node connect.mjs").unwrap_or_else(|e| panic!("{e}"));
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("connect.mjs reported nothing:\n{out}"));
    serde_json::from_str(line).unwrap()
}

async fn setup(api: &Api, mock: &MockProvider, op: &OidcProvider) -> String {
    let p = api
        .provider(
            json!({"name": "openai", "kind": "openai", "base_url": mock.base_url()}),
            "sk-0001",
        )
        .await;
    api.add_model(&p, "gpt-mock", json!({"input_rate": 1.5, "output_rate": 6}))
        .await;
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({"oidc_issuer": op.issuer, "oidc_client_id": CLIENT_ID, "oidc_client_secret": CLIENT_SECRET})),
    )
    .await;
    // An account made by an admin; the person signs in to it by their verified address.
    let u = api
        .admin(
            Method::POST,
            "/api/admin/users",
            Some(json!({"name": "CLI Person", "email": EMAIL})),
        )
        .await;
    let id = u["id"].as_str().unwrap().to_string();
    api.admin(
        Method::POST,
        &format!("/api/admin/users/{id}/grants"),
        Some(json!({"amount": "10", "reason": "test"})),
    )
    .await;
    id
}

#[tokio::test]
async fn aigne_hub_connect_gets_a_key_for_the_person_who_approves() {
    let dist = tokio::task::spawn_blocking(build_site).await.unwrap();
    let mock = MockProvider::start().await;
    let launch = Launch {
        env: vec![("HUB_UI_DIR".into(), dist.display().to_string())],
        ..Default::default()
    };
    let hub = tokio::task::spawn_blocking(move || HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), launch))
        .await
        .unwrap();
    let callback = format!("{}/auth/oidc/callback", hub.base);
    let op = tokio::task::spawn_blocking(move || OidcProvider::start(&[callback], "RS256"))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let user = setup(&api, &mock, &op).await;

    let base = hub.base.clone();
    let got = tokio::task::spawn_blocking(move || run_connect(&base)).await.unwrap();
    let output = got["output"].as_str().unwrap_or_default();
    assert!(
        output.contains(&format!("Hub {} connected successfully", hub.base)),
        "{output}\n--- hub log ---\n{}",
        hub.logs()
    );
    assert!(
        got["pageSays"].as_str().unwrap().contains("You can close this window"),
        "{got}"
    );

    // What the CLI stored: this Hub's API (mount point `/`) and the key it decrypted.
    let host = hub.base.trim_start_matches("http://");
    let stored = &got["store"][host];
    assert_eq!(stored["AIGNE_HUB_API_URL"], hub.base, "{got}");
    let key = stored["AIGNE_HUB_API_KEY"]
        .as_str()
        .expect("the CLI stored a key")
        .to_string();
    assert_eq!(
        got["store"]["default"]["AIGNE_HUB_API_URL"],
        stored["AIGNE_HUB_API_URL"]
    );

    // The key is the approver's, labelled with the CLI's app name.
    let (status, me) = api.call(Method::GET, "/api/me", &key, None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["id"], user);
    assert_eq!(me["key"]["label"], "AIGNE CLI");

    // An AIGNE chat call with it is billed to that person, exactly.
    mock.set("gpt-mock", Behavior::default().tokens(120, 30));
    let chat = json!({
        "input": {"messages": [{"role": "user", "content": "Say hello"}], "modelOptions": {"model": "openai/gpt-mock"}},
        "options": {"streaming": false},
    });
    let (status, answer) = api.call(Method::POST, "/api/v2/chat", &key, Some(chat)).await;
    assert_eq!(status, 200, "{answer}");
    let cost = (120 * 1_500 + 30 * 6_000) as i128; // 120 × 1.5/M + 30 × 6/M, in nano-credits
    let settled = api
        .wait_user(&user, "the call to settle", |u| {
            nanos(&u["held"]) == 0 && nanos(&u["balance"]) < 10_000_000_000
        })
        .await;
    assert_eq!(nanos(&settled["balance"]), 10_000_000_000 - cost, "{settled}");

    // The CLI ended its session: its id, from the page's address, gets nothing now.
    let opened = got["opened"].as_str().unwrap();
    // (base64url needs no escaping in a query)
    let token = opened
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("__token__="))
        .expect("the page address carries the session token");
    let sid = String::from_utf8(URL_SAFE_NO_PAD.decode(token).unwrap()).unwrap();
    let session = format!("{}/.well-known/service/api/access-key/session", hub.base);
    for probe in [sid.as_str(), "not-the-session"] {
        let r = reqwest::get(format!("{session}?sid={probe}")).await.unwrap();
        assert_eq!(r.status(), 404);
        let v: Value = r.json().await.unwrap();
        assert!(
            v.get("accessKeyId").is_none() && v.get("accessKeySecret").is_none(),
            "{v}"
        );
    }
}

/// The same flow over HTTP, as every runtime runs it (`suite::aigne_cli_connects`).
#[tokio::test]
async fn aigne_cli_connect_over_http() {
    let hub = tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap();
    let callback = format!("{}/auth/oidc/callback", hub.base);
    let op = tokio::task::spawn_blocking(move || OidcProvider::start(&[callback], "RS256"))
        .await
        .unwrap();
    hub_e2e::suite::aigne_cli_connects(&Api::new(&hub.base), &op).await;
}
