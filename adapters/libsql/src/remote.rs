//! Batches on a remote database: one Hrana request per transaction, and the
//! concurrent batches of a process committed together.
//!
//! libsql's remote transactions are interactive: `BEGIN`, each statement and
//! `COMMIT` are separate HTTP requests, and the database's write lock is held
//! across all of those round trips. Here a transaction is one Hrana `batch`
//! request instead (`BEGIN IMMEDIATE`, the statements, each run only if the
//! one before succeeded, `COMMIT`, and `ROLLBACK` if the commit did not run or
//! failed), so the lock is held for the server's own execution only. The
//! statements keep their `?N` parameters as Hrana arguments, and each step's
//! `affected_row_count` is the count a statement run alone would return.
//! (libsql's `execute_transactional_batch` sends every statement with
//! `want_rows: false`, so the server would return no counts at all.)

use crate::{map_err, GROUP_COMMIT_MAX};
use hub_core::ports::{DbError, SqlValue, Stmt};
use libsql_hrana::proto;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a remote operation may take before its caller is told the
/// database is unavailable.
pub(crate) const REMOTE_BOUND: Duration = Duration::from_secs(30);

/// Batches that may wait for the committer; beyond it callers wait to queue
/// (within their bound).
const QUEUE: usize = 16_384;

/// Bounds a remote call so a dead database fails the request instead of hanging it.
pub(crate) async fn bounded<T>(f: impl std::future::Future<Output = Result<T, DbError>>) -> Result<T, DbError> {
    tokio::time::timeout(REMOTE_BOUND, f).await.unwrap_or_else(|_| {
        Err(DbError::Unavailable(
            "the remote database did not answer within 30 s".into(),
        ))
    })
}

// ------------------------------------------------------------------ one request

/// A Hrana-over-HTTP endpoint that runs transactions in one request each.
#[derive(Clone)]
pub(crate) struct Hrana {
    http: reqwest::Client,
    pipeline_url: Arc<str>,
    auth: Option<Arc<str>>,
}

/// Why a transaction did not commit.
#[derive(Debug)]
pub(crate) enum TxError {
    /// Statement `index` (counted among the statements sent) failed; the
    /// server rolled the transaction back.
    Statement { index: usize, error: DbError },
    /// `BEGIN` or `COMMIT` failed; the server rolled back, nothing was written.
    Refused(DbError),
    /// The request or its answer was lost: whether it committed is unknown.
    Lost(DbError),
}

impl TxError {
    fn into_db_error(self) -> DbError {
        match self {
            TxError::Statement { error, .. } | TxError::Refused(error) | TxError::Lost(error) => error,
        }
    }
}

