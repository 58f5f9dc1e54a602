//! People, not just keys: signing in with an OpenID provider or an emailed
//! link, browser sessions, and the one account a person has whichever way
//! they sign in.
//!
//! - [`people`] turns a proven identity into a user: the linked one, the one
//!   with the same verified address, or a new member (when sign-up is open).
//! - [`sessions`] opens, finds, slides and ends browser sessions, and checks
//!   the CSRF token of their writes.
//! - [`oidc`] and [`email`] are the two ways to prove who someone is.
//! - [`routes`] are the `/auth/*` and `/api/me/*` handlers.

pub mod discovery;
pub mod email;
pub mod oidc;
mod pages;
pub mod people;
mod routes;
pub mod sessions;
pub mod settings;

pub(crate) use email::client_ip;
pub(crate) use routes::*;

use crate::ports::{Rng, RngError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// A fresh random secret: 32 bytes, base64url (43 characters).
pub(crate) fn new_secret(rng: &dyn Rng) -> Result<String, RngError> {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a secret (a session token, an email link), keyed with
/// the master key's hashing secret and the purpose, so a copy of the
/// database cannot test guesses, nor pass one kind of secret for another.
pub(crate) fn hash_secret(key: &[u8; 32], purpose: &str, secret: &str) -> String {
    let mut message = Vec::with_capacity(purpose.len() + 1 + secret.len());
    message.extend_from_slice(purpose.as_bytes());
    message.push(0);
    message.extend_from_slice(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(crate::crypto::hmac_sha256(key, &message))
}

/// Whether `s` looks like an email address Hub can send to and match on:
/// one `@`, a dotted domain, no spaces, quotes or control characters.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let plain = |c: char| {
        c.is_ascii_graphic()
            && !matches!(
                c,
                '"' | '(' | ')' | ',' | ':' | ';' | '<' | '>' | '@' | '[' | '\\' | ']'
            )
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && local.chars().all(plain)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// An address as Hub keeps and compares it: trimmed, lower-case.
pub(crate) fn normal_email(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// Whether a `return_to` is a path on this site (never another origin,
/// `//host` or `/\host` included), so a sign-in cannot be used to send
/// someone elsewhere.
pub(crate) fn is_local_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.starts_with("/\\")
        && p.len() <= 2048
        && !p.chars().any(|c| c.is_control() || c == '\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for good in ["a@example.com", "first.last+tag@sub.example.co.uk"] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b.com\r\nBcc: x@y.com",
            "\"a\"@b.com",
            "a@.b.com",
            "@b.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn only_local_paths_are_followed() {
        for ok in ["/", "/#/account", "/x?y=1"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "/a\nb",
            "",
        ] {
            assert!(!is_local_path(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_hash_by_purpose() {
        let key = [7u8; 32];
        assert_ne!(hash_secret(&key, "session", "t"), hash_secret(&key, "email", "t"));
        assert_ne!(
            hash_secret(&key, "session", "t"),
            hash_secret(&[8u8; 32], "session", "t")
        );
        assert_eq!(hash_secret(&key, "session", "t").len(), 43);
    }
}
