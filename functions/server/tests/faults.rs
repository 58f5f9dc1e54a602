//! Provider faults, one per model on a faulty provider that a healthy one
//! backs up: before the first byte Hub fails over and the client never
//! notices; after it, the stream ends with an error event and nothing is
//! retried. In every case Hub answers (no panic, no hang), logs the attempt,
//! and leaves no hold open and the ledger equal to the balance.

use hub_e2e::mock::{Behavior, Fault, MockProvider};
use hub_e2e::{nanos, Api, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

struct World {
    hub: HubServer,
    api: Api,
    faulty: MockProvider,
    backup: MockProvider,
    user: String,
    key: String,
}

const MODELS: &[&str] = &[
    "refused",
    "slow-headers",
    "stall",
    "reset",
    "bad-json",
    "bad-sse",
    "oversized",
    "html",
    "burst-5xx",
    "missing-usage",
];

async fn world() -> World {
    let faulty = MockProvider::start().await;
    let backup = MockProvider::start().await;
    let launch = Launch {
        env: vec![
            ("HUB_FIRST_BYTE_TIMEOUT".into(), "1".into()),
            ("HUB_IDLE_TIMEOUT".into(), "1".into()),
        ],
        ..Default::default()
    };
    let hub = tokio::task::spawn_blocking(move || HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), launch))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = api
        .provider(json!({"name": "dead", "kind": "openai", "base_url": format!("http://127.0.0.1:{closed}/v1"), "priority": 20}), "sk-dead-0001")
        .await;
    let a = api
        .provider(
            json!({"name": "faulty", "kind": "openai", "base_url": faulty.base_url(), "priority": 10}),
            "sk-faulty-0001",
        )
        .await;
    let b = api
        .provider(
            json!({"name": "backup", "kind": "openai", "base_url": backup.base_url()}),
            "sk-backup-0001",
        )
        .await;
    let rates = json!({"input_rate": 1, "output_rate": 2});
    api.add_model(&dead, "refused", rates.clone()).await;
    for m in MODELS {
        if *m != "refused" {
            api.add_model(&a, m, rates.clone()).await;
        }
        api.add_model(&b, m, rates.clone()).await;
    }
    let (user, key) = api.user_with_key("faults", "10").await;
    World {
        hub,
        api,
        faulty,
        backup,
        user,
        key,
    }
}

/// A call, bounded in time: (status, body text).
async fn call(w: &World, model: &str, stream: bool) -> (u16, String) {
    let body =
        json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50});
    let send = async {
        let r = w
            .api
            .http
            .post(format!("{}/v1/chat/completions", w.api.base))
            .bearer_auth(&w.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    };
    tokio::time::timeout(Duration::from_secs(20), send)
        .await
        .expect("Hub answered within 20 s")
}

