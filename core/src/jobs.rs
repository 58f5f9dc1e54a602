//! Scheduled jobs: the work that must happen between requests (releasing
//! expired holds, forgetting old key-limit and call-log rows, re-checking
//! rejected credentials, following video jobs, committing journaled
//! settlements). Every runtime runs them through one entry, [`Hub::tick`]:
//! `hub serve` on a timer, the Worker on a Cron Trigger, Lambda on an
//! EventBridge schedule.
//!
//! Each job is bounded (rows per statement, statements per tick, a clock
//! budget) and leaves what it could not finish for the next tick; a job that
//! fails is reported and the others still run. Every job is safe to run
//! twice at once (two instances, or a cron firing while a slow previous tick
//! still runs): its writes are conditional, so the second run finds nothing
//! left to do and no money moves twice.

use crate::error::ApiError;
use crate::hub::Hub;
use crate::ports::DbError;
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;

/// Rows one statement of a job touches at most.
pub const BATCH_ROWS: u64 = 500;
/// Statements (or probes, for credentials) one job runs per tick at most.
pub const ROUNDS: u32 = 20;
/// Clock time one job may take before it starts no new round.
pub const JOB_BUDGET_MS: i64 = 10_000;
/// Credentials probed per tick at most (each probe waits on its provider).
const PROBES: usize = 5;

/// The jobs, in the order a tick runs them. Adding a job is one line here.
const JOBS: &[Job] = &[
    Job {
        name: "expire_holds",
        run: |hub, b| Box::pin(expire_holds(hub, b)),
    },
    Job {
        name: "expire_credits",
        run: |hub, _| Box::pin(expire_credits(hub)),
    },
    Job {
        name: "prune_key_events",
        run: |hub, b| Box::pin(prune_key_events(hub, b)),
    },
    Job {
        name: "prune_calls",
        run: |hub, b| Box::pin(prune_calls(hub, b)),
    },
    Job {
        name: "prune_response_cache",
        run: |hub, b| Box::pin(prune_response_cache(hub, b)),
    },
    Job {
        name: "expire_connect_sessions",
        run: |hub, b| Box::pin(expire_connect_sessions(hub, b)),
    },
    Job {
        name: "recheck_credentials",
        run: |hub, b| Box::pin(recheck_credentials(hub, b)),
    },
    Job {
        name: "deliver_notifications",
        run: |hub, b| Box::pin(deliver_notifications(hub, b)),
    },
    Job {
        name: "advance_video_jobs",
        run: |hub, b| Box::pin(advance_video_jobs(hub, b)),
    },
    Job {
        name: "sync_prices",
        run: |hub, b| Box::pin(sync_prices(hub, b)),
    },
    Job {
        name: "replay_journal",
        run: |hub, b| Box::pin(replay_journal(hub, b)),
    },
];

/// What a tick did, job by job (for the logs, the runtimes' answers and tests).
#[derive(Debug, Clone, Serialize)]
pub struct TickReport {
    /// The tick's time (ms since the epoch): what counted as expired or old.
    pub at: i64,
    /// How long the whole tick took, in ms.
    pub ms: i64,
    pub jobs: Vec<JobReport>,
}

impl TickReport {
    /// The report of the job called `name`.
    pub fn job(&self, name: &str) -> Option<&JobReport> {
        self.jobs.iter().find(|j| j.job == name)
    }

    /// Whether any job failed.
    pub fn failed(&self) -> bool {
        self.jobs.iter().any(|j| j.error.is_some())
    }
}

/// What one job did in one tick.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub job: &'static str,
    /// Rows (or items) it handled: holds released, rows deleted, credentials re-enabled, settlements committed.
    pub count: u64,
    /// Whether it stopped at a bound with more left for the next tick.
    pub more: bool,
    /// Why it stopped, when it failed (after `count` items).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub ms: i64,
}

/// How much one job may do in this tick.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// The tick's time: what counts as expired or old.
    pub now_ms: i64,
    /// By the Hub's clock, when the job starts no new round.
    pub deadline_ms: i64,
}

