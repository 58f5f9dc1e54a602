//! OpenAI's asynchronous `/v1/videos` on `hub serve`: the shared scenario
//! on the embedded database (holds in the credit book) and on remote libSQL
//! (holds as rows); the scheduled job settles a job nobody polls; a running
//! job's hold survives a restart; bad input is a 400 that holds and sends
//! nothing.

use hub_e2e::mock::{Behavior, MockProvider};
use hub_e2e::suite::{create_video, settled};
use hub_e2e::{nanos, Api, HranaServer, HubServer, Launch};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

async fn start(launch: Launch) -> (HubServer, Api) {
    let hub = tokio::task::spawn_blocking(move || HubServer::start(bin(), launch))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    (hub, api)
}

/// Hub's Sora model at the mock (0.1 per second) and a user with 10 credits.
async fn sora(api: &Api, mock: &MockProvider) -> (String, String) {
    let provider = api.setup_provider("mock", &mock.base_url(), "sk-videos").await;
    let m = api
        .add_model(&provider, "sora-mock", json!({"type": "video", "video_rate": "0.1"}))
        .await;
    assert!(m["id"].is_string(), "{m}");
    api.user_with_key("videos", "10").await
}

fn polls(n: usize) -> Behavior {
    Behavior {
        video_polls: n,
        ..Default::default()
    }
}

