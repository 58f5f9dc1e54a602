//! The mock's audio and video endpoints, validating requests as the real
//! APIs document them:
//!
//! * OpenAI `POST /v1/audio/transcriptions` and `/translations` (a
//!   multipart form: a `file` with a file name, a `model`, a known
//!   `response_format`), answering with the [`Behavior::transcript_usage`]
//!   usage; `POST /v1/audio/speech` (JSON: `model`, `input` of at most 4,096
//!   characters, `voice`), answering audio bytes in several chunks.
//! * OpenAI videos: `POST /v1/videos` (a form: `prompt`, `model`, `seconds`
//!   of 4, 8 or 12, a known `size`), answering the job `queued`;
//!   `GET /v1/videos/{id}` (in progress, 50 % done, for
//!   [`Behavior::video_polls`] polls, then completed or failed),
//!   `GET /v1/videos/{id}/content`.
//! * Gemini Veo: `POST …/models/{model}:predictLongRunning`, the operation
//!   polled at `GET …/models/{model}/operations/{op}`, the video at
//!   `GET …/files/{op}:download`.
//!
//! The form is read by this module's own parser, not Hub's.

use super::{credential, error_body, full, Behavior, Out, Proto, State};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

/// The bytes of every generated video.
pub const VIDEO_BYTES: &[u8] = b"\x00\x00\x00\x18ftypmp42mock-video";

/// A video job the mock is "generating".
#[derive(Debug, Clone)]
pub(super) struct Job {
    model: String,
    seconds: String,
    polls_left: usize,
    failure: Option<String>,
}

/// A request's facts, for the media endpoints.
pub(super) struct Ask<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a HashMap<String, String>,
    pub raw: &'a Bytes,
    pub body: &'a Value,
    pub host: String,
}

fn bad(proto: Proto, status: u16, message: &str) -> hyper::Response<Out> {
    full(status, error_body(proto, status, message))
}

/// Answers a media request, or None when the path is not one.
pub(super) async fn answer(state: &Arc<State>, a: &Ask<'_>) -> Option<hyper::Response<Out>> {
    let proto =
        if a.path.contains(":predictLongRunning") || a.path.contains("/operations/") || a.path.contains("/files/") {
            Proto::Gemini
        } else {
            Proto::OpenAi
        };
    let route = route_of(a.method, a.path)?;
    if credential(a.headers).is_none() {
        return Some(bad(proto, 401, "missing credential"));
    }
    Some(match route {
        Route::Transcribe { translate } => transcribe(state, a, translate),
        Route::Speech => speech(state, a),
        Route::CreateVideo => create_video(state, a),
        Route::Video { id, content } => video(state, &id, content),
        Route::VeoCreate { model } => veo_create(state, a, &model),
        Route::VeoPoll { op } => veo_poll(state, a, &op),
        Route::VeoFile { op } => veo_file(state, &op),
    })
}

enum Route {
    Transcribe { translate: bool },
    Speech,
    CreateVideo,
    Video { id: String, content: bool },
    VeoCreate { model: String },
    VeoPoll { op: String },
    VeoFile { op: String },
}

fn route_of(method: &str, path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let last = *segs.last()?;
    match (method, segs.as_slice()) {
        ("POST", [.., "audio", "transcriptions"]) => Some(Route::Transcribe { translate: false }),
        ("POST", [.., "audio", "translations"]) => Some(Route::Transcribe { translate: true }),
        ("POST", [.., "audio", "speech"]) => Some(Route::Speech),
        ("POST", [.., "videos"]) => Some(Route::CreateVideo),
        ("GET", [.., "videos", id]) => Some(Route::Video {
            id: id.to_string(),
            content: false,
        }),
        ("GET", [.., "videos", id, "content"]) => Some(Route::Video {
            id: id.to_string(),
            content: true,
        }),
        ("POST", [.., "models", _]) if last.ends_with(":predictLongRunning") => Some(Route::VeoCreate {
            model: last.trim_end_matches(":predictLongRunning").to_string(),
        }),
        ("GET", [.., "operations", op]) => Some(Route::VeoPoll { op: op.to_string() }),
        ("GET", [.., "files", file]) if file.ends_with(":download") => Some(Route::VeoFile {
            op: file.trim_end_matches(":download").to_string(),
        }),
        _ => None,
    }
}

