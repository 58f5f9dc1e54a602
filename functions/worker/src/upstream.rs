//! Provider calls through the Workers `fetch`, streamed, with the core's
//! first-byte and idle timeouts (workerd bounds connecting itself).
//!
//! Redirects are not followed (`redirect: "manual"`): the core reports a 3xx
//! as the provider's failure. The core checks every provider URL against the
//! outbound policy before it gets here; a Worker cannot see the address a
//! name resolves to, which is the platform's to police: subrequests leave
//! from Cloudflare's network, where no cloud metadata service of the
//! operator's answers (see docs/security.md).

use futures_util::future::{select, Either};
use futures_util::{Stream, StreamExt};
use hub_core::http::{BodyError, ByteStream};
use hub_core::ports::{Upstream, UpstreamError, UpstreamRequest, UpstreamResponse};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use worker::{AbortController, Delay, Fetch, Headers, Method, RequestInit, RequestRedirect};

pub struct FetchUpstream;

#[async_trait::async_trait(?Send)]
impl Upstream for FetchUpstream {
    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        let headers = Headers::new();
        for (k, v) in &req.headers {
            headers
                .set(k, v)
                .map_err(|e| UpstreamError::Other(format!("bad header {k}: {e}")))?;
        }
        let mut init = RequestInit::new();
        let method = match req.method {
            http::Method::GET => Method::Get,
            http::Method::PUT => Method::Put,
            http::Method::DELETE => Method::Delete,
            _ => Method::Post,
        };
        init.with_method(method)
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if !req.body.is_empty() {
            let body = worker::js_sys::Uint8Array::from(&req.body[..]);
            init.with_body(Some(body.into()));
        }
        let request = worker::Request::new_with_init(&req.url, &init)
            .map_err(|e| UpstreamError::Other(format!("cannot build the request: {e}")))?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let sending = Box::pin(async move { Fetch::Request(request).send_with_signal(&signal).await });
        let timer = Delay::from(req.timeouts.first_byte);
        let mut resp = match select(sending, timer).await {
            Either::Left((Ok(r), _)) => r,
            Either::Left((Err(e), _)) => return Err(UpstreamError::Connect(e.to_string())),
            Either::Right(_) => {
                controller.abort();
                return Err(UpstreamError::Timeout);
            }
        };
        let status = resp.status_code();
        let mut header_map = http::HeaderMap::new();
        for (k, v) in resp.headers().entries() {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(&v),
            ) {
                header_map.append(name, value);
            }
        }
        let body: ByteStream = match resp.stream() {
            Ok(s) => Box::pin(IdleTimeout {
                inner: Box::pin(s.map(|c| c.map(bytes::Bytes::from).map_err(|e| BodyError::broken(e.to_string())))),
                idle: req.timeouts.idle,
                timer: None,
                controller: Some(controller),
            }),
            Err(_) => Box::pin(futures_util::stream::empty()),
        };
        Ok(UpstreamResponse {
            status,
            headers: header_map,
            body,
        })
    }
}

/// Ends a stream with an error when no chunk comes for `idle`; dropping it
/// aborts the provider request.
struct IdleTimeout {
    inner: Pin<Box<dyn Stream<Item = Result<bytes::Bytes, BodyError>>>>,
    idle: Duration,
    timer: Option<Delay>,
    controller: Option<AbortController>,
}

impl Drop for IdleTimeout {
    fn drop(&mut self) {
        if let Some(c) = self.controller.take() {
            c.abort();
        }
    }
}

impl Stream for IdleTimeout {
    type Item = Result<bytes::Bytes, BodyError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(item) => {
                this.timer = None;
                Poll::Ready(item)
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this.timer.get_or_insert_with(|| Delay::from(idle));
                match Pin::new(timer).poll(cx) {
                    Poll::Ready(()) => {
                        this.timer = None;
                        Poll::Ready(Some(Err(BodyError::timed_out(
                            "timed out waiting for the provider's stream",
                        ))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}
