//! The front door: a request in, a response out. Finds the request's route
//! in the [table](table), authenticates the caller at the route's access
//! level (here, once), and renders every failure in the caller's protocol
//! with its request id and CORS headers. Sits on top of everything: nothing
//! below imports it.

pub mod audit;
pub mod table;

use crate::error::{ApiError, Protocol};
use crate::http::{Body, HeaderValue, Method, Request, Response, StatusCode};
use crate::hub::Hub;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use table::{area_of, routes_for, segments, Access, Call, Handler, Route};

impl Hub {
    /// Serves one request. Never panics on input; every failure is a response.
    pub async fn handle(&self, req: Request) -> Response {
        self.answer(req, None).await
    }

    /// Answers a request the runtime could not take in whole (a body over the
    /// limit or too slow to arrive; `req` carries no body) with `error`,
    /// rendered as every other failure: in the caller's protocol, with its
    /// request id and CORS headers.
    pub async fn reject(&self, req: Request, error: ApiError) -> Response {
        self.answer(req, Some(error)).await
    }

    async fn answer(&self, req: Request, early: Option<ApiError>) -> Response {
        let cors = cors_origin(self, &req);
        if req.method() == Method::OPTIONS && req.headers().contains_key("origin") {
            return preflight(cors, req.uri().path());
        }
        let mut res = self.serve(req, early).await;
        if let Some(origin) = cors {
            let h = res.headers_mut();
            h.insert("access-control-allow-origin", origin);
            h.insert(
                "access-control-expose-headers",
                HeaderValue::from_static("x-hub-call-id, x-hub-credits, x-request-id"),
            );
            h.append("vary", HeaderValue::from_static("origin"));
        }
        res
    }

    /// The request's answer with its request id, holding a call slot while it lasts.
    async fn serve(&self, req: Request, early: Option<ApiError>) -> Response {
        let request_id = crate::http::header(req.headers(), "x-request-id")
            .filter(|v| v.len() <= 128)
            .map(str::to_owned)
            .unwrap_or_else(|| self.new_id("req"));
        let path = req.uri().path().to_owned();
        let protocol = protocol_of(&path);
        // AIGNE Hub answers every failure of a streaming request as one SSE frame, with HTTP 200.
        let sse_errors = protocol == Protocol::Aigne && crate::aigne::accepts_sse(&req);
        let slot = Slot::take(self, &req, protocol, early.is_some());
        let result = match (early, &slot) {
            (Some(e), _) => Err(e),
            (None, Slot::Refused(limit)) => Err(ApiError::unavailable(format!(
                "Hub is serving as many calls as it is configured for ({limit}); retry in a moment."
            ))),
            (None, _) => self.admit_body(req, &request_id).await,
        };
        let mut res = result.unwrap_or_else(|e| self.render(e, protocol, sse_errors, &request_id));
        if res.status() == StatusCode::METHOD_NOT_ALLOWED {
            if let Some(allow) = table::allowed_methods(&segments(&path)) {
                crate::http::set_header(&mut res, "allow", &allow);
            }
        }
        crate::http::set_header(&mut res, "x-request-id", &request_id);
        slot.hold_for(res)
    }

    async fn admit_body(&self, req: Request, request_id: &str) -> Result<Response, ApiError> {
        let limit = self.options().max_body_bytes;
        if req.body().len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        self.route(req, request_id).await
    }

    fn render(&self, e: ApiError, protocol: Protocol, sse_errors: bool, request_id: &str) -> Response {
        if e.status.is_server_error() {
            tracing::warn!(request_id = %request_id, status = e.status.as_u16(), "{}", e.message);
        }
        if sse_errors {
            crate::protocols::aigne::sse_error(&e)
        } else {
            e.into_response(protocol)
        }
    }

    /// Runs the request's route; a path with other methods is a 405, an
    /// unknown one a 404, each after the access its area asks for.
    async fn route(&self, req: Request, request_id: &str) -> Result<Response, ApiError> {
        let path = req.uri().path().to_owned();
        let segs = segments(&path);
        let mut found = routes_for(&segs).peekable();
        if found.peek().is_none() {
            self.guard_area(&segs, &req).await?;
            return Err(not_found(&req, &segs));
        }
        match found.find(|(r, _)| r.method == req.method()) {
            Some((route, params)) => {
                let call = Call::new(self.clone(), req, request_id.to_owned(), params);
                self.dispatch(route, call).await
            }
            None => {
                self.guard_area(&segs, &req).await?;
                Err(ApiError::method_not_allowed())
            }
        }
    }