#[tokio::test]
async fn the_shared_videos_scenario_runs_on_the_embedded_database() {
    let mock = MockProvider::start().await;
    let (_hub, api) = start(Launch::default()).await;
    hub_e2e::suite::openai_videos_are_followed_and_billed_exactly(&api, &mock).await;

    // In /metrics: every job ended counted as a call (two completed, one
    // failed), and no hold still counted open once its request ended.
    let text = api
        .http
        .get(format!("{}/metrics", api.base))
        .bearer_auth(hub_e2e::ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let page = hub_e2e::telemetry::parse_prometheus(&text);
    assert_eq!(page.kind("hub_holds_open"), Some("gauge"), "{text}");
    assert_eq!(page.sum("hub_holds_open", &[]), 0.0, "{text}");
    assert_eq!(page.sum("hub_calls_total", &[("endpoint", "videos")]), 3.0, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shared_videos_scenario_runs_on_remote_libsql_with_hold_rows() {
    let mock = MockProvider::start().await;
    let dir = hub_e2e::temp_dir("hrana-videos");
    let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
    let (_hub, api) = start(Launch::remote(&hrana)).await;
    hub_e2e::suite::openai_videos_are_followed_and_billed_exactly(&api, &mock).await;
    // Each job's hold row closed once: two settled, the failed one released.
    let holds = hub_e2e::sqlite(
        &hrana.db,
        "SELECT h.state, COUNT(*) FROM holds h JOIN video_jobs v ON v.call_id = h.id GROUP BY h.state ORDER BY h.state",
    );
    assert_eq!(holds, json!([["released", 1], ["settled", 2]]));
    let unsettled = hub_e2e::sqlite(&hrana.db, "SELECT COUNT(*) FROM video_jobs WHERE settled_at IS NULL");
    assert_eq!(unsettled, json!([[0]]));
}

/// Nobody polls the job: the scheduled job (every second here) follows it
/// to its end and settles it, on both kinds of database.
#[tokio::test(flavor = "multi_thread")]
async fn the_scheduled_job_settles_a_video_nobody_polls() {
    let dir = hub_e2e::temp_dir("hrana-video-tick");
    let hrana = HranaServer::start(&hub_e2e::hrana_script(), &dir);
    let tick = ("HUB_TICK_INTERVAL".to_string(), "1".to_string());
    let mut remote = Launch::remote(&hrana);
    remote.env.push(tick.clone());
    let embedded = Launch {
        env: vec![tick],
        ..Default::default()
    };
    for launch in [embedded, remote] {
        let mock = MockProvider::start().await;
        let (hub, api) = start(launch).await;
        let (user, key) = sora(&api, &mock).await;
        mock.set("sora-mock", polls(2));
        let video = create_video(&api, &key, "mock/sora-mock", "4").await;
        settled(&api, &user, "9.6").await;
        let polled = mock
            .received()
            .iter()
            .filter(|r| r.method == "GET" && r.path == "/v1/videos/video_mock_1")
            .count();
        assert_eq!(polled, 3, "in progress twice, then completed");
        // Its owner finds it completed, without another poll.
        let (status, v) = api
            .call(
                reqwest::Method::GET,
                &format!("/v1/videos/{}", video["id"].as_str().unwrap()),
                &key,
                None,
            )
            .await;
        assert_eq!((status, &v["status"]), (200, &json!("completed")), "{v}");
        let calls = api.calls(&format!("user={user}")).await;
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(
            (&calls[0]["endpoint"], &calls[0]["status"]),
            (&json!("videos"), &json!("success")),
            "{}",
            hub.logs()
        );
    }
}

/// On the embedded database holds live in memory: a running job's hold is
/// held again when Hub restarts, and the job still settles exactly.
#[tokio::test]
async fn a_running_videos_hold_survives_a_restart() {
    let mock = MockProvider::start().await;
    let (mut hub, api) = start(Launch::default()).await;
    let (user, key) = sora(&api, &mock).await;
    mock.set("sora-mock", polls(1));
    let video = create_video(&api, &key, "mock/sora-mock", "8").await;
    let held = |u: &Value| nanos(&u["held"]) == nanos(&json!("0.8"));
    api.wait_user(&user, "0.8 held", held).await;
    assert!(hub.terminate(Duration::from_secs(10)).is_some(), "hub stopped");
    let dir = hub.dir.clone();
    let hub = tokio::task::spawn_blocking(move || HubServer::start_in(bin(), Launch::default(), dir))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    api.wait_user(&user, "0.8 held after the restart", held).await;
    let path = format!("/v1/videos/{}", video["id"].as_str().unwrap());
    let v = hub_e2e::eventually("the video completed", Duration::from_secs(10), || async {
        let (_, v) = api.call(reqwest::Method::GET, &path, &key, None).await;
        match v["status"] == "completed" {
            true => Ok(v),
            false => Err(v.to_string()),
        }
    })
    .await;
    assert_eq!(v["seconds"], "8");
    settled(&api, &user, "9.2").await;
}

#[tokio::test]
async fn bad_video_requests_are_400s_that_hold_and_send_nothing() {
    let mock = MockProvider::start().await;
    let (_hub, api) = start(Launch::default()).await;
    let (user, key) = sora(&api, &mock).await;
    let boundary = "----bad-videos";
    let reference = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nmock/sora-mock\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nwaves\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"input_reference\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x01\x02\r\n\
         --{boundary}--\r\n"
    );
    let r = api
        .http
        .post(format!("{}/v1/videos", api.base))
        .bearer_auth(&key)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(reference)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().contains("input_reference"),
        "{e}"
    );
    for (body, field) in [
        (
            json!({"model": "mock/sora-mock", "prompt": "x", "seconds": "forever"}),
            "seconds",
        ),
        (
            json!({"model": "mock/sora-mock", "prompt": "x", "seconds": 0}),
            "seconds",
        ),
        (json!({"model": "mock/sora-mock"}), "prompt"),
        (json!({"prompt": "x"}), "model"),
        (json!({"model": "mock/sora-mock", "prompt": "x", "size": 720}), "size"),
    ] {
        let (status, e) = api.call(reqwest::Method::POST, "/v1/videos", &key, Some(body)).await;
        assert_eq!(status, 400, "{field}: {e}");
        assert!(e["error"]["message"].as_str().unwrap().contains(field), "{e}");
    }
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            "/v1/videos",
            &key,
            Some(json!({"model": "nobody/knows", "prompt": "x"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .call(reqwest::Method::GET, "/v1/videos/video_nonexistent", &key, None)
        .await;
    assert_eq!(status, 404);
    let (status, e) = api.call(reqwest::Method::GET, "/v1/videos?limit=0", &key, None).await;
    assert_eq!(status, 400, "{e}");
    assert!(mock.received().is_empty(), "nothing reached the provider");
    settled(&api, &user, "10").await;
}

/// Veo through `/v1/videos`: the operation followed to its end, the video
/// fetched from the URI it names, the seconds asked for billed (Veo reports none).
#[tokio::test]
async fn veo_jobs_are_followed_through_their_operation() {
    let mock = MockProvider::start().await;
    let (_hub, api) = start(Launch::default()).await;
    let gemini = api
        .provider(
            json!({"name": "gemini", "kind": "gemini", "base_url": mock.root_url()}),
            "gm-videos",
        )
        .await;
    api.add_model(&gemini, "veo-mock", json!({"type": "video", "video_rate": "0.35"}))
        .await;
    mock.set("veo-mock", polls(1));
    let (user, key) = api.user_with_key("veo", "10").await;
    let (status, v) = api
        .call(
            reqwest::Method::POST,
            "/v1/videos",
            &key,
            Some(json!({"model": "gemini/veo-mock", "prompt": "waves", "seconds": "6", "size": "720x1280"})),
        )
        .await;
    assert_eq!((status, &v["status"]), (200, &json!("queued")), "{v}");
    let create = mock
        .received()
        .into_iter()
        .find(|r| r.path.ends_with(":predictLongRunning"))
        .unwrap();
    assert_eq!(
        create.body["parameters"],
        json!({"durationSeconds": 6, "aspectRatio": "9:16"})
    );
    let path = format!("/v1/videos/{}", v["id"].as_str().unwrap());
    let done = hub_e2e::eventually("the Veo video completed", Duration::from_secs(10), || async {
        let (_, v) = api.call(reqwest::Method::GET, &path, &key, None).await;
        match v["status"].as_str() {
            Some("completed") => Ok(v),
            Some("queued" | "in_progress") => Err(v.to_string()),
            _ => panic!("{v}"),
        }
    })
    .await;
    assert_eq!(done["seconds"], "6");
    let r = api
        .http
        .get(format!("{}{path}/content", api.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), hub_e2e::mock::VIDEO_BYTES);
    let file = mock
        .received()
        .into_iter()
        .find(|r| r.path.contains("/files/"))
        .unwrap();
    assert_eq!(file.header("x-goog-api-key"), Some("gm-videos"));
    // 6 s at 0.35.
    settled(&api, &user, "7.9").await;
}
