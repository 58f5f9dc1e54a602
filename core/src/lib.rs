//! hub-core: the platform-agnostic gateway.
//!
//! It owns the HTTP contract (OpenAI, admin), metering, routing and auth, and
//! reaches the outside world only through the ports in [`ports`]: a SQL
//! database, an upstream HTTP client, a clock, randomness and a background
//! spawner. It depends on no runtime, so the same code runs natively (tokio),
//! on Cloudflare Workers (wasm32) and on AWS Lambda.

// On wasm32 the ports are not Send (isolates are single-threaded), so Arcs of them are not either.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

/// `#[async_trait]` that drops the `Send` bound on wasm32, where futures are not `Send`.
#[macro_export]
macro_rules! port {
    ($item:item) => {
        #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
        #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
        $item
    };
}

pub mod accounts;
pub mod admin;
pub mod aigne;
pub mod aigne_credit;
pub mod auth;
pub mod chat;
pub mod codec;
pub mod config;
pub mod connect;
pub mod crypto;
pub mod error;
pub mod gateway;
pub mod http;
pub mod hub;
pub mod ids;
pub mod jobs;
pub mod kinds;
pub mod metering;
pub mod multipart;
pub mod net;
pub mod notify;
pub mod options;
pub mod origin;
pub mod payments;
pub mod ports;
pub mod prices;
pub mod protocols;
pub mod providers;
pub mod sse;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub mod app;
pub use hub::{Hub, HubOptions};
pub use metering::money::Credits;
