//! OpenAI's asynchronous videos: `POST /v1/videos` starts a generation and
//! answers at once; `GET /v1/videos/{id}` tells where it stands;
//! `GET /v1/videos/{id}/content` streams the finished MP4; `GET /v1/videos`
//! lists them and `DELETE /v1/videos/{id}` hides one.
//!
//! The create call runs through the pipeline like `/api/v2/video` (the same
//! provider requests, [`Generate`]), but its hold (the seconds asked for × the
//! video rate) outlives the call: the job row keeps it until the job ends.
//! Retrieving a running job polls the provider once; a scheduled job
//! ([`advance_jobs`], in `Hub::tick`) polls the jobs nobody asks about. When
//! a poll finds the job ended, the conditional update that ends the row
//! decides the outcome once (concurrent polls, instances and ticks included);
//! only its winner settles: the seconds generated (capped by those held) at
//! the rate held, or, for a failure, the hold released and nothing billed.

use super::failover::{provider_error, scrub, transport_failure, Attempt};
use super::pipeline::{self, Exchange, Opened, Plan, Whole};
use super::relay::CallMeter;
use super::video::{seconds_billed, seconds_of, Generate};
use crate::auth::Caller;
use crate::codec::Meta;
use crate::config::{Route, Settings, Snapshot};
use crate::error::ApiError;
use crate::http::{json, Body, Request, Response, StatusCode};
use crate::kinds::{CallStatus, Endpoint, ModelKind};
use crate::metering::money::Credits;
use crate::metering::{Rates, Usage};
use crate::ports::{Stmt, UpstreamRequest};
use crate::providers::video::{self, JobState, VideoAsk};
use crate::providers::Target;
use crate::store::{call_log_stmt, CallLog, Settlement, Store, VideoEnd, VideoJob, VideoStatus};
use crate::Hub;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// How long a job may run at its provider before Hub gives up on it (fails
/// it, releasing its hold). Sora and Veo finish in minutes; this allows for
/// long queues.
pub const JOB_DEADLINE_MS: i64 = 2 * 60 * 60 * 1000;
/// How long a job's hold row lives if nothing settles it: past the deadline,
/// so the expired-hold job never releases the hold of a job still running
/// (and if it did, settling after it stays exact: the hold closes once).
const HOLD_TTL_MS: i64 = JOB_DEADLINE_MS + 60 * 60 * 1000;
/// Jobs one tick polls at most.
const JOBS_PER_TICK: u64 = 20;
/// A decided job whose writes have not committed after this long lost them
/// (its process ended between the decision and the commit): a tick commits them.
const RECOVER_AFTER_MS: i64 = 5 * 60 * 1000;
/// Largest provider status answer read.
const MAX_STATUS: usize = 1024 * 1024;

/// `POST /v1/videos`: OpenAI's form (or JSON) of `model`, `prompt`,
/// `seconds`, `size`; answers the queued video object.
pub async fn create(hub: &Hub, caller: Arc<Caller>, req: Request, request_id: &str) -> Result<Response, ApiError> {
    let fields = Fields::of(&req)?;
    if fields.has("input_reference") {
        return Err(ApiError::invalid_field(
            "input_reference",
            "is not supported: Hub generates videos from a text prompt only",
        ));
    }
    let model = match fields.text("model")? {
        Some(m) if !m.trim().is_empty() => m,
        _ => return Err(ApiError::invalid_field("model", "is required: name the model to call")),
    };
    let prompt = match fields.text("prompt")? {
        Some(p) if !p.trim().is_empty() => p,
        _ => return Err(ApiError::invalid_field("prompt", "is required")),
    };
    let ask = VideoAsk {
        prompt,
        seconds: seconds_of(fields.value("seconds").as_ref(), "seconds")?,
        size: fields.text("size")?,
    };
    let mut exchange = StartJob(Generate::new(Endpoint::Videos, model, ask, request_id));
    pipeline::run(hub, caller, &req, request_id, &mut exchange).await
}

/// A create request's fields, from a multipart form or a JSON object.
enum Fields {
    Form(crate::multipart::Form),
    Json(Map<String, Value>),
}

