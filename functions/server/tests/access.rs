//! Who may do what: every admin route refuses a member key (403) and no key
//! (401), route by route, and changes nothing; provider secrets appear in no
//! answer, no call log and no server log, even when a provider echoes them.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{Api, HubServer, Launch, ADMIN_KEY};
use reqwest::Method;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// Every admin route (method, path); `{id}` is filled with a real id.
const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/admin/provider-kinds"),
    ("GET", "/api/admin/providers"),
    ("POST", "/api/admin/providers"),
    ("GET", "/api/admin/providers/{provider}"),
    ("PATCH", "/api/admin/providers/{provider}"),
    ("DELETE", "/api/admin/providers/{provider}"),
    ("GET", "/api/admin/providers/{provider}/credentials"),
    ("POST", "/api/admin/providers/{provider}/credentials"),
    ("PATCH", "/api/admin/credentials/{credential}"),
    ("DELETE", "/api/admin/credentials/{credential}"),
    ("POST", "/api/admin/credentials/{credential}/test"),
    ("GET", "/api/admin/models"),
    ("POST", "/api/admin/models"),
    ("GET", "/api/admin/models/{model}"),
    ("PATCH", "/api/admin/models/{model}"),
    ("DELETE", "/api/admin/models/{model}"),
    ("GET", "/api/admin/users"),
    ("POST", "/api/admin/users"),
    ("GET", "/api/admin/users/{user}"),
    ("PATCH", "/api/admin/users/{user}"),
    ("GET", "/api/admin/users/{user}/keys"),
    ("POST", "/api/admin/users/{user}/keys"),
    ("DELETE", "/api/admin/keys/{key}"),
    ("POST", "/api/admin/users/{user}/grants"),
    ("GET", "/api/admin/users/{user}/ledger"),
    ("GET", "/api/admin/redemption-codes"),
    ("POST", "/api/admin/redemption-codes"),
    ("DELETE", "/api/admin/redemption-codes/rdc_unknown"),
    ("GET", "/api/admin/calls"),
    ("GET", "/api/admin/usage"),
    ("GET", "/api/admin/audit"),
    ("GET", "/api/admin/settings"),
    ("PATCH", "/api/admin/settings"),
];

const SECRET: &str = "sk-live-SECRETMARKER-7f3a9c";

#[tokio::test]
async fn every_admin_route_refuses_members_and_anonymous_callers() {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let provider = api.setup_provider("mock", &mock.base_url(), SECRET).await;
    let model = api.add_model(&provider, "m", json!({"input_rate": 1})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let credential = api
        .admin(
            Method::GET,
            &format!("/api/admin/providers/{provider}/credentials"),
            None,
        )
        .await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (user, member) = api.user_with_key("member", "5").await;
    let keys = api
        .admin(Method::GET, &format!("/api/admin/users/{user}/keys"), None)
        .await;
    let key_id = keys["data"][0]["id"].as_str().unwrap().to_string();
    let before = api.admin(Method::GET, "/api/admin/providers", None).await;

    for (method, template) in ADMIN_ROUTES {
        let path = template
            .replace("{provider}", &provider)
            .replace("{credential}", &credential)
            .replace("{model}", &model)
            .replace("{user}", &user)
            .replace("{key}", &key_id);
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let body = if *method == "GET" || *method == "DELETE" {
            None
        } else {
            Some(json!({"name": "x", "kind": "openai", "amount": 1000}))
        };
        let (status, v) = api.call(m.clone(), &path, &member, body.clone()).await;
        assert_eq!(status, 403, "{method} {path} with a member key: {v}");
        let mut anonymous = api.http.request(m, format!("{}{path}", api.base));
        if let Some(b) = &body {
            anonymous = anonymous.json(b);
        }
        let r = anonymous.send().await.unwrap();
        assert_eq!(r.status(), 401, "{method} {path} without a key");
    }
    // Nothing changed: the member's balance, the providers, the key.
    let u = api.user(&user).await;
    assert_eq!(hub_e2e::nanos(&u["balance"]), 5_000_000_000);
    assert_eq!(api.admin(Method::GET, "/api/admin/providers", None).await, before);
    let (status, _) = api.call(Method::GET, "/api/me", &member, None).await;
    assert_eq!(status, 200, "the member key still works");
    // A member's own routes work, admin-only data does not leak through them.
    let (status, me) = api.call(Method::GET, "/api/me/calls", &member, None).await;
    assert_eq!(status, 200, "{me}");

    // A path served with other methods: 405 naming them, once the caller may
    // see the path's area (a member learns nothing about admin paths).
    let path = format!("/api/admin/providers/{provider}");
    let (status, v) = api.call(Method::PUT, &path, &member, None).await;
    assert_eq!(status, 403, "{v}");
    let wrong = |m: Method, path: &str, key: Option<&str>| {
        let mut r = api.http.request(m, format!("{}{path}", api.base));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    let r = wrong(Method::PUT, &path, Some(ADMIN_KEY)).await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["allow"].to_str().unwrap()),
        (405, "GET, PATCH, DELETE")
    );
    let r = wrong(Method::GET, "/v1/chat/completions", None).await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["allow"].to_str().unwrap()),
        (405, "POST")
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["error"]["code"], "method_not_allowed",
        "in the caller's protocol: {v}"
    );
}

