//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>):
//! secrets are 32 random bytes, shown as `whsec_` + base64; a delivery is
//! signed with HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`
//! under the decoded secret, sent as `webhook-signature: v1,<base64>` (one
//! signature per secret in use, space-separated, during a rotation).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

pub const SECRET_PREFIX: &str = "whsec_";
/// The specification asks for 24 to 64 bytes.
const SECRET_BYTES: usize = 32;

/// A new signing secret, `whsec_…`.
pub fn new_secret(rng: &dyn crate::ports::Rng) -> Result<String, crate::ports::RngError> {
    let mut bytes = [0u8; SECRET_BYTES];
    rng.fill(&mut bytes)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// What an admin sees of a secret after it was shown once.
pub fn hint(secret: &str) -> String {
    let shown: String = secret.chars().take(SECRET_PREFIX.len() + 4).collect();
    format!("{shown}…")
}

/// The key bytes of a `whsec_` secret.
fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// The `webhook-signature` header: `v1,<sig>` for each secret, space-separated.
pub fn signature_header(secrets: &[&str], msg_id: &str, timestamp_s: i64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(msg_id.len() + body.len() + 24);
    signed.extend_from_slice(msg_id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp_s.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    secrets
        .iter()
        .filter_map(|s| key_of(s))
        .map(|key| format!("v1,{}", STANDARD.encode(crate::crypto::hmac_sha256(&key, &signed))))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_specification_example() {
        // The reference libraries' test vector (the same header as standardwebhooks 1.1.0 for Python signs).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature_header(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn two_secrets_sign_twice_and_a_bad_secret_signs_nothing() {
        let h = signature_header(&["whsec_AAAA", "whsec_BBBB"], "msg_1", 1, b"{}");
        assert_eq!(h.split(' ').count(), 2);
        assert!(h.split(' ').all(|s| s.starts_with("v1,")));
        assert_eq!(signature_header(&["nope"], "msg_1", 1, b"{}"), "");
    }

    #[test]
    fn secrets_are_32_random_bytes_behind_the_prefix() {
        struct Fixed;
        impl crate::ports::Rng for Fixed {
            fn fill(&self, buf: &mut [u8]) -> Result<(), crate::ports::RngError> {
                buf.fill(7);
                Ok(())
            }
        }
        let s = new_secret(&Fixed).unwrap();
        assert_eq!(key_of(&s).unwrap(), vec![7u8; 32]);
        assert!(hint(&s).starts_with("whsec_Bwc"));
    }
}
