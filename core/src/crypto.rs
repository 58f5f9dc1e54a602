//! Provider secrets at rest: AES-256-GCM under the master key, stored as
//! `v1:` + base64(nonce ‖ ciphertext ‖ tag). Plaintext lives only in memory.

use crate::ports::{Rng, RngError};
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
pub struct MasterKey {
    cipher: Aes256Gcm,
    /// The secret API-key hashes are keyed with, derived from the master key
    /// (so a copy of the database without the master key cannot test guesses).
    key_hash_secret: [u8; 32],
}

/// HMAC-SHA-256 (RFC 2104), over sha2's digest.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let cipher = Aes256Gcm::new_from_slice(bytes).map_err(|_| CryptoError::BadKey)?;
        Ok(MasterKey {
            cipher,
            key_hash_secret: hmac_sha256(bytes, b"hub: API key hashing, scheme 2"),
        })
    }

    /// The secret API-key hashes are keyed with.
    pub fn key_hash_secret(&self) -> &[u8; 32] {
        &self.key_hash_secret
    }

    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = B64.decode(text.trim()).map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        Self::from_bytes(&bytes)
    }

    /// Seals `plaintext` under a fresh random nonce; without randomness it
    /// fails (a zero or repeated nonce would expose what it seals under GCM).
    pub fn encrypt(&self, plaintext: &str, rng: &dyn Rng) -> Result<String, RngError> {
        let mut nonce = [0u8; 12];
        rng.fill(&mut nonce)?;
        // Encryption with a valid key and a 12-byte nonce cannot fail.
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .unwrap_or_default();
        let mut blob = Vec::with_capacity(12 + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(format!("v1:{}", B64.encode(blob)))
    }

    pub fn decrypt(&self, stored: &str) -> Result<String, CryptoError> {
        let blob = stored
            .strip_prefix("v1:")
            .and_then(|b| B64.decode(b).ok())
            .filter(|b| b.len() > 12)
            .ok_or(CryptoError::Undecryptable)?;
        let plain = self
            .cipher
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
        let sealed = key.encrypt("sk-secret-value", &rng).unwrap();
        assert!(!sealed.contains("secret"));
        assert_eq!(key.decrypt(&sealed).unwrap(), "sk-secret-value");
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert_eq!(other.decrypt(&sealed), Err(CryptoError::Undecryptable));
        assert_eq!(key.decrypt("v1:AAAA"), Err(CryptoError::Undecryptable));
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert_eq!(mask("sk-proj-abcdefghijklmnop"), "sk-p****mnop");
        assert_eq!(mask("short"), "****");
    }

    /// A random source that fails (as `crypto.getRandomValues` may).
    struct BrokenRng;
    impl Rng for BrokenRng {
        fn fill(&self, buf: &mut [u8]) -> Result<(), RngError> {
            buf.fill(0);
            Err(RngError("the source is gone".into()))
        }
    }

    #[test]
    fn no_randomness_no_ciphertext() {
        let key = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let err = key.encrypt("sk-secret-value", &BrokenRng).unwrap_err();
        assert_eq!(err.to_string(), "no randomness available: the source is gone");
        // Two sealings never share a nonce when the source works.
        let rng = CountingRng(AtomicU8::new(0));
        let (a, b) = (key.encrypt("x", &rng).unwrap(), key.encrypt("x", &rng).unwrap());
        let nonce = |s: &str| B64.decode(&s[3..]).unwrap()[..12].to_vec();
        assert_ne!(nonce(&a), nonce(&b));
        assert_ne!(nonce(&a), vec![0u8; 12]);
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block is hashed first (test case 6).
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
