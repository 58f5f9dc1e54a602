//! Provider secrets at rest: AES-256-GCM under the master key, stored as
//! `v1:` + base64(nonce ‖ ciphertext ‖ tag). Plaintext lives only in memory.

use crate::ports::Rng;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the master key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("a stored secret could not be decrypted (wrong master key or corrupted data)")]
    Undecryptable,
}

#[derive(Clone)]
pub struct MasterKey(Aes256Gcm);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        Aes256Gcm::new_from_slice(bytes)
            .map(MasterKey)
            .map_err(|_| CryptoError::BadKey)
    }

    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = B64.decode(text.trim()).map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        Self::from_bytes(&bytes)
    }

    pub fn encrypt(&self, plaintext: &str, rng: &dyn Rng) -> String {
        let mut nonce = [0u8; 12];
        rng.fill(&mut nonce);
        // Encryption with a valid key and a 12-byte nonce cannot fail.
        let sealed = self
            .0
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .unwrap_or_default();
        let mut blob = Vec::with_capacity(12 + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        format!("v1:{}", B64.encode(blob))
    }

    pub fn decrypt(&self, stored: &str) -> Result<String, CryptoError> {
        let blob = stored
            .strip_prefix("v1:")
            .and_then(|b| B64.decode(b).ok())
            .filter(|b| b.len() > 12)
            .ok_or(CryptoError::Undecryptable)?;
        let plain = self
            .0
            .decrypt(Nonce::from_slice(&blob[..12]), &blob[12..])
            .map_err(|_| CryptoError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Undecryptable)
    }
}

/// `sk-proj-abcdef…wxyz` → `sk-p…wxyz`: enough to recognise a secret, not to use it.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 8 {
        return "****".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::tests::CountingRng;
    use std::sync::atomic::AtomicU8;

    #[test]
    fn round_trip_and_tamper() {
        let rng = CountingRng(AtomicU8::new(0));
        let key = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let sealed = key.encrypt("sk-secret-value", &rng);
        assert!(!sealed.contains("secret"));
        assert_eq!(key.decrypt(&sealed).unwrap(), "sk-secret-value");
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert_eq!(other.decrypt(&sealed), Err(CryptoError::Undecryptable));
        assert_eq!(key.decrypt("v1:AAAA"), Err(CryptoError::Undecryptable));
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert_eq!(mask("sk-proj-abcdefghijklmnop"), "sk-p****mnop");
        assert_eq!(mask("short"), "****");
    }
}
