//! The audit log: every admin write route, called once, leaves one entry
//! naming who (user and key), what (resource, id, action, before and after),
//! the request id and the answer's status; no entry holds any secret the
//! writes carried or answered; a refused attempt is on record with its
//! status and changed nothing; the listing filters and pages on the server;
//! entries cannot be deleted or rewritten.

use hub_core::app::table::{Handler, ROUTES};
use hub_e2e::mock::MockProvider;
use hub_e2e::{free_port, Api, HubServer, Launch, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// One admin write made by the test: what the audit log must say about it.
struct Write {
    method: &'static str,
    pattern: &'static str,
    request_id: String,
    resource: &'static str,
    action: &'static str,
    resource_id: Option<String>,
    status: u16,
}

struct Session {
    api: Api,
    writes: Vec<Write>,
    /// Every secret sent or answered, to look for in the audit log.
    secrets: Vec<String>,
    /// Request ids of writes refused with 404 (a resend while an attempt is in flight).
    refused: Vec<String>,
}

impl Session {
    /// Sends an admin write with its own request id; it must succeed.
    async fn write(
        &mut self,
        what: (&'static str, &'static str, &'static str, &'static str),
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (method, pattern, resource, action) = what;
        let (status, v, request_id) = self.send(method, path, body).await;
        assert!(status < 300, "{method} {path} -> {status}: {v}");
        self.writes.push(Write {
            method,
            pattern,
            request_id,
            resource,
            action,
            resource_id: None,
            status,
        });
        v
    }

    /// The id the last write's entry must name.
    fn names(&mut self, id: &str) {
        self.writes.last_mut().unwrap().resource_id = Some(id.to_string());
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value, String) {
        let request_id = format!("audit-test-{}", hub_e2e::unique());
        let mut req = self
            .api
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.api.base),
            )
            .bearer_auth(ADMIN_KEY)
            .header("x-request-id", &request_id);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            request_id,
        )
    }
}

fn id(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .to_string()
}

/// Every audit entry, walking the pages `limit` at a time; and the raw text of every page.
async fn all_entries(api: &Api, query: &str, limit: usize) -> (Vec<Value>, String) {
    let (mut entries, mut text, mut cursor) = (Vec::new(), String::new(), None::<String>);
    for _ in 0..100 {
        let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let path = format!("/api/admin/audit?limit={limit}{query}{after}");
        let (status, page) = api.call(Method::GET, &path, ADMIN_KEY, None).await;
        assert_eq!(status, 200, "{path}: {page}");
        text.push_str(&page.to_string());
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit);
        entries.extend(data.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (entries, text),
        }
    }
    panic!("the audit log did not end within 100 pages");
}

const P: &str = "/api/admin/providers";

/// Makes one write through every admin write route, in an order that gives each its target.
async fn every_write(s: &mut Session, mock: &str) {
    let (provider, cred, model) = catalog(s, mock).await;
    people(s).await;
    codes_packs_webhooks_settings(s).await;
    s.write(
        ("DELETE", "/api/admin/models/:id", "model", "delete"),
        &format!("/api/admin/models/{model}"),
        None,
    )
    .await;
    s.names(&model);
    s.write(
        ("DELETE", "/api/admin/credentials/:id", "credential", "delete"),
        &format!("/api/admin/credentials/{cred}"),
        None,
    )
    .await;
    s.names(&cred);
    s.write(
        ("DELETE", "/api/admin/providers/:id", "provider", "delete"),
        &format!("{P}/{provider}"),
        None,
    )
    .await;
    s.names(&provider);
}