impl Fields {
    fn of(req: &Request) -> Result<Fields, ApiError> {
        let ct = crate::http::header(req.headers(), "content-type");
        if ct.is_some_and(|c| c.starts_with("multipart/form-data")) {
            return crate::multipart::parse(ct, req.body()).map(Fields::Form);
        }
        crate::protocols::openai::json_object(req.body()).map(Fields::Json)
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Fields::Form(f) => f.part(name).is_some(),
            Fields::Json(m) => m.get(name).is_some_and(|v| !v.is_null()),
        }
    }

    fn value(&self, name: &str) -> Option<Value> {
        match self {
            Fields::Form(f) => f
                .part(name)
                .map(|p| Value::String(String::from_utf8_lossy(&p.data).into_owned())),
            Fields::Json(m) => m.get(name).cloned(),
        }
    }

    /// A text field: a form part, or a JSON string (400 for any other JSON).
    fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self {
            Fields::Form(f) => Ok(f.text(name)?.map(str::to_string)),
            Fields::Json(m) => match m.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ApiError::invalid_field(name, "must be a string")),
            },
        }
    }
}

/// A generation started and followed after the call: [`Generate`]'s
/// requests, its hold kept by the job row.
struct StartJob(Generate);

impl Exchange for StartJob {
    fn plan(&self) -> &Plan {
        self.0.plan()
    }

    fn worst_output(&self, route: &Route, settings: &Settings) -> Usage {
        self.0.worst_output(route, settings)
    }

    fn check(&mut self, route: &Route) -> Result<(), ApiError> {
        self.0.check(route)
    }

    fn request(&mut self, hub: &Hub, at: &Attempt, settings: &Settings) -> Result<UpstreamRequest, ApiError> {
        self.0.request(hub, at, settings)
    }

    fn read(&self, _route: &Route, body: Bytes, _meta: &Meta) -> Result<Whole, ApiError> {
        Ok(Whole::Job(body))
    }

    fn hold_outlives_call(&self) -> bool {
        true
    }

    fn hold_ttl_ms(&self, _settings: &Settings) -> i64 {
        HOLD_TTL_MS
    }

    fn open_job<'a>(&'a self, hub: &'a Hub, meter: &'a CallMeter, answer: Bytes) -> Opened<'a> {
        Box::pin(async move {
            let upstream_id = video::job_id(meter.route.provider.vendor.wire, &answer)?;
            let job = self.job_row(hub, meter, upstream_id);
            let mut stmts: Vec<Stmt> = meter.earlier_attempts.iter().map(call_log_stmt).collect();
            stmts.push(Store::insert_video_job_stmt(&job));
            hub.store().commit(stmts).await?;
            tracing::info!(call_id = %job.call_id, video = %job.id, provider = %job.provider, held = %job.held, "video job started");
            let mut res = json(StatusCode::OK, &video_object(&job));
            crate::http::set_header(&mut res, "x-hub-call-id", &job.call_id);
            Ok(res)
        })
    }
}

impl StartJob {
    /// The row of a job the provider just started.
    fn job_row(&self, hub: &Hub, meter: &CallMeter, upstream_id: String) -> VideoJob {
        let now = hub.now_ms();
        let ask = &self.0.ask;
        VideoJob {
            id: hub.new_id("video"),
            call_id: meter.call_id.clone(),
            attempt: meter.attempt,
            user_id: meter.caller.user_id.clone(),
            key_id: Some(meter.caller.key_id.clone()),
            app: Some(meter.app.clone()),
            request_id: Some(meter.request_id.clone()),
            provider_id: meter.route.provider.id.clone(),
            provider: meter.route.provider.name.clone(),
            credential_id: meter.credential_id.clone(),
            upstream_id,
            upstream_model: meter.route.model.model.clone(),
            model: meter.model.clone(),
            prompt: ask.prompt.clone(),
            seconds: ask.seconds,
            size: ask.size.clone(),
            held_seconds: self.0.seconds_bound(),
            video_rate: meter.route.model.rates.video,
            billed: meter.billed,
            held: meter.hold.unwrap_or(Credits::ZERO),
            key_limited: meter.caller.budgeted(),
            status: VideoStatus::Queued,
            progress: 0,
            billed_seconds: None,
            credits: Credits::ZERO,
            content_url: None,
            error: None,
            created_at: now,
            updated_at: now,
            checked_at: now,
            deadline_at: now + JOB_DEADLINE_MS,
            completed_at: None,
            expires_at: None,
            settled_at: None,
            deleted_at: None,
        }
    }
}

