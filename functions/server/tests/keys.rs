//! Editing keys (`PATCH /api/admin/keys/:id`, `PATCH /api/me/keys/:id`): the
//! change reaches every instance within the key cache's TTL; restricted keys
//! may only tighten; roles rank; bad input changes nothing. And the
//! rate-limit headers a key with limits sees on its calls.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{eventually, Api, HranaServer, HubServer, Launch, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

async fn hub(launch: Launch) -> HubServer {
    tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), launch))
        .await
        .unwrap()
}

/// A provider with models `m` and `other`, configured through `api`.
async fn models(api: &Api, mock: &MockProvider) {
    let p = api.setup_provider("mock", &mock.base_url(), "sk-0001").await;
    for m in ["m", "other"] {
        api.add_model(&p, m, json!({"input_rate": 1000, "output_rate": 1000}))
            .await;
    }
    mock.set("m", Behavior::default().tokens(10, 10));
}

/// A new key for `user` with these settings: (id, plaintext).
async fn key_with(api: &Api, user: &str, settings: Value) -> (String, String) {
    let k = api
        .admin(Method::POST, &format!("/api/admin/users/{user}/keys"), Some(settings))
        .await;
    (k["id"].as_str().unwrap().into(), k["key"].as_str().unwrap().into())
}

async fn key_row(api: &Api, user: &str, id: &str) -> Value {
    let keys = api
        .admin(Method::GET, &format!("/api/admin/users/{user}/keys"), None)
        .await;
    keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no key {id}: {keys}"))
}

/// A Hub on the shared database whose key cache lives two seconds.
fn remote(hrana: &HranaServer) -> Launch {
    let mut launch = Launch::remote(hrana);
    launch.env.push(("HUB_CACHE_TTL".into(), "2".into()));
    launch
}

/// Two `hub serve` instances on one database: an edit through one holds at
/// once there, and on the other once its cached copy of the key expires.
#[tokio::test]
async fn an_edit_reaches_every_instance_within_the_cache_ttl() {
    let dir = hub_e2e::temp_dir("keys-ttl");
    let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
    let (one, two) = (hub(remote(&hrana)).await, hub(remote(&hrana)).await);
    let (a, b) = (Api::new(&one.base), Api::new(&two.base));
    let mock = MockProvider::start().await;
    models(&a, &mock).await;
    let (user, _) = a.user_with_key("eve", "10").await;
    let (id, key) = key_with(&a, &user, json!({"label": "ci", "rpm_limit": 100})).await;
    for api in [&a, &b] {
        assert_eq!(api.chat(&key, "other").await.0, 200, "both instances know the key");
    }

    let edited = a
        .admin(
            Method::PATCH,
            &format!("/api/admin/keys/{id}"),
            Some(json!({"allowed_models": ["m"]})),
        )
        .await;
    assert_eq!(edited["allowed_models"], json!(["m"]));
    let edited_at = Instant::now();
    assert_eq!(a.chat(&key, "other").await.0, 404, "at once where it was edited");
    // The other instance answers from its cached copy until the TTL runs out.
    let answered = std::sync::atomic::AtomicI64::new(0);
    eventually(
        "the other instance to refuse `other`",
        Duration::from_secs(6),
        || async {
            match b.chat(&key, "other").await {
                (404, _) => Ok(()),
                (s, v) => {
                    answered.fetch_add(i64::from(s == 200), std::sync::atomic::Ordering::Relaxed);
                    Err(format!("{s}: {v}"))
                }
            }
        },
    )
    .await;
    assert!(
        edited_at.elapsed() < Duration::from_secs(5),
        "within the 2 s TTL, give or take"
    );

    // Lowered to one more call than the key made this minute (on either instance).
    let made = 2 + answered.into_inner();
    a.admin(
        Method::PATCH,
        &format!("/api/admin/keys/{id}"),
        Some(json!({"rpm_limit": made + 1})),
    )
    .await;
    assert_eq!(a.chat(&key, "m").await.0, 200);
    let refused = a
        .http
        .post(format!("{}/v1/chat/completions", a.base))
        .bearer_auth(&key)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requests-per-minute"),
        "{body}"
    );
}

