//! Video generation, asynchronous at every provider: a request starts a job,
//! polling tells when it ends, and the finished video is fetched.
//!
//! * OpenAI (Sora): `POST {base}/videos` (a form: `prompt`, `model`,
//!   `seconds`, `size`) answers a video object (`id`, `status`: `queued`,
//!   `in_progress`, `completed`, `failed`); `GET {base}/videos/{id}` polls
//!   it; `GET {base}/videos/{id}/content` is the MP4. Its `seconds` is the
//!   duration generated.
//! * Gemini (Veo): `POST {base}/models/{model}:predictLongRunning`
//!   (`instances: [{prompt}]`, `parameters: {durationSeconds, aspectRatio}`)
//!   answers a long-running operation (`name`); `GET {base}/{name}` polls it
//!   until `done`, with `response.generateVideoResponse.generatedSamples[].video.uri`
//!   or an `error`. The URI is fetched with the credential only when it is
//!   on the provider's own origin, so a forged answer cannot send the key
//!   elsewhere. Veo reports no duration: the one asked for is billed.

use super::{bearer, gemini, Target, Wire};
use crate::error::ApiError;
use crate::multipart::{Form, Part};
use crate::ports::UpstreamRequest;
use bytes::Bytes;
use serde_json::{json, Value};

/// What a caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoAsk {
    pub prompt: String,
    /// Seconds asked for; None lets the provider choose (its default).
    pub seconds: Option<u64>,
    pub size: Option<String>,
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Not done: still waiting for a worker (`queued`) or generating, with
    /// the percentage done when the provider says (Sora does, Veo does not).
    Running {
        queued: bool,
        progress: Option<u64>,
    },
    /// Done: the seconds generated (None: the provider did not say), where
    /// the video is, and until when the provider serves it (ms, if it says).
    Done {
        seconds: Option<u64>,
        content_url: String,
        expires_at: Option<i64>,
    },
    Failed(String),
}

fn get(t: &Target, url: String) -> UpstreamRequest {
    let mut headers = match t.vendor.wire {
        Wire::Gemini => gemini::headers(t.secret),
        _ => bearer(t.secret),
    };
    headers.retain(|(k, _)| k != "content-type");
    UpstreamRequest {
        method: http::Method::GET,
        url,
        headers,
        body: Bytes::new(),
        timeouts: t.timeouts,
    }
}

fn text_part(name: &str, value: &str) -> Part {
    Part {
        name: name.to_string(),
        filename: None,
        content_type: None,
        data: Bytes::copy_from_slice(value.as_bytes()),
    }
}

/// The request that starts a job.
pub fn create_request(ask: &VideoAsk, seed: &str, t: &Target) -> Result<UpstreamRequest, ApiError> {
    let base = t.base_url.trim_end_matches('/');
    match t.vendor.wire {
        Wire::OpenAi => {
            let mut form = Form::default();
            form.parts.push(text_part("model", t.model));
            form.parts.push(text_part("prompt", &ask.prompt));
            if let Some(s) = ask.seconds {
                form.parts.push(text_part("seconds", &s.to_string()));
            }
            if let Some(size) = &ask.size {
                form.parts.push(text_part("size", size));
            }
            let (content_type, body) = form.encode(seed);
            let mut headers = bearer(t.secret);
            headers.retain(|(k, _)| k != "content-type");
            headers.push(("content-type".into(), content_type));
            Ok(t.post(format!("{base}/videos"), headers, body))
        }
        Wire::Gemini => {
            let mut parameters = serde_json::Map::new();
            if let Some(s) = ask.seconds {
                parameters.insert("durationSeconds".into(), json!(s));
            }
            if let Some(ratio) = ask.size.as_deref().and_then(aspect_ratio) {
                parameters.insert("aspectRatio".into(), json!(ratio));
            }
            let body = json!({"instances": [{"prompt": ask.prompt}], "parameters": parameters});
            t.json_post(format!("{base}/models/{}:predictLongRunning", t.model), &body)
        }
        _ => Err(crate::chat::unsupported(t.vendor.kind, "Video generation")),
    }
}

/// Veo takes an aspect ratio, not a size: `1280x720` is `16:9`, `720x1280` is `9:16`.
fn aspect_ratio(size: &str) -> Option<&'static str> {
    let (w, h) = size.split_once('x')?;
    let (w, h): (u64, u64) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    Some(if w >= h { "16:9" } else { "9:16" })
}