/// A provider, its credential and a model, written and tested.
async fn catalog(s: &mut Session, mock: &str) -> (String, String, String) {
    let provider = s
        .write(
            ("POST", P, "provider", "create"),
            P,
            Some(json!({"name": "p1", "kind": "openai", "base_url": mock})),
        )
        .await;
    let provider = id(&provider, "id");
    s.names(&provider);
    s.write(
        ("PATCH", "/api/admin/providers/:id", "provider", "update"),
        &format!("{P}/{provider}"),
        Some(json!({"priority": 3})),
    )
    .await;
    s.names(&provider);
    let secret1 = format!("sk-audit-first-{}", hub_e2e::unique());
    let cred = s
        .write(
            ("POST", "/api/admin/providers/:id/credentials", "credential", "create"),
            &format!("{P}/{provider}/credentials"),
            Some(json!({"name": "main", "secret": secret1})),
        )
        .await;
    let cred = id(&cred, "id");
    s.names(&cred);
    let secret2 =
        json!({"access_key_id": "AKIAAUDITTEST", "secret_access_key": format!("aws-secret-{}", hub_e2e::unique())});
    s.secrets
        .extend([secret1, secret2["secret_access_key"].as_str().unwrap().to_string()]);
    s.write(
        ("PATCH", "/api/admin/credentials/:id", "credential", "update"),
        &format!("/api/admin/credentials/{cred}"),
        Some(json!({"secret": secret2, "weight": 5})),
    )
    .await;
    s.names(&cred);
    s.write(
        ("POST", "/api/admin/credentials/:id/test", "credential", "test"),
        &format!("/api/admin/credentials/{cred}/test"),
        None,
    )
    .await;
    s.names(&cred);
    let model = model(s, &provider).await;
    (provider, cred, model)
}

/// A model, created and re-priced.
async fn model(s: &mut Session, provider: &str) -> String {
    let model = s
        .write(
            ("POST", "/api/admin/models", "model", "create"),
            "/api/admin/models",
            Some(json!({"provider_id": provider, "model": "m", "input_rate": 1})),
        )
        .await;
    let model = id(&model, "id");
    s.names(&model);
    s.write(
        ("PATCH", "/api/admin/models/:id", "model", "update"),
        &format!("/api/admin/models/{model}"),
        Some(json!({"input_rate": 2})),
    )
    .await;
    s.names(&model);
    // A price sync touches many models at once: recorded without one id.
    s.write(
        ("POST", "/api/admin/prices/sync", "model", "sync"),
        "/api/admin/prices/sync",
        Some(json!({"format": "litellm", "catalogue": {}})),
    )
    .await;
    alias(s).await;
    model
}

/// An alias of the model, created, edited and deleted.
async fn alias(s: &mut Session) {
    let alias = s
        .write(
            ("POST", "/api/admin/aliases", "alias", "create"),
            "/api/admin/aliases",
            Some(json!({"name": "smart", "targets": ["p1/m", {"model": "m", "overrides": {"temperature": 0}}]})),
        )
        .await;
    let alias = id(&alias, "id");
    s.names(&alias);
    s.write(
        ("PATCH", "/api/admin/aliases/:id", "alias", "update"),
        &format!("/api/admin/aliases/{alias}"),
        Some(json!({"routing": "latency"})),
    )
    .await;
    s.names(&alias);
    s.write(
        ("DELETE", "/api/admin/aliases/:id", "alias", "delete"),
        &format!("/api/admin/aliases/{alias}"),
        None,
    )
    .await;
    s.names(&alias);
}

/// A user, their credits and a key.
async fn people(s: &mut Session) {
    let user = s
        .write(
            ("POST", "/api/admin/users", "user", "create"),
            "/api/admin/users",
            Some(json!({"name": "ann", "email": "ann@example.com"})),
        )
        .await;
    let user = id(&user, "id");
    s.names(&user);
    s.write(
        ("PATCH", "/api/admin/users/:id", "user", "update"),
        &format!("/api/admin/users/{user}"),
        Some(json!({"name": "Ann"})),
    )
    .await;
    s.names(&user);
    s.write(
        ("POST", "/api/admin/users/:id/grants", "user", "grant"),
        &format!("/api/admin/users/{user}/grants"),
        Some(json!({"amount": "2.5", "reason": "welcome"})),
    )
    .await;
    s.names(&user);
    let key = s
        .write(
            ("POST", "/api/admin/users/:id/keys", "key", "create"),
            &format!("/api/admin/users/{user}/keys"),
            Some(json!({"label": "laptop"})),
        )
        .await;
    s.secrets.push(id(&key, "key"));
    let key = id(&key, "id");
    s.names(&key);
    s.write(
        ("PATCH", "/api/admin/keys/:id", "key", "update"),
        &format!("/api/admin/keys/{key}"),
        Some(json!({"rpm_limit": 10})),
    )
    .await;
    s.names(&key);
    s.write(
        ("DELETE", "/api/admin/keys/:id", "key", "revoke"),
        &format!("/api/admin/keys/{key}"),
        None,
    )
    .await;
    s.names(&key);
}