impl Hrana {
    /// The endpoint of `url` (`https://…` or `http://…`, optionally with a
    /// query string), as libsql builds it: `{base}/v3/pipeline{query}`.
    pub(crate) fn new(url: &str, token: &str) -> Result<Hrana, String> {
        let (base, query) = url.split_at(url.rfind('?').unwrap_or(url.len()));
        let http = reqwest::Client::builder()
            .timeout(REMOTE_BOUND)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Hrana {
            http,
            pipeline_url: format!("{}/v3/pipeline{query}", base.trim_end_matches('/')).into(),
            auth: (!token.is_empty()).then(|| format!("Bearer {token}").into()),
        })
    }

    /// Runs `stmts` as one transaction in one request and returns each
    /// statement's count of changed rows.
    pub(crate) async fn transaction(&self, stmts: &[&Stmt]) -> Result<Vec<u64>, TxError> {
        let n = stmts.len();
        let steps = transaction_steps(stmts).map_err(TxError::Refused)?;
        let body = proto::PipelineReqBody {
            baton: None,
            requests: vec![
                proto::StreamRequest::Batch(proto::BatchStreamReq {
                    batch: proto::Batch {
                        steps,
                        replication_index: None,
                    },
                }),
                proto::StreamRequest::Close(proto::CloseStreamReq {}),
            ],
        };
        let result = self.send(&body).await.map_err(TxError::Lost)?;
        // Steps: 0 BEGIN, 1..=n the statements, n + 1 COMMIT, n + 2 ROLLBACK.
        let failed = |step: usize| result.step_errors.get(step).cloned().flatten();
        if let Some(e) = failed(0) {
            return Err(TxError::Refused(step_error(e)));
        }
        for index in 0..n {
            if let Some(e) = failed(index + 1) {
                return Err(TxError::Statement {
                    index,
                    error: step_error(e),
                });
            }
        }
        if let Some(e) = failed(n + 1) {
            return Err(TxError::Refused(step_error(e)));
        }
        let ran = |step: usize| result.step_results.get(step).and_then(Option::as_ref);
        if ran(n + 1).is_none() {
            return Err(TxError::Lost(DbError::Unavailable(
                "the remote database did not run the commit".into(),
            )));
        }
        (1..=n)
            .map(|step| {
                ran(step).map(|r| r.affected_row_count).ok_or_else(|| {
                    TxError::Lost(DbError::Unavailable(format!(
                        "the remote database returned no result for statement {step}"
                    )))
                })
            })
            .collect()
    }

    /// Posts one pipeline and returns the result of its batch.
    async fn send(&self, body: &proto::PipelineReqBody) -> Result<proto::BatchResult, DbError> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| DbError::Unavailable(format!("{what}: {e}"));
        let body = serde_json::to_vec(body).map_err(|e| DbError::Other(format!("cannot encode the batch: {e}")))?;
        let mut req = self
            .http
            .post(&*self.pipeline_url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(auth) = &self.auth {
            req = req.header("authorization", &**auth);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| unavailable("the remote database could not be reached", &e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| unavailable("the remote database's answer was cut off", &e))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(unavailable(
                "the remote database refused the batch",
                &format!("{status}: {text}"),
            ));
        }
        let resp: proto::PipelineRespBody = serde_json::from_slice(&bytes)
            .map_err(|e| unavailable("unreadable answer from the remote database", &e))?;
        match resp.results.into_iter().next() {
            Some(proto::StreamResult::Ok {
                response: proto::StreamResponse::Batch(b),
            }) => Ok(b.result),
            Some(proto::StreamResult::Error { error }) => Err(step_error(error)),
            other => Err(DbError::Unavailable(format!(
                "unexpected answer from the remote database: {other:?}"
            ))),
        }
    }
}

/// `BEGIN IMMEDIATE`, each statement if the one before succeeded, `COMMIT`
/// if the last statement succeeded, and `ROLLBACK` unless the commit did.
fn transaction_steps(stmts: &[&Stmt]) -> Result<Vec<proto::BatchStep>, DbError> {
    let n = stmts.len() as u32;
    let step = |condition: Option<proto::BatchCond>, stmt: proto::Stmt| proto::BatchStep { condition, stmt };
    let ok = |step: u32| proto::BatchCond::Ok { step };
    let mut steps = Vec::with_capacity(stmts.len() + 3);
    steps.push(step(None, proto::Stmt::new("BEGIN IMMEDIATE", false)));
    for (i, s) in stmts.iter().enumerate() {
        steps.push(step(Some(ok(i as u32)), hrana_stmt(s)?));
    }
    steps.push(step(Some(ok(n)), proto::Stmt::new("COMMIT", false)));
    steps.push(step(
        Some(proto::BatchCond::Not {
            cond: Box::new(ok(n + 1)),
        }),
        proto::Stmt::new("ROLLBACK", false),
    ));
    Ok(steps)
}

fn hrana_stmt(s: &Stmt) -> Result<proto::Stmt, DbError> {
    let mut stmt = proto::Stmt::new(s.sql.to_string(), false);
    for v in &s.params {
        stmt.bind(hrana_value(v)?);
    }
    Ok(stmt)
}

/// A parameter as Hrana's JSON carries it. NaN is sent as NULL, which is
/// what SQLite stores for a bound NaN; JSON has no infinities, so a batch
/// with one is refused before anything is sent.
pub(crate) fn hrana_value(v: &SqlValue) -> Result<proto::Value, DbError> {
    Ok(match v {
        SqlValue::Null => proto::Value::Null,
        SqlValue::Integer(i) => proto::Value::Integer { value: *i },
        SqlValue::Real(f) if f.is_nan() => proto::Value::Null,
        SqlValue::Real(f) if f.is_infinite() => {
            return Err(DbError::Other(
                "a remote database cannot be sent an infinite real (Hrana's JSON has none)".into(),
            ))
        }
        SqlValue::Real(f) => proto::Value::Float { value: *f },
        SqlValue::Text(t) => proto::Value::Text {
            value: t.as_str().into(),
        },
        SqlValue::Blob(b) => proto::Value::Blob {
            value: bytes::Bytes::copy_from_slice(b),
        },
    })
}

