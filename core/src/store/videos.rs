//! Video jobs (OpenAI's asynchronous `/v1/videos`): a generation Hub started
//! at a provider, followed until it ends. Its outcome is decided once, by
//! the conditional UPDATE that moves it out of `queued`/`in_progress`
//! ([`Store::claim_video_end`]); whoever wins that commits the outcome's
//! writes, which mark the row `settled_at`.

use super::{first, rows, Row, Store};
use crate::metering::money::{Credits, Rate};
use crate::ports::{DbError, Stmt};
use crate::sql;

/// Where a video job stands, as OpenAI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoStatus {
    Queued,
    InProgress,
    Completed,
    Failed,
}

impl VideoStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VideoStatus::Queued => "queued",
            VideoStatus::InProgress => "in_progress",
            VideoStatus::Completed => "completed",
            VideoStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> VideoStatus {
        match s {
            "queued" => VideoStatus::Queued,
            "in_progress" => VideoStatus::InProgress,
            "completed" => VideoStatus::Completed,
            _ => VideoStatus::Failed,
        }
    }

    /// Still running at the provider: its hold is open.
    pub fn is_open(self) -> bool {
        matches!(self, VideoStatus::Queued | VideoStatus::InProgress)
    }
}

/// One video job, as stored.
#[derive(Debug, Clone)]
pub struct VideoJob {
    /// Hub's video id (`video_…`), the only one callers see.
    pub id: String,
    /// The call: the hold's id, the usage row's and the ledger entry's.
    pub call_id: String,
    /// The call's attempt that started the job (its call-log row).
    pub attempt: i64,
    pub user_id: String,
    pub key_id: Option<String>,
    pub app: Option<String>,
    pub request_id: Option<String>,
    pub provider_id: String,
    pub provider: String,
    pub credential_id: Option<String>,
    /// The provider's id of the job (a Sora video id, a Veo operation name).
    pub upstream_id: String,
    /// The provider's model id.
    pub upstream_model: String,
    /// The model as the caller named it.
    pub model: String,
    pub prompt: String,
    /// Seconds asked for (None: the provider's default).
    pub seconds: Option<u64>,
    pub size: Option<String>,
    /// The most seconds billed: what the hold covers.
    pub held_seconds: u64,
    pub video_rate: Rate,
    /// Billing was on when the job started.
    pub billed: bool,
    pub held: Credits,
    /// The key's limits reserved this call.
    pub key_limited: bool,
    pub status: VideoStatus,
    pub progress: u64,
    pub billed_seconds: Option<u64>,
    pub credits: Credits,
    pub content_url: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub checked_at: i64,
    /// Still running then: failed, its hold released.
    pub deadline_at: i64,
    pub completed_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub settled_at: Option<i64>,
    pub deleted_at: Option<i64>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoEnd {
    /// Generated: the seconds billed and what they cost, where the video is
    /// and until when the provider serves it.
    Completed {
        seconds: u64,
        credits: Credits,
        content_url: String,
        expires_at: Option<i64>,
    },
    Failed(String),
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn video_job(r: &Row) -> VideoJob {
    VideoJob {
        id: r.str("id"),
        call_id: r.str("call_id"),
        attempt: r.i64("attempt"),
        user_id: r.str("user_id"),
        key_id: r.opt_str("key_id"),
        app: r.opt_str("app"),
        request_id: r.opt_str("request_id"),
        provider_id: r.str("provider_id"),
        provider: r.str("provider"),
        credential_id: r.opt_str("credential_id"),
        upstream_id: r.str("upstream_id"),
        upstream_model: r.str("upstream_model"),
        model: r.str("model"),
        prompt: r.str("prompt"),
        seconds: r.opt_i64("seconds").map(u64_of),
        size: r.opt_str("size"),
        held_seconds: u64_of(r.i64("held_seconds")),
        video_rate: Rate::from_nanos(r.i64("video_rate")),
        billed: r.bool("billed"),
        held: Credits::from_nanos(r.i64("held")),
        key_limited: r.bool("key_limited"),
        status: VideoStatus::parse(&r.str("status")),
        progress: u64_of(r.i64("progress")),
        billed_seconds: r.opt_i64("billed_seconds").map(u64_of),
        credits: Credits::from_nanos(r.i64("credits")),
        content_url: r.opt_str("content_url"),
        error: r.opt_str("error"),
        created_at: r.i64("created_at"),
        updated_at: r.i64("updated_at"),
        checked_at: r.i64("checked_at"),
        deadline_at: r.i64("deadline_at"),
        completed_at: r.opt_i64("completed_at"),
        expires_at: r.opt_i64("expires_at"),
        settled_at: r.opt_i64("settled_at"),
        deleted_at: r.opt_i64("deleted_at"),
    }
}

const OPEN: &str = "status IN ('queued', 'in_progress')";

impl Store {
    /// The row of a job just started (queued), to commit with the call's
    /// failed attempts.
    pub fn insert_video_job_stmt(j: &VideoJob) -> Stmt {
        sql!(
            "INSERT INTO video_jobs (id, call_id, user_id, key_id, app, request_id, provider_id, provider, credential_id, upstream_id, upstream_model, model, prompt, seconds, size, held_seconds, video_rate, billed, held, key_limited, status, progress, created_at, updated_at, checked_at, deadline_at, attempt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)",
            &j.id, &j.call_id, &j.user_id, j.key_id.clone(), j.app.clone(), j.request_id.clone(), &j.provider_id,
            &j.provider, j.credential_id.clone(), &j.upstream_id, &j.upstream_model, &j.model, &j.prompt, j.seconds,
            j.size.clone(), j.held_seconds, j.video_rate.nanos(), j.billed, j.held.nanos(), j.key_limited,
            j.status.as_str(), j.progress, j.created_at, j.updated_at, j.checked_at, j.deadline_at, j.attempt
        )
    }

    /// A job by Hub's id, deleted or not.
    pub async fn video_job(&self, id: &str) -> Result<Option<VideoJob>, DbError> {
        let r = self
            .db
            .query(sql!("SELECT * FROM video_jobs WHERE id = ?1", id))
            .await?;
        Ok(first(&r).map(|r| video_job(&r)))
    }

    /// A user's jobs not deleted, by creation (ids are time-ordered), after
    /// the job `after` in that order; `limit + 1` rows tell whether more follow.
    pub async fn video_jobs_of(
        &self,
        user_id: &str,
        after: Option<&str>,
        newest_first: bool,
        limit: i64,
    ) -> Result<Vec<VideoJob>, DbError> {
        let (cmp, order) = if newest_first { ("<", "DESC") } else { (">", "ASC") };
        let r = self
            .db
            .query(sql!(
                format!(
                    "SELECT * FROM video_jobs WHERE user_id = ?1 AND deleted_at IS NULL AND (?2 IS NULL OR id {cmp} ?2)
                     ORDER BY id {order} LIMIT ?3"
                ),
                user_id,
                after,
                limit + 1
            ))
            .await?;
        Ok(rows(&r).map(|r| video_job(&r)).collect())
    }

    /// Records a poll of a running job: where it stands and when it was checked.
    pub async fn note_video_progress(
        &self,
        id: &str,
        status: VideoStatus,
        progress: u64,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.db
            .execute(sql!(
                format!(
                    "UPDATE video_jobs SET status = ?2, progress = MAX(progress, ?3), checked_at = ?4, updated_at = ?4
                     WHERE id = ?1 AND {OPEN}"
                ),
                id,
                status.as_str(),
                progress,
                now_ms
            ))
            .await
            .map(drop)
    }

    /// Decides how a running job ended, under the token `by`; false when it
    /// had already ended (another request or instance decided first, and
    /// settles it).
    pub async fn claim_video_end(&self, id: &str, end: &VideoEnd, by: &str, now_ms: i64) -> Result<bool, DbError> {
        let stmt = match end {
            VideoEnd::Completed {
                seconds,
                credits,
                content_url,
                expires_at,
            } => sql!(
                format!(
                    "UPDATE video_jobs SET status = 'completed', progress = 100, billed_seconds = ?2, credits = ?3, content_url = ?4,
                       expires_at = ?5, completed_at = ?6, checked_at = ?6, updated_at = ?6, decided_by = ?7 WHERE id = ?1 AND {OPEN}"
                ),
                id,
                *seconds,
                credits.nanos(),
                content_url,
                *expires_at,
                now_ms,
                by
            ),
            VideoEnd::Failed(why) => sql!(
                format!(
                    "UPDATE video_jobs SET status = 'failed', error = ?2, completed_at = ?3, checked_at = ?3, updated_at = ?3, decided_by = ?4
                     WHERE id = ?1 AND {OPEN}"
                ),
                id,
                why,
                now_ms,
                by
            ),
        };
        Ok(self.db.execute(stmt).await? == 1)
    }

    /// Whether the decision under the token `by` ended the job and is not
    /// settled yet (its maker lost track of whether its claim applied).
    pub async fn video_decided_by(&self, id: &str, by: &str) -> Result<bool, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT 1 AS won FROM video_jobs WHERE id = ?1 AND decided_by = ?2 AND settled_at IS NULL",
                id,
                by
            ))
            .await?;
        Ok(first(&r).is_some())
    }

    /// Marks a job's outcome settled: committed with the outcome's writes.
    pub fn video_settled_stmt(id: &str, now_ms: i64) -> Stmt {
        sql!(
            "UPDATE video_jobs SET settled_at = ?2 WHERE id = ?1 AND settled_at IS NULL",
            id,
            now_ms
        )
    }

    /// Running jobs checked longest ago, at most `limit`, none checked after `checked_before`.
    pub async fn open_video_jobs(&self, checked_before: i64, limit: u64) -> Result<Vec<VideoJob>, DbError> {
        let r = self
            .db
            .query(sql!(
                format!("SELECT * FROM video_jobs WHERE {OPEN} AND checked_at <= ?1 ORDER BY checked_at LIMIT ?2"),
                checked_before,
                limit as i64
            ))
            .await?;
        Ok(rows(&r).map(|r| video_job(&r)).collect())
    }

    /// Jobs whose outcome was decided before `decided_before` but whose
    /// writes never committed (the process ended in between), at most `limit`.
    pub async fn unsettled_video_jobs(&self, decided_before: i64, limit: u64) -> Result<Vec<VideoJob>, DbError> {
        let r = self
            .db
            .query(sql!(
                "SELECT * FROM video_jobs WHERE settled_at IS NULL AND status IN ('completed', 'failed')
                 AND completed_at <= ?1 ORDER BY completed_at LIMIT ?2",
                decided_before,
                limit as i64
            ))
            .await?;
        Ok(rows(&r).map(|r| video_job(&r)).collect())
    }

    /// What running jobs hold, per job (user, amount): the credit book holds
    /// it again at start-up.
    pub async fn open_video_holds(&self) -> Result<Vec<(String, Credits)>, DbError> {
        let r = self
            .db
            .query(sql!(format!(
                "SELECT user_id, held FROM video_jobs WHERE {OPEN} AND billed = 1"
            )))
            .await?;
        Ok(rows(&r)
            .map(|r| (r.str("user_id"), Credits::from_nanos(r.i64("held"))))
            .collect())
    }

    /// Hides a user's job from them (it still runs and settles); false when
    /// they have no such job.
    pub async fn delete_video_job(&self, id: &str, user_id: &str, now_ms: i64) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(sql!(
                "UPDATE video_jobs SET deleted_at = ?3, updated_at = ?3 WHERE id = ?1 AND user_id = ?2 AND deleted_at IS NULL",
                id,
                user_id,
                now_ms
            ))
            .await?;
        Ok(n == 1)
    }
}
