//! The core's HTTP types: a request with a byte body in, a response whose
//! body is either whole or a stream of byte chunks out. Runtimes convert to
//! and from these; nothing here knows about hyper, workers or lambda.

use bytes::Bytes;
use futures_core::Stream;
use std::pin::Pin;

pub use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

/// An error inside a streamed body; the runtime ends the response when it sees one.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    pub kind: BodyFailure,
    pub message: String,
}

/// Why a body stream failed: failover and the caller's error differ for a
/// provider that went quiet and one whose connection broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFailure {
    /// Nothing arrived within the idle timeout.
    TimedOut,
    /// The connection or the stream broke.
    Broken,
}

impl BodyError {
    pub fn timed_out(message: impl Into<String>) -> Self {
        BodyError {
            kind: BodyFailure::TimedOut,
            message: message.into(),
        }
    }

    pub fn broken(message: impl Into<String>) -> Self {
        BodyError {
            kind: BodyFailure::Broken,
            message: message.into(),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send + 'static>>;
#[cfg(target_arch = "wasm32")]
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + 'static>>;

pub enum Body {
    Full(Bytes),
    Stream(ByteStream),
}

impl Body {
    pub fn empty() -> Self {
        Body::Full(Bytes::new())
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::Full(b)
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Body::Full(Bytes::from(b))
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Full(b) => write!(f, "Body::Full({} bytes)", b.len()),
            Body::Stream(_) => write!(f, "Body::Stream"),
        }
    }
}

pub type Request = http::Request<Bytes>;
pub type Response = http::Response<Body>;

/// The address of the peer a request came from, where the runtime knows it
/// (`hub serve` puts it in the request's extensions; behind a platform's own
/// front end, as on Workers and Lambda, there is none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::IpAddr);

/// A JSON response with the given status.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut res = http::Response::new(Body::Full(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// Adds a header to a response, ignoring values that are not valid header text.
pub fn set_header(res: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, v);
    }
}

/// Adds one more value of a header (`set-cookie`), ignoring values that are not valid header text.
pub fn append_header(res: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().append(name, v);
    }
}

/// The value of a header as a string, if present and valid UTF-8.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A response's `retry-after` in milliseconds, when it gives a number of
/// seconds (the HTTP-date form is not read: no provider or endpoint Hub
/// talks to was seen sending it).
pub fn retry_after_ms(headers: &HeaderMap) -> Option<i64> {
    let seconds = header(headers, "retry-after")?.trim().parse::<i64>().ok()?;
    Some(seconds.saturating_mul(1000))
}

/// Decoded `?a=b&c=d` pairs of a URI's query.
pub fn query_pairs(uri: &http::Uri) -> Vec<(String, String)> {
    let Some(q) = uri.query() else {
        return Vec::new();
    };
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query() {
        let uri: http::Uri = "/x?from=2026-01-01T00%3A00%3A00Z&user=a+b&flag&bad=%zz"
            .parse()
            .unwrap();
        let q = query_pairs(&uri);
        assert_eq!(q[0], ("from".into(), "2026-01-01T00:00:00Z".into()));
        assert_eq!(q[1], ("user".into(), "a b".into()));
        assert_eq!(q[2], ("flag".into(), "".into()));
        assert_eq!(q[3], ("bad".into(), "%zz".into()));
    }
}