async fn codes_packs_webhooks_settings(s: &mut Session) {
    let minted = s
        .write(
            ("POST", "/api/admin/redemption-codes", "redemption_codes", "mint"),
            "/api/admin/redemption-codes",
            Some(json!({"credits": "1", "count": 2})),
        )
        .await;
    s.names(&id(&minted, "batch_id"));
    for code in minted["codes"].as_array().unwrap() {
        s.secrets.push(code.as_str().unwrap().to_string());
    }
    let code = id(&minted["batch"]["codes"][0], "id");
    s.write(
        (
            "DELETE",
            "/api/admin/redemption-codes/:id",
            "redemption_codes",
            "disable",
        ),
        &format!("/api/admin/redemption-codes/{code}"),
        None,
    )
    .await;
    s.names(&code);
    let pack = s
        .write(
            ("POST", "/api/admin/credit-packs", "credit_pack", "create"),
            "/api/admin/credit-packs",
            Some(json!({"name": "Starter", "currency": "usd", "unit_amount": 500, "credits": "5"})),
        )
        .await;
    let pack = id(&pack, "id");
    s.names(&pack);
    s.write(
        ("PATCH", "/api/admin/credit-packs/:id", "credit_pack", "update"),
        &format!("/api/admin/credit-packs/{pack}"),
        Some(json!({"active": false})),
    )
    .await;
    s.names(&pack);
    s.write(
        ("DELETE", "/api/admin/credit-packs/:id", "credit_pack", "delete"),
        &format!("/api/admin/credit-packs/{pack}"),
        None,
    )
    .await;
    s.names(&pack);
    let team = s
        .write(
            ("POST", "/api/admin/teams", "team", "create"),
            "/api/admin/teams",
            Some(json!({"name": "audited", "budget": 5})),
        )
        .await;
    let team = id(&team, "id");
    s.names(&team);
    s.write(
        ("PATCH", "/api/admin/teams/:id", "team", "update"),
        &format!("/api/admin/teams/{team}"),
        Some(json!({"budget_period": "weekly", "time_zone": "Europe/Paris"})),
    )
    .await;
    s.names(&team);
    s.write(
        ("DELETE", "/api/admin/teams/:id", "team", "delete"),
        &format!("/api/admin/teams/{team}"),
        None,
    )
    .await;
    s.names(&team);
    // Nothing listens there: deliveries fail and wait for their next attempt.
    let url = format!("http://127.0.0.1:{}/hook", free_port());
    let hook = s
        .write(
            ("POST", "/api/admin/webhooks", "webhook", "create"),
            "/api/admin/webhooks",
            Some(json!({"url": url, "events": ["*"]})),
        )
        .await;
    s.secrets.push(id(&hook, "secret"));
    let hook = id(&hook, "id");
    s.names(&hook);
    s.write(
        ("PATCH", "/api/admin/webhooks/:id", "webhook", "update"),
        &format!("/api/admin/webhooks/{hook}"),
        Some(json!({"description": "ops"})),
    )
    .await;
    s.names(&hook);
    let rotated = s
        .write(
            ("POST", "/api/admin/webhooks/:id/rotate", "webhook", "rotate_secret"),
            &format!("/api/admin/webhooks/{hook}/rotate"),
            None,
        )
        .await;
    s.secrets.push(id(&rotated, "secret"));
    s.names(&hook);
    let sent = s
        .write(
            ("POST", "/api/admin/webhooks/:id/test", "webhook", "send_test"),
            &format!("/api/admin/webhooks/{hook}/test"),
            None,
        )
        .await;
    s.names(&hook);
    let delivery = id(&sent, "delivery_id");
    resend(s, &hook, &delivery).await;
    settings(s).await;
    s.write(
        ("DELETE", "/api/admin/webhooks/:id", "webhook", "delete"),
        &format!("/api/admin/webhooks/{hook}"),
        None,
    )
    .await;
    s.names(&hook);
}