/// What a job got through.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub count: u64,
    pub more: bool,
}

/// A job that failed after handling `count` items.
#[derive(Debug)]
pub struct JobError {
    pub count: u64,
    pub message: String,
}

impl From<DbError> for JobError {
    fn from(e: DbError) -> Self {
        JobError {
            count: 0,
            message: e.to_string(),
        }
    }
}

impl From<ApiError> for JobError {
    fn from(e: ApiError) -> Self {
        JobError {
            count: 0,
            message: e.message,
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<Progress, JobError>> + Send + 'a>>;
#[cfg(target_arch = "wasm32")]
type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<Progress, JobError>> + 'a>>;

/// A named job.
struct Job {
    name: &'static str,
    run: for<'a> fn(&'a Hub, Budget) -> JobFuture<'a>,
}

impl Hub {
    /// Runs every scheduled job once, as of `now_ms`, one after the other;
    /// each logs what it did. Never fails: a failed job is in the report.
    pub async fn tick(&self, now_ms: i64) -> TickReport {
        let started = self.now_ms();
        let mut jobs = Vec::with_capacity(JOBS.len());
        for job in JOBS {
            jobs.push(self.run_job(job, now_ms).await);
        }
        TickReport {
            at: now_ms,
            ms: self.now_ms() - started,
            jobs,
        }
    }

    async fn run_job(&self, job: &Job, now_ms: i64) -> JobReport {
        let started = self.now_ms();
        let budget = Budget {
            now_ms,
            deadline_ms: started + JOB_BUDGET_MS,
        };
        let (progress, error) = match (job.run)(self, budget).await {
            Ok(p) => (p, None),
            Err(e) => (
                Progress {
                    count: e.count,
                    more: true,
                },
                Some(e.message),
            ),
        };
        let report = JobReport {
            job: job.name,
            count: progress.count,
            more: progress.more,
            error,
            ms: self.now_ms() - started,
        };
        log(&report);
        report
    }
}

fn log(r: &JobReport) {
    match &r.error {
        Some(e) => tracing::warn!(job = r.job, count = r.count, ms = r.ms, "scheduled job failed: {e}"),
        None if r.count > 0 || r.more => {
            tracing::info!(job = r.job, count = r.count, more = r.more, ms = r.ms, "scheduled job")
        }
        None => tracing::debug!(job = r.job, ms = r.ms, "scheduled job: nothing to do"),
    }
}

/// Runs `batch` (one bounded statement, returning the rows it touched) until
/// a batch comes back short, `ROUNDS` batches ran, or the budget is spent.
async fn in_batches<F, Fut>(hub: &Hub, budget: Budget, mut batch: F) -> Result<Progress, JobError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, DbError>>,
{
    let mut progress = Progress::default();
    for _ in 0..ROUNDS {
        let n = batch().await.map_err(|e| JobError {
            count: progress.count,
            message: e.to_string(),
        })?;
        progress.count += n;
        progress.more = n >= BATCH_ROWS;
        if !progress.more || hub.now_ms() >= budget.deadline_ms {
            break;
        }
    }
    Ok(progress)
}

/// Holds whose call never settled (a crashed instance, a lost settlement)
/// give their credit back once they expire (`hold_ttl_seconds`).
async fn expire_holds(hub: &Hub, b: Budget) -> Result<Progress, JobError> {
    in_batches(hub, b, || hub.store().expire_holds_batch(b.now_ms, BATCH_ROWS)).await
}

/// Credit past its expiry leaves balances through `expiry` ledger entries
/// (a bounded number of buckets per tick; their rows are the job's count).
async fn expire_credits(hub: &Hub) -> Result<Progress, JobError> {
    let report = hub.expire_credits(None).await?;
    Ok(Progress {
        count: report.buckets as u64,
        more: report.more,
    })
}

/// Webhook and mail deliveries that are due (new events, retries); on hub
/// serve a one-second loop also runs it, so a tick seldom finds any.
async fn deliver_notifications(hub: &Hub, b: Budget) -> Result<Progress, JobError> {
    let r = hub.deliver_notifications(b.now_ms).await?;
    Ok(Progress {
        count: u64::from(r.attempted) + r.expired,
        more: i64::from(r.attempted) >= crate::notify::deliver::BATCH,
    })
}

/// Key-limit rows older than the longest limit window are never read again.
async fn prune_key_events(hub: &Hub, b: Budget) -> Result<Progress, JobError> {
    in_batches(hub, b, || hub.store().prune_key_events(b.now_ms, BATCH_ROWS)).await
}

/// Call-log rows older than `call_retention_days` (none when it is 0),
/// oldest first. Their sums stay in the usage roll-ups; the ledger, which
/// names calls by id, is never pruned.
async fn prune_calls(hub: &Hub, b: Budget) -> Result<Progress, JobError> {
    let days = hub.snapshot().await?.settings.call_retention_days;
    if days == 0 {
        return Ok(Progress::default());
    }
    let before = b.now_ms - days * crate::store::DAY_MS;
    in_batches(hub, b, || hub.store().prune_calls(before, BATCH_ROWS)).await
}

/// The response cache's expired answers, then its oldest while it holds
/// more than its cap (`response_cache_max_mb`). Runs whether the cache is
/// on or not, so turning it off empties it as its answers expire.
async fn prune_response_cache(hub: &Hub, b: Budget) -> Result<Progress, JobError> {
    let max_bytes = hub
        .snapshot()
        .await?
        .settings
        .response_cache
        .max_mb
        .saturating_mul(1024 * 1024);
    let store = hub.store();
    let expired = in_batches(hub, b, || store.prune_expired_answers(b.now_ms, BATCH_ROWS)).await?;
    let over = in_batches(hub, b, || store.prune_oldest_answers(max_bytes, BATCH_ROWS)).await?;
    Ok(Progress {
        count: expired.count + over.count,
        more: expired.more || over.more,
    })
}

/// The AIGNE CLI's connect sessions past their 10 minutes (with any key
/// they still held for a CLI that never came back for it).
async fn expire_connect_sessions(hub: &Hub, b: Budget) -> Result<Progress, JobError> {
    in_batches(hub, b, || {
        hub.store().delete_expired_connect_sessions(b.now_ms, BATCH_ROWS)
    })
    .await
}

/// Credentials a provider rejected are probed on their backoff.
async fn recheck_credentials(hub: &Hub, b: Budget) -> Result<Progress, JobError> {
    let done = hub.recheck_credentials(PROBES, b.deadline_ms).await?;
    Ok(Progress {
        count: done.enabled as u64,
        more: done.left > 0,
    })
}

/// Video jobs (`/v1/videos`) nobody polls: each polled at its provider, and
/// settled (or its hold released) when it ended or passed its deadline.
async fn advance_video_jobs(hub: &Hub, b: Budget) -> Result<Progress, JobError> {
    let done = hub.advance_video_jobs(b.now_ms, b.deadline_ms).await?;
    Ok(Progress {
        count: done.count,
        more: done.more,
    })
}

/// The scheduled price sync, when its interval has passed.
async fn sync_prices(hub: &Hub, b: Budget) -> Result<Progress, JobError> {
    let ran = hub.scheduled_price_sync(b.now_ms).await?;
    Ok(Progress {
        count: u64::from(ran),
        more: false,
    })
}

/// Settlements spilled to the journal during a long database outage
/// (`hub serve` only: the other runtimes have no journal).
async fn replay_journal(hub: &Hub, _: Budget) -> Result<Progress, JobError> {
    if !hub.journal_has_spilled() {
        return Ok(Progress::default());
    }
    let committed = hub.replay_journal().await?;
    Ok(Progress {
        count: committed as u64,
        more: hub.journal_has_spilled(),
    })
}