#[tokio::test]
async fn a_restricted_key_may_only_tighten() {
    let server = hub(Launch::default()).await;
    let api = Api::new(&server.base);
    let (user, free) = api.user_with_key("rob", "0").await;
    let (id, limited) = key_with(&api, &user, json!({"rpm_limit": 5, "allowed_models": ["m"]})).await;
    let (sibling, _) = key_with(&api, &user, json!({"label": "sibling"})).await;
    let mine = format!("/api/me/keys/{id}");

    for (body, field) in [
        (json!({"rpm_limit": 100}), "rpm_limit"),
        (json!({"rpm_limit": null}), "rpm_limit"),
        (json!({"allowed_models": null}), "allowed_models"),
        (json!({"allowed_models": ["m", "other"]}), "allowed_models"),
        (
            json!({"label": "x", "tpm_limit": 10, "monthly_spend_cap": "1", "rpm_limit": 6}),
            "rpm_limit",
        ),
    ] {
        let (status, v) = api.call(Method::PATCH, &mine, &limited, Some(body.clone())).await;
        assert_eq!(status, 403, "{body} -> {v}");
        assert_eq!(v["error"]["param"], field, "{v}");
    }
    let (status, v) = api
        .call(
            Method::PATCH,
            &format!("/api/me/keys/{sibling}"),
            &limited,
            Some(json!({"label": "mine now"})),
        )
        .await;
    assert_eq!(status, 403, "a restricted key edits only itself: {v}");
    let row = key_row(&api, &user, &id).await;
    assert_eq!(
        (row["rpm_limit"].clone(), row["label"].clone()),
        (json!(5), json!("default"))
    );

    let (status, v) = api
        .call(
            Method::PATCH,
            &mine,
            &limited,
            Some(json!({"rpm_limit": 2, "label": "tight"})),
        )
        .await;
    assert_eq!(
        (status, v["rpm_limit"].clone(), v["label"].clone()),
        (200, json!(2), json!("tight")),
        "{v}"
    );
    // The user's unrestricted key could mint a key without limits: it may lift them.
    let (status, v) = api
        .call(
            Method::PATCH,
            &mine,
            &free,
            Some(json!({"rpm_limit": null, "allowed_models": null})),
        )
        .await;
    assert_eq!(
        (status, v["rpm_limit"].clone(), v["allowed_models"].clone()),
        (200, Value::Null, Value::Null),
        "{v}"
    );
    // Another user's key is not there for /api/me.
    let (other_user, other_key) = api.user_with_key("sam", "0").await;
    let (status, _) = api
        .call(Method::PATCH, &mine, &other_key, Some(json!({"label": "x"})))
        .await;
    assert_eq!(status, 404);
    let _ = other_user;
}

#[tokio::test]
async fn roles_rank_for_edits() {
    let server = hub(Launch::default()).await;
    let api = Api::new(&server.base);
    let me = api.admin(Method::GET, "/api/me", None).await;
    let owner_key = me["key"]["id"].as_str().unwrap().to_string();
    let admin = api
        .admin(
            Method::POST,
            "/api/admin/users",
            Some(json!({"name": "ann", "role": "admin"})),
        )
        .await;
    let admin_id = admin["id"].as_str().unwrap();
    let (admin_key_id, admin_key) = key_with(&api, admin_id, json!({"label": "ann"})).await;

    let (status, v) = api
        .call(
            Method::PATCH,
            &format!("/api/admin/keys/{owner_key}"),
            &admin_key,
            Some(json!({"rpm_limit": 1})),
        )
        .await;
    assert_eq!(status, 403, "an admin cannot edit an owner's key: {v}");
    let (status, v) = api
        .call(
            Method::PATCH,
            &format!("/api/admin/keys/{admin_key_id}"),
            ADMIN_KEY,
            Some(json!({"label": "renamed by the owner"})),
        )
        .await;
    assert_eq!(
        (status, v["label"].clone()),
        (200, json!("renamed by the owner")),
        "{v}"
    );
    let (user, member_key) = api.user_with_key("meg", "0").await;
    let (status, _) = api
        .call(
            Method::PATCH,
            &format!("/api/admin/keys/{admin_key_id}"),
            &member_key,
            Some(json!({"label": "x"})),
        )
        .await;
    assert_eq!(status, 403, "members have no admin API");
    let _ = user;
}

#[tokio::test]
async fn bad_edits_name_the_field_and_change_nothing() {
    let server = hub(Launch::default()).await;
    let api = Api::new(&server.base);
    let (user, _) = api.user_with_key("bo", "0").await;
    let (id, _) = key_with(
        &api,
        &user,
        json!({"label": "ci", "rpm_limit": 5, "daily_spend_cap": "1.5"}),
    )
    .await;
    let before = key_row(&api, &user, &id).await;
    let path = format!("/api/admin/keys/{id}");
    for (body, field) in [
        (json!({"rpm_limit": 0}), "rpm_limit"),
        (json!({"tpm_limit": "many"}), "tpm_limit"),
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"expires_at": "soon"}), "expires_at"),
        (json!({"allowed_models": "m"}), "allowed_models"),
        (json!({"daily_spend_cap": "-1"}), "daily_spend_cap"),
        (json!({"monthly_spend_cap": "0.0000000001"}), "monthly_spend_cap"),
        (json!({"label": ""}), "label"),
        (json!({"label": null}), "label"),
        (json!({"label": "ok", "colour": "red"}), "colour"),
    ] {
        let (status, v) = api.call(Method::PATCH, &path, ADMIN_KEY, Some(body.clone())).await;
        assert_eq!(status, 400, "{body} -> {v}");
        assert_eq!(v["error"]["param"], field, "{body} -> {v}");
    }
    assert_eq!(key_row(&api, &user, &id).await, before, "nothing changed");

    let (status, v) = api
        .call(
            Method::PATCH,
            &path,
            ADMIN_KEY,
            Some(json!({"daily_spend_cap": "0.25", "expires_at": null})),
        )
        .await;
    assert_eq!((status, v["daily_spend_cap"].clone()), (200, json!("0.25")), "{v}");
    api.admin(Method::DELETE, &path, None).await;
    let (status, v) = api
        .call(Method::PATCH, &path, ADMIN_KEY, Some(json!({"label": "back"})))
        .await;
    assert_eq!(status, 409, "a revoked key stays as it was: {v}");
    let (status, _) = api
        .call(
            Method::PATCH,
            "/api/admin/keys/key_nope",
            ADMIN_KEY,
            Some(json!({"label": "x"})),
        )
        .await;
    assert_eq!(status, 404);
}

