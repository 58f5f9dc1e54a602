//! Hub's front door in process, on a real embedded database: the route
//! table's 405s, area guards and preflights, typed admin patches, and a
//! random source that fails.

use bytes::Bytes;
use hub_core::http::{Body, Method, Request, Response};
use hub_core::ports::{Rng, RngError};
use hub_core::testing::SeqRng;
use hub_core::{Hub, HubOptions};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const ADMIN: &str = "hub_front_admin_key_0123456789abcdef";

/// Random bytes until told to fail, as a platform source might.
#[derive(Default)]
struct Flaky {
    broken: AtomicBool,
    inner: SeqRng,
}

impl Rng for Flaky {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RngError> {
        if self.broken.load(Ordering::Relaxed) {
            buf.fill(0);
            return Err(RngError("the source is gone".into()));
        }
        self.inner.fill(buf)
    }
}

mod common;

struct World {
    hub: Hub,
    rng: Arc<Flaky>,
    _dir: common::TempDir,
}

async fn world() -> World {
    let rng = Arc::new(Flaky::default());
    let setup = common::Setup {
        options: HubOptions {
            cors_origins: vec!["https://app.example".into()],
            ..Default::default()
        },
        rng: rng.clone(),
        ..Default::default()
    };
    let f = common::start(common::temp_dir("front"), ADMIN, setup).await;
    World {
        hub: f.hub,
        rng,
        _dir: f.dir,
    }
}

fn request(method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Request {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    b.body(body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string())))
        .unwrap()
}

fn json_of(res: Response) -> Value {
    match res.into_body() {
        Body::Full(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
        Body::Stream(_) => panic!("a stream"),
    }
}

impl World {
    async fn send(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Response {
        self.hub.handle(request(method, path, key, body)).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let res = self.send(method, path, Some(ADMIN), body).await;
        (res.status().as_u16(), json_of(res))
    }

    async fn provider(&self) -> String {
        let body = json!({"name": "p", "kind": "openai", "base_url": "http://p.test/v1"});
        let (status, v) = self.call(Method::POST, "/api/admin/providers", Some(body)).await;
        assert_eq!(status, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn other_methods_are_405_with_allow_after_the_areas_guard() {
    let w = world().await;
    let res = w.send(Method::DELETE, "/v1/models", None, None).await;
    assert_eq!(
        (res.status().as_u16(), res.headers()["allow"].to_str().unwrap()),
        (405, "GET")
    );
    let res = w.send(Method::POST, "/healthz", None, None).await;
    assert_eq!(
        (res.status().as_u16(), res.headers()["allow"].to_str().unwrap()),
        (405, "GET")
    );
    // Under /api/admin, nobody without an admin key learns which methods exist.
    let res = w.send(Method::PUT, "/api/admin/users", None, None).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("allow").is_none());
    let res = w.send(Method::PUT, "/api/admin/users", Some(ADMIN), None).await;
    assert_eq!(
        (res.status().as_u16(), res.headers()["allow"].to_str().unwrap()),
        (405, "GET, POST")
    );
    let (status, v) = w.call(Method::GET, "/api/admin/nope", None).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["message"], "No admin route for GET /api/admin/nope.");
    let res = w.send(Method::GET, "/api/admin/nope", None, None).await;
    assert_eq!(res.status(), 401, "unknown admin paths are guarded too");
}

#[tokio::test]
async fn preflights_answer_the_paths_methods() {
    let w = world().await;
    let preflight = |path: &str| {
        http::Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header("origin", "https://app.example")
            .body(Bytes::new())
            .unwrap()
    };
    let res = w.hub.handle(preflight("/api/admin/models/mdl_1")).await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        res.headers()["access-control-allow-methods"],
        "GET, PATCH, DELETE, OPTIONS"
    );
    let res = w.hub.handle(preflight("/nothing/here")).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn patches_change_only_what_they_name() {
    let w = world().await;
    let p = w.provider().await;
    let body = json!({"provider_id": p, "model": "m", "input_rate": 2, "cache_read_rate": 1, "max_output_tokens": 100});
    let (status, m) = w.call(Method::POST, "/api/admin/models", Some(body)).await;
    assert_eq!(status, 201, "{m}");
    let path = format!("/api/admin/models/{}", m["id"].as_str().unwrap());
    let (status, v) = w
        .call(
            Method::PATCH,
            &path,
            Some(json!({"cache_read_rate": null, "output_rate": 5})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["cache_read_rate"], Value::Null, "null clears a nullable field");
    assert_eq!(v["input_rate"], m["input_rate"], "an absent field is kept");
    assert_eq!(v["max_output_tokens"], 100);
    assert_ne!(v["output_rate"], m["output_rate"]);
    // Unknown fields and bad values are refused, naming the field, and change nothing.
    for (body, param) in [
        (json!({"colour": "red", "enabled": false}), "colour"),
        (json!({"input_rate": null}), "input_rate"),
        (json!({"provider_id": "prv_x"}), "provider_id"),
    ] {
        let (status, e) = w.call(Method::PATCH, &path, Some(body)).await;
        assert_eq!((status, e["error"]["param"].as_str()), (400, Some(param)), "{e}");
    }
    assert_eq!(w.call(Method::GET, &path, None).await.1, v);
}

#[tokio::test]
async fn without_randomness_no_secret_is_sealed_and_no_key_made() {
    let w = world().await;
    let p = w.provider().await;
    w.rng.broken.store(true, Ordering::Relaxed);
    let creds = format!("/api/admin/providers/{p}/credentials");
    let (status, v) = w.call(Method::POST, &creds, Some(json!({"secret": "sk-live-1"}))).await;
    assert_eq!(status, 503, "{v}");
    let (status, u) = w.call(Method::GET, "/api/me", None).await;
    assert_eq!(status, 200);
    let keys = format!("/api/admin/users/{}/keys", u["user"]["id"].as_str().unwrap());
    let (status, v) = w.call(Method::POST, &keys, Some(json!({"label": "k"}))).await;
    assert_eq!(status, 503, "{v}");
    w.rng.broken.store(false, Ordering::Relaxed);
    assert_eq!(
        w.call(Method::GET, &creds, None).await.1["data"],
        json!([]),
        "nothing stored"
    );
    assert_eq!(
        w.call(Method::GET, &keys, None).await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (status, _) = w.call(Method::POST, &creds, Some(json!({"secret": "sk-live-1"}))).await;
    assert_eq!(status, 201, "works again once the source does");
}

#[tokio::test]
async fn without_randomness_no_redemption_code_is_minted() {
    let w = world().await;
    let body = json!({"credits": "1", "count": 5});
    w.rng.broken.store(true, Ordering::Relaxed);
    let (status, v) = w
        .call(Method::POST, "/api/admin/redemption-codes", Some(body.clone()))
        .await;
    assert_eq!(status, 503, "{v}");
    assert!(v.get("codes").is_none(), "{v}");
    w.rng.broken.store(false, Ordering::Relaxed);
    let (_, list) = w.call(Method::GET, "/api/admin/redemption-codes", None).await;
    assert_eq!(list["data"], json!([]), "nothing stored");
    let (status, v) = w.call(Method::POST, "/api/admin/redemption-codes", Some(body)).await;
    assert_eq!(status, 201, "works again once the source does: {v}");
    assert_eq!(v["codes"].as_array().unwrap().len(), 5);
}
