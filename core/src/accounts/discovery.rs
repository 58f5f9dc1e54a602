//! The OpenID provider as an instance last fetched it: its discovery
//! document and signing keys, kept per instance (see `oidc`).

use crate::auth::jwt::Jwks;
use serde::Deserialize;
use std::sync::{Arc, RwLock};

/// What Hub needs from the provider's discovery document.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// A provider as last fetched.
pub(crate) struct Provider {
    pub issuer: String,
    pub discovery: Discovery,
    pub jwks: Jwks,
    pub fetched_at: i64,
    pub jwks_fetched_at: i64,
}

/// The discovery documents and keys this instance has fetched.
#[derive(Default)]
pub struct Cache(pub(crate) RwLock<Option<Arc<Provider>>>);
