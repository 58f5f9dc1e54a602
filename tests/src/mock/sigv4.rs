//! SigV4 verification for the mock's Bedrock endpoints, written from AWS's
//! specification (not with the signing library Hub uses, so that a mistake
//! there cannot hide here): the canonical request is rebuilt from what was
//! received, signed with the secret key the test configured for the access
//! key id, and compared with the signature sent.

use super::checks::{Incoming, Refusal};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Authorization<'a> {
    pub access_key_id: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

pub(crate) fn parse(header: &str) -> Option<Authorization<'_>> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        let (k, v) = part.split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let auth = Authorization {
        access_key_id: scope.next()?,
        date: scope.next()?,
        region: scope.next()?,
        service: scope.next()?,
        signed_headers: signed_headers?,
        signature: signature?,
    };
    (scope.next() == Some("aws4_request") && scope.next().is_none()).then_some(auth)
}

fn refuse(message: impl Into<String>, aws_type: &'static str) -> Refusal {
    Refusal {
        status: 403,
        message: message.into(),
        aws_type: Some(aws_type),
    }
}

/// Checks a SigV4-signed request against the known secret keys.
pub(crate) fn verify(req: &Incoming, keys: &HashMap<String, String>) -> Result<(), Refusal> {
    let header = req.headers.get("authorization").map(String::as_str).unwrap_or("");
    let auth = parse(header).ok_or_else(|| {
        refuse(
            format!("Authorization header is not a well-formed SigV4 header: {header}"),
            "IncompleteSignatureException",
        )
    })?;
    let Some(secret) = keys.get(auth.access_key_id) else {
        return Err(refuse(
            "The security token included in the request is invalid.",
            "UnrecognizedClientException",
        ));
    };
    let amz_date = req.headers.get("x-amz-date").map(String::as_str).unwrap_or("");
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    if !signed.contains(&"host") || !signed.contains(&"x-amz-date") {
        return Err(refuse(
            "Host and X-Amz-Date must be signed",
            "IncompleteSignatureException",
        ));
    }
    if !amz_date.starts_with(auth.date) || amz_date.len() != 16 {
        return Err(refuse(
            format!(
                "X-Amz-Date `{amz_date}` does not match the credential scope date {}",
                auth.date
            ),
            "InvalidSignatureException",
        ));
    }
    if auth.service != "bedrock" {
        return Err(refuse(
            format!(
                "Credential should be scoped to correct service: 'bedrock', not '{}'",
                auth.service
            ),
            "InvalidSignatureException",
        ));
    }
    check_clock(amz_date)?;
    let payload_hash = match req.headers.get("x-amz-content-sha256") {
        Some(h) => h.clone(),
        None => hex(&Sha256::digest(req.raw)),
    };
    let canonical = canonical_request(req, &signed, &payload_hash);
    let expected = signature(secret, amz_date, &auth, &canonical);
    if expected != auth.signature {
        return Err(refuse(
            format!(
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method. The canonical request was:\n{canonical}"
            ),
            "InvalidSignatureException",
        ));
    }
    Ok(())
}

/// Requests signed more than 15 minutes away from now are refused, as AWS does.
fn check_clock(amz_date: &str) -> Result<(), Refusal> {
    let signed_at = epoch_seconds(amz_date).ok_or_else(|| {
        refuse(
            format!("X-Amz-Date `{amz_date}` is not a date"),
            "IncompleteSignatureException",
        )
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - signed_at).abs() > 15 * 60 {
        return Err(refuse(
            format!("Signature expired: {amz_date} is more than 15 minutes from the server's time"),
            "InvalidSignatureException",
        ));
    }
    Ok(())
}

/// `YYYYMMDDTHHMMSSZ` as seconds since the epoch.
pub(crate) fn epoch_seconds(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// SigV4's URI encoding: everything but unreserved characters (and `/` in paths).
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_query(raw: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&super::percent_decode(k), false),
                uri_encode(&super::percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical request, from the request as received. Services other than
/// S3 encode the path twice: the path as sent (encoded once) is encoded again.
fn canonical_request(req: &Incoming, signed: &[&str], payload_hash: &str) -> String {
    let mut headers = String::new();
    for name in signed {
        let value = req.headers.get(*name).map(String::as_str).unwrap_or("");
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        headers.push_str(&format!("{name}:{value}\n"));
    }
    format!(
        "{}\n{}\n{}\n{headers}\n{}\n{payload_hash}",
        req.method,
        uri_encode(req.path, true),
        canonical_query(req.raw_query),
        signed.join(";"),
    )
}

fn signature(secret: &str, amz_date: &str, auth: &Authorization, canonical: &str) -> String {
    let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    for part in [auth.region, auth.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    hex(&hmac(&key, to_sign.as_bytes()))
}

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut k = if key.len() > BLOCK {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(BLOCK, 0);
    let pad = |byte: u8| k.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// AWS's published signing test suite, kept with the core's fixtures.
    #[test]
    fn verifies_the_published_vectors_and_refuses_any_change() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../core/tests/fixtures/bedrock/sigv4_vector.json"
        );
        let suite: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for v in suite["vectors"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap();
            let url = v["url"].as_str().unwrap();
            let rest = url.split_once("://").unwrap().1;
            let path_and_query = &rest[rest.find('/').unwrap()..];
            let (path, raw_query) = match path_and_query.split_once('?') {
                Some((p, q)) => (p.to_string(), Some(q.to_string())),
                None => (path_and_query.to_string(), None),
            };
            let mut headers: HashMap<String, String> = v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_lowercase(),
                        h[1].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            headers.insert("authorization".into(), v["authorization"].as_str().unwrap().into());
            let body = v["body"].as_str().unwrap().as_bytes().to_vec();
            let keys = HashMap::from([(
                v["access_key_id"].as_str().unwrap().to_string(),
                v["secret_access_key"].as_str().unwrap().to_string(),
            )]);
            let auth = parse(v["authorization"].as_str().unwrap()).unwrap();
            let signed: Vec<&str> = auth.signed_headers.split(';').collect();
            let req = Incoming {
                method: v["method"].as_str().unwrap(),
                path: &path,
                query: &[],
                raw_query: raw_query.as_deref(),
                headers: &headers,
                body: &Value::Null,
                raw: &body,
            };
            let hash = headers
                .get("x-amz-content-sha256")
                .cloned()
                .unwrap_or_else(|| hex(&Sha256::digest(&body)));
            let canonical = canonical_request(&req, &signed, &hash);
            assert_eq!(canonical, v["canonical_request"].as_str().unwrap(), "{name}");
            let amz_date = headers["x-amz-date"].clone();
            assert_eq!(
                signature(v["secret_access_key"].as_str().unwrap(), &amz_date, &auth, &canonical),
                v["signature"].as_str().unwrap(),
                "{name}"
            );
            assert_ne!(
                signature("wrong", &amz_date, &auth, &canonical),
                v["signature"].as_str().unwrap()
            );
            // The whole check refuses them: they are years old (and the
            // published ones are not for Bedrock).
            let refused = verify(&req, &keys).unwrap_err();
            let why = if auth.service == "bedrock" {
                "expired"
            } else {
                "service"
            };
            assert!(refused.message.contains(why), "{name}: {}", refused.message);
        }
    }

    #[test]
    fn reads_dates() {
        assert_eq!(epoch_seconds("19700101T000000Z"), Some(0));
        assert_eq!(epoch_seconds("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(epoch_seconds("2015-08-30"), None);
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