/// OpenAI's video object (times in unix seconds, `seconds` as text).
fn video_object(job: &VideoJob) -> Value {
    let secs = |ms: i64| ms.div_euclid(1000);
    let error = match (job.status, &job.error) {
        (VideoStatus::Failed, why) => json!({
            "code": "video_generation_failed",
            "message": why.as_deref().unwrap_or("The video generation failed."),
        }),
        _ => Value::Null,
    };
    json!({
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": job.status.as_str(),
        "progress": job.progress,
        "prompt": job.prompt,
        "seconds": job.billed_seconds.or(job.seconds).map(|s| s.to_string()),
        "size": job.size,
        "created_at": secs(job.created_at),
        "completed_at": job.completed_at.filter(|_| job.status == VideoStatus::Completed).map(secs),
        "expires_at": job.expires_at.map(secs),
        "error": error,
        "remixed_from_video_id": null,
    })
}

/// The caller's job `id`: 404 for anyone else's, a deleted one or none.
async fn owned(hub: &Hub, caller: &Caller, id: &str) -> Result<VideoJob, ApiError> {
    hub.store()
        .video_job(id)
        .await?
        .filter(|j| j.user_id == caller.user_id && j.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found(format!("No video found with id '{id}'.")).with_param("video_id"))
}

/// `GET /v1/videos/{id}`: the video object, the provider polled once first
/// while the job runs.
pub async fn retrieve(hub: &Hub, caller: Arc<Caller>, id: &str) -> Result<Response, ApiError> {
    let mut job = owned(hub, &caller, id).await?;
    if job.status.is_open() {
        job = advance(hub, job).await?;
    }
    Ok(json(StatusCode::OK, &video_object(&job)))
}

/// `GET /v1/videos`: the caller's videos, newest first (`order=asc` for
/// oldest), `limit` (1 to 100, default 20) after the id `after`.
pub async fn list(hub: &Hub, caller: Arc<Caller>, req: &Request) -> Result<Response, ApiError> {
    let mut after = None;
    let mut limit = 20;
    let mut newest_first = true;
    for (k, v) in crate::http::query_pairs(req.uri()) {
        match k.as_str() {
            "after" => after = Some(v),
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| ApiError::invalid_field("limit", "must be an integer from 1 to 100"))?
            }
            "order" => {
                newest_first = match v.as_str() {
                    "desc" => true,
                    "asc" => false,
                    _ => return Err(ApiError::invalid_field("order", "must be `asc` or `desc`")),
                }
            }
            _ => {}
        }
    }
    let mut jobs = hub
        .store()
        .video_jobs_of(&caller.user_id, after.as_deref(), newest_first, limit)
        .await?;
    let has_more = jobs.len() as i64 > limit;
    jobs.truncate(limit as usize);
    Ok(json(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": jobs.iter().map(video_object).collect::<Vec<_>>(),
            "first_id": jobs.first().map(|j| &j.id),
            "last_id": jobs.last().map(|j| &j.id),
            "has_more": has_more,
        }),
    ))
}

/// `DELETE /v1/videos/{id}`: the video is listed and served no more. A job
/// still running goes on and is settled as any other.
pub async fn delete(hub: &Hub, caller: Arc<Caller>, id: &str) -> Result<Response, ApiError> {
    let job = owned(hub, &caller, id).await?;
    hub.store()
        .delete_video_job(&job.id, &caller.user_id, hub.now_ms())
        .await?;
    Ok(json(
        StatusCode::OK,
        &json!({"id": job.id, "object": "video.deleted", "deleted": true}),
    ))
}

