//! People signing in with OpenID Connect against a real provider (npm
//! `oidc-provider` on loopback), driven step by step over HTTP as a browser
//! would: sign-up with starter credits once, sign-out, sign-in again,
//! sessions and CSRF, and every forged or misdirected sign-in refused with
//! nothing created.

use hub_e2e::oidc::{Body, Browser, OidcProvider, Page, CLIENT_ID, CLIENT_SECRET};
use hub_e2e::{Api, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

/// A Hub and an OpenID provider that knows Hub's callback.
struct Setup {
    hub: HubServer,
    op: OidcProvider,
    api: Api,
}

async fn setup(alg: &'static str, env: Vec<(String, String)>) -> Setup {
    let hub = tokio::task::spawn_blocking(move || {
        HubServer::start(
            Path::new(env!("CARGO_BIN_EXE_hub")),
            Launch {
                env,
                ..Default::default()
            },
        )
    })
    .await
    .unwrap();
    let callback = hub.url("/auth/oidc/callback");
    let op = tokio::task::spawn_blocking(move || OidcProvider::start(&[callback], alg))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({
            "oidc_issuer": op.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "signup_open": true,
            "starter_credits": "5",
        })),
    )
    .await;
    Setup { hub, op, api }
}

/// A JSON call with the browser's cookies (and the CSRF token, if given).
async fn call(
    b: &mut Browser,
    hub: &HubServer,
    method: Method,
    path: &str,
    body: Option<Value>,
    csrf: Option<&str>,
) -> (u16, Value) {
    let mut headers = vec![];
    if let Some(t) = csrf {
        headers.push(("x-csrf-token", t));
    }
    let page = b.request(method, &hub.url(path), body.map(Body::Json), &headers).await;
    (
        page.status,
        serde_json::from_str(&page.body).unwrap_or(Value::String(page.body)),
    )
}

async fn me(b: &mut Browser, hub: &HubServer) -> (u16, Value) {
    call(b, hub, Method::GET, "/api/me", None, None).await
}

async fn user_count(api: &Api) -> usize {
    api.admin(Method::GET, "/api/admin/users?limit=500", None).await["data"]
        .as_array()
        .unwrap()
        .len()
}

