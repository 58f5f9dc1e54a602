//! Audio and video, metered: transcriptions and translations (a multipart
//! form, billed per second of audio or per token as the provider reports),
//! speech (the audio streamed back, billed per character), video through the
//! published `AIGNEHubVideoModel` and through Gemini's Veo, billed per second
//! generated; a failed video releases its hold; bad input is a 400 in the
//! caller's protocol and bills nothing.

use hub_e2e::mock::{speech_audio, Behavior, MockProvider, VIDEO_BYTES};
use hub_e2e::{nanos, Api, HubServer, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

struct World {
    hub: HubServer,
    api: Api,
    mock: MockProvider,
    user: String,
    key: String,
}

/// Hub with an OpenAI-kind provider (audio and Sora models) and a Gemini one (Veo) at the mock.
async fn world() -> World {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(|| HubServer::start(bin(), Launch::default()))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let openai = api
        // Not named after a vendor: AIGNE's client sends `openai/…` models to OpenAI itself.
        .provider(
            json!({"name": "mock", "kind": "openai", "base_url": mock.base_url()}),
            "sk-media",
        )
        .await;
    let gemini = api
        .provider(
            json!({"name": "gemini", "kind": "gemini", "base_url": mock.root_url()}),
            "gm-media",
        )
        .await;
    for (provider, model, kind, rates) in [
        (&openai, "whisper-mock", "transcription", json!({"audio_rate": "0.006"})),
        (
            &openai,
            "transcribe-tokens",
            "transcription",
            json!({"input_rate": "2.5", "output_rate": "10"}),
        ),
        (&openai, "tts-mock", "speech", json!({"audio_rate": "15"})),
        (&openai, "sora-mock", "video", json!({"video_rate": "0.1"})),
        (&openai, "sora-fail", "video", json!({"video_rate": "0.1"})),
        (&gemini, "veo-mock", "video", json!({"video_rate": "0.35"})),
        (&gemini, "gemini-whisper", "transcription", json!({"audio_rate": "1"})),
    ] {
        let mut body = rates;
        body["type"] = json!(kind);
        let m = api.add_model(provider, model, body).await;
        assert!(m["id"].is_string(), "{m}");
    }
    mock.set(
        "sora-fail",
        Behavior {
            video_failure: Some("the prompt was refused by the safety system".into()),
            ..Default::default()
        },
    );
    let (user, key) = api.user_with_key("media", "10").await;
    World {
        hub,
        api,
        mock,
        user,
        key,
    }
}

/// A multipart form, written out as a client's library writes it.
fn form(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----media-test-7d1f";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        );
    }
    if let Some((name, data)) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_form(w: &World, path: &str, fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> reqwest::Response {
    let (ct, body) = form(fields, file);
    w.api
        .http
        .post(format!("{}{path}", w.api.base))
        .bearer_auth(&w.key)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn post_json(w: &World, path: &str, body: Value) -> reqwest::Response {
    w.api
        .http
        .post(format!("{}{path}", w.api.base))
        .bearer_auth(&w.key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Waits until the user's balance is `balance` with nothing held; returns the user.
async fn settled_at(w: &World, balance: &str) -> Value {
    hub_e2e::suite::settled(&w.api, &w.user, balance).await
}

/// Ten kilobytes of "audio": at most 20 seconds at the lowest bitrate Hub assumes.
const AUDIO: &[u8] = &[7u8; 10_000];

#[tokio::test]
async fn transcriptions_and_translations_are_billed_per_second_or_per_token() {
    let w = world().await;
    w.mock.set(
        "whisper-mock",
        Behavior {
            transcript_usage: json!({"type": "duration", "seconds": 9}),
            pieces: vec!["Hello there".into()],
            ..Default::default()
        },
    );
    let r = post_form(
        &w,
        "/v1/audio/transcriptions",
        &[("model", "mock/whisper-mock")],
        Some(("a.wav", AUDIO)),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-hub-credits"], "0.054", "9 s at 0.006 per second");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["text"], "Hello there");
    // The provider got the form with its own model name and the file byte for byte.
    let sent = w.mock.received().pop().unwrap();
    assert!(sent
        .header("content-type")
        .unwrap()
        .starts_with("multipart/form-data; boundary="));
    let raw = String::from_utf8_lossy(&sent.raw);
    assert!(raw.contains("name=\"model\"\r\n\r\nwhisper-mock\r\n"), "{raw}");
    assert!(
        sent.raw.windows(AUDIO.len()).any(|win| win == AUDIO),
        "the audio arrives whole"
    );
    settled_at(&w, "9.946").await;

    // Plain text: Hub asks for JSON (which carries the usage) and answers the text.
    let r = post_form(
        &w,
        "/v1/audio/transcriptions",
        &[("model", "whisper-mock"), ("response_format", "text")],
        Some(("a.wav", AUDIO)),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap(), "Hello there\n");
    let raw = String::from_utf8_lossy(&w.mock.received().pop().unwrap().raw).into_owned();
    assert!(raw.contains("name=\"response_format\"\r\n\r\njson\r\n"), "{raw}");
    settled_at(&w, "9.892").await;

    // Subtitles carry no usage: their last cue is the audio's length (9 s).
    let r = post_form(
        &w,
        "/v1/audio/translations",
        &[("model", "whisper-mock"), ("response_format", "srt")],
        Some(("a.wav", AUDIO)),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("00:00:09,000"));
    settled_at(&w, "9.838").await;

    // A model the provider bills by tokens: 14 in at 2.5, 45 out at 10 per million.
    w.mock.set(
        "transcribe-tokens",
        Behavior {
            transcript_usage: json!({"type": "tokens", "input_tokens": 14, "output_tokens": 45, "total_tokens": 59,
                "input_token_details": {"text_tokens": 0, "audio_tokens": 14}}),
            ..Default::default()
        },
    );
    let r = post_form(
        &w,
        "/api/v2/audio/transcriptions",
        &[("model", "transcribe-tokens")],
        Some(("a.wav", AUDIO)),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-hub-credits"], "0.000485");
    settled_at(&w, "9.837515").await;
    let calls = w.api.calls(&format!("user={}", w.user)).await;
    assert_eq!(calls[3]["audio_seconds"], "9", "{}", calls[3]);
    assert_eq!(calls[3]["endpoint"], "transcriptions");
    assert_eq!(calls[1]["endpoint"], "translations");
}

#[tokio::test]
async fn speech_streams_the_audio_and_bills_per_character() {
    let w = world().await;
    let input = "Hello, wörld — ünïcode!";
    let r = post_json(
        &w,
        "/v1/audio/speech",
        json!({"model": "tts-mock", "input": input, "voice": "alloy"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/mpeg");
    assert!(r.headers().contains_key("x-hub-call-id"));
    let audio = r.bytes().await.unwrap();
    assert_eq!(
        audio,
        speech_audio(input).concat(),
        "the provider's audio, byte for byte"
    );
    assert_eq!(w.mock.received().pop().unwrap().body["model"], "tts-mock");
    // 23 characters (not 30 bytes) at 15 per million.
    assert_eq!(input.chars().count(), 23);
    settled_at(&w, "9.999655").await;
    let calls = w.api.calls(&format!("user={}", w.user)).await;
    assert_eq!(calls[0]["characters"], 23);
    assert_eq!(nanos(&calls[0]["credits"]), 345_000);
}

#[tokio::test]
async fn bad_audio_input_is_refused_in_the_callers_protocol_and_bills_nothing() {
    let w = world().await;
    let cases: Vec<(reqwest::Response, &str)> = vec![
        (
            post_form(&w, "/v1/audio/transcriptions", &[("model", "whisper-mock")], None).await,
            "file",
        ),
        (
            post_form(&w, "/v1/audio/transcriptions", &[], Some(("a.wav", AUDIO))).await,
            "model",
        ),
        (
            post_form(
                &w,
                "/v1/audio/transcriptions",
                &[("model", "whisper-mock"), ("response_format", "mp4")],
                Some(("a.wav", AUDIO)),
            )
            .await,
            "response_format",
        ),
        (
            post_form(
                &w,
                "/v1/audio/translations",
                &[("model", "whisper-mock"), ("temperature", "hot")],
                Some(("a.wav", AUDIO)),
            )
            .await,
            "temperature",
        ),
        (
            post_json(&w, "/v1/audio/speech", json!({"model": "tts-mock", "input": "hi"})).await,
            "voice",
        ),
        (
            post_json(
                &w,
                "/v1/audio/speech",
                json!({"model": "tts-mock", "input": "x".repeat(4097), "voice": "alloy"}),
            )
            .await,
            "input",
        ),
        (
            post_json(
                &w,
                "/v1/audio/speech",
                json!({"model": "tts-mock", "input": "hi", "voice": "alloy", "speed": 9}),
            )
            .await,
            "speed",
        ),
    ];
    for (r, param) in cases {
        assert_eq!(r.status(), 400, "{param}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["param"], param, "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
    // Not a form at all.
    let r = post_json(&w, "/v1/audio/transcriptions", json!({"model": "whisper-mock"})).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data"),
        "{body}"
    );
    // A truncated form.
    let (ct, mut raw) = form(&[("model", "whisper-mock")], Some(("a.wav", AUDIO)));
    raw.truncate(raw.len() - 20);
    let r = w
        .api
        .http
        .post(format!("{}/v1/audio/transcriptions", w.api.base))
        .bearer_auth(&w.key)
        .header("content-type", ct)
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // AIGNE's routes answer in AIGNE's shape.
    let r = post_json(
        &w,
        "/api/v2/audio/speech",
        json!({"model": "tts-mock", "voice": "alloy"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("input"), "{body}");
    // Gemini has no transcription endpoint: the model is refused before anything is held or sent.
    let r = post_form(
        &w,
        "/v1/audio/transcriptions",
        &[("model", "gemini-whisper")],
        Some(("a.wav", AUDIO)),
    )
    .await;
    let (status, text) = (r.status(), r.text().await.unwrap());
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not supported by provider kind `gemini`"), "{text}");
    assert!(w.mock.received().is_empty(), "nothing reached the provider");
    let u = settled_at(&w, "10").await;
    assert_eq!(nanos(&u["held"]), 0);
}

#[tokio::test]
async fn the_aigne_video_client_and_an_audio_round_trip_are_billed_exactly() {
    let w = world().await;
    // A few bytes of speech are about a second long.
    w.mock.set(
        "whisper-mock",
        Behavior {
            transcript_usage: json!({"type": "duration", "seconds": 1}),
            ..Default::default()
        },
    );
    use base64::Engine;
    let env = [
        ("HUB_URL", w.hub.base.clone()),
        ("HUB_KEY", w.key.clone()),
        ("HUB_VIDEO_MODEL", "mock/sora-mock".to_string()),
        ("HUB_VIDEO_SECONDS", "8".to_string()),
        (
            "HUB_EXPECT_VIDEO_B64",
            base64::engine::general_purpose::STANDARD.encode(VIDEO_BYTES),
        ),
        ("HUB_FAIL_VIDEO_MODEL", "mock/sora-fail".to_string()),
        ("HUB_SPEECH_MODEL", "tts-mock".to_string()),
        ("HUB_TRANSCRIBE_MODEL", "whisper-mock".to_string()),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/aigne-client");
    let out =
        tokio::task::spawn_blocking(move || hub_e2e::node::run_script(&dir, "media", &env, Duration::from_secs(300)))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}\n--- hub log ---\n{}", w.hub.logs()));
    assert!(out.contains("# fail 0") && out.contains("# skipped 0"), "{out}");
    let billed: Value = out
        .lines()
        .find_map(|l| l.split_once("MEDIA ").map(|(_, j)| j))
        .map(|j| serde_json::from_str(j).unwrap())
        .unwrap_or_else(|| panic!("no MEDIA line:\n{out}"));
    // 8 s of video at 0.1; 25 characters spoken at 15 per million; 1 s transcribed at 0.006.
    assert_eq!(billed["video"], json!(0.8), "{billed}");
    assert_eq!(billed["transcription"], "0.006", "{billed}");
    let u = settled_at(&w, "9.193625").await;
    assert_eq!(nanos(&u["held"]), 0, "the failed video's hold is released");
    // The provider was polled, then asked for the content.
    let paths: Vec<String> = w
        .mock
        .received()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        paths.contains(&"GET /v1/videos/video_mock_1/content".to_string()),
        "{paths:?}"
    );
}

/// The scenario every runtime runs (the Worker's suite has it too).
#[tokio::test]
async fn the_shared_media_scenario_runs_on_hub_serve() {
    let mock = MockProvider::start().await;
    let hub = tokio::task::spawn_blocking(|| HubServer::start(bin(), Launch::default()))
        .await
        .unwrap();
    hub_e2e::suite::audio_and_video_are_billed_exactly(&Api::new(&hub.base), &mock).await;
}

#[tokio::test]
async fn veo_videos_bill_the_seconds_asked_and_a_failed_video_releases_its_hold() {
    let w = world().await;
    let ask = |model: &str, seconds: Value| json!({"input": {"prompt": "waves", "seconds": seconds, "size": "1280x720", "modelOptions": {"model": model}}});
    let r = post_json(&w, "/api/v2/video", ask("gemini/veo-mock", json!("6"))).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD
        .decode(body["videos"][0]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, VIDEO_BYTES);
    assert_eq!(body["seconds"], 6);
    assert_eq!(body["usage"]["aigneHubCredits"], json!(2.1));
    let create = w
        .mock
        .received()
        .into_iter()
        .find(|r| r.path.ends_with(":predictLongRunning"))
        .unwrap();
    assert_eq!(
        create.body["parameters"],
        json!({"durationSeconds": 6, "aspectRatio": "16:9"})
    );
    assert_eq!(create.header("x-goog-api-key"), Some("gm-media"));
    settled_at(&w, "7.9").await;

    // A failed generation: an error, and balance and held exactly as before.
    let r = post_json(&w, "/api/v2/video", ask("mock/sora-fail", json!(4))).await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused by the safety system"),
        "{body}"
    );
    settled_at(&w, "7.9").await;

    // Bad input: 400 naming it, nothing held, nothing sent.
    let before = w.mock.received().len();
    for (body, field) in [
        (ask("mock/sora-mock", json!("forever")), "input.seconds"),
        (ask("mock/sora-mock", json!(61)), "input.seconds"),
        (
            json!({"input": {"modelOptions": {"model": "mock/sora-mock"}}}),
            "input.prompt",
        ),
        (json!({"input": {"prompt": "x"}}), "input.modelOptions.model"),
    ] {
        let r = post_json(&w, "/api/v2/video", body).await;
        assert_eq!(r.status(), 400, "{field}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"]["message"].as_str().unwrap().contains(field), "{e}");
    }
    assert_eq!(w.mock.received().len(), before);
    settled_at(&w, "7.9").await;
    let _ = Method::GET;
}