/// One call's status and the rate-limit headers it carried.
async fn limited_call(api: &Api, key: &str, path: &str, body: Value) -> (u16, Vec<(String, String)>) {
    let resp = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let headers = resp
        .headers()
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-ratelimit-") || n.as_str() == "retry-after")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let status = resp.status().as_u16();
    let _ = resp.bytes().await.unwrap();
    (status, headers)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {h:?}"))
}

/// OpenAI's headers count down over calls through every protocol, whole and
/// streamed, and are whole again once the minute has passed.
#[tokio::test]
async fn rate_limit_headers_count_down_and_reset() {
    let server = hub(Launch::default()).await;
    let api = Api::new(&server.base);
    let mock = MockProvider::start().await;
    models(&api, &mock).await;
    let (user, free) = api.user_with_key("kit", "10").await;
    let (_, key) = key_with(&api, &user, json!({"rpm_limit": 4, "tpm_limit": 100000})).await;
    let chat = |stream: bool| json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50, "stream": stream});
    let messages = json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
    let responses = json!({"model": "m", "input": "hi", "max_output_tokens": 50});
    let calls = [
        ("/v1/chat/completions", chat(false)),
        ("/v1/chat/completions", chat(true)),
        ("/v1/messages", messages),
        ("/v1/responses", responses),
    ];
    for (i, (path, body)) in calls.into_iter().enumerate() {
        let (status, h) = limited_call(&api, &key, path, body).await;
        assert_eq!(status, 200, "{path}: {h:?}");
        assert_eq!(header(&h, "x-ratelimit-limit-requests"), "4");
        assert_eq!(
            header(&h, "x-ratelimit-remaining-requests"),
            (3 - i).to_string(),
            "{path}"
        );
        assert_eq!(header(&h, "x-ratelimit-reset-requests"), "1m0s");
        assert_eq!(header(&h, "x-ratelimit-limit-tokens"), "100000");
        // Tokens left: the limit less this call's bound and what the minute's
        // earlier calls hold or used (an earlier call settling to its use in
        // between gives tokens back, so the figure need not fall call by call).
        let left: i64 = header(&h, "x-ratelimit-remaining-tokens").parse().unwrap();
        assert!((1..100_000 - 50).contains(&left), "{path}: {left} tokens left");
    }
    let started = Instant::now();
    let (status, h) = limited_call(&api, &key, "/v1/chat/completions", chat(false)).await;
    assert_eq!(status, 429);
    let wait: u64 = header(&h, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");

    let (status, h) = limited_call(&api, &free, "/v1/chat/completions", chat(false)).await;
    assert_eq!(
        (status, h.len()),
        (200, 0),
        "a key without limits gets no headers: {h:?}"
    );

    // The minute passes (bounded: 65 s), and the key's limits are whole again.
    tokio::time::sleep(Duration::from_secs(61).saturating_sub(started.elapsed())).await;
    let (status, h) = eventually("the window to pass", Duration::from_secs(5), || async {
        match limited_call(&api, &key, "/v1/chat/completions", chat(true)).await {
            (200, h) => Ok((200, h)),
            (s, h) => Err(format!("{s}: {h:?}")),
        }
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "x-ratelimit-remaining-requests"), "3");
}

/// Every 429 says when to come back: a provider's rate limit passed on too.
#[tokio::test]
async fn a_providers_429_carries_retry_after() {
    let server = hub(Launch::default()).await;
    let api = Api::new(&server.base);
    let mock = MockProvider::start().await;
    models(&api, &mock).await;
    mock.set("other", Behavior::status(429));
    let (_, key) = api.user_with_key("pat", "10").await;
    let (status, h) = limited_call(
        &api,
        &key,
        "/v1/chat/completions",
        json!({"model": "other", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(header(&h, "retry-after"), "1");
}