/// A multipart form's parts: name → (file name, bytes).
type Parts = HashMap<String, (Option<String>, Vec<u8>)>;

fn form(headers: &HashMap<String, String>, raw: &[u8]) -> Result<Parts, String> {
    let ct = headers.get("content-type").ok_or("no content type")?;
    let boundary = ct
        .split("boundary=")
        .nth(1)
        .ok_or("the content type is not multipart/form-data with a boundary")?
        .trim_matches('"');
    if !ct.starts_with("multipart/form-data") {
        return Err("the body must be multipart/form-data".into());
    }
    let text = raw.iter().map(|&b| b as char).collect::<String>();
    let delimiter = format!("--{boundary}");
    let mut parts = HashMap::new();
    for chunk in text.split(&delimiter).skip(1) {
        if chunk.starts_with("--") {
            return Ok(parts);
        }
        let chunk = chunk.strip_prefix("\r\n").ok_or("no line break after a delimiter")?;
        let (head, data) = chunk.split_once("\r\n\r\n").ok_or("a part without a blank line")?;
        let data = data.strip_suffix("\r\n").ok_or("a part not ended by a line break")?;
        let param = |key: &str| {
            head.split(&format!("{key}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_string)
        };
        let name = param(" name")
            .or_else(|| param(";name"))
            .ok_or("a part without a name")?;
        let bytes: Vec<u8> = data.chars().map(|c| c as u8).collect();
        parts.insert(name, (param("filename"), bytes));
    }
    Err("the form has no closing delimiter".into())
}

fn behavior(state: &State, model: &str) -> Behavior {
    state.behaviors.lock().unwrap().get(model).cloned().unwrap_or_default()
}

fn field(parts: &Parts, name: &str) -> Option<String> {
    parts.get(name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

fn transcribe(state: &State, a: &Ask, translate: bool) -> hyper::Response<Out> {
    let parts = match form(a.headers, a.raw) {
        Ok(p) => p,
        Err(e) => return bad(Proto::OpenAi, 400, &e),
    };
    match parts.get("file") {
        Some((Some(name), data)) if !name.is_empty() && !data.is_empty() => {}
        _ => {
            return bad(
                Proto::OpenAi,
                400,
                "file: a non-empty file with a file name is required",
            )
        }
    }
    let Some(model) = field(&parts, "model").filter(|m| !m.is_empty()) else {
        return bad(Proto::OpenAi, 400, "model is required");
    };
    let format = field(&parts, "response_format").unwrap_or_else(|| "json".into());
    let known: &[&str] = if translate {
        &["json", "text", "srt", "verbose_json", "vtt"]
    } else {
        &["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]
    };
    if !known.contains(&format.as_str()) {
        return bad(
            Proto::OpenAi,
            400,
            &format!("response_format `{format}` is not supported"),
        );
    }
    let b = behavior(state, &model);
    if !(200..300).contains(&b.status) {
        return bad(Proto::OpenAi, b.status, &format!("mock failure {}", b.status));
    }
    // Audio the mock spoke comes back as the text it spoke: a real round trip.
    let file = &parts["file"].1;
    let spoken = file
        .strip_prefix(SPOKEN_PREFIX)
        .and_then(|rest| rest.strip_suffix(SPOKEN_SUFFIX))
        .map(|t| String::from_utf8_lossy(t).into_owned());
    let text = spoken.unwrap_or_else(|| b.pieces.concat());
    let seconds = b.transcript_usage["seconds"].as_f64().unwrap_or(3.0);
    let plain = |ct: &str, body: String| {
        hyper::Response::builder()
            .status(200)
            .header("content-type", ct)
            .body(Full::new(Bytes::from(body)).boxed())
            .unwrap()
    };
    match format.as_str() {
        "text" => plain("text/plain; charset=utf-8", format!("{text}\n")),
        "srt" => plain(
            "text/plain; charset=utf-8",
            format!("1\n00:00:00,000 --> {}\n{text}\n\n", srt_time(seconds)),
        ),
        "vtt" => plain(
            "text/vtt; charset=utf-8",
            format!(
                "WEBVTT\n\n00:00:00.000 --> {}\n{text}\n\n",
                srt_time(seconds).replace(',', ".")
            ),
        ),
        "verbose_json" => full(
            200,
            json!({"task": if translate {"translate"} else {"transcribe"}, "language": "english", "duration": seconds, "text": text, "segments": [], "usage": b.transcript_usage}),
        ),
        _ => full(200, json!({"text": text, "usage": b.transcript_usage})),
    }
}

fn srt_time(seconds: f64) -> String {
    let ms = (seconds * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02},{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn speech(state: &Arc<State>, a: &Ask) -> hyper::Response<Out> {
    let b = a.body;
    let Some(model) = b["model"].as_str().filter(|m| !m.is_empty()) else {
        return bad(Proto::OpenAi, 400, "model is required");
    };
    let Some(input) = b["input"].as_str().filter(|i| !i.is_empty()) else {
        return bad(Proto::OpenAi, 400, "input is required");
    };
    if input.chars().count() > 4096 {
        return bad(Proto::OpenAi, 400, "input is longer than 4096 characters");
    }
    if !b["voice"].is_string() && !b["voice"]["id"].is_string() {
        return bad(Proto::OpenAi, 400, "voice is required");
    }
    let format = b["response_format"].as_str().unwrap_or("mp3");
    let Some(ct) = [
        ("mp3", "audio/mpeg"),
        ("opus", "audio/opus"),
        ("aac", "audio/aac"),
        ("flac", "audio/flac"),
        ("wav", "audio/wav"),
        ("pcm", "audio/pcm"),
    ]
    .iter()
    .find(|(f, _)| *f == format)
    .map(|(_, ct)| *ct) else {
        return bad(
            Proto::OpenAi,
            400,
            &format!("response_format `{format}` is not supported"),
        );
    };
    let behavior = behavior(state, model);
    if !(200..300).contains(&behavior.status) {
        return bad(
            Proto::OpenAi,
            behavior.status,
            &format!("mock failure {}", behavior.status),
        );
    }
    let chunks: Vec<Bytes> = speech_audio(input);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let delay = behavior.delay;
    tokio::spawn(async move {
        for (i, c) in chunks.into_iter().enumerate() {
            if behavior.break_after == Some(i) {
                return;
            }
            tokio::time::sleep(delay).await;
            if tx.send(Ok(Frame::data(c))).await.is_err() {
                return;
            }
        }
    });
    hyper::Response::builder()
        .status(200)
        .header("content-type", ct)
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}

const SPOKEN_PREFIX: &[u8] = b"ID3\x04mock-audio:";
const SPOKEN_SUFFIX: &[u8] = b":end";

/// The "audio" for a text: three chunks, the same for the same text.
pub fn speech_audio(input: &str) -> Vec<Bytes> {
    vec![
        Bytes::from_static(SPOKEN_PREFIX),
        Bytes::from(input.as_bytes().to_vec()),
        Bytes::from_static(SPOKEN_SUFFIX),
    ]
}

fn create_video(state: &State, a: &Ask) -> hyper::Response<Out> {
    let parts = match form(a.headers, a.raw) {
        Ok(p) => p,
        Err(e) => return bad(Proto::OpenAi, 400, &e),
    };
    let Some(prompt) = field(&parts, "prompt").filter(|p| !p.is_empty()) else {
        return bad(Proto::OpenAi, 400, "prompt is required");
    };
    let model = field(&parts, "model").unwrap_or_else(|| "sora-2".into());
    let seconds = field(&parts, "seconds").unwrap_or_else(|| "4".into());
    if !["4", "8", "12"].contains(&seconds.as_str()) {
        return bad(
            Proto::OpenAi,
            400,
            &format!("seconds must be 4, 8 or 12 (got `{seconds}`)"),
        );
    }
    let size = field(&parts, "size").unwrap_or_else(|| "720x1280".into());
    if !["720x1280", "1280x720", "1024x1792", "1792x1024"].contains(&size.as_str()) {
        return bad(Proto::OpenAi, 400, &format!("size `{size}` is not supported"));
    }
    let _ = prompt;
    let b = behavior(state, &model);
    if !(200..300).contains(&b.status) {
        return bad(Proto::OpenAi, b.status, &format!("mock failure {}", b.status));
    }
    let id = new_job(state, &model, b.video_seconds.clone().unwrap_or(seconds), &b);
    full(200, video_object(&id, &state.videos.lock().unwrap()[&id], "queued"))
}

fn new_job(state: &State, model: &str, seconds: String, b: &Behavior) -> String {
    let mut jobs = state.videos.lock().unwrap();
    let id = format!("video_mock_{}", jobs.len() + 1);
    jobs.insert(
        id.clone(),
        Job {
            model: model.to_string(),
            seconds,
            polls_left: b.video_polls,
            failure: b.video_failure.clone(),
        },
    );
    id
}

fn video_object(id: &str, job: &Job, status: &str) -> Value {
    let mut v = json!({"id": id, "object": "video", "model": job.model, "status": status,
        "progress": match status {"completed" => 100, "in_progress" => 50, _ => 0}, "created_at": 1_700_000_000,
        "seconds": job.seconds, "size": "720x1280"});
    if status == "failed" {
        v["error"] = json!({"code": "generation_failed", "message": job.failure});
    }
    v
}

/// A poll: in progress while polls are left, then the job's end.
fn poll(state: &State, id: &str) -> Option<(Job, &'static str)> {
    let mut jobs = state.videos.lock().unwrap();
    let job = jobs.get_mut(id)?;
    let status = if job.polls_left > 0 {
        job.polls_left -= 1;
        "in_progress"
    } else if job.failure.is_some() {
        "failed"
    } else {
        "completed"
    };
    Some((job.clone(), status))
}

fn video(state: &State, id: &str, content: bool) -> hyper::Response<Out> {
    if content {
        let done = state
            .videos
            .lock()
            .unwrap()
            .get(id)
            .is_some_and(|j| j.polls_left == 0 && j.failure.is_none());
        if !done {
            return bad(Proto::OpenAi, 404, "the video is not ready");
        }
        return hyper::Response::builder()
            .status(200)
            .header("content-type", "video/mp4")
            .body(Full::new(Bytes::from_static(VIDEO_BYTES)).boxed())
            .unwrap();
    }
    match poll(state, id) {
        Some((job, status)) => full(200, video_object(id, &job, status)),
        None => bad(Proto::OpenAi, 404, &format!("no video {id}")),
    }
}

fn veo_create(state: &State, a: &Ask, model: &str) -> hyper::Response<Out> {
    let Some(_prompt) = a.body["instances"][0]["prompt"].as_str().filter(|p| !p.is_empty()) else {
        return bad(Proto::Gemini, 400, "instances[0].prompt is required");
    };
    let seconds = &a.body["parameters"]["durationSeconds"];
    if !seconds.is_null() && !seconds.as_u64().is_some_and(|s| (4..=8).contains(&s)) {
        return bad(
            Proto::Gemini,
            400,
            "parameters.durationSeconds must be an integer from 4 to 8",
        );
    }
    let b = behavior(state, model);
    if !(200..300).contains(&b.status) {
        return bad(Proto::Gemini, b.status, &format!("mock failure {}", b.status));
    }
    let id = new_job(state, model, seconds.as_u64().unwrap_or(8).to_string(), &b);
    full(200, json!({"name": format!("models/{model}/operations/{id}")}))
}

fn veo_poll(state: &State, a: &Ask, op: &str) -> hyper::Response<Out> {
    match poll(state, op) {
        Some((job, "in_progress")) => full(200, json!({"name": format!("models/{}/operations/{op}", job.model)})),
        Some((job, "failed")) => full(
            200,
            json!({"name": op, "done": true, "error": {"code": 3, "message": job.failure}}),
        ),
        Some(_) => full(
            200,
            json!({"name": op, "done": true, "response": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
            "generateVideoResponse": {"generatedSamples": [{"video": {"uri": format!("http://{}/files/{op}:download?alt=media", a.host)}}]}}}),
        ),
        None => bad(Proto::Gemini, 404, &format!("no operation {op}")),
    }
}

fn veo_file(state: &State, op: &str) -> hyper::Response<Out> {
    video(state, op, true)
}
