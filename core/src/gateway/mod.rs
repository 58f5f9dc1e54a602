//! Model traffic: the call pipeline (authenticate, resolve, hold, call with
//! failover, relay, settle) for each inbound endpoint.

pub mod chat;
pub mod failover;
pub mod media;
pub mod models;
mod relay;
pub mod settle;

/// The error a stream ends with when the provider fails midway.
pub(crate) fn chat_stream_error(msg: &str) -> crate::error::ApiError {
    if msg.contains("timed out") || msg.contains("timeout") {
        crate::error::ApiError::provider_timeout()
    } else {
        crate::error::ApiError::provider(format!("The provider's stream failed: {msg}"))
    }
}
