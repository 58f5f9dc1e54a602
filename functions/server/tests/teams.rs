//! Teams on `hub serve`: a team budget holds exactly under concurrent calls
//! from several members (one conditional write per call, as key limits),
//! starts again at midnight on the first of the month in the team's time
//! zone (Hub's clock moved with libfaketime), covers the team's service
//! keys, and a team admin manages and sees their own team and nothing else.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::suite::{self, settled};
use hub_e2e::{nanos, Api, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

async fn start_in(launch: Launch, dir: PathBuf) -> (HubServer, Api) {
    let hub = tokio::task::spawn_blocking(move || HubServer::start_in(bin(), launch, dir))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    (hub, api)
}

/// A model on the mock that bills output only, at 0.01 credits a token: a
/// call with `max_tokens: 10` holds 0.1 and, answering 10 tokens, costs
/// exactly that.
async fn setup(api: &Api, mock: &MockProvider) {
    let provider = api.setup_provider("mock", &mock.base_url(), "sk-mock-0001").await;
    for model in ["m", "other"] {
        api.add_model(&provider, model, json!({"input_rate": 0, "output_rate": 10000}))
            .await;
        mock.set(model, Behavior::default().tokens(7, 10));
    }
}

async fn call(api: &Api, key: &str, model: &str) -> (u16, Value) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10});
    api.call(Method::POST, "/v1/chat/completions", key, Some(body)).await
}

async fn team(api: &Api, body: Value) -> String {
    let t = api.admin(Method::POST, "/api/admin/teams", Some(body)).await;
    t["id"].as_str().unwrap().to_string()
}

async fn join(api: &Api, by: &str, team: &str, user: &str, role: &str) -> (u16, Value) {
    api.call(
        Method::POST,
        &format!("/api/teams/{team}/members"),
        by,
        Some(json!({"user_id": user, "role": role})),
    )
    .await
}

/// A new key of `team` for `user`, made by the admin API.
async fn key_of(api: &Api, user: &str, team: &str) -> Value {
    api.admin(
        Method::POST,
        &format!("/api/admin/users/{user}/keys"),
        Some(json!({"label": "work", "team_id": team})),
    )
    .await
}

fn secret(key: &Value) -> String {
    key["key"].as_str().unwrap().to_string()
}