    /// Authenticates at the route's access level and runs its handler.
    async fn dispatch(&self, route: &Route, call: Call) -> Result<Response, ApiError> {
        match route.handler {
            Handler::Public(f) => f(call).await,
            Handler::Key(f) => {
                let caller = self.caller(&call.req).await?;
                f(call, caller).await
            }
            Handler::Admin(f) => {
                let caller = self.admin_caller(&call.req).await?;
                f(call, caller).await
            }
            Handler::AdminWrite(what, f) => {
                let caller = self.admin_caller(&call.req).await?;
                audit::run(self, what, call, caller, f).await
            }
            Handler::KeyWrite(what, f) => {
                let caller = self.caller(&call.req).await?;
                audit::run(self, what, call, caller, f).await
            }
            Handler::Optional(f) => {
                let caller = match crate::auth::presented_key(call.req.headers()) {
                    Some(_) => Some(self.caller(&call.req).await),
                    None => None,
                };
                f(call, caller).await
            }
        }
    }

    /// The request's caller: its key, else its browser session (a session's
    /// writes also need its CSRF token); 401 with neither.
    async fn caller(&self, req: &Request) -> Result<Arc<crate::auth::Caller>, ApiError> {
        if crate::auth::presented_key(req.headers()).is_none() {
            if let Some(session) = crate::accounts::sessions::caller(self, req).await {
                return session;
            }
        }
        self.authenticate(req).await
    }

    /// The request's caller, if an owner or admin (401, then 403).
    async fn admin_caller(&self, req: &Request) -> Result<Arc<crate::auth::Caller>, ApiError> {
        let caller = self.caller(req).await?;
        if !caller.role.is_admin() {
            return Err(admin_only());
        }
        Ok(caller)
    }

    /// `GET /metrics`: the Prometheus text page, for `HUB_METRICS_TOKEN` or
    /// an owner or admin key.
    pub(crate) async fn metrics(&self, req: &Request) -> Result<Response, ApiError> {
        if !self.metrics_token_ok(req) {
            self.admin_caller(req).await?;
        }
        let mut res = Response::new(Body::Full(self.metrics_text().await.into()));
        res.headers_mut().insert(
            "content-type",
            HeaderValue::from_static(crate::telemetry::metrics::CONTENT_TYPE),
        );
        Ok(res)
    }

    /// Refuses callers who may not learn what is under the path's area.
    async fn guard_area(&self, segs: &[&str], req: &Request) -> Result<(), ApiError> {
        match area_of(segs).map(|a| a.access) {
            Some(Access::Key) => self.caller(req).await.map(drop),
            Some(Access::Admin) => match self.caller(req).await?.role.is_admin() {
                true => Ok(()),
                false => Err(admin_only()),
            },
            _ => Ok(()),
        }
    }
}

fn admin_only() -> ApiError {
    ApiError::forbidden("This endpoint needs an owner or admin key.")
}

fn not_found(req: &Request, segs: &[&str]) -> ApiError {
    if segs.starts_with(&["api", "admin"]) {
        return ApiError::not_found(format!(
            "No admin route for {} {}.",
            req.method(),
            req.uri().path().trim_end_matches('/')
        ));
    }
    ApiError::not_found(format!("No route for {} {}.", req.method(), req.uri().path()))
}

/// The protocol a path's callers speak, which decides the error shape: its
/// routes', else its area's, else Hub's own.
pub fn protocol_of(path: &str) -> Protocol {
    let segs = segments(path);
    let from_route = routes_for(&segs).map(|(r, _)| r.protocol).next();
    from_route
        .or_else(|| area_of(&segs).map(|a| a.protocol))
        .unwrap_or(Protocol::Hub)
}

/// Whether a path belongs to Hub's API (everything else may be the admin
/// site): its first segment begins some route.
pub fn is_api_path(path: &str) -> bool {
    let Some(first) = segments(path).first().copied() else {
        return false;
    };
    table::ROUTES
        .iter()
        .any(|r| segments(r.pattern).first() == Some(&first))
}

/// The CORS origin to allow for a request, if it comes from an allowed page.
fn cors_origin(hub: &Hub, req: &Request) -> Option<HeaderValue> {
    let origin = req.headers().get("origin")?;
    let text = origin.to_str().ok()?;
    hub.options()
        .cors_origins
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/') == text)
        .then(|| origin.clone())
}