/// A resend is refused (404, nothing changed) while an attempt is in
/// flight: tried until it is taken. A refusal found before any write leaves
/// no entry; one refused by the conditional write itself is recorded with
/// its 404, as every refused attempt is.
async fn resend(s: &mut Session, hook: &str, delivery: &str) {
    let path = format!("/api/admin/webhooks/{hook}/deliveries/{delivery}/resend");
    for _ in 0..200 {
        let (status, v, request_id) = s.send("POST", &path, None).await;
        if status == 202 {
            s.writes.push(Write {
                method: "POST",
                pattern: "/api/admin/webhooks/:id/deliveries/:delivery/resend",
                request_id,
                resource: "webhook_delivery",
                action: "resend",
                resource_id: Some(delivery.to_string()),
                status,
            });
            return;
        }
        assert_eq!(status, 404, "{v}");
        s.refused.push(request_id);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the delivery was never free to resend");
}

async fn settings(s: &mut Session) {
    let u = hub_e2e::unique();
    let body = json!({
        "app_name": "Audited",
        "stripe_secret_key": format!("sk_test_audit_{u}"),
        "stripe_webhook_secret": format!("whsec_audit_{u}"),
        "smtp_password": format!("smtp-pass-{u}"),
        "oidc_client_secret": format!("oidc-secret-{u}"),
    });
    for k in [
        "stripe_secret_key",
        "stripe_webhook_secret",
        "smtp_password",
        "oidc_client_secret",
    ] {
        s.secrets.push(body[k].as_str().unwrap().to_string());
    }
    s.write(
        ("PATCH", "/api/admin/settings", "settings", "update"),
        "/api/admin/settings",
        Some(body),
    )
    .await;
}

/// The routes the table declares as admin writes.
fn audited_routes() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .filter(|r| matches!(r.handler, Handler::AdminWrite(..)))
        .map(|r| (r.method.to_string(), r.pattern.to_string()))
        .collect()
}

#[tokio::test]
async fn every_admin_write_leaves_one_entry_without_secrets() {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let me = api.call(Method::GET, "/api/me", ADMIN_KEY, None).await.1;
    let (owner, admin_key) = (id(&me["user"], "id"), id(&me["key"], "id"));
    let mut s = Session {
        api: api.clone(),
        writes: Vec::new(),
        secrets: vec![ADMIN_KEY.to_string()],
        refused: Vec::new(),
    };
    every_write(&mut s, &mock.base_url()).await;

    // The test covers every admin write route the table has, and no other.
    let called: BTreeSet<(String, String)> = s
        .writes
        .iter()
        .map(|w| (w.method.to_string(), w.pattern.to_string()))
        .collect();
    assert_eq!(
        called,
        audited_routes(),
        "admin write routes the test does not call, or calls that are not admin writes"
    );

    let (entries, text) = all_entries(&api, "", 7).await;
    let (refusals, entries): (Vec<Value>, Vec<Value>) = entries
        .into_iter()
        .partition(|e| s.refused.iter().any(|r| e["request_id"] == r.as_str()));
    assert!(
        refusals.iter().all(|e| e["status"] == 404 && e["before"] == e["after"]),
        "a refused resend changes nothing: {text}"
    );
    assert_eq!(entries.len(), s.writes.len(), "one entry per write: {text}");
    for w in &s.writes {
        let mine: Vec<&Value> = entries
            .iter()
            .filter(|e| e["request_id"] == w.request_id.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "{} {}: {mine:?}", w.method, w.pattern);
        let e = mine[0];
        let what = format!("{} {}: {e}", w.method, w.pattern);
        assert_eq!(
            e["actor"],
            json!({"user_id": owner, "key_id": admin_key, "session_id": null}),
            "{what}"
        );
        assert_eq!(
            (e["resource"].as_str(), e["action"].as_str()),
            (Some(w.resource), Some(w.action)),
            "{what}"
        );
        assert_eq!(e["resource_id"].as_str(), w.resource_id.as_deref(), "{what}");
        assert_eq!(
            (e["status"].as_u64(), e["method"].as_str()),
            (Some(u64::from(w.status)), Some(w.method)),
            "{what}"
        );
        assert!(e["at"].is_string() && e["finished_at"].is_string(), "{what}");
        if w.action == "create" || w.action == "mint" {
            assert!(e["before"].is_null() && e["after"]["id"].is_string(), "{what}");
        } else if w.action == "sync" {
            // Many models at once: each one's changes are in its rate history.
            assert!(e["before"].is_null() && e["resource_id"].is_null(), "{what}");
        } else if w.action != "delete" {
            assert!(e["before"].is_object() && e["after"].is_object(), "{what}");
        }
    }
    // No secret, anywhere in the log: not in what was asked, nor before, nor after.
    for secret in &s.secrets {
        assert!(
            !text.contains(secret.as_str()),
            "the audit log shows a secret ({secret}): {text}"
        );
    }
    let raw = hub_e2e::sqlite(&hub.dir.join("hub.db"), "SELECT request, before, after FROM audit_log").to_string();
    for secret in &s.secrets {
        assert!(
            !raw.contains(secret.as_str()),
            "the audit table holds a secret ({secret})"
        );
    }
    what_changed(&entries, &s);
    drop(hub);
}