#[tokio::test]
async fn provider_secrets_never_leave_hub() {
    let mock = MockProvider::start().await;
    let launch = Launch {
        env: vec![("HUB_LOG".into(), "debug".into())],
        ..Default::default()
    };
    let hub = tokio::task::spawn_blocking(move || HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), launch))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let provider = api.setup_provider("mock", &mock.base_url(), SECRET).await;
    api.add_model(&provider, "ok", json!({"input_rate": 1})).await;
    api.add_model(&provider, "echo", json!({"input_rate": 1})).await;
    // A provider that echoes the key it was given in its error, as some do.
    mock.set(
        "echo",
        Behavior {
            status: 401,
            echo_credential: true,
            ..Behavior::default()
        },
    );
    let (_, key) = api.user_with_key("u", "5").await;
    let mut seen = String::new();
    for model in ["ok", "echo"] {
        for stream in [false, true] {
            let (_, v) = api
                .call(
                    Method::POST,
                    "/v1/chat/completions",
                    &key,
                    Some(json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})),
                )
                .await;
            seen.push_str(&v.to_string());
        }
    }
    let creds = api
        .admin(
            Method::GET,
            &format!("/api/admin/providers/{provider}/credentials"),
            None,
        )
        .await;
    seen.push_str(&creds.to_string());
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
    seen.push_str(&test.to_string());
    // Each call the provider saw gets a log row, written in the background:
    // wait for them, so that what they record is checked too.
    let sent = mock
        .received()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .count();
    let api = &api;
    let calls = hub_e2e::eventually(
        &format!("log rows for the {sent} calls sent to the provider"),
        Duration::from_secs(10),
        move || async move {
            let calls = api.admin(Method::GET, "/api/admin/calls?limit=100", None).await;
            match calls["data"].as_array().map_or(0, Vec::len) {
                n if n >= sent => Ok(calls),
                _ => Err(calls.to_string()),
            }
        },
    )
    .await;
    seen.push_str(&calls.to_string());
    seen.push_str(&api.admin(Method::GET, "/api/admin/providers", None).await.to_string());
    assert!(seen.contains("****"), "the echoed key is masked where it appears");
    assert!(
        !seen.contains(SECRET),
        "a provider secret reached an API answer: {seen}"
    );
    assert!(mock
        .received()
        .iter()
        .any(|r| r.authorization.as_deref() == Some(&format!("Bearer {SECRET}"))));
    let logs = hub.logs();
    assert!(logs.contains("attempt failed"), "the failure was logged");
    assert!(!logs.contains(SECRET), "a provider secret reached the server log");
    assert!(!logs.contains(ADMIN_KEY), "an API key reached the server log");
}

#[tokio::test]
async fn browsers_base_urls_and_hostile_bodies() {
    let site = hub_e2e::temp_dir("site");
    std::fs::write(site.join("index.html"), "<!doctype html><title>Hub</title>").unwrap();
    let launch = Launch {
        env: vec![
            ("HUB_CORS_ORIGINS".into(), "https://admin.example.com".into()),
            ("HUB_UI_DIR".into(), site.display().to_string()),
        ],
        ..Default::default()
    };
    let hub = tokio::task::spawn_blocking(move || HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), launch))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let preflight = |origin: &'static str| {
        api.http
            .request(Method::OPTIONS, format!("{}/v1/chat/completions", api.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    // CORS: only the configured origin.
    let ok = preflight("https://admin.example.com").await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://admin.example.com");
    assert_eq!(
        ok.headers()["access-control-allow-methods"],
        "POST, OPTIONS",
        "the path's methods"
    );
    assert!(ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    let other = preflight("https://evil.example").await.unwrap();
    assert_eq!(other.status(), 403);
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let r = api
        .http
        .get(format!("{}/api/me", api.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // The admin site carries its security headers; API paths stay the API's.
    let page = api.http.get(format!("{}/users/42", api.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(page.text().await.unwrap().contains("<title>Hub</title>"));
    let (status, v) = api.call(Method::GET, "/api/nope", "hub_x", None).await;
    assert_eq!(status, 404, "an unknown API path is the API's 404, not the site: {v}");
    assert!(v["error"]["message"].is_string());

    // Provider base URLs on cloud metadata or link-local addresses are refused.
    for url in [
        "http://169.254.169.254/latest",
        "http://metadata.google.internal/v1",
        "http://[fe80::1]/v1",
    ] {
        let (status, v) = api
            .call(
                Method::POST,
                "/api/admin/providers",
                ADMIN_KEY,
                Some(json!({"kind": "openai", "name": "meta", "base_url": url})),
            )
            .await;
        assert_eq!(status, 400, "{url}: {v}");
        assert_eq!(v["error"]["param"], "base_url");
    }
    let (_, key) = api.user_with_key("h", "1").await;
    // Deeply nested JSON is a clear 400 in every protocol, and writes nothing.
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    for path in [
        "/v1/chat/completions",
        "/v1/messages",
        "/api/v2/chat",
        "/api/v2/chat/completions",
        "/api/admin/users",
    ] {
        let k = if path.starts_with("/api/admin") {
            ADMIN_KEY.to_string()
        } else {
            key.clone()
        };
        let r = api
            .http
            .post(format!("{}{path}", api.base))
            .bearer_auth(&k)
            .header("content-type", "application/json")
            .body(deep.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
    }
    let users = api.admin(Method::GET, "/api/admin/users", None).await;
    assert_eq!(
        users["data"].as_array().unwrap().len(),
        2,
        "no user was created by the hostile bodies"
    );
}
