//! The Upstream port over reqwest, with first-byte and idle timeouts.

use bytes::Bytes;
use futures_util::StreamExt;
use hub_core::http::BodyError;
use hub_core::ports::{Upstream, UpstreamError, UpstreamRequest, UpstreamResponse};
use std::time::Duration;

pub struct ReqwestUpstream {
    client: reqwest::Client,
}

impl ReqwestUpstream {
    pub fn new(connect_timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .user_agent(concat!("hub/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ReqwestUpstream { client })
    }
}

fn classify(e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
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
        let mut builder = self.client.request(req.method, &req.url).body(req.body);
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
        let idle = timeouts.idle;
        let chunks = resp.bytes_stream();
        let body = futures_util::stream::unfold(Some(chunks), move |state| async move {
            let mut chunks = state?;
            match tokio::time::timeout(idle, chunks.next()).await {
                Ok(Some(Ok(b))) => Some((Ok::<Bytes, BodyError>(b), Some(chunks))),
                Ok(Some(Err(e))) => Some((Err(BodyError(without_url(&e))), None)),
                Ok(None) => None,
                Err(_) => Some((
                    Err(BodyError(format!(
                        "timed out: no data from the provider for {} s",
                        idle.as_secs()
                    ))),
                    None,
                )),
            }
        });
        Ok(UpstreamResponse {
            status,
            headers,
            body: Box::pin(body),
        })
    }
}