/// Waits until nothing the team's calls held is outstanding: its spend is `spent`.
async fn team_spent(api: &Api, team: &str, spent: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let t = api.admin(Method::GET, &format!("/api/teams/{team}"), None).await;
        if nanos(&t["spent"]) == nanos(&json!(spent)) {
            return t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "team spend never reached {spent}: {t}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn two_members_stop_at_the_team_budget_exactly() {
    let mock = MockProvider::start().await;
    let (_hub, api) = start_in(Launch::default(), hub_e2e::temp_dir("teams-budget")).await;
    suite::team_budget_holds_across_members(&api, &mock).await;
    assert_eq!(mock.received().len(), 10, "refused calls never reach the provider");
    let teams = api.admin(Method::GET, "/api/teams", None).await;
    let team = teams["data"][0]["id"].as_str().unwrap().to_string();
    let members = api.admin(Method::GET, &format!("/api/teams/{team}"), None).await["members"].clone();
    let ids: Vec<String> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap().to_string())
        .collect();

    // Each member paid for their own calls from their own credits: 1 in all.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (ua, ub) = (api.user(&ids[0]).await, api.user(&ids[1]).await);
        let left = nanos(&ua["balance"]) + nanos(&ub["balance"]);
        if left == nanos(&json!("199")) && nanos(&ua["held"]) + nanos(&ub["held"]) == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never settled: {ua} {ub}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Usage rolls up by team, and the call log filters by it.
    let by_team = api.admin(Method::GET, "/api/admin/usage?group_by=team", None).await;
    let row = by_team["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == json!(team))
        .unwrap_or_else(|| panic!("{by_team}"));
    assert_eq!((&row["calls"], &row["credits"]), (&json!(10), &json!("1")), "{row}");
    let logged = api
        .admin(Method::GET, &format!("/api/admin/calls?team={team}&limit=100"), None)
        .await;
    assert_eq!(logged["data"].as_array().unwrap().len(), 10, "{logged}");

    // A member's key made outside the team is not covered by its budget.
    let own = api
        .admin(
            Method::POST,
            &format!("/api/admin/users/{}/keys", ids[0]),
            Some(json!({"team_id": null})),
        )
        .await;
    assert_eq!(own["team_id"], Value::Null);
    assert_eq!(call(&api, &secret(&own), "mock-model").await.0, 200);
    // A team key keeps its team.
    let (status, v) = api
        .call(
            Method::PATCH,
            &format!("/api/admin/keys/{}", own["id"].as_str().unwrap()),
            hub_e2e::ADMIN_KEY,
            Some(json!({"team_id": team})),
        )
        .await;
    assert_eq!((status, &v["error"]["param"]), (400, &json!("team_id")), "{v}");
    // A bigger budget lets the team's keys through again.
    api.admin(
        Method::PATCH,
        &format!("/api/admin/teams/{team}"),
        Some(json!({"budget": 2})),
    )
    .await;
    let team_key = key_of(&api, &ids[1], &team).await;
    assert_eq!(call(&api, &secret(&team_key), "mock-model").await.0, 200);
}

#[tokio::test]
async fn the_budget_starts_again_at_the_team_time_zones_month() {
    let mock = MockProvider::start().await;
    let dir = hub_e2e::temp_dir("teams-period");
    // 23:00 on 31 December in Tokyo; in UTC it stays December for ten more hours.
    let at = |when: &str| Launch {
        env: vec![
            ("LD_PRELOAD".into(), hub_e2e::libfaketime()),
            ("FAKETIME".into(), format!("@{when}")),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
            ("TZ".into(), "UTC".into()),
        ],
        ..Default::default()
    };
    let (mut hub, api) = start_in(at("2026-12-31 14:00:00"), dir.clone()).await;
    setup(&api, &mock).await;
    let tokyo = team(
        &api,
        json!({"name": "tokyo", "budget": "0.2", "budget_period": "monthly", "time_zone": "Asia/Tokyo"}),
    )
    .await;
    let (user, _) = api.user_with_key("kenji", "10").await;
    join(&api, hub_e2e::ADMIN_KEY, &tokyo, &user, "member").await;
    let key = secret(&key_of(&api, &user, &tokyo).await);
    for _ in 0..2 {
        assert_eq!(call(&api, &key, "m").await.0, 200);
    }
    let t = team_spent(&api, &tokyo, "0.2").await;
    assert_eq!(
        (&t["period_start"], &t["period_end"]),
        (&json!("2026-11-30T15:00:00.000Z"), &json!("2026-12-31T15:00:00.000Z")),
        "{t}"
    );
    let (status, refused) = call(&api, &key, "m").await;
    assert_eq!(status, 429, "{refused}");
    assert!(hub.terminate(Duration::from_secs(30)).is_some());

    // 00:30 on 1 January in Tokyo (still 31 December in UTC): a new month for the team.
    let (mut hub, api) = start_in(at("2026-12-31 15:30:00"), dir.clone()).await;
    let (status, v) = call(&api, &key, "m").await;
    assert_eq!(status, 200, "{v}");
    let t = team_spent(&api, &tokyo, "0.1").await;
    assert_eq!(t["period_start"], json!("2026-12-31T15:00:00.000Z"), "{t}");
    settled(&api, &user, "9.7").await;
    assert!(hub.terminate(Duration::from_secs(30)).is_some());
}

#[tokio::test]
async fn a_team_admin_manages_their_team_and_sees_no_other() {
    let mock = MockProvider::start().await;
    let (_hub, api) = start_in(Launch::default(), hub_e2e::temp_dir("teams-scope")).await;
    setup(&api, &mock).await;
    let alpha = team(
        &api,
        json!({"name": "alpha", "budget": "0.3", "budget_period": "daily", "allowed_models": ["m"]}),
    )
    .await;
    let beta = team(&api, json!({"name": "beta"})).await;
    let (carol, carol_key) = api.user_with_key("carol", "10").await;
    let (dave, _) = api.user_with_key("dave", "10").await;
    let erin = api
        .admin(
            Method::POST,
            "/api/admin/users",
            Some(json!({"name": "erin", "email": "erin@example.com"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    join(&api, hub_e2e::ADMIN_KEY, &alpha, &carol, "admin").await;
    join(&api, hub_e2e::ADMIN_KEY, &beta, &dave, "member").await;

    // Carol sees her team only; another team is as if it did not exist.
    let (_, mine) = api.call(Method::GET, "/api/teams", &carol_key, None).await;
    let names: Vec<&Value> = mine["data"].as_array().unwrap().iter().map(|t| &t["name"]).collect();
    assert_eq!(names, [&json!("alpha")], "{mine}");
    assert_eq!(mine["data"][0]["role"], json!("admin"));
    for (method, path, body) in [
        (Method::GET, format!("/api/teams/{beta}"), None),
        (Method::GET, format!("/api/teams/{beta}/keys"), None),
        (Method::GET, format!("/api/teams/{beta}/usage"), None),
        (
            Method::POST,
            format!("/api/teams/{beta}/members"),
            Some(json!({"user_id": carol})),
        ),
        (Method::DELETE, format!("/api/teams/{beta}/members/{dave}"), None),
    ] {
        let (status, v) = api.call(method.clone(), &path, &carol_key, body).await;
        assert_eq!(status, 404, "{method} {path}: {v}");
    }
    let (status, _) = api.call(Method::GET, "/api/admin/users", &carol_key, None).await;
    assert_eq!(status, 403, "a team admin is no Hub admin");
    let (status, _) = api
        .call(
            Method::PATCH,
            &format!("/api/admin/teams/{alpha}"),
            &carol_key,
            Some(json!({"budget": 100})),
        )
        .await;
    assert_eq!(status, 403, "nor sets the team's budget");

    // She adds Erin by email; Erin's key is the team's, limited to its models.
    let (status, v) = api
        .call(
            Method::POST,
            &format!("/api/teams/{alpha}/members"),
            &carol_key,
            Some(json!({"email": "erin@example.com"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    api.admin(
        Method::POST,
        &format!("/api/admin/users/{erin}/grants"),
        Some(json!({"amount": 10})),
    )
    .await;
    let erin_key = secret(&key_of(&api, &erin, &alpha).await);
    assert_eq!(call(&api, &erin_key, "m").await.0, 200);
    let (status, v) = call(&api, &erin_key, "other").await;
    assert!(matches!(status, 403 | 404), "the team allows only m: {status} {v}");
    // A plain member sees the team, not its keys.
    let (status, _) = api
        .call(Method::GET, &format!("/api/teams/{alpha}"), &erin_key, None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(Method::GET, &format!("/api/teams/{alpha}/keys"), &erin_key, None)
        .await;
    assert_eq!(status, 403);

    // A service key spends from the team's budget and its account's credits.
    let (status, service) = api
        .call(
            Method::POST,
            &format!("/api/teams/{alpha}/keys"),
            &carol_key,
            Some(json!({"label": "ci"})),
        )
        .await;
    assert_eq!(status, 201, "{service}");
    let t = api.admin(Method::GET, &format!("/api/teams/{alpha}"), None).await;
    let account = t["account_id"].as_str().unwrap().to_string();
    assert_eq!(service["user_id"], json!(account));
    api.admin(
        Method::POST,
        &format!("/api/admin/users/{account}/grants"),
        Some(json!({"amount": 5})),
    )
    .await;
    let service = secret(&service);
    assert_eq!(call(&api, &service, "m").await.0, 200);
    team_spent(&api, &alpha, "0.2").await;
    settled(&api, &account, "4.9").await;
    assert_eq!(call(&api, &service, "m").await.0, 200);
    let (status, v) = call(&api, &service, "m").await;
    assert_eq!(status, 429, "0.3 spent: the daily budget is reached: {v}");

    // Carol reads the team's usage by member and its keys.
    let (_, usage) = api
        .call(
            Method::GET,
            &format!("/api/teams/{alpha}/usage?group_by=user"),
            &carol_key,
            None,
        )
        .await;
    let mut groups: Vec<(String, String)> = usage["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"].as_str().unwrap().into(),
                r["credits"].as_str().unwrap().into(),
            )
        })
        .collect();
    groups.sort();
    let mut want = vec![(account.clone(), "0.2".to_string()), (erin.clone(), "0.1".to_string())];
    want.sort();
    assert_eq!(groups, want, "{usage}");
    let (_, keys) = api
        .call(Method::GET, &format!("/api/teams/{alpha}/keys"), &carol_key, None)
        .await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 2, "{keys}");

    // A restricted key (Erin's is the team's) cannot change a team, even as its admin.
    api.call(
        Method::PATCH,
        &format!("/api/teams/{alpha}/members/{erin}"),
        &carol_key,
        Some(json!({"role": "admin"})),
    )
    .await;
    let (status, v) = api
        .call(
            Method::POST,
            &format!("/api/teams/{alpha}/members"),
            &erin_key,
            Some(json!({"user_id": dave})),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    // Removing Erin revokes her key in the team.
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/api/teams/{alpha}/members/{erin}"),
            &carol_key,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(call(&api, &erin_key, "m").await.0, 401);
    // Every change is in the audit log, by Carol.
    let audit = api
        .admin(
            Method::GET,
            &format!("/api/admin/audit?resource=team&resource_id={alpha}"),
            None,
        )
        .await;
    let actions: Vec<&Value> = audit["data"].as_array().unwrap().iter().map(|e| &e["action"]).collect();
    assert!(
        actions.contains(&&json!("add_member")) && actions.contains(&&json!("remove_member")),
        "{audit}"
    );
}