/// `GET /v1/videos/{id}/content`: the finished MP4, streamed from the
/// provider as it arrives (`variant=video` only).
pub async fn content(hub: &Hub, caller: Arc<Caller>, id: &str, req: &Request) -> Result<Response, ApiError> {
    for (k, v) in crate::http::query_pairs(req.uri()) {
        if k == "variant" && v != "video" {
            return Err(ApiError::invalid_field(
                "variant",
                "is not supported: only `video` is served",
            ));
        }
    }
    let job = owned(hub, &caller, id).await?;
    let (VideoStatus::Completed, Some(url)) = (job.status, &job.content_url) else {
        return Err(ApiError::bad_request(format!(
            "The video is not ready: it is {}.",
            job.status.as_str()
        )));
    };
    let snap = hub.snapshot().await?;
    let t = target(hub, &snap, &job)
        .ok_or_else(|| ApiError::unavailable("The provider that generated this video is not available."))?;
    let resp = hub
        .send_upstream(video::content_request(url, &t))
        .await
        .map_err(|e| scrub(transport_failure(e).error, t.secret))?;
    if !(200..300).contains(&resp.status) {
        return Err(scrub(provider_error(resp).await.error, t.secret));
    }
    let content_type = crate::http::header(&resp.headers, "content-type")
        .filter(|ct| ct.starts_with("video/") || ct.starts_with("application/octet-stream"))
        .unwrap_or("video/mp4")
        .to_string();
    let mut res = http::Response::new(Body::Stream(resp.body));
    crate::http::set_header(&mut res, "content-type", &content_type);
    Ok(res)
}

/// Where the job's provider is, with the credential that started it; None
/// when the provider or that credential is gone or disabled.
fn target<'a>(hub: &Hub, snap: &'a Snapshot, job: &'a VideoJob) -> Option<Target<'a>> {
    let provider = snap.providers.values().find(|p| p.id == job.provider_id)?;
    let secret = match &job.credential_id {
        Some(id) => Some(provider.credentials.iter().find(|c| &c.id == id)?.secret.as_str()),
        None => None,
    };
    Some(Target {
        vendor: provider.vendor,
        base_url: &provider.base_url,
        region: &provider.region,
        secret,
        model: &job.upstream_model,
        timeouts: hub.options().timeouts,
        now_ms: hub.now_ms(),
        default_max_tokens: 1,
        overrides: None,
    })
}

/// What one poll of the provider found.
enum Polled {
    State(JobState),
    /// No answer to act on (the provider unreachable, erring, or its
    /// credential disabled): asked again later, until the deadline.
    Unknown(String),
}

async fn poll(hub: &Hub, job: &VideoJob) -> Result<Polled, ApiError> {
    let snap = hub.snapshot().await?;
    let Some(t) = target(hub, &snap, job) else {
        return Ok(Polled::Unknown("its provider or credential is not available".into()));
    };
    // What the provider says reaches the caller (a failure's reason) or the logs: never its secret.
    let clean = |why: String| scrub(ApiError::provider(why), t.secret).message;
    let mut resp = match hub.send_upstream(video::poll_request(&job.upstream_id, &t)).await {
        Ok(r) => r,
        Err(e) => return Ok(Polled::Unknown(clean(e.to_string()))),
    };
    if resp.status == 404 {
        return Ok(Polled::State(JobState::Failed(
            "the provider no longer knows this job".into(),
        )));
    }
    if !(200..300).contains(&resp.status) {
        return Ok(Polled::Unknown(clean(provider_error(resp).await.error.message)));
    }
    let body = match pipeline::collect(&mut resp, MAX_STATUS).await {
        Ok(b) => b,
        Err(f) => return Ok(Polled::Unknown(clean(f.error.message))),
    };
    Ok(match video::job_state(&job.upstream_id, &body, &t) {
        Ok(JobState::Failed(why)) => Polled::State(JobState::Failed(clean(why))),
        Ok(state) => Polled::State(state),
        Err(e) => Polled::Unknown(clean(e.message)),
    })
}

/// Polls a running job once and records where it stands, settling it if it
/// ended (or is past its deadline); returns the job as it now is.
pub(crate) async fn advance(hub: &Hub, job: VideoJob) -> Result<VideoJob, ApiError> {
    let now = hub.now_ms();
    let state = if now >= job.deadline_at {
        JobState::Failed(format!(
            "the video was not ready within {} minutes",
            JOB_DEADLINE_MS / 60_000
        ))
    } else {
        match poll(hub, &job).await? {
            Polled::State(s) => s,
            Polled::Unknown(why) => {
                tracing::warn!(video = %job.id, "video job not polled: {why}");
                hub.store()
                    .note_video_progress(&job.id, job.status, job.progress, now)
                    .await?;
                return Ok(job);
            }
        }
    };
    let end = match state {
        JobState::Running { queued, progress } => {
            let status = if queued {
                VideoStatus::Queued
            } else {
                VideoStatus::InProgress
            };
            hub.store()
                .note_video_progress(&job.id, status, progress.unwrap_or(job.progress), now)
                .await?;
            None
        }
        JobState::Done {
            seconds,
            content_url,
            expires_at,
        } => {
            let seconds = seconds_billed(seconds, job.seconds, job.held_seconds);
            let usage = Usage {
                video_seconds: seconds,
                ..Default::default()
            };
            Some(VideoEnd::Completed {
                seconds,
                credits: rates_of(&job).cost(&usage),
                content_url,
                expires_at,
            })
        }
        JobState::Failed(why) => Some(VideoEnd::Failed(why)),
    };
    if let Some(end) = end {
        finish(hub, &job, end, now).await?;
    }
    Ok(hub.store().video_job(&job.id).await?.unwrap_or(job))
}

