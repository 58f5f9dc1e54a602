//! Video generation, metered per second generated. The provider's job is
//! followed within the call (`Exchange::follow`): started, polled with a
//! growing interval for up to [`MAX_WAIT_MS`], and its video fetched, while
//! the hold (the seconds asked for × the video rate) stands. A job that
//! fails, or outlasts the wait, fails the call: the hold is released in full
//! and nothing is billed.

use super::failover::{provider_error, transport_failure, Attempt, Failure};
use super::pipeline::{self, collect, Exchange, Followed, Plan, Whole};
use crate::auth::Caller;
use crate::codec::Meta;
use crate::config::{Route, Settings};
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::kinds::{Endpoint, ModelKind};
use crate::metering::estimate::PromptSize;
use crate::metering::Usage;
use crate::ports::UpstreamRequest;
use crate::providers::video::{self, JobState, VideoAsk};
use crate::providers::Target;
use crate::Hub;
use base64::Engine;
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;

/// Longest a call waits for its video (AIGNE's client gives up after 3 minutes).
pub const MAX_WAIT_MS: u64 = 170_000;
/// First and longest pause between polls.
const FIRST_POLL_MS: u64 = 250;
const LONGEST_POLL_MS: u64 = 5_000;
/// Seconds held for when the caller names no duration, and the most one may name.
pub const MAX_SECONDS: u64 = 60;
/// Seconds billed when the provider reports none and none was asked for (Veo's default).
const PROVIDER_DEFAULT_SECONDS: u64 = 8;

/// The seconds a finished video is billed for: what the provider reports,
/// else what was asked, else its default; never more than `held` (a provider
/// reporting more is billed for what the hold covers).
pub fn seconds_billed(reported: Option<u64>, asked: Option<u64>, held: u64) -> u64 {
    reported.or(asked).unwrap_or(PROVIDER_DEFAULT_SECONDS).min(held)
}
/// Largest video fetched.
const MAX_VIDEO_BYTES: usize = 64 * 1024 * 1024;

/// A finished generation: the video (base64) and the seconds it lasts.
pub struct Video {
    pub base64: String,
    pub seconds: u64,
}

/// Runs a generation through the pipeline; returns the video and the credits billed.
pub async fn generate(
    hub: &Hub,
    caller: Arc<Caller>,
    req: &Request,
    request_id: &str,
    model: String,
    ask: VideoAsk,
) -> Result<(Video, Response), ApiError> {
    let mut exchange = Generate::new(Endpoint::Video, model, ask, request_id);
    let res = pipeline::run(hub, caller, req, request_id, &mut exchange).await?;
    let answer = match res.body() {
        crate::http::Body::Full(b) => serde_json::from_slice::<Generated>(b).unwrap_or_default(),
        crate::http::Body::Stream(_) => Generated::default(),
    };
    let video = Video {
        base64: answer.data,
        seconds: answer.seconds,
    };
    Ok((video, res))
}

/// The answer a followed generation leaves for the pipeline: the seconds
/// generated and the video, base64.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Generated {
    seconds: u64,
    data: String,
}

/// One generation, followed to its video (or, through `/v1/videos`, started
/// and followed after the call: `gateway::videos`).
pub(crate) struct Generate {
    plan: Plan,
    pub ask: VideoAsk,
    seed: String,
}

impl Generate {
    pub fn new(endpoint: Endpoint, model: String, ask: VideoAsk, request_id: &str) -> Generate {
        Generate {
            plan: Plan {
                endpoint,
                kind: ModelKind::Video,
                model,
                prompt: PromptSize {
                    text_bytes: ask.prompt.len() as u64,
                    messages: 1,
                    images: 0,
                },
                stream: false,
                answer_limit: 1024 * 1024,
            },
            seed: request_id
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(40)
                .collect(),
            ask,
        }
    }

    /// The most seconds billed: those asked for, else the most one may ask.
    pub fn seconds_bound(&self) -> u64 {
        self.ask.seconds.unwrap_or(MAX_SECONDS)
    }

