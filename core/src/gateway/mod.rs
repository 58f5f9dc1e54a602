//! Model traffic: the call pipeline (authenticate, resolve, hold, call with
//! failover, relay, settle) for each inbound endpoint.

pub mod audio;
mod cache;
pub mod chat;
pub mod count_tokens;
pub mod failover;
mod hold;
pub mod media;
pub mod models;
mod pipeline;
pub(crate) use pipeline::collect;
mod relay;
pub mod responses;
pub mod routing;
pub mod settle;
pub mod video;
pub mod videos;