/// A statement's error, classified as the same error from libsql would be.
fn step_error(e: proto::Error) -> DbError {
    let text = if e.code.is_empty() || e.message.contains(&e.code) {
        e.message
    } else {
        format!("{} ({})", e.message, e.code)
    };
    map_err(libsql::Error::Hrana(text.into()))
}

// ------------------------------------------------------------------ group commit

/// One caller's batch, waiting for the committer.
struct Queued {
    stmts: Vec<Stmt>,
    reply: oneshot::Sender<Result<Vec<u64>, DbError>>,
}

/// Commits the batches of every task in this process together: while one
/// request is on the network the next group gathers, so a deployment
/// pays one round trip and one write-lock hold per group, not per batch.
pub(crate) struct GroupCommitter {
    queue: mpsc::Sender<Queued>,
}

impl GroupCommitter {
    /// Starts the committer on the current tokio runtime.
    pub(crate) fn start(hrana: Hrana) -> GroupCommitter {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(hrana, rx));
        GroupCommitter { queue }
    }

    /// Batches waiting to be sent.
    pub(crate) fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Commits `stmts` atomically, with whatever other batches are waiting.
    pub(crate) async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, DbError> {
        if stmts.is_empty() {
            return Ok(Vec::new());
        }
        let stopped = || DbError::Unavailable("the remote database's committer has stopped".into());
        bounded(async {
            let (reply, answer) = oneshot::channel();
            self.queue.send(Queued { stmts, reply }).await.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        })
        .await
    }
}

async fn run(hrana: Hrana, mut rx: mpsc::Receiver<Queued>) {
    let mut group = Vec::with_capacity(GROUP_COMMIT_MAX);
    // Lingering for company only pays under concurrency; a lone caller (a
    // Lambda instance serves one call at a time) is sent at once.
    let mut company = false;
    while rx.recv_many(&mut group, GROUP_COMMIT_MAX).await > 0 {
        if company {
            crate::linger_for_company(&mut rx, &mut group).await;
        }
        company = group.len() > 1;
        commit_group(&hrana, std::mem::take(&mut group)).await;
    }
}

/// Commits a group in one transaction and answers each caller with its own
/// counts. A failing statement's batch runs alone (and gets its own answer)
/// and the rest is sent again together, so one failure never fails its
/// neighbours; a refused `BEGIN` or `COMMIT` runs each batch alone; a lost
/// request fails every caller (it may have committed: nothing is resent).
async fn commit_group(hrana: &Hrana, mut group: Vec<Queued>) {
    loop {
        // A caller that gave up (its bound passed) must not be written for.
        group.retain(|q| !q.reply.is_closed());
        if group.is_empty() {
            return;
        }
        let stmts: Vec<&Stmt> = group.iter().flat_map(|q| &q.stmts).collect();
        let result = hrana.transaction(&stmts).await;
        drop(stmts);
        match result {
            Ok(counts) => {
                let mut counts = counts.into_iter();
                for q in group {
                    let mine = counts.by_ref().take(q.stmts.len()).collect();
                    let _ = q.reply.send(Ok(mine));
                }
                return;
            }
            Err(e) if group.len() == 1 => {
                let _ = group.remove(0).reply.send(Err(e.into_db_error()));
                return;
            }
            Err(TxError::Statement { index, .. }) => {
                let culprit = group.remove(owner(&group, index));
                alone(hrana, culprit).await;
            }
            Err(TxError::Refused(_)) => {
                for q in group {
                    alone(hrana, q).await;
                }
                return;
            }
            Err(TxError::Lost(e)) => {
                for q in group {
                    let _ = q.reply.send(Err(e.clone()));
                }
                return;
            }
        }
    }
}

/// The position in `group` of the batch holding statement `index` of the
/// statements sent.
fn owner(group: &[Queued], index: usize) -> usize {
    let mut end = 0;
    group
        .iter()
        .position(|q| {
            end += q.stmts.len();
            index < end
        })
        .unwrap_or(group.len() - 1)
}

async fn alone(hrana: &Hrana, q: Queued) {
    if q.reply.is_closed() {
        return;
    }
    let stmts: Vec<&Stmt> = q.stmts.iter().collect();
    let result = hrana.transaction(&stmts).await.map_err(TxError::into_db_error);
    let _ = q.reply.send(result);
}