/// The entry of the write with this pattern and method.
fn entry<'a>(entries: &'a [Value], s: &Session, method: &str, pattern: &str) -> &'a Value {
    let w = s
        .writes
        .iter()
        .find(|w| w.method == method && w.pattern == pattern)
        .unwrap();
    entries
        .iter()
        .find(|e| e["request_id"] == w.request_id.as_str())
        .unwrap()
}

/// Before and after are the resource as the admin API shows it.
fn what_changed(entries: &[Value], s: &Session) {
    let model = entry(entries, s, "PATCH", "/api/admin/models/:id");
    assert_eq!(
        (
            model["before"]["input_rate"].as_str(),
            model["after"]["input_rate"].as_str()
        ),
        (Some("1"), Some("2")),
        "{model}"
    );
    assert_eq!(model["request"], json!({"input_rate": 2}));
    let grant = entry(entries, s, "POST", "/api/admin/users/:id/grants");
    assert_eq!(
        (grant["before"]["balance"].as_str(), grant["after"]["balance"].as_str()),
        (Some("0"), Some("2.5")),
        "{grant}"
    );
    assert_eq!(grant["request"]["reason"], "welcome");
    let revoke = entry(entries, s, "DELETE", "/api/admin/keys/:id");
    assert_eq!(
        (
            revoke["before"]["active"].as_bool(),
            revoke["after"]["active"].as_bool()
        ),
        (Some(true), Some(false)),
        "{revoke}"
    );
    let cred = entry(entries, s, "PATCH", "/api/admin/credentials/:id");
    assert_eq!(cred["request"]["secret"], "****", "{cred}");
    assert_ne!(cred["before"]["secret_hint"], cred["after"]["secret_hint"], "{cred}");
    let settings = entry(entries, s, "PATCH", "/api/admin/settings");
    assert_eq!(
        (
            settings["before"]["stripe_secret_key_set"].as_bool(),
            settings["after"]["stripe_secret_key_set"].as_bool()
        ),
        (Some(false), Some(true)),
        "{settings}"
    );
    assert_eq!(settings["after"]["app_name"], "Audited");
    let deleted = entry(entries, s, "DELETE", "/api/admin/credit-packs/:id");
    assert!(
        deleted["before"]["id"].is_string() && deleted["after"].is_null(),
        "{deleted}"
    );
}

