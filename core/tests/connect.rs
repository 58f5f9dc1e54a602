//! `aigne hub connect` in process, on a real embedded database: the CLI's
//! session (open, poll, end), a person's decision (once), the key reaching
//! only the holder of the session id, ten minutes of life, the per-address
//! limit and the scheduled job that deletes what expired.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use hub_core::http::{Body, Method, Response};
use hub_core::Hub;
use serde_json::{json, Value};

mod common;

const ADMIN: &str = "hub_connect_admin_key_0123456789abcdef";
const SESSION: &str = "/.well-known/service/api/access-key/session";
const MINUTE_MS: i64 = 60_000;

struct World {
    f: common::Fixture,
}

async fn world() -> World {
    World {
        f: common::start(common::temp_dir("connect"), ADMIN, common::Setup::default()).await,
    }
}

fn json_of(res: Response) -> Value {
    match res.into_body() {
        Body::Full(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
        Body::Stream(_) => panic!("a stream"),
    }
}

fn token(sid: &str) -> String {
    URL_SAFE_NO_PAD.encode(sid)
}

impl World {
    fn hub(&self) -> &Hub {
        &self.f.hub
    }

    async fn send(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut b = http::Request::builder().method(method).uri(path);
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        let req = b
            .body(body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string())))
            .unwrap();
        let res = self.hub().handle(req).await;
        (res.status().as_u16(), json_of(res))
    }

    async fn open(&self) -> String {
        let (status, v) = self.send(Method::POST, SESSION, None, None).await;
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["status"], "pending");
        v["id"].as_str().unwrap().to_string()
    }

    async fn poll(&self, sid: &str) -> (u16, Value) {
        self.send(Method::GET, &format!("{SESSION}?sid={sid}"), None, None)
            .await
    }

    async fn decide(&self, key: &str, sid: &str, approve: bool) -> (u16, Value) {
        let body = json!({"token": token(sid), "approve": approve, "app_name": " My Agent"});
        self.send(Method::POST, "/api/me/connect", Some(key), Some(body)).await
    }

    /// A member with an unrestricted key.
    async fn member(&self, name: &str) -> (String, String) {
        let (_, u) = self
            .send(
                Method::POST,
                "/api/admin/users",
                Some(ADMIN),
                Some(json!({"name": name})),
            )
            .await;
        let id = u["id"].as_str().unwrap().to_string();
        let (_, k) = self
            .send(
                Method::POST,
                &format!("/api/admin/users/{id}/keys"),
                Some(ADMIN),
                Some(json!({"label": "laptop"})),
            )
            .await;
        (id, k["key"].as_str().unwrap().to_string())
    }

    /// What the expiry job deletes when run `ms` from now.
    async fn expire_after(&self, ms: i64) -> u64 {
        let report = self.hub().tick(self.hub().now_ms() + ms).await;
        let job = report.job("expire_connect_sessions").expect("the job runs every tick");
        assert!(job.error.is_none(), "{job:?}");
        job.count
    }
}

fn has_key(v: &Value) -> bool {
    v.get("accessKeyId").is_some() || v.get("accessKeySecret").is_some()
}