fn rates_of(job: &VideoJob) -> Rates {
    Rates {
        video: job.video_rate,
        ..Default::default()
    }
}

/// Ends a job: the claim decides the outcome once; its winner settles it
/// (the credit book at once, the database through the settlement journal).
async fn finish(hub: &Hub, job: &VideoJob, end: VideoEnd, now: i64) -> Result<(), ApiError> {
    let mut claim = Claim {
        hub: hub.clone(),
        job: job.clone(),
        end: Some(end.clone()),
        by: hub.new_id("end"),
        now,
    };
    let won = hub.store().claim_video_end(&job.id, &end, &claim.by, now).await;
    claim.end = None;
    if won? {
        settle_won(hub, job, end, now);
    }
    Ok(())
}

/// A claim in flight. Dropped before its answer (the request went away),
/// it is finished in the background: made again (a no-op if it applied),
/// then settled if it was this claim that ended the job; so a decision is
/// never left unsettled while the process runs.
struct Claim {
    hub: Hub,
    job: VideoJob,
    /// None once the claim answered.
    end: Option<VideoEnd>,
    by: String,
    now: i64,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let Some(end) = self.end.take() else { return };
        let (hub, job, by, now) = (
            self.hub.clone(),
            self.job.clone(),
            std::mem::take(&mut self.by),
            self.now,
        );
        self.hub.background().spawn(Box::pin(async move {
            let store = hub.store();
            let won = match store.claim_video_end(&job.id, &end, &by, now).await {
                Ok(true) => Ok(true),
                Ok(false) => store.video_decided_by(&job.id, &by).await,
                Err(e) => Err(e),
            };
            match won {
                Ok(true) => settle_won(&hub, &job, end, now),
                Ok(false) => {}
                // Left to the recovery of lost settlements.
                Err(e) => tracing::error!(video = %job.id, "could not finish an abandoned video claim: {e}"),
            }
        }));
    }
}

/// Settles the job this process's claim ended.
fn settle_won(hub: &Hub, job: &VideoJob, end: VideoEnd, now: i64) {
    let ended = ended(job, end, now);
    if let (true, Some(book)) = (ended.billed, hub.book()) {
        book.settle(&ended.user_id, ended.held, charged(&ended));
    }
    tracing::info!(call_id = %ended.call_id, video = %ended.id, status = ended.status.as_str(), credits = %charged(&ended), "video job ended");
    hub.telemetry()
        .metrics
        .observe_call(&[&call_log(&ended, usage_of(&ended))]);
    hub.commit_settlement(&ended.call_id, outcome_stmts(hub, &ended, now));
}

/// The job as the claim of `end` left its row.
fn ended(job: &VideoJob, end: VideoEnd, now: i64) -> VideoJob {
    let mut j = job.clone();
    j.completed_at = Some(now);
    j.updated_at = now;
    j.checked_at = now;
    match end {
        VideoEnd::Completed {
            seconds,
            credits,
            content_url,
            expires_at,
        } => {
            j.status = VideoStatus::Completed;
            j.progress = 100;
            j.billed_seconds = Some(seconds);
            j.credits = credits;
            j.content_url = Some(content_url);
            j.expires_at = expires_at;
        }
        VideoEnd::Failed(why) => {
            j.status = VideoStatus::Failed;
            j.error = Some(why);
        }
    }
    j
}

/// What an ended job takes off the balance.
fn charged(job: &VideoJob) -> Credits {
    match (job.status, job.billed) {
        (VideoStatus::Completed, true) => job.credits,
        _ => Credits::ZERO,
    }
}

