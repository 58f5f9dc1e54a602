//! What a browser is answered on the sign-in routes: redirects, and a short
//! page when something fails where a person lands.

use crate::error::ApiError;
use crate::http::{Body, Response, StatusCode};

/// A redirect to `location` (a URL, or a path as the browser addresses it).
pub(crate) fn redirect(location: &str) -> Response {
    let mut res = http::Response::new(Body::empty());
    *res.status_mut() = StatusCode::FOUND;
    crate::http::set_header(&mut res, "location", location);
    crate::http::set_header(&mut res, "cache-control", "no-store");
    res
}

/// A failure where a person lands: a short page saying what happened, with
/// the way back to the sign-in page.
pub(crate) fn page(e: ApiError) -> Response {
    if e.status.is_server_error() {
        tracing::warn!(status = e.status.as_u16(), "sign-in failed: {}", e.message);
    }
    let message = escape(&e.message);
    let html = format!(
        "<!doctype html><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>Sign-in failed</title><body style=\"font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem\">\
         <h1>Sign-in failed</h1><p id=\"error\">{message}</p><p><a href=\"/#/signin\">Back to sign-in</a></p></body>"
    );
    let mut res = http::Response::new(Body::from(html.into_bytes()));
    *res.status_mut() = e.status;
    crate::http::set_header(&mut res, "content-type", "text/html; charset=utf-8");
    crate::http::set_header(&mut res, "cache-control", "no-store");
    res
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