/// The answer to a CORS preflight: allowed with the path's methods and the
/// headers Hub takes, or refused (no CORS headers, so the browser blocks the
/// call); a path Hub does not serve is a 404.
fn preflight(origin: Option<HeaderValue>, path: &str) -> Response {
    let Some(origin) = origin else {
        return ApiError::forbidden("This origin may not call Hub from a browser (see HUB_CORS_ORIGINS).")
            .into_response(Protocol::Hub);
    };
    let Some(methods) = table::allowed_methods(&segments(path)) else {
        return ApiError::not_found(format!("No route for OPTIONS {path}.")).into_response(protocol_of(path));
    };
    let mut res = http::Response::new(Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    crate::http::set_header(&mut res, "access-control-allow-methods", &format!("{methods}, OPTIONS"));
    let h = res.headers_mut();
    h.insert("access-control-allow-origin", origin);
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static(
            "authorization, content-type, x-api-key, x-request-id, x-hub-app, anthropic-version, x-aigne-hub-client-did",
        ),
    );
    h.insert("access-control-max-age", HeaderValue::from_static("600"));
    h.insert("vary", HeaderValue::from_static("origin"));
    res
}

/// A model call's place among those `HubOptions::max_in_flight` allows.
enum Slot {
    /// Not a model call, or no limit.
    Free,
    Held(InFlight),
    /// Over the limit (the limit).
    Refused(usize),
}

impl Slot {
    /// Model calls (POSTs outside Hub's own API) take a slot while their answer lasts.
    fn take(hub: &Hub, req: &Request, protocol: Protocol, early: bool) -> Slot {
        let limit = hub.options().max_in_flight;
        if early || limit == 0 || req.method() != Method::POST || protocol == Protocol::Hub {
            return Slot::Free;
        }
        match InFlight::acquire(hub.in_flight(), limit) {
            Some(slot) => Slot::Held(slot),
            None => Slot::Refused(limit),
        }
    }

    /// The response, holding the slot until its stream ends or its caller leaves.
    fn hold_for(self, mut res: Response) -> Response {
        match self {
            Slot::Free => {}
            Slot::Refused(_) => {
                res.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
            }
            Slot::Held(slot) => {
                let body = std::mem::replace(res.body_mut(), Body::empty());
                *res.body_mut() = match body {
                    Body::Stream(inner) => Body::Stream(Box::pin(Holding { inner, _slot: slot })),
                    whole => whole,
                };
            }
        }
        res
    }
}

/// One model call being served; the count drops when it is dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn acquire(count: &Arc<AtomicUsize>, limit: usize) -> Option<InFlight> {
        if count.fetch_add(1, Ordering::AcqRel) >= limit {
            count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InFlight(count.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A streamed body that holds its call's slot.
struct Holding {
    inner: crate::http::ByteStream,
    _slot: InFlight,
}

impl futures_core::Stream for Holding {
    type Item = Result<bytes::Bytes, crate::http::BodyError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_come_from_routes_then_areas() {
        assert_eq!(protocol_of("/v1/messages"), Protocol::Anthropic);
        assert_eq!(protocol_of("/v1/messages/"), Protocol::Anthropic);
        assert_eq!(protocol_of("/v1/chat/completions"), Protocol::OpenAi);
        assert_eq!(protocol_of("/v1/nope"), Protocol::OpenAi);
        assert_eq!(protocol_of("/api/user/info"), Protocol::Aigne);
        assert_eq!(protocol_of("/api/v2/audio/transcriptions"), Protocol::Aigne);
        assert_eq!(protocol_of("/api/ai-providers/health"), Protocol::Aigne);
        assert_eq!(protocol_of("/api/admin/users"), Protocol::Hub);
        assert_eq!(protocol_of("/__blocklet__.js"), Protocol::Hub);
        assert_eq!(protocol_of("/users/42"), Protocol::Hub);
    }

    #[test]
    fn api_paths_are_the_tables_first_segments() {
        for p in [
            "/v1",
            "/v1/x",
            "/api",
            "/api/nope",
            "/healthz",
            "/readyz",
            "/__blocklet__.js",
        ] {
            assert!(is_api_path(p), "{p}");
        }
        for p in ["/", "/users/42", "/assets/app.js", "/index.html"] {
            assert!(!is_api_path(p), "{p}");
        }
    }
}
