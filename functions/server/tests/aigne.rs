//! AIGNE Hub's own API, framing byte for byte as its clients read it:
//! discovery, `/api/v2/chat` (framework protocol), legacy completions in their
//! three shapes, media, the catalogue, the status preflight, and the 402 in
//! JSON and SSE.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{nanos, nanos_of_number, Api, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

struct World {
    _hub: HubServer,
    api: Api,
    mock: MockProvider,
    user: String,
    key: String,
}

async fn world() -> World {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(|| HubServer::start(bin(), Launch::default()))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let p = api
        .provider(
            json!({"name": "openai", "kind": "openai", "base_url": mock.base_url()}),
            "sk-0001",
        )
        .await;
    api.add_model(&p, "gpt-mock", json!({"input_rate": 1.5, "output_rate": 6}))
        .await;
    for (model, kind, rate) in [
        ("image-mock", "image", "image_rate"),
        ("embed-mock", "embedding", "input_rate"),
    ] {
        let m = api
            .admin(
                Method::POST,
                "/api/admin/models",
                Some(json!({"provider_id": p, "model": model, "type": kind, rate: 0.5})),
            )
            .await;
        assert!(m["id"].is_string(), "{m}");
    }
    let (user, key) = api.user_with_key("aigne-app", "10").await;
    World {
        _hub: hub,
        api,
        mock,
        user,
        key,
    }
}

async fn post(w: &World, path: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = w
        .api
        .http
        .post(format!("{}{path}", w.api.base))
        .bearer_auth(&w.key)
        .json(&body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

fn frames(text: &str) -> Vec<(Option<String>, Value)> {
    text.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let mut name = None;
            let mut data = "";
            for line in f.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d;
                }
            }
            (
                name,
                serde_json::from_str(data).unwrap_or_else(|_| panic!("frame data is not JSON: {f:?}")),
            )
        })
        .collect()
}

fn framework_chat(stream: bool) -> Value {
    json!({
        "input": {
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Say hello"}],
            "modelOptions": {"model": "openai/gpt-mock", "temperature": 0.3},
        },
        "agent": "AIGNEHubChatModel",
        "options": {"streaming": stream},
    })
}

