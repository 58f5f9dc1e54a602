//! Slow and greedy clients against `hub serve`: connections that never send
//! their headers are closed after `HUB_HEADER_TIMEOUT`, a body that stops
//! short is answered 408 within `HUB_BODY_TIMEOUT`, one address holds at most
//! `HUB_MAX_CONNECTIONS_PER_IP` connections, and none of this cuts a long
//! stream. Raw TCP sockets play the slow clients.

use futures_util::StreamExt;
use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::{Api, HubServer, Launch};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

async fn hub(env: &[(&str, &str)]) -> HubServer {
    let launch = Launch {
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    };
    tokio::task::spawn_blocking(move || HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), launch))
        .await
        .unwrap()
}

fn addr(hub: &HubServer) -> SocketAddr {
    hub.base.trim_start_matches("http://").parse().unwrap()
}

/// A connection to `to` from the loopback address `from` (127.0.0.0/8 all
/// reach the listener, so tests can play several clients).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Reads until the server closes the connection (EOF or reset), at most
/// `within`; returns what was read and when it closed, or `None` if it was
/// still open.
async fn until_closed(s: &mut TcpStream, within: Duration) -> Option<(String, Duration)> {
    let started = Instant::now();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((String::from_utf8_lossy(&text).into_owned(), started.elapsed())),
            Ok(Ok(n)) => text.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends one complete keep-alive request and reads its whole answer (the
/// connection stays open).
async fn healthz(s: &mut TcpStream) -> String {
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: hub\r\n\r\n")
        .await
        .unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&text).contains("\"ok\"}") {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, s.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&text));
        text.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The JSON body of a raw HTTP/1.1 answer with a content-length.
fn body_of(answer: &str) -> Value {
    let (_, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not HTTP: {answer}"));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[tokio::test]
async fn half_open_and_idle_connections_are_closed_after_the_header_timeout() {
    let hub = hub(&[("HUB_HEADER_TIMEOUT", "1")]).await;
    let to = addr(&hub);
    // Silent connections, one that stops halfway through its headers, one
    // that trickles a header line every 300 ms, and a keep-alive connection
    // left idle after its answer.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(connect_from("127.0.0.1", to).await);
    }
    let mut partial = connect_from("127.0.0.1", to).await;
    partial
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: hub\r\n")
        .await
        .unwrap();
    let mut trickle = connect_from("127.0.0.1", to).await;
    trickle.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let trickler = tokio::spawn(async move {
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if trickle
                .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
        until_closed(&mut trickle, Duration::from_secs(5)).await
    });
    let mut idle = connect_from("127.0.0.1", to).await;
    assert!(healthz(&mut idle).await.starts_with("HTTP/1.1 200"));

    let started = Instant::now();
    for s in silent.iter_mut().chain([&mut partial, &mut idle]) {
        let closed = until_closed(s, Duration::from_secs(6)).await;
        let (text, _) = closed.expect("a connection was still open 6 s after a 1 s header timeout");
        assert!(!text.contains("200 OK"), "{text}");
    }
    let all_closed = started.elapsed();
    assert!(
        all_closed >= Duration::from_millis(700),
        "closed too early: {all_closed:?}"
    );
    assert!(all_closed < Duration::from_secs(4), "closed late: {all_closed:?}");
    // Bytes arriving do not extend the deadline: the trickled headers never finish in time.
    let (text, _) = trickler
        .await
        .unwrap()
        .expect("the trickling connection was never closed");
    assert!(!text.contains("200 OK"), "{text}");
    // The server still serves.
    let mut fresh = connect_from("127.0.0.1", to).await;
    assert!(healthz(&mut fresh).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_body_shorter_than_its_length_gets_408_in_the_callers_protocol() {
    let mock = MockProvider::start().await;
    let hub = hub(&[("HUB_BODY_TIMEOUT", "1")]).await;
    let api = Api::new(&hub.base);
    let p = api.setup_provider("mock", &mock.base_url(), "sk-0001").await;
    api.add_model(&p, "m", json!({"input_rate": 1, "output_rate": 1})).await;
    let (user, key) = api.user_with_key("sam", "1").await;
    let to = addr(&hub);

    let short = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: hub\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{{\"model\": \"m\", "
        )
    };
    // OpenAI and Anthropic callers, each answered in their own error shape.
    for (path, check) in [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")] {
        let mut s = connect_from("127.0.0.1", to).await;
        s.write_all(short(path).as_bytes()).await.unwrap();
        let (answer, after) = until_closed(&mut s, Duration::from_secs(6))
            .await
            .unwrap_or_else(|| panic!("{path}: no answer 6 s after a 1 s body timeout"));
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(
            after >= Duration::from_millis(700),
            "{path}: answered before the timeout: {after:?}"
        );
        let body = body_of(&answer);
        match check {
            "openai" => assert_eq!(body["error"]["code"], "request_timeout", "{body}"),
            _ => assert_eq!(
                (&body["type"], &body["error"]["type"]),
                (&json!("error"), &json!("invalid_request_error")),
                "{body}"
            ),
        }
    }

    // A body that does arrive whole, but a byte every 300 ms: cut off at the timeout.
    let mut s = connect_from("127.0.0.1", to).await;
    let body = br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}]}"#;
    s.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: hub\r\nauthorization: Bearer {key}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut answer = String::new();
    for b in body {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 2048];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Nothing reached the provider, nothing was held or logged.
    assert!(mock.received().is_empty());
    assert!(api.calls(&format!("user={user}")).await.is_empty());
    assert_eq!(api.user(&user).await["held"], "0");
}

#[tokio::test]
async fn one_address_holds_at_most_the_connection_cap() {
    let hub = hub(&[
        ("HUB_MAX_CONNECTIONS_PER_IP", "3"),
        ("HUB_TRUSTED_PROXIES", "127.0.0.3"),
    ])
    .await;
    let to = addr(&hub);
    // Three connections, each answered once (so each has been accepted), kept open.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.1", to).await;
        assert!(healthz(&mut s).await.starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    // The fourth is refused: a 503 and closed, without a request read.
    let mut fourth = connect_from("127.0.0.1", to).await;
    let (answer, _) = until_closed(&mut fourth, Duration::from_secs(5))
        .await
        .expect("the connection over the cap was left open");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(
        body_of(&answer)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Too many connections"),
        "{answer}"
    );
    // Other addresses are counted on their own; a trusted proxy is not counted.
    let mut other = connect_from("127.0.0.2", to).await;
    assert!(healthz(&mut other).await.starts_with("HTTP/1.1 200"));
    let mut proxied = Vec::new();
    for _ in 0..5 {
        let mut s = connect_from("127.0.0.3", to).await;
        assert!(healthz(&mut s).await.starts_with("HTTP/1.1 200"));
        proxied.push(s);
    }
    // Closing one gives its place back.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = connect_from("127.0.0.1", to).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: hub\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let (answer, _) = until_closed(&mut s, Duration::from_secs(5)).await.expect("an answer");
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(
            Instant::now() < deadline,
            "the closed connection's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_long_stream_outlives_the_client_timeouts() {
    let mock = MockProvider::start().await;
    let hub = hub(&[("HUB_HEADER_TIMEOUT", "1"), ("HUB_BODY_TIMEOUT", "1")]).await;
    let api = Api::new(&hub.base);
    let p = api.setup_provider("mock", &mock.base_url(), "sk-0001").await;
    api.add_model(&p, "m", json!({"input_rate": 1, "output_rate": 1})).await;
    let (_, key) = api.user_with_key("lee", "1").await;
    // Ten pieces 400 ms apart: a 4 s stream, four times either timeout.
    let pieces: Vec<String> = (0..10).map(|i| format!("p{i} ")).collect();
    mock.set(
        "m",
        Behavior {
            pieces: pieces.clone(),
            ..Behavior::default().delay(Duration::from_millis(400))
        },
    );
    let started = Instant::now();
    let resp = api
        .http
        .post(format!("{}/v1/chat/completions", hub.base))
        .bearer_auth(&key)
        .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("the stream stalled")
    {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("the stream was cut")));
    }
    assert!(started.elapsed() >= Duration::from_secs(3), "{:?}", started.elapsed());
    for p in &pieces {
        assert!(text.contains(&format!("\"{p}\"")), "missing {p}: {text}");
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}
