//! Fakes for the ports, to test the call pipeline in process (feature
//! `testing`): a scripted provider that records what it was sent, a clock
//! the test moves, a background that runs work when the test says, and a
//! deterministic random source. The database is real (`hub-libsql` on a
//! temporary file, in the tests).

use crate::http::{BodyError, BodyFailure, ByteStream, HeaderMap};
use crate::ports::{Background, BoxFuture, Clock, Rng, Upstream, UpstreamError, UpstreamRequest, UpstreamResponse};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// A clock that moves only when the test moves it.
pub struct ManualClock {
    now_ms: AtomicI64,
    monotonic_us: AtomicU64,
}

impl ManualClock {
    pub fn at(now_ms: i64) -> ManualClock {
        ManualClock {
            now_ms: AtomicI64::new(now_ms),
            monotonic_us: AtomicU64::new(0),
        }
    }

    pub fn advance_ms(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
        self.monotonic_us.fetch_add(ms as u64 * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn monotonic_us(&self) -> u64 {
        self.monotonic_us.load(Ordering::SeqCst)
    }
}

/// Random bytes from a counter: ids and keys differ, runs repeat.
#[derive(Default)]
pub struct SeqRng(AtomicU64);

impl Rng for SeqRng {
    fn fill(&self, buf: &mut [u8]) -> Result<(), crate::ports::RngError> {
        for chunk in buf.chunks_mut(8) {
            let n = self
                .0
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
            chunk.copy_from_slice(&n.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

/// Background work, kept until the test runs it (`run`); sleeps end at once.
#[derive(Default)]
pub struct Collector {
    tasks: Mutex<Vec<BoxFuture>>,
}

impl Collector {
    /// Runs every task spawned so far, and those they spawn, to completion.
    pub async fn run(&self) {
        loop {
            let tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                task.await;
            }
        }
    }

    pub fn pending(&self) -> usize {
        self.tasks.lock().unwrap().len()
    }

    /// Drops every task without running it (the process died).
    pub fn abandon(&self) {
        self.tasks.lock().unwrap().clear();
    }
}

impl Background for Collector {
    fn spawn(&self, work: BoxFuture) {
        self.tasks.lock().unwrap().push(work);
    }

    fn sleep(&self, _ms: u64) -> BoxFuture {
        Box::pin(std::future::ready(()))
    }
}

/// A journal in memory: what was appended, and what was marked done.
#[derive(Default)]
pub struct MemoryJournal {
    records: Mutex<Vec<(u64, Vec<u8>, bool)>>,
}

impl MemoryJournal {
    /// How many records were appended.
    pub fn appended(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    /// How many are not marked done.
    pub fn open(&self) -> usize {
        self.records.lock().unwrap().iter().filter(|r| !r.2).count()
    }
}

impl crate::ports::Journal for MemoryJournal {
    fn append(&self, record: &[u8]) -> Result<u64, crate::ports::JournalError> {
        let mut records = self.records.lock().unwrap();
        let seq = records.len() as u64 + 1;
        records.push((seq, record.to_vec(), false));
        Ok(seq)
    }

    fn done(&self, seq: u64) {
        if let Some(r) = self.records.lock().unwrap().iter_mut().find(|r| r.0 == seq) {
            r.2 = true;
        }
    }

    fn pending(&self) -> Result<Vec<(u64, Vec<u8>)>, crate::ports::JournalError> {
        Ok(self
            .records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| !r.2)
            .map(|r| (r.0, r.1.clone()))
            .collect())
    }
}

/// One scripted provider answer.
pub enum Scripted {
    /// A status, headers and body chunks, optionally ending in a broken connection.
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        chunks: Vec<Bytes>,
        /// After the chunks: the body fails like this.
        then_fail: Option<(BodyFailure, String)>,
        /// After the chunks: the stream neither ends nor sends (a stall).
        then_stall: bool,
    },
    /// The request never gets an answer.
    Hang,
    /// The request fails before any answer.
    Fail(UpstreamError),
}

impl Scripted {
    /// A whole JSON answer.
    pub fn json(status: u16, body: serde_json::Value) -> Scripted {
        Scripted::Answer {
            status,
            headers: vec![("content-type", "application/json".into())],
            chunks: vec![Bytes::from(body.to_string())],
            then_fail: None,
            then_stall: false,
        }
    }

    /// A server-sent event stream, one chunk per item.
    pub fn sse(chunks: &[&str]) -> Scripted {
        Scripted::Answer {
            status: 200,
            headers: vec![("content-type", "text/event-stream".into())],
            chunks: chunks.iter().map(|c| Bytes::from(c.to_string())).collect(),
            then_fail: None,
            then_stall: false,
        }
    }

    /// This answer, with a header added.
    pub fn header(mut self, name: &'static str, value: &str) -> Scripted {
        if let Scripted::Answer { headers, .. } = &mut self {
            headers.push((name, value.to_string()));
        }
        self
    }

    /// This stream, then a broken connection.
    pub fn then_fail(mut self, message: &str) -> Scripted {
        if let Scripted::Answer { then_fail, .. } = &mut self {
            *then_fail = Some((BodyFailure::Broken, message.to_string()));
        }
        self
    }

    /// This stream, then the runtime's idle timeout.
    pub fn then_time_out(mut self) -> Scripted {
        if let Scripted::Answer { then_fail, .. } = &mut self {
            *then_fail = Some((BodyFailure::TimedOut, "no data from the provider".to_string()));
        }
        self
    }

    /// This stream, then silence.
    pub fn then_stall(mut self) -> Scripted {
        if let Scripted::Answer { then_stall, .. } = &mut self {
            *then_stall = true;
        }
        self
    }
}

/// A provider that answers from a script, in order, and records every request.
#[derive(Default)]
pub struct ScriptedUpstream {
    script: Mutex<VecDeque<Scripted>>,
    requests: Mutex<Vec<UpstreamRequest>>,
}

impl ScriptedUpstream {
    pub fn push(&self, answer: Scripted) {
        self.script.lock().unwrap().push_back(answer);
    }

    /// Every request sent so far.
    pub fn requests(&self) -> Vec<UpstreamRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Answers scripted and not yet used.
    pub fn unused(&self) -> usize {
        self.script.lock().unwrap().len()
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl Upstream for ScriptedUpstream {
    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        self.requests.lock().unwrap().push(req);
        let next = self.script.lock().unwrap().pop_front();
        match next {
            None => Err(UpstreamError::Other("the script has no answer left".into())),
            Some(Scripted::Fail(e)) => Err(e),
            Some(Scripted::Hang) => std::future::pending().await,
            Some(Scripted::Answer {
                status,
                headers,
                chunks,
                then_fail,
                then_stall,
            }) => {
                let mut map = HeaderMap::new();
                for (name, value) in headers {
                    if let Ok(v) = value.parse() {
                        map.insert(name, v);
                    }
                }
                let chunks = futures_util::stream::iter(chunks.into_iter().map(Ok));
                let tail: ByteStream = match (then_fail, then_stall) {
                    (Some((kind, message)), _) => {
                        Box::pin(futures_util::stream::iter([Err(BodyError { kind, message })]))
                    }
                    (None, true) => Box::pin(futures_util::stream::pending()),
                    (None, false) => Box::pin(futures_util::stream::empty()),
                };
                Ok(UpstreamResponse {
                    status,
                    headers: map,
                    body: Box::pin(chunks.chain(tail)),
                })
            }
        }
    }
}
