//! Stripe's webhook signature, checked as Stripe documents it ("Verify
//! webhook signatures manually"): the `Stripe-Signature` header is
//! `t=<unix seconds>,v1=<hex>,v1=<hex>,…`; the signed text is the
//! timestamp, a dot and the raw body byte for byte; each `v1` is the
//! HMAC-SHA256 of it under the endpoint's signing secret (`whsec_…`, used
//! whole as the key). Any `v1` may match: while a secret is being rolled,
//! Stripe signs with the old and the new one. Other schemes (`v0`, the test
//! mode's legacy one) are ignored. The comparison is constant-time, and a
//! timestamp more than five minutes from Hub's clock (either way) is refused,
//! so a captured delivery cannot be replayed later.

/// How far a signature's timestamp may be from now, in seconds (Stripe's libraries' default).
pub const TOLERANCE_S: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header has no timestamp (t=) or no v1 signature")]
    Malformed,
    #[error("no v1 signature in the Stripe-Signature header matches the webhook signing secret")]
    NoMatch,
    #[error("the signature's timestamp is more than 5 minutes away from now (a replay, or a clock far off)")]
    OutsideTolerance,
}

/// The header's timestamp and its `v1` signatures.
fn parse(header: &str) -> Result<(i64, Vec<&str>), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) if timestamp.is_none() => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => signatures.push(sig),
            _ => {}
        }
    }
    match timestamp {
        Some(t) if !signatures.is_empty() => Ok((t, signatures)),
        _ => Err(SignatureError::Malformed),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a delivery's `Stripe-Signature` header against its raw body.
pub fn verify(header: Option<&str>, body: &[u8], secret: &str, now_s: i64) -> Result<(), SignatureError> {
    let (timestamp, signatures) = parse(header.ok_or(SignatureError::Missing)?)?;
    let mut signed = Vec::with_capacity(body.len() + 24);
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let expected = hex(&crate::crypto::hmac_sha256(secret.as_bytes(), &signed));
    // Every entry is compared (no early exit), each in constant time.
    let matched = signatures
        .iter()
        .fold(false, |any, sig| crate::auth::hashes_equal(sig, &expected) | any);
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    if now_s.abs_diff(timestamp) > TOLERANCE_S as u64 {
        return Err(SignatureError::OutsideTolerance);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed independently (Python's hmac): HMAC-SHA256("whsec_a", "1700000000.{\"a\":1}").
    const SIG_A: &str = "a4b39d8bb2e6dfa1ea9f2ea037550b767cb1f592e0a81565c3a565232799943d";
    const BODY: &[u8] = br#"{"a":1}"#;

    #[test]
    fn a_matching_v1_within_tolerance_verifies() {
        let header = format!("t=1700000000,v1={SIG_A}");
        assert_eq!(verify(Some(&header), BODY, "whsec_a", 1_700_000_000), Ok(()));
        assert_eq!(verify(Some(&header), BODY, "whsec_a", 1_700_000_300), Ok(()));
        // Rotation: another secret's signature first, a v0 too.
        let rolled = format!("t=1700000000,v1=00ff,v0=abc,v1={SIG_A}");
        assert_eq!(verify(Some(&rolled), BODY, "whsec_a", 1_700_000_000), Ok(()));
    }

    #[test]
    fn everything_else_is_refused() {
        let header = format!("t=1700000000,v1={SIG_A}");
        let now = 1_700_000_000;
        assert_eq!(verify(None, BODY, "whsec_a", now), Err(SignatureError::Missing));
        assert_eq!(
            verify(Some(&header), br#"{"a":2}"#, "whsec_a", now),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some(&header), BODY, "whsec_b", now),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some(&header), BODY, "whsec_a", now + 301),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(Some(&header), BODY, "whsec_a", now - 301),
            Err(SignatureError::OutsideTolerance)
        );
        let v0_only = format!("t=1700000000,v0={SIG_A}");
        assert_eq!(
            verify(Some(&v0_only), BODY, "whsec_a", now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some(&format!("v1={SIG_A}")), BODY, "whsec_a", now),
            Err(SignatureError::Malformed)
        );
        // The timestamp is part of what is signed.
        let moved = format!("t=1700000001,v1={SIG_A}");
        assert_eq!(verify(Some(&moved), BODY, "whsec_a", now), Err(SignatureError::NoMatch));
    }
}
