//! The encryption the AIGNE CLI undoes when it picks up its key. Its
//! `crypto.js` runs `decrypt(accessKeySecret, accessKeyId, challenge)`:
//! a passphrase, hex(PBKDF2-HMAC-SHA512(password = challenge, salt =
//! accessKeyId, 256 rounds, 32 bytes)), handed to CryptoJS `AES.decrypt`,
//! which reads OpenSSL's format: base64("Salted__" ‖ 8-byte salt ‖
//! AES-256-CBC ciphertext with PKCS#7 padding), key and IV from
//! EVP_BytesToKey (MD5, one round) over the passphrase and the salt.
//!
//! The challenge travels with the ciphertext, so this only keeps the key out
//! of plain sight in logs; what keeps it from others is that only the holder
//! of the session id is ever answered.

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes256;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::{Digest as _, Md5};
use sha2::Sha512;

const PBKDF2_ROUNDS: u32 = 256;

/// `plaintext` as the CLI's `decrypt(_, access_key_id, challenge)` reads it back.
pub fn encrypt(plaintext: &str, access_key_id: &str, challenge: &str, salt: [u8; 8]) -> String {
    let passphrase = passphrase(access_key_id, challenge);
    let (key, iv) = evp_bytes_to_key(passphrase.as_bytes(), &salt);
    let mut out = b"Salted__".to_vec();
    out.extend_from_slice(&salt);
    out.extend_from_slice(&aes256_cbc_pkcs7(&key, &iv, plaintext.as_bytes()));
    B64.encode(out)
}

/// The passphrase crypto.js derives: 32 bytes of PBKDF2, as hex.
fn passphrase(access_key_id: &str, challenge: &str) -> String {
    let mut derived = [0u8; 32];
    pbkdf2_sha512(
        challenge.as_bytes(),
        access_key_id.as_bytes(),
        PBKDF2_ROUNDS,
        &mut derived,
    );
    derived.iter().map(|b| format!("{b:02x}")).collect()
}

/// PBKDF2 (RFC 8018) with HMAC-SHA-512, for outputs of one block (≤ 64 bytes).
fn pbkdf2_sha512(password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
    debug_assert!(out.len() <= 64);
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac_sha512(password, &first);
    let mut t = u;
    for _ in 1..rounds {
        u = hmac_sha512(password, &u);
        t.iter_mut().zip(u.iter()).for_each(|(a, b)| *a ^= b);
    }
    out.copy_from_slice(&t[..out.len()]);
}

/// HMAC-SHA-512 (RFC 2104; SHA-512's block is 128 bytes).
fn hmac_sha512(key: &[u8], message: &[u8]) -> [u8; 64] {
    const BLOCK: usize = 128;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..64].copy_from_slice(&Sha512::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha512::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha512::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// OpenSSL's EVP_BytesToKey with MD5 and one round: 32 bytes of key, 16 of IV.
fn evp_bytes_to_key(passphrase: &[u8], salt: &[u8; 8]) -> ([u8; 32], [u8; 16]) {
    let mut bytes = Vec::with_capacity(48);
    let mut previous: Vec<u8> = Vec::new();
    while bytes.len() < 48 {
        let digest = Md5::new()
            .chain_update(&previous)
            .chain_update(passphrase)
            .chain_update(salt)
            .finalize();
        previous = digest.to_vec();
        bytes.extend_from_slice(&digest);
    }
    let mut key = [0u8; 32];
    let mut iv = [0u8; 16];
    key.copy_from_slice(&bytes[..32]);
    iv.copy_from_slice(&bytes[32..48]);
    (key, iv)
}

/// AES-256 in CBC mode with PKCS#7 padding.
fn aes256_cbc_pkcs7(key: &[u8; 32], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let cipher = Aes256::new(GenericArray::from_slice(key));
    let pad = 16 - data.len() % 16;
    let mut padded = data.to_vec();
    padded.extend(std::iter::repeat_n(pad as u8, pad));
    let mut previous = *iv;
    let mut out = Vec::with_capacity(padded.len());
    for chunk in padded.chunks(16) {
        let mut block = [0u8; 16];
        block
            .iter_mut()
            .zip(chunk)
            .zip(previous)
            .for_each(|((b, c), p)| *b = c ^ p);
        let mut ga = GenericArray::from(block);
        cipher.encrypt_block(&mut ga);
        previous.copy_from_slice(&ga);
        out.extend_from_slice(&ga);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_the_passphrase_as_node_does() {
        // node -e 'console.log(require("crypto").pbkdf2Sync("the-challenge","key_1",256,32,"sha512").toString("hex"))'
        assert_eq!(passphrase("key_1", "the-challenge"), PASSPHRASE);
    }

    #[test]
    fn encrypts_as_openssl_enc_does() {
        // printf 'hub_secret-key' | openssl enc -aes-256-cbc -md md5 -S 0102030405060708 -pass pass:$PASSPHRASE -a;
        // the CLI's own crypto.js decrypts it back to `hub_secret-key`.
        let salt = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(encrypt("hub_secret-key", "key_1", "the-challenge", salt), OPENSSL);
    }

    const PASSPHRASE: &str = "95c8e6667edf65969baaa3c0049284acb014acd4235235641a6a4efa3ce5bded";
    // (OpenSSL 3 leaves out the "Salted__" header when given -S: it is added back here.)
    const OPENSSL: &str = "U2FsdGVkX18BAgMEBQYHCN+E8rh7h4PWMVesmBiCINU=";
}
