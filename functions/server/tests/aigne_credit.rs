//! AIGNE Hub's user credit endpoints against `hub serve`: the balance with
//! what open calls hold, the grants (bought or given, what is left of those
//! that expire), every ledger entry paged, and the payment link, to the
//! nano-credit, in the shapes the AIGNE CLI types (`creditBalance` of
//! `@aigne/cli`'s `UserInfoResult`: decimal strings and a numeric
//! `grantCount`) and AIGNE Hub's `{count, list, paging}`.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{nanos, Api, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const COST: i128 = 120 * 1_500 + 30 * 6_000; // 120 × 1.5/M + 30 × 6/M, in nano-credits

fn chat() -> Value {
    json!({
        "input": {"messages": [{"role": "user", "content": "Say hello"}], "modelOptions": {"model": "openai/gpt-mock"}},
        "options": {"streaming": false},
    })
}

/// The CLI's `creditBalance` type: decimal strings and a count.
fn assert_cli_shape(b: &Value) {
    for field in ["balance", "total", "pendingCredit"] {
        assert!(b[field].is_string(), "{field} must be a decimal string: {b}");
    }
    assert!(b["grantCount"].is_u64(), "grantCount must be a number: {b}");
}

#[tokio::test]
async fn credit_endpoints_answer_the_ledger_exactly() {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let p = api
        .provider(
            json!({"name": "openai", "kind": "openai", "base_url": mock.base_url()}),
            "sk-1",
        )
        .await;
    api.add_model(&p, "gpt-mock", json!({"input_rate": 1.5, "output_rate": 6}))
        .await;
    let (user, key) = api.user_with_key("credit-reader", "10").await;
    let expiry = "2099-01-01T00:00:00Z";
    api.admin(
        Method::POST,
        &format!("/api/admin/users/{user}/grants"),
        Some(json!({"amount": "2.5", "reason": "promo", "expires_at": expiry})),
    )
    .await;
    mock.set("gpt-mock", Behavior::default().tokens(120, 30));
    let (status, v) = api.call(Method::POST, "/api/v2/chat", &key, Some(chat())).await;
    assert_eq!(status, 200, "{v}");
    api.wait_user(&user, "the call to settle", |u| {
        nanos(&u["held"]) == 0 && nanos(&u["balance"]) < 12_500_000_000
    })
    .await;

    // Balance: 12.5 granted, one call spent.
    let (status, b) = api.call(Method::GET, "/api/user/credit/balance", &key, None).await;
    assert_eq!(status, 200, "{b}");
    assert_cli_shape(&b);
    let left = 12_500_000_000 - COST;
    assert_eq!(
        (nanos(&b["total"]), nanos(&b["balance"]), nanos(&b["pendingCredit"])),
        (left, left, 0),
        "{b}"
    );
    assert_eq!(b["grantCount"], 2);
    let (_, info) = api.call(Method::GET, "/api/user/info", &key, None).await;
    assert_cli_shape(&info["creditBalance"]);
    assert_eq!(info["creditBalance"]["grantCount"], 2);

    // Grants, newest first: the expiring one paid for the call (it expires first).
    let (status, g) = api.call(Method::GET, "/api/user/credit/grants", &key, None).await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(
        (g["count"].as_i64(), g["paging"]["page"].as_i64()),
        (Some(2), Some(1)),
        "{g}"
    );
    let promo = &g["list"][0];
    assert_eq!(
        (promo["name"].as_str(), promo["status"].as_str()),
        (Some("promo"), Some("granted")),
        "{promo}"
    );
    assert_eq!(nanos(&promo["amount"]), 2_500_000_000);
    assert_eq!(nanos(&promo["remaining_amount"]), 2_500_000_000 - COST);
    assert_eq!(promo["expires_at"], "2099-01-01T00:00:00.000Z");
    assert_eq!(promo["category"], "promotional");
    let welcome = &g["list"][1];
    assert_eq!(
        (nanos(&welcome["amount"]), &welcome["remaining_amount"]),
        (10_000_000_000, &Value::Null)
    );

    // Transactions: every entry, paged.
    let (_, t) = api.call(Method::GET, "/api/user/credit/transactions", &key, None).await;
    assert_eq!(t["count"], 3, "{t}");
    let usage = &t["list"][0];
    assert_eq!(usage["type"], "usage");
    assert_eq!(
        (nanos(&usage["amount"]), nanos(&usage["credit_amount"])),
        (-COST, COST),
        "{usage}"
    );
    assert!(
        usage["call_id"].as_str().is_some_and(|c| c.starts_with("call_")),
        "{usage}"
    );
    let (_, second) = api
        .call(
            Method::GET,
            "/api/user/credit/transactions?page=2&pageSize=1",
            &key,
            None,
        )
        .await;
    assert_eq!(
        (second["count"].as_i64(), second["list"].as_array().map(Vec::len)),
        (Some(3), Some(1))
    );
    assert_eq!(second["list"][0]["description"], "promo");
    let (_, none_after) = api
        .call(
            Method::GET,
            "/api/user/credit/transactions?start=4070908800",
            &key,
            None,
        )
        .await;
    assert_eq!(
        (
            none_after["count"].as_i64(),
            none_after["list"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    for bad in ["pageSize=0", "pageSize=101", "page=0", "start=yesterday"] {
        let (status, e) = api
            .call(Method::GET, &format!("/api/user/credit/grants?{bad}"), &key, None)
            .await;
        assert_eq!(status, 400, "{bad}: {e}");
        assert!(e["error"]["message"].is_string(), "{e}");
    }

    // An open call holds credit: the balance leaves it out, pendingCredit shows it.
    let mut slow_answer = Behavior::default().tokens(120, 30);
    slow_answer.header_delay = Duration::from_secs(2);
    mock.set("gpt-mock", slow_answer);
    let slow = {
        let (api, key) = (Api::new(&hub.base), key.clone());
        tokio::spawn(async move { api.call(Method::POST, "/api/v2/chat", &key, Some(chat())).await })
    };
    let held = api.wait_user(&user, "a hold", |u| nanos(&u["held"]) > 0).await;
    let (_, during) = api.call(Method::GET, "/api/user/credit/balance", &key, None).await;
    assert_eq!(nanos(&during["pendingCredit"]), nanos(&held["held"]), "{during}");
    assert_eq!(nanos(&during["balance"]), left - nanos(&held["held"]), "{during}");
    assert_eq!(nanos(&during["total"]), left);
    assert_eq!(slow.await.unwrap().0, 200);

    // The payment link: none until the operator sets one.
    let (status, link) = api.call(Method::GET, "/api/user/credit/payment-link", &key, None).await;
    assert_eq!((status, link), (200, Value::Null));
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({"payment_link": "https://buy.example.com/credits"})),
    )
    .await;
    let (_, link) = api.call(Method::GET, "/api/user/credit/payment-link", &key, None).await;
    assert_eq!(link, "https://buy.example.com/credits");
    // Only for a key's own user.
    let (status, _) = api
        .call(Method::GET, "/api/user/credit/balance", "hub_nope", None)
        .await;
    assert_eq!(status, 401);
}