    /// Polls the job until it ends, or fails the attempt after [`MAX_WAIT_MS`].
    async fn wait(&self, hub: &Hub, t: &Target<'_>, job: &str) -> Result<(Option<u64>, String), Failure> {
        let started = hub.clock().monotonic_us() / 1000;
        let mut pause = FIRST_POLL_MS;
        loop {
            hub.background().sleep(pause).await;
            let answer = send(hub, video::poll_request(job, t), 1024 * 1024).await?;
            match video::job_state(job, &answer, t).map_err(Failure::retryable)? {
                JobState::Done {
                    seconds, content_url, ..
                } => return Ok((seconds, content_url)),
                JobState::Failed(why) => {
                    return Err(Failure::fatal(ApiError::provider(format!(
                        "The video generation failed: {why}"
                    ))))
                }
                JobState::Running { .. } => {}
            }
            if hub.clock().monotonic_us() / 1000 - started + pause > MAX_WAIT_MS {
                return Err(Failure::fatal(ApiError::provider(format!(
                    "The video was not ready within {} seconds.",
                    MAX_WAIT_MS / 1000
                ))));
            }
            pause = (pause * 2).min(LONGEST_POLL_MS);
        }
    }
}

/// One request to the provider, its 2xx answer read whole.
pub(crate) async fn send(hub: &Hub, req: UpstreamRequest, limit: usize) -> Result<Bytes, Failure> {
    let mut resp = hub.send_upstream(req).await.map_err(transport_failure)?;
    if !(200..300).contains(&resp.status) {
        return Err(provider_error(resp).await);
    }
    collect(&mut resp, limit).await
}

impl Exchange for Generate {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    fn worst_output(&self, _route: &Route, _settings: &Settings) -> Usage {
        Usage {
            video_seconds: self.seconds_bound(),
            ..Default::default()
        }
    }

    fn check(&mut self, route: &Route) -> Result<(), ApiError> {
        match route.provider.vendor.wire {
            crate::providers::Wire::OpenAi | crate::providers::Wire::Gemini => Ok(()),
            _ => Err(crate::chat::unsupported(route.provider.vendor.kind, "Video generation")),
        }
    }

    fn request(&mut self, hub: &Hub, at: &Attempt, _settings: &Settings) -> Result<UpstreamRequest, ApiError> {
        video::create_request(&self.ask, &self.seed, &at.target(hub, 1))
    }

    fn follow<'a>(&'a self, hub: &'a Hub, at: &'a Attempt<'a>, answer: Bytes) -> Followed<'a> {
        Box::pin(async move {
            let t = at.target(hub, 1);
            let job = video::job_id(t.vendor.wire, &answer).map_err(Failure::retryable)?;
            let (reported, url) = self.wait(hub, &t, &job).await?;
            let data = send(hub, video::content_request(&url, &t), MAX_VIDEO_BYTES).await?;
            let seconds = seconds_billed(reported, self.ask.seconds, self.seconds_bound());
            let data = base64::engine::general_purpose::STANDARD.encode(&data);
            let answer = serde_json::to_vec(&Generated { seconds, data })
                .map_err(|e| Failure::fatal(ApiError::internal(e.to_string())))?;
            Ok(Bytes::from(answer))
        })
    }

    fn read(&self, _route: &Route, body: Bytes, _meta: &Meta) -> Result<Whole, ApiError> {
        // Only the seconds: the video itself is skipped, not copied.
        #[derive(serde::Deserialize)]
        struct Seconds {
            seconds: u64,
        }
        let seconds = serde_json::from_slice::<Seconds>(&body).map_or(0, |s| s.seconds);
        Ok(Whole::Raw {
            body,
            usage: Some(Usage {
                video_seconds: seconds,
                ..Default::default()
            }),
            output_bytes: 0,
        })
    }
}

/// Seconds as a caller sends them: `"8"` or `8`, from 1 to [`MAX_SECONDS`].
pub fn seconds_of(v: Option<&Value>, field: &str) -> Result<Option<u64>, ApiError> {
    let n = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(v) => v.as_u64(),
    };
    match n {
        Some(n @ 1..=MAX_SECONDS) => Ok(Some(n)),
        _ => Err(ApiError::invalid_field(
            field,
            format!("must be a whole number of seconds from 1 to {MAX_SECONDS}"),
        )),
    }
}
