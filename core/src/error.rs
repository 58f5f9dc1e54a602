//! Errors a caller can see. Every layer's error becomes an [`ApiError`], which
//! knows its HTTP status and renders itself in the caller's protocol.

use crate::http::{json, Response, StatusCode};
use crate::ports::DbError;
use serde_json::json;

/// The wire protocol a caller speaks, which decides the error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    OpenAi,
    Anthropic,
    /// AIGNE Hub's API (`/api/v2/*`): `{"error": {"message", "type"?, "link"?, "timestamp"?}}`.
    Aigne,
    /// Hub's own API and the admin API (OpenAI's error shape).
    Hub,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// OpenAI's `error.type`: `invalid_request_error`, `authentication_error`, …
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
    /// A 402's details for AIGNE clients.
    pub payment: Option<Box<Payment>>,
    /// What went wrong inside Hub, for the operator's log; never shown to the caller.
    pub cause: Option<String>,
    /// Seconds until a retry may succeed, sent as `retry-after` (every 429
    /// carries one). Non-zero, which also keeps `ApiError` small.
    pub retry_after_s: Option<std::num::NonZeroU32>,
}

/// Where to buy credits and when the refusal happened (ISO-8601).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub link: Option<String>,
    pub timestamp: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            code: Some(code),
            message: message.into(),
            param: None,
            payment: None,
            cause: None,
            retry_after_s: None,
        }
    }

    /// When a retry may succeed: `ms` from now, in whole seconds rounded up (at least 1).
    pub fn with_retry_after_ms(mut self, ms: i64) -> Self {
        self.retry_after_s =
            std::num::NonZeroU32::new(u32::try_from(ms.max(1).saturating_add(999) / 1000).unwrap_or(u32::MAX));
        self
    }

    /// Keeps an internal detail for the log (see [`ApiError::into_response`]).
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// Names the refusal more precisely than its status does (`code_expired`).
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            message,
        )
    }

    /// A 400 naming the offending field.
    pub fn invalid_field(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("`{field}` {problem}")).with_param(field)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            message,
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", "not_found", message)
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_param("model")
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "invalid_request_error", "conflict", message)
    }

    pub fn insufficient_credits(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_quota",
            "insufficient_credits",
            message,
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("The request body is larger than the limit of {limit} bytes."),
        )
    }

    /// The client did not send its whole request body within `limit`.
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            format!(
                "The request body did not arrive within {} s; send it whole, then wait for the answer.",
                limit.as_secs()
            ),
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            "Method not allowed for this path.",
        )
    }

    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limited",
            message,
        )
    }

    pub fn provider(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "api_error", "provider_error", message)
    }

    pub fn provider_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "api_error",
            "provider_timeout",
            "The provider did not answer in time.",
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", "unavailable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "internal_error",
            message,
        )
    }

    /// The error object in the caller's protocol.
    pub fn body(&self, protocol: Protocol) -> serde_json::Value {
        match protocol {
            Protocol::OpenAi | Protocol::Hub => json!({
                "error": {
                    "message": self.message,
                    "type": self.kind,
                    "code": self.code,
                    "param": self.param,
                }
            }),
            Protocol::Anthropic => json!({
                "type": "error",
                "error": { "type": anthropic_type(self.status), "message": self.message }
            }),
            Protocol::Aigne => {
                let mut e = json!({ "message": self.message });
                if self.status == StatusCode::PAYMENT_REQUIRED {
                    e["type"] = json!("NOT_ENOUGH");
                }
                if let Some(p) = &self.payment {
                    e["link"] = json!(p.link);
                    e["timestamp"] = json!(p.timestamp);
                }
                json!({ "error": e })
            }
        }
    }

    /// The error as the caller gets it. Where an error becomes an answer is
    /// where it is handled, so an internal cause is logged here, once.
    pub fn into_response(self, protocol: Protocol) -> Response {
        if let Some(cause) = &self.cause {
            tracing::error!(status = self.status.as_u16(), error = %cause, "{}", self.message);
        }
        let retry_after = match (self.retry_after_s, self.status) {
            (Some(s), _) => Some(s.get()),
            // A 429 without a known wait still tells the client to back off.
            (None, StatusCode::TOO_MANY_REQUESTS) => Some(1),
            (None, _) => None,
        };
        let mut res = json(self.status, &self.body(protocol));
        if let Some(s) = retry_after {
            res.headers_mut()
                .insert("retry-after", crate::http::HeaderValue::from(s));
        }
        res
    }
}

fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 404 | 408 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 | 403 => "permission_error",
        429 => "rate_limit_error",
        529 | 503 => "overloaded_error",
        _ => "api_error",
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Constraint(msg) => ApiError::conflict(format!("That conflicts with existing data ({msg}).")),
            DbError::Unavailable(msg) => {
                ApiError::unavailable("The database is unavailable; try again shortly.").with_cause(msg)
            }
            DbError::Other(msg) => ApiError::internal("Internal database error.").with_cause(msg),
        }
    }
}
