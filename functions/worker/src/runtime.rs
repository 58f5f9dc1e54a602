//! The ports a Worker provides: time, randomness, and background work that
//! outlives the response. Work spawned while serving a request (settlement,
//! call logs) is counted against that request, and the request's
//! `ctx.wait_until` waits for the count to reach zero, after its streamed body
//! has ended. The isolate runs one thread, so the request being served is a
//! thread-local set around every poll of its futures.

use futures_util::Stream;
use hub_core::http::{BodyError, ByteStream};
use hub_core::ports::{Background, BoxFuture, Clock, Rng, RngError};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

pub struct WorkerClock;

impl Clock for WorkerClock {
    fn now_ms(&self) -> i64 {
        worker::Date::now().as_millis() as i64
    }

    fn monotonic_us(&self) -> u64 {
        (worker::js_sys::Date::now() * 1000.0) as u64
    }
}

pub struct WorkerRng;

impl Rng for WorkerRng {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RngError> {
        // crypto.getRandomValues: its failure must reach the caller, which
        // would otherwise seal secrets under a zero nonce.
        getrandom::getrandom(buf).map_err(|e| RngError(format!("crypto.getRandomValues failed: {e}")))
    }
}

/// Outstanding work of one request.
#[derive(Default)]
pub struct Tracker {
    pending: Cell<usize>,
    waker: RefCell<Option<Waker>>,
}

impl Tracker {
    fn enter(&self) {
        self.pending.set(self.pending.get() + 1);
    }

    fn exit(&self) {
        let n = self.pending.get().saturating_sub(1);
        self.pending.set(n);
        if n == 0 {
            if let Some(w) = self.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Resolves once nothing of this request is left running.
    pub fn idle(self: Rc<Self>) -> impl Future<Output = ()> + 'static {
        futures_util::future::poll_fn(move |cx| {
            if self.pending.get() == 0 {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Tracker>>> = const { RefCell::new(None) };
}

/// Runs `f` with `tracker` as the request being served.
fn within<T>(tracker: &Rc<Tracker>, f: impl FnOnce() -> T) -> T {
    let previous = CURRENT.with(|c| c.replace(Some(tracker.clone())));
    let out = f();
    CURRENT.with(|c| *c.borrow_mut() = previous);
    out
}

/// A future polled as part of one request.
pub struct Scoped<F> {
    tracker: Rc<Tracker>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Scoped<F> {
    pub fn new(tracker: Rc<Tracker>, inner: F) -> Self {
        Scoped {
            tracker,
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let tracker = this.tracker.clone();
        within(&tracker, || this.inner.as_mut().poll(cx))
    }
}

/// A response body that keeps its request busy until it ends or is dropped
/// (the client left), with the request in scope while it runs.
pub struct TrackedStream {
    inner: Option<ByteStream>,
    tracker: Rc<Tracker>,
}

impl TrackedStream {
    pub fn new(inner: ByteStream, tracker: Rc<Tracker>) -> Self {
        tracker.enter();
        TrackedStream {
            inner: Some(inner),
            tracker,
        }
    }

    fn finish(&mut self) {
        if let Some(inner) = self.inner.take() {
            // Dropping the core's stream may settle the call: do it in scope.
            within(&self.tracker, || drop(inner));
            self.tracker.exit();
        }
    }
}

impl Stream for TrackedStream {
    type Item = Result<bytes::Bytes, BodyError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let tracker = this.tracker.clone();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let next = within(&tracker, || inner.as_mut().poll_next(cx));
        if let Poll::Ready(None) = next {
            this.finish();
        }
        next
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Spawns on the isolate's event loop, counted against the current request.
pub struct WorkerBackground;

impl Background for WorkerBackground {
    fn spawn(&self, work: BoxFuture) {
        match CURRENT.with(|c| c.borrow().clone()) {
            Some(tracker) => {
                tracker.enter();
                let t = tracker.clone();
                wasm_bindgen_futures::spawn_local(Scoped::new(tracker, async move {
                    work.await;
                    t.exit();
                }));
            }
            None => wasm_bindgen_futures::spawn_local(work),
        }
    }

    fn sleep(&self, ms: u64) -> BoxFuture {
        Box::pin(worker::Delay::from(std::time::Duration::from_millis(ms)))
    }
}