#[tokio::test]
async fn refusals_are_on_record_and_the_log_filters_pages_and_stays() {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let provider = api
        .setup_provider("mock", &mock.base_url(), "sk-audit-filter-test")
        .await;
    let model = id(&api.add_model(&provider, "m", json!({"input_rate": 1})).await, "id");
    let (user, member) = api.user_with_key("member", "5").await;
    let (entries, _) = all_entries(&api, "", 500).await;
    assert_eq!(
        entries.len(),
        6,
        "provider, credential, model, user, grant, key: {entries:?}"
    );
    filters(&api, &model, &user, &entries).await;

    // Refused (bad input, no such thing): on record with the status, nothing changed.
    let s = Session {
        api: api.clone(),
        writes: Vec::new(),
        secrets: Vec::new(),
        refused: Vec::new(),
    };
    let refused = [
        (
            "PATCH",
            format!("/api/admin/models/{model}"),
            Some(json!({"input_rate": "abc"})),
            400,
        ),
        ("DELETE", "/api/admin/models/mdl_nope".to_string(), None, 404),
        ("POST", "/api/admin/webhooks/whk_nope/rotate".to_string(), None, 404),
        (
            "PATCH",
            format!("/api/admin/users/{user}"),
            Some(json!({"role": "boss"})),
            400,
        ),
    ];
    for (method, path, body, want) in refused {
        let (status, v, request_id) = s.send(method, &path, body).await;
        assert_eq!(status, want, "{method} {path}: {v}");
        let (mine, _) = all_entries(&api, "", 500).await;
        let e = mine
            .iter()
            .find(|e| e["request_id"] == request_id.as_str())
            .unwrap_or_else(|| panic!("{method} {path}"));
        assert_eq!(
            (e["status"].as_u64(), &e["before"]),
            (Some(want as u64), &e["after"]),
            "{e}"
        );
    }
    assert_eq!(api.user(&user).await["role"], "member");
    let m = api
        .admin(Method::GET, &format!("/api/admin/models/{model}"), None)
        .await;
    assert_eq!(m["input_rate"], "1");
    // Not an admin: refused before anything, and not the admin log's to record.
    let (status, _) = api
        .call(
            Method::PATCH,
            &format!("/api/admin/models/{model}"),
            &member,
            Some(json!({"input_rate": 9})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = api.call(Method::GET, "/api/admin/audit", &member, None).await;
    assert_eq!(status, 403, "members do not read the audit log");
    assert_eq!(all_entries(&api, "", 500).await.0.len(), 10);

    append_only(&hub.dir.join("hub.db"));
    drop(hub);
}

async fn filters(api: &Api, model: &str, user: &str, entries: &[Value]) {
    let me = api.call(Method::GET, "/api/me", ADMIN_KEY, None).await.1;
    let owner = id(&me["user"], "id");
    let count = |q: String| async move { all_entries(api, &q, 2).await.0.len() };
    assert_eq!(count(format!("&actor={owner}")).await, entries.len());
    assert_eq!(count(format!("&actor={}", id(&me["key"], "id"))).await, entries.len());
    assert_eq!(count("&actor=usr_nobody".into()).await, 0);
    assert_eq!(count("&resource=model".into()).await, 1);
    assert_eq!(
        count(format!("&resource=user&resource_id={user}")).await,
        2,
        "created, granted"
    );
    assert_eq!(count("&resource=user&action=grant".into()).await, 1);
    assert_eq!(count(format!("&resource_id={model}")).await, 1);
    // Newest first; a time range takes entries at or after `from`, before `to`.
    let newest = &entries[0];
    assert_eq!(newest["resource"], "key", "{newest}");
    let at = newest["at"].as_str().unwrap();
    assert_eq!(
        count(format!("&from={at}")).await,
        1 + entries.iter().skip(1).filter(|e| e["at"] == at).count()
    );
    assert_eq!(
        count(format!("&to={at}")).await,
        entries.iter().filter(|e| e["at"].as_str() < Some(at)).count()
    );
    for bad in ["resource=nope", "action=nope", "from=yesterday", "limit=x"] {
        let (status, v) = api
            .call(Method::GET, &format!("/api/admin/audit?{bad}"), ADMIN_KEY, None)
            .await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
}

/// Deleting entries, or changing a finished one, is refused by the database itself.
fn append_only(db: &Path) {
    for sql in ["DELETE FROM audit_log", "UPDATE audit_log SET after = NULL"] {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=30)\nc.execute(sys.argv[2])\nc.commit()",
            ])
            .arg(db)
            .arg(sql)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("audit"), "{sql}: {err}");
    }
    let left = hub_e2e::sqlite(db, "SELECT COUNT(*) FROM audit_log");
    assert_eq!(left, json!([[10]]));
}