#[tokio::test]
async fn an_approved_session_hands_its_key_to_the_session_only() {
    let w = world().await;
    let (user, member_key) = w.member("ada").await;
    let sid = w.open().await;
    let (status, pending) = w.poll(&sid).await;
    assert_eq!(
        (status, pending["status"].as_str()),
        (200, Some("pending")),
        "{pending}"
    );
    assert!(!has_key(&pending), "{pending}");
    // The page's view of it, for the signed-in person.
    let (status, seen) = w
        .send(
            Method::GET,
            &format!("/api/me/connect?token={}", token(&sid)),
            Some(&member_key),
            None,
        )
        .await;
    assert_eq!((status, seen["status"].as_str()), (200, Some("pending")), "{seen}");

    let (status, approved) = w.decide(&member_key, &sid, true).await;
    assert_eq!(status, 201, "{approved}");
    assert_eq!(approved["key"]["label"], "My Agent");
    assert!(
        approved.get("key").and_then(|k| k.get("key")).is_none(),
        "the page never sees the key: {approved}"
    );

    let (status, got) = w.poll(&sid).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["accessKeyId"], approved["key"]["id"]);
    let secret = got["accessKeySecret"].as_str().unwrap();
    assert!(
        secret.starts_with("U2FsdGVkX1"),
        "OpenSSL's salted format, as CryptoJS reads it: {secret}"
    );
    assert!(got["challenge"].as_str().is_some_and(|c| c.len() >= 43), "{got}");
    assert!(
        !got.to_string().contains("hub_"),
        "the key never travels in the clear: {got}"
    );

    // The key belongs to the person who approved, labelled with the app's name.
    let (_, keys) = w
        .send(Method::GET, &format!("/api/admin/users/{user}/keys"), Some(ADMIN), None)
        .await;
    let labels: Vec<&str> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["label"].as_str())
        .collect();
    assert!(labels.contains(&"My Agent"), "{keys}");

    // Nobody else gets it: a wrong sid, or the token (base64 of the sid) passed as the sid.
    for wrong in ["nope", &token(&sid), &sid[..sid.len() - 1]] {
        let (status, v) = w.poll(wrong).await;
        assert_eq!(status, 404, "{wrong}: {v}");
        assert!(!has_key(&v), "{v}");
    }
    // Decided once: approving again mints nothing.
    let (status, again) = w.decide(ADMIN, &sid, true).await;
    assert_eq!(status, 409, "{again}");

    // The CLI ends it: no key afterwards, and ending twice is a 404.
    let (status, _) = w
        .send(Method::DELETE, &format!("{SESSION}?sid={sid}"), None, None)
        .await;
    assert_eq!(status, 200);
    let (status, after) = w.poll(&sid).await;
    assert_eq!(status, 404, "{after}");
    assert!(!has_key(&after), "{after}");
    let (status, _) = w
        .send(Method::DELETE, &format!("{SESSION}?sid={sid}"), None, None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(w.expire_after(10 * MINUTE_MS).await, 0, "ending deleted it");
}

#[tokio::test]
async fn denied_restricted_and_expired_sessions_give_no_key() {
    let w = world().await;
    let (user, _) = w.member("bo").await;
    // Denied: no key, and it cannot be approved afterwards.
    let sid = w.open().await;
    let (status, v) = w.decide(ADMIN, &sid, false).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("denied")), "{v}");
    let (_, polled) = w.poll(&sid).await;
    assert_eq!(polled["status"], "denied");
    assert!(!has_key(&polled), "{polled}");
    assert_eq!(w.decide(ADMIN, &sid, true).await.0, 409);

    // A restricted key cannot approve (its new key would escape its limits).
    let (_, limited) = w
        .send(
            Method::POST,
            &format!("/api/admin/users/{user}/keys"),
            Some(ADMIN),
            Some(json!({"label": "ci", "rpm_limit": 5})),
        )
        .await;
    let limited = limited["key"].as_str().unwrap().to_string();
    let sid = w.open().await;
    assert_eq!(w.decide(&limited, &sid, true).await.0, 403);
    // Nor can anyone without a key or session.
    let body = json!({"token": token(&sid), "approve": true});
    assert_eq!(w.send(Method::POST, "/api/me/connect", None, Some(body)).await.0, 401);

    // Ten minutes later the session is gone: no key, no approval.
    let approved = w.open().await;
    assert_eq!(w.decide(ADMIN, &approved, true).await.0, 201);
    w.f.clock.advance_ms(10 * MINUTE_MS);
    for s in [&sid, &approved] {
        let (status, v) = w.poll(s).await;
        assert_eq!(status, 404, "{v}");
        assert!(!has_key(&v), "{v}");
    }
    assert_eq!(w.decide(ADMIN, &sid, true).await.0, 404);
    // The scheduled job deletes what expired (the approved key's hand-over included), once.
    assert_eq!(w.expire_after(0).await, 3);
    assert_eq!(w.expire_after(0).await, 0);
}

#[tokio::test]
async fn one_address_holds_a_bounded_number_of_sessions() {
    let w = world().await;
    for _ in 0..hub_core::connect::PER_IP {
        w.open().await;
    }
    let (status, v) = w.send(Method::POST, SESSION, None, None).await;
    assert_eq!(status, 429, "{v}");
    w.f.clock.advance_ms(10 * MINUTE_MS);
    w.open().await;
}

#[tokio::test]
async fn the_page_the_cli_opens_is_the_sites_connect_route() {
    let w = world().await;
    let path = "/.well-known/service/gen-simple-access-key?__token__=abc&source=x&closeOnSuccess=true&cli=true&appName=%20AIGNE%20CLI";
    let req = http::Request::builder().uri(path).body(Bytes::new()).unwrap();
    let res = w.hub().handle(req).await;
    assert_eq!(res.status(), 302);
    assert_eq!(
        res.headers()["location"],
        "/#/connect?__token__=abc&source=x&closeOnSuccess=true&cli=true&appName=%20AIGNE%20CLI"
    );
}