fn signed_in(page: &Page, hub: &HubServer, return_to: &str) {
    assert_eq!(page.status, 302, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some(hub.url(return_to).as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_person_signs_up_once_signs_out_and_signs_in_again() {
    let s = setup("RS256", vec![]).await;
    let mut alice = Browser::new();
    let page = alice.sign_in_oidc(&s.hub.base, "alice@example.com", "/#/account").await;
    signed_in(&page, &s.hub, "/#/account");
    let cookie = page
        .set_cookies
        .iter()
        .find(|c| c.starts_with("hub_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http on loopback: {cookie}");
    assert!(
        page.set_cookies.iter().any(|c| c.starts_with("hub_oidc=;")),
        "the flow cookie is removed"
    );

    let (status, first) = me(&mut alice, &s.hub).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["user"]["email"], "alice@example.com");
    assert_eq!(first["role"], "member");
    assert_eq!(first["balance"], "5", "the starter credits");
    assert!(first["key"].is_null());
    let csrf = first["session"]["csrf_token"].as_str().unwrap().to_string();
    let user = first["user"]["id"].as_str().unwrap().to_string();

    // A member cannot reach the admin API with a session either.
    let (status, _) = call(&mut alice, &s.hub, Method::GET, "/api/admin/users", None, None).await;
    assert_eq!(status, 403);

    // Signing out ends the session and removes the cookie.
    let out = alice
        .request(
            Method::POST,
            &s.hub.url("/auth/logout"),
            None,
            &[("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.body);
    assert!(alice.cookie("hub_session").is_none());
    let session_token = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("hub_session=")
        .to_string();
    alice.set_cookie("hub_session", &session_token);
    assert_eq!(
        me(&mut alice, &s.hub).await.0,
        401,
        "the ended session is refused even when replayed"
    );
    alice.forget("hub_session");

    // Signing in again: the same account, no second grant.
    let page = alice.sign_in_oidc(&s.hub.base, "alice@example.com", "/").await;
    signed_in(&page, &s.hub, "/");
    let (_, again) = me(&mut alice, &s.hub).await;
    assert_eq!(again["user"]["id"], user.as_str());
    assert_eq!(again["balance"], "5");
    let ledger = s
        .api
        .admin(Method::GET, &format!("/api/admin/users/{user}/ledger"), None)
        .await;
    assert_eq!(ledger["data"].as_array().unwrap().len(), 1, "one grant: {ledger}");

    // The account page's lists.
    let (_, sessions) = call(&mut alice, &s.hub, Method::GET, "/api/me/sessions", None, None).await;
    let sessions = sessions["data"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 1, "the ended session is not listed: {sessions:?}");
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[0]["user_agent"], alice.user_agent.as_str());
    let (_, identities) = call(&mut alice, &s.hub, Method::GET, "/api/me/identities", None, None).await;
    assert_eq!(identities["data"][0]["issuer"], s.op.issuer.as_str());
    assert_eq!(user_count(&s.api).await, 2, "the owner and alice");
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_writes_need_the_csrf_token_and_this_origin() {
    let s = setup("RS256", vec![]).await;
    let mut bob = Browser::new();
    signed_in(
        &bob.sign_in_oidc(&s.hub.base, "bob@example.com", "/").await,
        &s.hub,
        "/",
    );
    let csrf = me(&mut bob, &s.hub).await.1["session"]["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let new_key = || Some(json!({"label": "laptop"}));

    let (status, body) = call(&mut bob, &s.hub, Method::POST, "/api/me/keys", new_key(), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("X-CSRF-Token"), "{body}");
    let (status, _) = call(
        &mut bob,
        &s.hub,
        Method::POST,
        "/api/me/keys",
        new_key(),
        Some("forged"),
    )
    .await;
    assert_eq!(status, 403);
    let evil = bob
        .request(
            Method::POST,
            &s.hub.url("/api/me/keys"),
            Some(Body::Json(json!({"label": "x"}))),
            &[("x-csrf-token", &csrf), ("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(evil.status, 403, "{}", evil.body);
    let (_, keys) = call(&mut bob, &s.hub, Method::GET, "/api/me/keys", None, None).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 0, "nothing was created");

    let own_origin = s.hub.base.clone();
    let ok = bob
        .request(
            Method::POST,
            &s.hub.url("/api/me/keys"),
            Some(Body::Json(json!({"label": "laptop"}))),
            &[("x-csrf-token", &csrf), ("origin", &own_origin)],
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    let key: Value = serde_json::from_str(&ok.body).unwrap();
    let (status, mine) = s
        .api
        .call(Method::GET, "/api/me", key["key"].as_str().unwrap(), None)
        .await;
    assert_eq!(
        (status, mine["user"]["email"].as_str()),
        (200, Some("bob@example.com")),
        "the key works"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_misdirected_sign_ins_are_refused_with_nothing_created() {
    let s = setup("ES256", vec![]).await;
    // ES256 works end to end (and creates the one account this test expects).
    let mut first = Browser::new();
    signed_in(
        &first.sign_in_oidc(&s.hub.base, "first@example.com", "/").await,
        &s.hub,
        "/",
    );
    let users = user_count(&s.api).await;

    for (mode, says) in [
        ("signature", "signature"),
        ("aud", "aud"),
        ("nonce", "nonce"),
        ("expired", "exp"),
        ("iss", "iss"),
    ] {
        s.op.tamper(mode).await;
        let mut b = Browser::new();
        let page = b.sign_in_oidc(&s.hub.base, &format!("{mode}@example.com"), "/").await;
        assert_eq!(page.status, 403, "{mode}: {}", page.body);
        assert!(page.body.contains(says), "{mode}: {}", page.body);
        assert!(b.cookie("hub_session").is_none(), "{mode}: no session");
    }
    assert_eq!(user_count(&s.api).await, users, "no account was created");

    // A replayed code: the provider refuses it the second time, even with the flow cookie kept.
    let mut b = Browser::new();
    let start = b.get(&s.hub.url("/auth/oidc/start?return_to=/")).await;
    let flow = b.cookie("hub_oidc").unwrap();
    let callback = b
        .log_in_at_provider(start.location.as_deref().unwrap(), "replay@example.com")
        .await;
    assert_eq!(b.get(&callback).await.status, 302);
    b.forget("hub_session");
    b.set_cookie("hub_oidc", &flow);
    let replay = b.get(&callback).await;
    assert_eq!(replay.status, 403, "{}", replay.body);
    assert!(b.cookie("hub_session").is_none());

    // A callback this browser did not start.
    let mut stranger = Browser::new();
    let page = stranger.get(&callback).await;
    assert_eq!(page.status, 400, "{}", page.body);

    // return_to off-site is refused before anything happens.
    for bad in ["https://evil.example/", "//evil.example", "/\\evil.example"] {
        let page = Browser::new()
            .get(
                &s.hub
                    .url(&format!("/auth/oidc/start?return_to={}", hub_e2e::oidc::encode(bad))),
            )
            .await;
        assert_eq!(page.status, 400, "{bad}: {}", page.body);
        assert!(page.location.is_none());
    }

    // An address the provider has not verified neither matches nor creates an account.
    let page = Browser::new()
        .sign_in_oidc(&s.hub.base, "unverified-eve@example.com", "/")
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("verified"), "{}", page.body);
    assert_eq!(
        user_count(&s.api).await,
        users + 1,
        "only the replayed sign-in's account was added"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_sign_up_disabled_users_and_the_admin_email() {
    let s = setup("RS256", vec![("HUB_ADMIN_EMAIL".into(), "Boss@Example.com".into())]).await;
    let mut carol = Browser::new();
    signed_in(
        &carol.sign_in_oidc(&s.hub.base, "carol@example.com", "/").await,
        &s.hub,
        "/",
    );
    s.api
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(json!({"signup_open": false})),
        )
        .await;
    let users = user_count(&s.api).await;

    // Sign-up closed: a stranger is refused; carol (who has an account) is not.
    let page = Browser::new().sign_in_oidc(&s.hub.base, "dave@example.com", "/").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("sign-up is closed"), "{}", page.body);
    assert_eq!(user_count(&s.api).await, users);
    signed_in(
        &Browser::new().sign_in_oidc(&s.hub.base, "carol@example.com", "/").await,
        &s.hub,
        "/",
    );

    // The admin email becomes the owner at first sign-in, even with sign-up closed.
    let mut boss = Browser::new();
    signed_in(
        &boss.sign_in_oidc(&s.hub.base, "boss@example.com", "/").await,
        &s.hub,
        "/",
    );
    let (_, who) = me(&mut boss, &s.hub).await;
    assert_eq!(who["role"], "owner");
    let (status, _) = call(&mut boss, &s.hub, Method::GET, "/api/admin/users", None, None).await;
    assert_eq!(status, 200);

    // Disabling carol ends her session and stops her signing in.
    let carol_id = me(&mut carol, &s.hub).await.1["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.api
        .admin(
            Method::PATCH,
            &format!("/api/admin/users/{carol_id}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(me(&mut carol, &s.hub).await.0, 401);
    let page = Browser::new().sign_in_oidc(&s.hub.base, "carol@example.com", "/").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("disabled"), "{}", page.body);
}

/// The sign-in links the SMTP server received for `to`.
fn links_to(smtpd: &hub_e2e::smtpd::Smtpd, hub: &HubServer, to: &str) -> Vec<String> {
    smtpd
        .received()
        .iter()
        .filter(|m| m["rcpt_tos"][0] == to)
        .filter_map(|m| {
            let text = m["text"].as_str()?;
            text.split_whitespace()
                .find(|w| w.starts_with(&hub.url("/auth/email/verify?token=")))
                .map(str::to_owned)
        })
        .collect()
}

async fn wait_for_links(smtpd: &hub_e2e::smtpd::Smtpd, hub: &HubServer, to: &str, n: usize) -> Vec<String> {
    hub_e2e::eventually(
        &format!("{n} sign-in links to {to}"),
        std::time::Duration::from_secs(15),
        || async {
            let links = links_to(smtpd, hub, to);
            match links.len() >= n {
                true => Ok(links),
                false => Err(format!("{} so far", links.len())),
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn email_links_sign_in_once_and_never_tell_who_has_an_account() {
    let hub = tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap();
    let smtpd =
        tokio::task::spawn_blocking(|| hub_e2e::smtpd::Smtpd::start(&["--auth", "mailer:s3cret", "--auth-over-plain"]))
            .await
            .unwrap();
    let api = Api::new(&hub.base);
    let settings = api
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(json!({
                "smtp_host": "127.0.0.1",
                "smtp_port": smtpd.port,
                "smtp_security": "none",
                "smtp_username": "mailer",
                "smtp_password": "s3cret",
                "smtp_from": "Hub <hub@example.test>",
                "starter_credits": "2",
            })),
        )
        .await;
    assert_eq!(settings["smtp_password_set"], true);
    assert!(
        !settings.to_string().contains("s3cret"),
        "the password is never shown: {settings}"
    );
    let (_, methods) = Browser::new().get_json(&hub.url("/auth/methods")).await;
    assert_eq!(
        (methods["email"].as_bool(), methods["oidc"].as_bool()),
        (Some(true), Some(false))
    );
    api.admin(
        Method::POST,
        "/api/admin/users",
        Some(json!({"name": "Erin", "email": "erin@example.com"})),
    )
    .await;
    let users = user_count(&api).await;

    // The same answer for an account and for nobody; mail only for the account.
    let mut b = Browser::new();
    let ask = |email: &str, return_to: Option<&str>| Some(Body::Json(json!({"email": email, "return_to": return_to})));
    let known = b
        .request(
            Method::POST,
            &hub.url("/auth/email"),
            ask("Erin@Example.com", Some("/#/account")),
            &[],
        )
        .await;
    let unknown = b
        .request(
            Method::POST,
            &hub.url("/auth/email"),
            ask("nobody@example.com", None),
            &[],
        )
        .await;
    assert_eq!((known.status, unknown.status), (202, 202));
    assert_eq!(known.body, unknown.body, "no account enumeration");
    let link = wait_for_links(&smtpd, &hub, "erin@example.com", 1).await.remove(0);
    let mail = smtpd.received().remove(0);
    assert_eq!(mail["user"], "mailer", "sent with the SMTP login");
    assert!(mail["subject"].as_str().unwrap().starts_with("Sign in to"), "{mail}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        links_to(&smtpd, &hub, "nobody@example.com").is_empty(),
        "no mail for an unknown address when sign-up is closed"
    );

    // The link signs in once.
    let page = b.get(&link).await;
    signed_in(&page, &hub, "/#/account");
    let (_, who) = me(&mut b, &hub).await;
    assert_eq!(who["user"]["email"], "erin@example.com");
    let again = Browser::new().get(&link).await;
    assert_eq!(again.status, 403, "{}", again.body);
    assert!(again.body.contains("expired or was already used"), "{}", again.body);
    assert_eq!(user_count(&api).await, users);

    // With sign-up open, a new address gets an account with the starter credits.
    api.admin(Method::PATCH, "/api/admin/settings", Some(json!({"signup_open": true})))
        .await;
    let mut newbie = Browser::new();
    let asked = newbie
        .request(
            Method::POST,
            &hub.url("/auth/email"),
            ask("newbie@example.com", None),
            &[],
        )
        .await;
    assert_eq!(asked.status, 202);
    let link = wait_for_links(&smtpd, &hub, "newbie@example.com", 1).await.remove(0);
    signed_in(&newbie.get(&link).await, &hub, "/");
    let (_, who) = me(&mut newbie, &hub).await;
    assert_eq!(
        (who["role"].as_str(), who["balance"].as_str()),
        (Some("member"), Some("2"))
    );

    // Bad input is a clear 400; too many links for one address are dropped silently.
    let bad = b
        .request(Method::POST, &hub.url("/auth/email"), ask("not an address", None), &[])
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    for _ in 0..4 {
        let r = b
            .request(
                Method::POST,
                &hub.url("/auth/email"),
                ask("erin@example.com", None),
                &[],
            )
            .await;
        assert_eq!(r.status, 202);
    }
    wait_for_links(&smtpd, &hub, "erin@example.com", 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        links_to(&smtpd, &hub, "erin@example.com").len(),
        3,
        "3 links per address per 15 minutes"
    );

    // One address (this test's) may ask 20 times an hour, then gets 429.
    let mut last = 0;
    for i in 0..20 {
        let r = b
            .request(
                Method::POST,
                &hub.url("/auth/email"),
                ask(&format!("x{i}@example.com"), None),
                &[],
            )
            .await;
        last = r.status;
        if last == 429 {
            break;
        }
    }
    assert_eq!(last, 429, "the per-IP limit");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_in_person_links_another_sign_in_to_the_same_account() {
    let s = setup("RS256", vec![]).await;
    let mut frank = Browser::new();
    signed_in(
        &frank.sign_in_oidc(&s.hub.base, "frank@example.com", "/").await,
        &s.hub,
        "/",
    );
    let frank_id = me(&mut frank, &s.hub).await.1["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // From the account page: link the provider's other login (another address) to this account.
    frank.forget_provider_session();
    let start = frank
        .get(&s.hub.url("/auth/oidc/start?link=1&return_to=/%23/account"))
        .await;
    assert_eq!(start.status, 302, "{}", start.body);
    let callback = frank
        .log_in_at_provider(start.location.as_deref().unwrap(), "frank.work@example.org")
        .await;
    let linked = frank.get(&callback).await;
    signed_in(&linked, &s.hub, "/#/account");
    let (_, identities) = call(&mut frank, &s.hub, Method::GET, "/api/me/identities", None, None).await;
    assert_eq!(identities["data"].as_array().unwrap().len(), 2, "{identities}");

    // Signing in with the linked login is signing in to frank's account.
    let mut elsewhere = Browser::new();
    signed_in(
        &elsewhere.sign_in_oidc(&s.hub.base, "frank.work@example.org", "/").await,
        &s.hub,
        "/",
    );
    assert_eq!(me(&mut elsewhere, &s.hub).await.1["user"]["id"], frank_id.as_str());

    // Someone else cannot link a login that is already frank's.
    let mut grace = Browser::new();
    signed_in(
        &grace.sign_in_oidc(&s.hub.base, "grace@example.com", "/").await,
        &s.hub,
        "/",
    );
    grace.forget_provider_session();
    let start = grace.get(&s.hub.url("/auth/oidc/start?link=1")).await;
    let callback = grace
        .log_in_at_provider(start.location.as_deref().unwrap(), "frank.work@example.org")
        .await;
    let refused = grace.get(&callback).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("already linked to another account"),
        "{}",
        refused.body
    );

    // Linking needs a signed-in session.
    let page = Browser::new().get(&s.hub.url("/auth/oidc/start?link=1")).await;
    assert_eq!(page.status, 401, "{}", page.body);
}
