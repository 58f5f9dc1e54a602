//! Selling credits through Stripe Checkout.
//!
//! - [`packs`]: the credit packs an admin puts on sale, and the payments
//!   and webhook deliveries they list.
//! - [`checkout`]: `POST /api/me/checkout`: records a payment with the
//!   pack's credits and price, asks Stripe for a Checkout Session
//!   ([`stripe`]) and answers its URL.
//! - [`webhook`]: `POST /api/payments/stripe/webhook`: verifies the
//!   signature ([`signature`]) and grants a paid checkout's recorded credits
//!   once, or takes a refund's share back.
//! - [`settings`]: the Stripe keys (sealed) and the API's address.

mod checkout;
mod packs;
pub mod settings;
pub mod signature;
mod stripe;
mod webhook;

pub(crate) use checkout::*;
pub(crate) use packs::*;
pub(crate) use webhook::*;