/// An ended job's writes, from its row alone (so a lost commit can be
/// redone): a completed one's usage, ledger entry and settled hold; a
/// failed one's released hold; either's call log and key-limit record; and
/// the row marked settled. Idempotent, like every settlement.
fn outcome_stmts(hub: &Hub, job: &VideoJob, now: i64) -> Vec<Stmt> {
    let hold_row = job.billed && hub.holds_in_database();
    let decided = job.completed_at.unwrap_or(now);
    let mut stmts = match job.status {
        VideoStatus::Completed => {
            let usage = usage_of(job);
            let settlement = Settlement {
                call_id: job.call_id.clone(),
                user_id: job.user_id.clone(),
                key_id: job.key_id.clone(),
                app: job.app.clone(),
                provider_id: Some(job.provider_id.clone()),
                model: format!("{}/{}", job.provider, job.upstream_model),
                kind: ModelKind::Video,
                usage,
                rates: rates_of(job),
                credits: job.credits,
                billed: job.billed,
                estimated: false,
                hold: hold_row.then_some(crate::metering::HeldIn::Row),
                key_limited: job.key_limited,
                now_ms: decided,
                log: call_log(job, usage),
            };
            Store::settlement_stmts(&settlement, &[])
        }
        _ => {
            let mut s = vec![call_log_stmt(&call_log(job, Usage::default()))];
            if hold_row {
                s.push(Store::release_hold_stmt(&job.call_id, decided));
            }
            if job.key_limited {
                s.push(Store::key_call_stmt(&job.call_id, 0, 0));
            }
            s
        }
    };
    stmts.push(Store::video_settled_stmt(&job.id, now));
    stmts
}

/// The call-log row of an ended job's call: from its start to its end.
/// What a decided job used: the seconds billed, if it completed.
fn usage_of(job: &VideoJob) -> Usage {
    Usage {
        video_seconds: job
            .billed_seconds
            .filter(|_| job.status == VideoStatus::Completed)
            .unwrap_or(0),
        ..Default::default()
    }
}

fn call_log(job: &VideoJob, usage: Usage) -> CallLog {
    let failed = job.status == VideoStatus::Failed;
    CallLog {
        id: format!("{}-{}", job.call_id, job.attempt),
        call_id: job.call_id.clone(),
        attempt: job.attempt,
        request_id: job.request_id.clone(),
        endpoint: Endpoint::Videos,
        user_id: Some(job.user_id.clone()),
        key_id: job.key_id.clone(),
        app: job.app.clone(),
        provider_id: Some(job.provider_id.clone()),
        provider: Some(job.provider.clone()),
        credential_id: job.credential_id.clone(),
        model: job.model.clone(),
        alias: None,
        upstream_model: Some(job.upstream_model.clone()),
        stream: false,
        status: if failed {
            CallStatus::Failed
        } else {
            CallStatus::Success
        },
        http_status: Some(if failed { 502 } else { 200 }),
        error: job.error.clone(),
        usage,
        credits: job.credits,
        cache_saved: Credits::ZERO,
        response_cache: None,
        response_cache_saved: Credits::ZERO,
        estimated: false,
        clamped: false,
        duration_ms: job.completed_at.unwrap_or(job.updated_at) - job.created_at,
        ttfb_ms: None,
        upstream_ttfb_ms: None,
        created_at: job.created_at,
    }
}

/// What one run of [`advance_jobs`] did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Advanced {
    /// Jobs polled, and recovered settlements committed.
    pub count: u64,
    /// Whether it stopped at a bound with more left.
    pub more: bool,
}

impl Hub {
    /// The scheduled job: polls the running jobs checked longest ago (at
    /// most [`JOBS_PER_TICK`], until `deadline_ms`), so a job nobody polls
    /// is still settled or released; on a shared database also commits the
    /// writes of jobs decided long ago whose commit was lost.
    pub async fn advance_video_jobs(&self, now_ms: i64, deadline_ms: i64) -> Result<Advanced, ApiError> {
        let mut done = Advanced::default();
        if self.holds_in_database() {
            let (n, more) = self
                .settle_lost_video_jobs(now_ms - RECOVER_AFTER_MS, JOBS_PER_TICK)
                .await?;
            done.count += n;
            done.more = more;
        }
        let jobs = self.store().open_video_jobs(now_ms, JOBS_PER_TICK).await?;
        done.more |= jobs.len() as u64 >= JOBS_PER_TICK;
        for job in jobs {
            if self.now_ms() >= deadline_ms {
                done.more = true;
                break;
            }
            advance(self, job).await?;
            done.count += 1;
        }
        Ok(done)
    }