async fn credits_of_last_call(w: &World) -> i128 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let calls = w.api.calls(&format!("user={}", w.user)).await;
        if let Some(c) = calls.first() {
            return nanos(&c["credits"]);
        }
        assert!(Instant::now() < deadline, "no call logged");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn discovery_names_the_aigne_hub_component() {
    let w = world().await;
    let r = w
        .api
        .http
        .get(format!("{}/__blocklet__.js?type=json", w.api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let mount = v["componentMountPoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["did"] == "z8ia3xzq2tMq8CRHfaXj1BTYJyYnEcHbqP8cJ")
        .expect("the AIGNE Hub component");
    assert_eq!(mount["mountPoint"], "/");
    assert_eq!(v["appUrl"], w.api.base.as_str());
    assert_eq!((v["appName"].as_str(), v["prefix"].as_str()), (Some("Hub"), Some("/")));
    assert!(v["appPid"].is_string());
    // The settings decide what is announced.
    w.api
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(json!({"app_url": "https://hub.example.com/", "app_name": "Team Hub"})),
        )
        .await;
    let v: Value = w
        .api
        .http
        .get(format!("{}/__blocklet__.js?type=json", w.api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["appUrl"].as_str(), v["appName"].as_str()),
        (Some("https://hub.example.com"), Some("Team Hub"))
    );
    // The script form, for browsers.
    let r = w
        .api
        .http
        .get(format!("{}/__blocklet__.js", w.api.base))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/javascript"));
    let js = r.text().await.unwrap();
    assert!(js.starts_with("window.blocklet = {") && js.contains("z8ia3xzq2tMq8CRHfaXj1BTYJyYnEcHbqP8cJ"));
}

/// `GET /__blocklet__.js?type=json` over a raw connection from the loopback
/// address `from`, with any Host and extra headers; returns the answer's
/// head and JSON body.
async fn discover_from(from: &str, base: &str, host: &str, extra: &str) -> (String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = socket
        .connect(base.trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap();
    let request =
        format!("GET /__blocklet__.js?type=json HTTP/1.1\r\nhost: {host}\r\n{extra}connection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    (head.to_string(), serde_json::from_str(body).unwrap())
}

#[tokio::test]
async fn discovery_never_announces_a_forged_host() {
    let launch = Launch {
        env: vec![("HUB_TRUSTED_PROXIES".into(), "127.0.0.2".into())],
        ..Default::default()
    };
    let hub = tokio::task::spawn_blocking(move || HubServer::start(bin(), launch))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let authority = hub.base.trim_start_matches("http://").to_string();
    let forwarded = "x-forwarded-host: evil.example\r\nx-forwarded-proto: https\r\n";

    // From a client: forwarded headers are ignored, the Host it called stands.
    let (head, v) = discover_from("127.0.0.1", &hub.base, &authority, forwarded).await;
    assert_eq!(v["appUrl"], hub.base.as_str(), "{v}");
    assert!(
        head.to_lowercase()
            .contains("vary: host, x-forwarded-host, x-forwarded-proto"),
        "{head}"
    );
    // A Host that is not a plain host[:port] is not reflected.
    let (_, v) = discover_from("127.0.0.1", &hub.base, "evil.example/</script>", "").await;
    assert_eq!(v["appUrl"], "http://localhost", "{v}");
    // From the trusted proxy, its forwarded headers count.
    let proxied = "x-forwarded-host: hub.example.net\r\nx-forwarded-proto: https\r\n";
    let (_, v) = discover_from("127.0.0.2", &hub.base, &authority, proxied).await;
    assert_eq!(v["appUrl"], "https://hub.example.net", "{v}");

    // With `app_url` set, no header from anyone changes what is announced.
    api.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(json!({"app_url": "https://hub.example.com"})),
    )
    .await;
    for from in ["127.0.0.1", "127.0.0.2"] {
        let (head, v) = discover_from(from, &hub.base, "evil.example", forwarded).await;
        assert_eq!(v["appUrl"], "https://hub.example.com", "{v}");
        assert!(!v.to_string().contains("evil") && !head.contains("evil"), "{head} {v}");
    }
}

#[tokio::test]
async fn framework_chat_whole_and_streamed() {
    let w = world().await;
    w.mock.set("gpt-mock", Behavior::default().tokens(120, 30));
    let r = post(
        &w,
        "/api/v2/chat",
        framework_chat(false),
        &[("x-aigne-hub-client-did", "zAppDid123")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["text"], "Hello, world!");
    assert_eq!(v["model"], "openai/gpt-mock");
    assert_eq!(v["modelWithProvider"], "openai/gpt-mock");
    let u = &v["usage"];
    assert_eq!(
        (u["inputTokens"].as_u64(), u["outputTokens"].as_u64()),
        (Some(120), Some(30))
    );
    assert_eq!(u["creditPrefix"], "$");
    assert!(u["modelCallId"].as_str().unwrap().starts_with("call_"));
    let expected = (120 * 1_500 + 30 * 6_000) as i128; // nano-credits: 120 × 1.5/M + 30 × 6/M
    assert_eq!(nanos_of_number(&u["aigneHubCredits"]), expected);
    assert_eq!(credits_of_last_call(&w).await, expected);
    // The provider got the system prompt and the options; the call is the app's.
    let got = &w.mock.received()[0];
    assert_eq!(
        got.body["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(got.body["temperature"], 0.3);
    let calls = w.api.calls(&format!("user={}", w.user)).await;
    assert_eq!(calls[0]["app"], "zAppDid123");

    let r = post(&w, "/api/v2/chat", framework_chat(true), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    assert!(!text.contains("[DONE]"), "{text}");
    let fs = frames(&text);
    assert!(fs.iter().all(|(name, _)| name.is_none()), "only unnamed events: {text}");
    let streamed: String = fs
        .iter()
        .filter_map(|(_, v)| v.pointer("/delta/text/text").and_then(Value::as_str))
        .collect();
    assert_eq!(streamed, "Hello, world!");
    let last = &fs.last().unwrap().1["delta"]["json"];
    assert_eq!(nanos_of_number(&last["usage"]["aigneHubCredits"]), expected);
    assert_eq!(last["modelWithProvider"], "openai/gpt-mock");

    // Without a currency prefix, `creditPrefix` is left out, not empty.
    w.api
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(json!({"currency_prefix": ""})),
        )
        .await;
    let v: Value = post(&w, "/api/v2/chat", framework_chat(false), &[])
        .await
        .json()
        .await
        .unwrap();
    assert!(v["usage"].get("creditPrefix").is_none(), "{v}");
}

#[tokio::test]
async fn framework_tool_calls_carry_object_arguments() {
    let w = world().await;
    w.mock.set(
        "gpt-mock",
        Behavior::text(&[""]).tool("lookup", &["{\"q\":", "\"rust\"}"]),
    );
    let mut body = framework_chat(false);
    body["input"]["tools"] = json!([{"type": "function", "function": {"name": "lookup", "description": "search", "parameters": {"type": "object"}}}]);
    body["input"]["toolChoice"] = json!("auto");
    let v: Value = post(&w, "/api/v2/chat", body.clone(), &[]).await.json().await.unwrap();
    assert_eq!(v["toolCalls"][0]["function"]["name"], "lookup");
    assert_eq!(v["toolCalls"][0]["function"]["arguments"], json!({"q": "rust"}));
    body["options"]["streaming"] = json!(true);
    let text = post(&w, "/api/v2/chat", body, &[]).await.text().await.unwrap();
    let fs = frames(&text);
    let last = &fs.last().unwrap().1["delta"]["json"];
    assert_eq!(last["toolCalls"][0]["function"]["arguments"], json!({"q": "rust"}));
}

#[tokio::test]
async fn legacy_completions_in_three_shapes() {
    let w = world().await;
    w.mock.set("gpt-mock", Behavior::default().tokens(10, 4));
    let body = json!({"model": "openai/gpt-mock", "messages": [{"role": "user", "content": "hi"}], "maxTokens": 50, "stream": true});

    // SSE with Accept: delta frames (role first), then usage; no [DONE].
    let r = post(
        &w,
        "/api/v2/chat/completions",
        body.clone(),
        &[("accept", "text/event-stream")],
    )
    .await;
    let text = r.text().await.unwrap();
    assert!(!text.contains("[DONE]"));
    let fs = frames(&text);
    assert_eq!(fs[0].1["delta"]["role"], "assistant");
    let content: String = fs
        .iter()
        .filter_map(|(_, v)| v.pointer("/delta/content").and_then(Value::as_str))
        .collect();
    assert_eq!(content, "Hello, world!");
    assert!(fs
        .iter()
        .filter(|(_, v)| v.get("delta").is_some())
        .all(|(_, v)| v["delta"]["toolCalls"].is_array()));
    assert_eq!(
        fs.last().unwrap().1,
        json!({"usage": {"promptTokens": 10, "completionTokens": 4, "totalTokens": 14}})
    );
    assert_eq!(w.mock.received()[0].body["max_tokens"], 50);

    // stream:true without SSE: the text itself.
    let r = post(&w, "/api/v2/completions", body.clone(), &[]).await;
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap(), "Hello, world!");

    // Not streamed: {role, text, content}.
    let mut whole = body.clone();
    whole["stream"] = json!(false);
    let v: Value = post(&w, "/api/v2/chat/completions", whole, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["role"].as_str(), v["text"].as_str(), v["content"].as_str()),
        (Some("assistant"), Some("Hello, world!"), Some("Hello, world!"))
    );

    // A prompt instead of messages.
    let v: Value = post(
        &w,
        "/api/v2/completions",
        json!({"model": "openai/gpt-mock", "prompt": "hi"}),
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["text"], "Hello, world!");

    // Tool calls in SSE are cumulative, arguments as JSON text.
    w.mock
        .set("gpt-mock", Behavior::text(&["x"]).tool("f", &["{\"a\":", "1}"]));
    let text = post(&w, "/api/v2/chat/completions", body, &[("accept", "text/event-stream")])
        .await
        .text()
        .await
        .unwrap();
    let fs = frames(&text);
    let last_delta = fs.iter().rev().find(|(_, v)| v.get("delta").is_some()).unwrap();
    assert_eq!(
        last_delta.1["delta"]["toolCalls"][0]["function"]["arguments"],
        "{\"a\":1}"
    );
    assert_eq!(last_delta.1["delta"]["toolCalls"][0]["function"]["name"], "f");
}

#[tokio::test]
async fn insufficient_credit_is_402_not_enough_in_json_and_in_sse() {
    let w = world().await;
    w.api
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(json!({"payment_link": "https://pay.example.com/buy"})),
        )
        .await;
    let (_, poor) = w.api.user_with_key("poor", "0").await;
    let send = |path: &'static str, body: Value, sse: bool| {
        let mut r = w
            .api
            .http
            .post(format!("{}{path}", w.api.base))
            .bearer_auth(&poor)
            .json(&body);
        if sse {
            r = r.header("accept", "text/event-stream");
        }
        r.send()
    };
    let r = send("/api/v2/chat", framework_chat(false), false).await.unwrap();
    assert_eq!(r.status(), 402);
    let v: Value = r.json().await.unwrap();
    let e = &v["error"];
    assert_eq!(e["type"], "NOT_ENOUGH");
    assert_eq!(e["link"], "https://pay.example.com/buy");
    assert!(e["message"].as_str().unwrap().contains("credits"));
    assert!(hub_core::time::parse_time(e["timestamp"].as_str().unwrap()).is_some());

    // A framework stream refused before its first byte: the same 402 JSON
    // (the client keeps `type` only from a JSON body).
    let r = send("/api/v2/chat", framework_chat(true), false).await.unwrap();
    assert_eq!(r.status(), 402);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "NOT_ENOUGH");

    // Legacy SSE: `data: {"error": {...}}`, HTTP 200.
    let r = send(
        "/api/v2/chat/completions",
        json!({"model": "openai/gpt-mock", "prompt": "hi", "stream": true}),
        true,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let fs = frames(&r.text().await.unwrap());
    assert_eq!(fs[0].1["error"]["type"], "NOT_ENOUGH");
    assert_eq!(fs[0].1["error"]["link"], "https://pay.example.com/buy");
    assert!(w.mock.received().is_empty(), "nothing reached the provider");

    // The preflight says so, always with 200.
    let r = w
        .api
        .http
        .get(format!("{}/api/v2/status", w.api.base))
        .bearer_auth(&poor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["available"].as_bool(), v["code"].as_u64()), (Some(false), Some(402)));
    assert_eq!(v["link"], "https://pay.example.com/buy");
}

#[tokio::test]
async fn status_catalogue_media_and_user_info() {
    let w = world().await;
    let status = |q: &'static str, key: Option<String>| {
        let mut r = w.api.http.get(format!("{}/api/v2/status{q}", w.api.base));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(status("", None).await, json!({"available": true}));
    assert_eq!(
        status("?model=openai%2Fgpt-mock", Some(w.key.clone())).await,
        json!({"available": true})
    );
    let v = status("?model=nope", Some(w.key.clone())).await;
    assert_eq!((v["available"].as_bool(), v["code"].as_u64()), (Some(false), Some(404)));
    let v = status("", Some("hub_not_a_key".into())).await;
    assert_eq!((v["available"].as_bool(), v["code"].as_u64()), (Some(false), Some(401)));

    // The catalogue is public, rates per token as decimal strings.
    for path in ["/api/ai/models", "/api/ai-providers/models"] {
        let list: Value = w
            .api
            .http
            .get(format!("{}{path}", w.api.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let chat = list
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == "gpt-mock")
            .unwrap();
        assert_eq!(chat["type"], "chat");
        assert_eq!(chat["key"], "openai/gpt-mock");
        assert_eq!(chat["provider"], "openai");
        assert_eq!(chat["providerDisplayName"], "OpenAI");
        assert_eq!(chat["input_credits_per_token"], "0.0000015");
        assert_eq!(chat["output_credits_per_token"], "0.000006");
    }
    let images: Value = w
        .api
        .http
        .get(format!("{}/api/ai/models?type=image", w.api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(images.as_array().unwrap().len(), 1);
    assert_eq!(images[0]["type"], "image_generation");

    // Images, framework and OpenAI-like, with credits.
    let r = post(&w, "/api/v2/image", json!({"input": {"prompt": "a cat", "n": 2, "modelOptions": {"model": "openai/image-mock"}, "outputFileType": "url"}, "options": {"streaming": false}}), &[]).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["images"].as_array().unwrap().len(), 2);
    assert_eq!(v["images"][0]["type"], "url");
    assert!(v["images"][0]["url"].as_str().unwrap().starts_with("https://"));
    assert_eq!(nanos_of_number(&v["usage"]["aigneHubCredits"]), 1_000_000_000); // two images at 0.5
    let v: Value = post(
        &w,
        "/api/v2/image/generations",
        json!({"model": "openai/image-mock", "prompt": "a dog", "responseFormat": "url"}),
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["images"], v["data"]);
    assert_eq!(v["images"].as_array().unwrap().len(), 1);

    // Embeddings.
    w.mock.set("embed-mock", Behavior::default().tokens(8, 0));
    let v: Value = post(
        &w,
        "/api/v2/embeddings",
        json!({"input": {"input": ["a", "b"], "modelOptions": {"model": "openai/embed-mock"}}}),
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(v["usage"]["inputTokens"], 8);
    assert_eq!(nanos_of_number(&v["usage"]["aigneHubCredits"]), 8 * 500); // 8 tokens at 0.5 per million

    // The caller's credit, as the CLI shows it.
    let (status, v) = w.api.call(Method::GET, "/api/user/info", &w.key, None).await;
    assert_eq!(status, 200);
    assert_eq!(v["enableCredit"], true);
    assert_eq!(v["user"]["fullName"], "aigne-app");
    assert!(v["creditBalance"]["balance"].is_string());

    // AIGNE Hub bugs not reproduced: no unauthenticated health listing credentials, no unmetered
    // audio proxy (Hub's audio routes take a key and are metered: see media.rs).
    let r = w
        .api
        .http
        .get(format!("{}/api/ai-providers/health", w.api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(!r.text().await.unwrap().contains("sk-0001"));
    for path in ["/api/v2/audio/transcriptions", "/api/v2/audio/speech"] {
        let r = w.api.http.post(format!("{}{path}", w.api.base)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert!(!r.text().await.unwrap().contains("sk-0001"));
    }
}