/// The provider's id of the job a create answer started.
pub fn job_id(wire: Wire, answer: &[u8]) -> Result<String, ApiError> {
    let v: Value =
        serde_json::from_slice(answer).map_err(|_| ApiError::provider("The provider's video answer is not JSON."))?;
    let id = match wire {
        Wire::Gemini => v["name"].as_str(),
        _ => v["id"].as_str(),
    };
    id.filter(|id| !id.is_empty() && !id.contains(['?', '#']) && !id.contains(".."))
        .map(str::to_string)
        .ok_or_else(|| ApiError::provider("The provider's video answer names no job."))
}

/// The request that polls a job.
pub fn poll_request(job: &str, t: &Target) -> UpstreamRequest {
    let base = t.base_url.trim_end_matches('/');
    match t.vendor.wire {
        Wire::Gemini => get(t, format!("{base}/{job}")),
        _ => get(t, format!("{base}/videos/{job}")),
    }
}

/// Where a polled job stands.
pub fn job_state(job: &str, answer: &[u8], t: &Target) -> Result<JobState, ApiError> {
    let v: Value =
        serde_json::from_slice(answer).map_err(|_| ApiError::provider("The provider's video status is not JSON."))?;
    let base = t.base_url.trim_end_matches('/');
    match t.vendor.wire {
        Wire::Gemini => Ok(veo_state(&v, base)),
        _ => Ok(match v["status"].as_str() {
            Some("completed") => JobState::Done {
                seconds: number_or_text(&v["seconds"]),
                content_url: format!("{base}/videos/{job}/content"),
                expires_at: v["expires_at"].as_i64().map(|s| s.saturating_mul(1000)),
            },
            Some("failed") => JobState::Failed(error_message(&v["error"])),
            status => JobState::Running {
                queued: status == Some("queued"),
                progress: v["progress"].as_u64().map(|p| p.min(100)),
            },
        }),
    }
}

fn veo_state(v: &Value, base: &str) -> JobState {
    if v["done"] != Value::Bool(true) {
        return JobState::Running {
            queued: false,
            progress: None,
        };
    }
    if !v["error"].is_null() {
        return JobState::Failed(error_message(&v["error"]));
    }
    let samples = &v["response"]["generateVideoResponse"]["generatedSamples"];
    let Some(uri) = samples[0]["video"]["uri"].as_str() else {
        return JobState::Failed("the provider generated no video (filtered)".into());
    };
    if !same_origin(uri, base) {
        // Never fetched: the job is as good as failed.
        return JobState::Failed(
            "the provider's video is on another origin than the provider; Hub does not send the credential there"
                .into(),
        );
    }
    JobState::Done {
        seconds: None,
        content_url: uri.to_string(),
        expires_at: None,
    }
}

/// Whether `url` is on the scheme, host and port of `base`.
fn same_origin(url: &str, base: &str) -> bool {
    match (url::Url::parse(url), url::Url::parse(base)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// `"8"` or `8`.
fn number_or_text(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn error_message(e: &Value) -> String {
    e["message"]
        .as_str()
        .or_else(|| e.as_str())
        .unwrap_or("the provider reported no reason")
        .chars()
        .take(500)
        .collect()
}

/// The request that fetches a finished video.
pub fn content_request(content_url: &str, t: &Target) -> UpstreamRequest {
    get(t, content_url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veo_uris_are_fetched_only_from_the_providers_origin() {
        let base = "https://generativelanguage.googleapis.com/v1beta";
        assert!(same_origin(
            "https://generativelanguage.googleapis.com/v1beta/files/a:download?alt=media",
            base
        ));
        assert!(!same_origin("https://evil.example/files/a", base));
        assert!(!same_origin("http://generativelanguage.googleapis.com/files/a", base));
        let done = json!({"done": true, "response": {"generateVideoResponse": {"generatedSamples": [{"video": {"uri": "https://evil.example/x"}}]}}});
        assert!(matches!(veo_state(&done, base), JobState::Failed(why) if why.contains("another origin")));
        let failed = json!({"done": true, "error": {"code": 3, "message": "blocked"}});
        assert_eq!(veo_state(&failed, base), JobState::Failed("blocked".into()));
        assert_eq!(
            veo_state(&json!({"name": "x"}), base),
            JobState::Running {
                queued: false,
                progress: None
            }
        );
    }

    #[test]
    fn sizes_become_aspect_ratios_and_seconds_read_as_sent() {
        assert_eq!(aspect_ratio("1280x720"), Some("16:9"));
        assert_eq!(aspect_ratio("720x1280"), Some("9:16"));
        assert_eq!(aspect_ratio("big"), None);
        assert_eq!(number_or_text(&json!("8")), Some(8));
        assert_eq!(number_or_text(&json!(12)), Some(12));
    }
}