    /// Every lost settlement ([`Hub::settle_lost_video_jobs`]), at start-up
    /// on the embedded database; returns how many.
    pub(crate) async fn settle_all_lost_video_jobs(&self, now_ms: i64) -> Result<u64, ApiError> {
        let mut settled = 0;
        loop {
            let (n, more) = self.settle_lost_video_jobs(now_ms, 500).await?;
            settled += n;
            if !more {
                return Ok(settled);
            }
        }
    }

    /// Commits the writes of jobs decided before `decided_before` whose
    /// commit was lost, at most `limit`; returns how many, and whether more
    /// are left. On an embedded database it runs at start-up only, before
    /// the credit book reads the balances (a running book already counts
    /// a settlement still being committed).
    pub(crate) async fn settle_lost_video_jobs(
        &self,
        decided_before: i64,
        limit: u64,
    ) -> Result<(u64, bool), ApiError> {
        let jobs = self.store().unsettled_video_jobs(decided_before, limit).await?;
        let now = self.now_ms();
        for job in &jobs {
            tracing::warn!(call_id = %job.call_id, video = %job.id, "committing a video job's settlement that was lost");
            self.store().commit(outcome_stmts(self, job, now)).await?;
        }
        Ok((jobs.len() as u64, jobs.len() as u64 >= limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> VideoJob {
        VideoJob {
            id: "video_1".into(),
            call_id: "call_1".into(),
            attempt: 2,
            user_id: "usr_1".into(),
            key_id: None,
            app: None,
            request_id: None,
            provider_id: "prv_1".into(),
            provider: "openai".into(),
            credential_id: None,
            upstream_id: "video_upstream".into(),
            upstream_model: "sora-2".into(),
            model: "sora-2".into(),
            prompt: "waves".into(),
            seconds: Some(8),
            size: Some("1280x720".into()),
            held_seconds: 8,
            video_rate: crate::metering::money::Rate::parse("0.1").unwrap(),
            billed: true,
            held: Credits::parse("0.8").unwrap(),
            key_limited: false,
            status: VideoStatus::InProgress,
            progress: 40,
            billed_seconds: None,
            credits: Credits::ZERO,
            content_url: None,
            error: None,
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_000,
            checked_at: 1_700_000_000_000,
            deadline_at: 1_700_000_000_000 + JOB_DEADLINE_MS,
            completed_at: None,
            expires_at: None,
            settled_at: None,
            deleted_at: None,
        }
    }

    #[test]
    fn a_running_job_reads_as_openais_video_object() {
        let v = video_object(&running());
        assert_eq!(v["object"], "video");
        assert_eq!(v["status"], "in_progress");
        assert_eq!(v["seconds"], "8");
        assert_eq!(v["created_at"], 1_700_000_000);
        assert!(v["completed_at"].is_null() && v["error"].is_null());
    }

    #[test]
    fn an_ended_job_charges_what_it_generated_or_nothing() {
        let done = ended(
            &running(),
            VideoEnd::Completed {
                seconds: 4,
                credits: Credits::parse("0.4").unwrap(),
                content_url: "https://api.openai.com/v1/videos/x/content".into(),
                expires_at: Some(1_700_003_600_000),
            },
            1_700_000_060_000,
        );
        assert_eq!(charged(&done), Credits::parse("0.4").unwrap());
        let v = video_object(&done);
        assert_eq!(
            (&v["status"], &v["seconds"], &v["progress"]),
            (&json!("completed"), &json!("4"), &json!(100))
        );
        assert_eq!(v["completed_at"], 1_700_000_060);
        assert_eq!(call_log(&done, Usage::default()).duration_ms, 60_000);
        assert_eq!(call_log(&done, Usage::default()).id, "call_1-2");

        let failed = ended(&running(), VideoEnd::Failed("refused".into()), 1_700_000_060_000);
        assert_eq!(charged(&failed), Credits::ZERO);
        let v = video_object(&failed);
        assert_eq!(v["error"]["message"], "refused");
        assert!(v["completed_at"].is_null());
        // Billing off: nothing comes off the balance.
        let unbilled = VideoJob { billed: false, ..done };
        assert_eq!(charged(&unbilled), Credits::ZERO);
    }
}