async fn attempts(w: &World, model: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log: Vec<Value> = w.api.calls(&format!("user={}&model={model}", w.user)).await;
        if log.len() >= n {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{model}: {} of {n} attempts logged: {log:?}",
            log.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn provider_faults_are_survived() {
    let w = world().await;
    let set = |m: &str, f: Option<Fault>| {
        let mut b = Behavior::text(&["one ", "two ", "three ", "four"]).tokens(10, 8);
        b.fault = f;
        w.faulty.set(m, b);
    };
    set("slow-headers", None);
    w.faulty.set(
        "slow-headers",
        Behavior {
            header_delay: Duration::from_secs(3),
            ..Behavior::default()
        },
    );
    set("stall", Some(Fault::StallAfter(2)));
    set("reset", None);
    w.faulty.set(
        "reset",
        Behavior {
            break_after: Some(2),
            ..Behavior::text(&["one ", "two ", "three ", "four"])
        },
    );
    set("bad-json", Some(Fault::MalformedJson));
    set("bad-sse", Some(Fault::MalformedSse));
    set("oversized", Some(Fault::Oversized(9 * 1024 * 1024)));
    set("html", Some(Fault::WrongContentType));
    w.faulty.set(
        "burst-5xx",
        Behavior {
            statuses: vec![500, 503, 502],
            ..Behavior::default()
        },
    );
    w.faulty.set(
        "missing-usage",
        Behavior {
            usage: false,
            ..Behavior::default()
        },
    );

    // Before the first byte: the backup answers, the client sees a normal answer.
    for (model, stream, why) in [
        ("refused", false, "could not connect"),
        ("slow-headers", true, "did not answer in time"),
        ("bad-json", false, "not JSON"),
        ("html", true, "instead of a stream"),
        ("burst-5xx", false, "(500)"),
        ("burst-5xx", true, "(503)"),
    ] {
        let (status, text) = call(&w, model, stream).await;
        assert_eq!(status, 200, "{model}: {text}");
        assert!(text.contains("Hello"), "{model}: {text}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let log = loop {
            let log = attempts(&w, model, 2).await;
            let says_why = log
                .iter()
                .any(|c| c["status"] == "failed" && c["error"].as_str().unwrap_or("").contains(why));
            if says_why {
                break log;
            }
            assert!(
                Instant::now() < deadline,
                "{model}: no failed attempt says why ({why}): {log:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            log.iter()
                .any(|c| c["status"] == "success" && c["provider"] == "backup"),
            "{model}: {log:?}"
        );
    }

    // After the first byte: an error event ends the stream; no retry.
    let before = w.backup.received().len();
    for (model, why) in [
        ("stall", "in time"),
        ("reset", "stream failed"),
        ("bad-sse", "malformed"),
        ("oversized", "larger than"),
    ] {
        let (status, text) = call(&w, model, true).await;
        assert_eq!(status, 200, "{model}");
        assert!(
            text.starts_with("data: {\"choices\"") && text.contains("chatcmpl-mock"),
            "{model}: the first chunks arrived: {}",
            &text[..text.len().min(300)]
        );
        let last = text.trim_end().rsplit("\n\n").next().unwrap_or("");
        assert!(
            last.starts_with("data: {\"error\""),
            "{model}: ends with an error event: {last}"
        );
        assert!(last.contains(why), "{model}: {last}");
        let log = attempts(&w, model, 1).await;
        assert_eq!(log.len(), 1, "{model}: no second attempt: {log:?}");
        assert_eq!(log[0]["status"], "failed");
    }
    assert_eq!(
        w.backup.received().len(),
        before,
        "nothing retried after the first byte"
    );

    // No usage reported: the call is billed on an estimate and flagged.
    let (status, _) = call(&w, "missing-usage", true).await;
    assert_eq!(status, 200);
    let log = attempts(&w, "missing-usage", 1).await;
    assert_eq!(log[0]["estimated"], true);
    // "hi": 1 token of text + 4 for its message + 3 for the reply; "Hello, world!" is 13 bytes, 4 tokens.
    assert_eq!(
        (log[0]["input_tokens"].as_u64(), log[0]["output_tokens"].as_u64()),
        (Some(8), Some(4))
    );
    assert_eq!(nanos(&log[0]["credits"]), hub_e2e::cost_nanos(&[(8, "1"), (4, "2")]));

    // Still healthy; no hold left open; the ledger is the balance.
    let (status, _) = w.api.call(Method::GET, "/healthz", &w.key, None).await;
    assert_eq!(status, 200);
    let u = w
        .api
        .wait_user(&w.user, "holds released", |u| nanos(&u["held"]) == 0)
        .await;
    assert_eq!(w.api.ledger_sum(&w.user).await, nanos(&u["balance"]));
    assert!(!w.hub.logs().contains("panicked"), "{}", w.hub.logs());
}

#[tokio::test]
async fn a_429_moves_to_the_providers_next_credential() {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let p = api
        .provider(
            json!({"name": "p", "kind": "openai", "base_url": mock.base_url()}),
            "sk-first-0001",
        )
        .await;
    api.admin(
        Method::POST,
        &format!("/api/admin/providers/{p}/credentials"),
        Some(json!({"name": "second", "secret": "sk-second-0002"})),
    )
    .await;
    api.add_model(&p, "m", json!({"input_rate": 1, "output_rate": 1})).await;
    mock.set(
        "m",
        Behavior {
            statuses: vec![429],
            ..Behavior::default()
        },
    );
    let (user, key) = api.user_with_key("lim", "1").await;
    let (status, body) = api.chat(&key, "m").await;
    assert_eq!(status, 200, "{body}");
    let got = mock.received();
    assert_eq!(got.len(), 2);
    assert_ne!(
        got[0].authorization, got[1].authorization,
        "the retry used the other credential"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = api.calls(&format!("user={user}")).await;
        if log.len() == 2 || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(log.iter().filter(|c| c["http_status"] == 429).count(), 1, "{log:?}");
    assert_ne!(log[0]["credential_id"], log[1]["credential_id"]);
}
