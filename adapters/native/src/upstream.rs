//! The Upstream port over reqwest, with first-byte and idle timeouts, no
//! redirects, and the outbound address policy applied at connect time: to
//! every address a provider's host name resolves to, and to IP-literal hosts
//! (which reqwest connects to without resolving).

use bytes::Bytes;
use futures_core::Stream;
use hub_core::http::BodyError;
use hub_core::net::{Forbidden, OutboundPolicy};
use hub_core::ports::{Upstream, UpstreamError, UpstreamRequest, UpstreamResponse};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// reqwest, with one client (and so one connection pool) per worker thread:
/// a request and its provider connection stay on one thread, with no wake-up
/// crossing threads.
pub struct ReqwestUpstream {
    connect_timeout: Duration,
    policy: OutboundPolicy,
}

thread_local! {
    static CLIENT: std::cell::RefCell<Option<reqwest::Client>> = const { std::cell::RefCell::new(None) };
}

impl ReqwestUpstream {
    pub fn new(connect_timeout: Duration, policy: OutboundPolicy) -> Result<Self, reqwest::Error> {
        // Build one now so a broken TLS setup fails at start-up, not on a call.
        build_client(connect_timeout, policy)?;
        Ok(ReqwestUpstream {
            connect_timeout,
            policy,
        })
    }

    fn client(&self) -> Result<reqwest::Client, UpstreamError> {
        CLIENT.with(|slot| {
            let mut slot = slot.borrow_mut();
            if let Some(c) = slot.as_ref() {
                return Ok(c.clone());
            }
            let c = build_client(self.connect_timeout, self.policy).map_err(|e| UpstreamError::Other(e.to_string()))?;
            *slot = Some(c.clone());
            Ok(c)
        })
    }
}

fn build_client(connect_timeout: Duration, policy: OutboundPolicy) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver { policy }))
        // A redirect is the provider's answer, reported by the core as a failure.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .user_agent(concat!("hub/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The system resolver, refusing a name when any of its addresses is one the
/// policy forbids (a name that mixes them is not a provider's).
struct CheckedResolver {
    policy: OutboundPolicy,
}

/// A host name that resolves to a forbidden address.
#[derive(Debug)]
struct RefusedName {
    name: String,
    why: Forbidden,
}

impl std::fmt::Display for RefusedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` resolves to {}", self.name, self.why)
    }
}

impl std::error::Error for RefusedName {}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let name = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if let Some(why) = addrs.iter().find_map(|a| policy.check_ip(a.ip()).err()) {
                return Err(Box::new(RefusedName { name, why }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The policy's refusal somewhere in an error's chain, if that is what it was.
fn refusal(e: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<RefusedName>() {
            return Some(r.to_string());
        }
        source = s.source();
    }
    None
}

fn classify(e: reqwest::Error) -> UpstreamError {
    if let Some(refused) = refusal(&e) {
        UpstreamError::Refused(refused)
    } else if e.is_timeout() {
        UpstreamError::Timeout
    } else if e.is_connect() {
        UpstreamError::Connect(without_url(&e))
    } else {
        UpstreamError::Other(without_url(&e))
    }
}

/// reqwest's message without the URL (it can carry secrets in query strings).
fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(url) = e.url() {
        msg = msg.replace(url.as_str(), "<provider>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[async_trait::async_trait]
impl Upstream for ReqwestUpstream {
    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        // reqwest connects to an IP-literal host without asking the resolver.
        let url = self
            .policy
            .check_url(&req.url)
            .map_err(|problem| UpstreamError::Refused(format!("the provider URL {problem}")))?;
        let mut builder = self.client()?.request(req.method, url).body(req.body);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let timeouts = req.timeouts;
        let resp = match tokio::time::timeout(timeouts.first_byte, builder.send()).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(classify(e)),
            Err(_) => return Err(UpstreamError::Timeout),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = IdleTimeout {
            inner: Box::pin(resp.bytes_stream()),
            idle: timeouts.idle,
            timer: Box::pin(tokio::time::sleep(timeouts.idle)),
            armed_at: None,
            last_data: tokio::time::Instant::now(),
            done: false,
        };
        Ok(UpstreamResponse {
            status,
            headers,
            body: Box::pin(body),
        })
    }
}

/// A provider's body that fails when no data arrives for `idle`. The one timer
/// is re-armed only when the stream has to wait, not on every chunk.
struct IdleTimeout<S> {
    inner: Pin<Box<S>>,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The `last_data` the timer is armed for.
    armed_at: Option<tokio::time::Instant>,
    last_data: tokio::time::Instant,
    done: bool,
}

impl<S: Stream<Item = reqwest::Result<Bytes>>> Stream for IdleTimeout<S> {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.last_data = tokio::time::Instant::now();
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(BodyError::broken(without_url(&e)))))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.armed_at != Some(this.last_data) {
                    this.timer.as_mut().reset(this.last_data + this.idle);
                    this.armed_at = Some(this.last_data);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.done = true;
                        Poll::Ready(Some(Err(BodyError::timed_out(format!(
                            "timed out: no data from the provider for {} s",
                            this.idle.as_secs()
                        )))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}
