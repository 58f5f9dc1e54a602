//! ID token verification for OpenID Connect sign-in (OpenID Connect Core
//! §3.1.3.7): a compact JWS signed with RS256 or ES256 by a key from the
//! provider's JWKS, whose claims name this Hub as the audience and carry the
//! nonce this sign-in sent.
//!
//! Only verification with public keys happens here, in pure Rust, so it runs
//! the same in `hub serve`, Lambda and the Worker (wasm32). Fetching the JWKS
//! and the clock belong to the caller: [`header_kid`] and [`Jwks::has_kid`]
//! let it fetch the JWKS again when a token names a key it has not seen (the
//! provider rotated its keys).
//!
//! Errors name the check that failed and never echo the token, so they can go
//! into a log line and onto the sign-in error page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::sha2::Sha256;
use rsa::signature::Verifier as _;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;
use subtle::ConstantTimeEq;

/// Clock skew tolerated between Hub and the provider, for `exp`, `iat` and
/// `nbf`.
pub const DEFAULT_LEEWAY_S: i64 = 60;

/// Longer tokens are refused before any decoding: real ID tokens are a few
/// KiB at most, and nothing unbounded should be base64-decoded.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// RSA keys shorter than this are not trusted (NIST SP 800-131A).
const MIN_RSA_BITS: usize = 2048;

/// OpenID Connect Core §2: `sub` is at most 255 ASCII characters. It becomes
/// an account identifier, so the bound is enforced.
const MAX_SUB_BYTES: usize = 255;

/// Values from a token or JWKS quoted in an error are cut to this length.
const MAX_QUOTED_CHARS: usize = 64;

/// The signature algorithms Hub accepts. Anything else (`none`, `HS256`,
/// `RS384`, `PS256`, ...) is refused before a key is even looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    fn parse(s: &str) -> Option<Alg> {
        match s {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the ID token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the provider's JWKS is unusable: {0}")]
    Jwks(String),
    #[error("the ID token is signed with {0:?}; only RS256 and ES256 are accepted")]
    UnsupportedAlg(String),
    /// No usable signing key: the kid is not in the JWKS (or names a key that
    /// is not for signatures), or the token has no kid and the JWKS has no
    /// single key for its algorithm. Worth one JWKS refresh.
    #[error("{}", unknown_key_message(.0))]
    UnknownKey(Option<String>),
    /// The kid names a key of another type than the token's algorithm: the
    /// algorithm-confusion shape, refused.
    #[error("the ID token says {token} but its key {kid:?} is a {key} key")]
    KeyTypeMismatch { kid: String, key: Alg, token: Alg },
    #[error("the ID token's signature does not verify")]
    BadSignature,
    /// A claim failed its check: which claim, and what is wrong with it.
    #[error("the ID token's {0} claim {1}")]
    Claim(&'static str, String),
}

fn unknown_key_message(kid: &Option<String>) -> String {
    match kid {
        Some(kid) => format!("the provider's JWKS has no signing key with kid {kid:?}"),
        None => "the ID token has no kid and the provider's JWKS has no single signing key for its algorithm".into(),
    }
}

/// A value from outside, cut short enough to quote in an error.
fn quoted(s: &str) -> String {
    s.chars().take(MAX_QUOTED_CHARS).collect()
}

/// What the ID token must say for this sign-in.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The provider's issuer identifier, compared exactly (no trailing-slash
    /// leniency: the discovery document's `issuer` is what the provider signs).
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce sent in this sign-in's authorization request.
    pub nonce: &'a str,
    /// Unix seconds.
    pub now_s: i64,
    pub leeway_s: i64,
}

/// The person an ID token names, once every check passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdToken {
    /// The provider's stable identifier for the person (with the issuer, the
    /// key of an external identity).
    pub sub: String,
    pub email: Option<String>,
    /// False when the provider does not say.
    pub email_verified: bool,
    pub name: Option<String>,
}

// ---------------------------------------------------------------------------
// JWKS

#[derive(Clone)]
enum PublicKey {
    Rsa(rsa::pkcs1v15::VerifyingKey<Sha256>),
    Ec(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    fn alg(&self) -> Alg {
        match self {
            PublicKey::Rsa(_) => Alg::Rs256,
            PublicKey::Ec(_) => Alg::Es256,
        }
    }

    /// `signature` is the raw JWS signature: for RS256 the PKCS#1 v1.5
    /// signature as long as the modulus, for ES256 the 64-byte r||s (JWA
    /// §3.4), never DER.
    fn verify(&self, signing_input: &[u8], signature: &[u8]) -> Result<(), JwtError> {
        let verified = match self {
            PublicKey::Rsa(key) => rsa::pkcs1v15::Signature::try_from(signature)
                .map_err(drop)
                .and_then(|sig| key.verify(signing_input, &sig).map_err(drop)),
            PublicKey::Ec(key) => p256::ecdsa::Signature::from_slice(signature)
                .map_err(drop)
                .and_then(|sig| key.verify(signing_input, &sig).map_err(drop)),
        };
        verified.map_err(|()| JwtError::BadSignature)
    }
}

#[derive(Clone)]
struct Jwk {
    kid: Option<String>,
    key: PublicKey,
}

/// The signing keys of a provider's JWKS (`jwks_uri`) that Hub can use: RSA
/// keys of at least 2048 bits and P-256 keys, meant for signatures. Other
/// keys (encryption keys, other curves, symmetric keys, keys bound to another
/// algorithm) are skipped, so a provider that also publishes those still
/// works.
#[derive(Clone, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (k.kid.as_deref(), k.key.alg())))
            .finish()
    }
}

/// One JWK as published. Everything optional, so one odd key is skipped
/// rather than spoiling the whole set.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<Value>,
}

impl Jwks {
    pub fn parse(json: &[u8]) -> Result<Jwks, JwtError> {
        let raw: RawJwks = serde_json::from_slice(json)
            .map_err(|e| JwtError::Jwks(format!("not a JSON object with a keys array ({e})")))?;
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|value| match usable_key(value) {
                Ok(jwk) => Some(jwk),
                Err((kid, why)) => {
                    tracing::debug!(kid = kid.as_deref(), why, "JWKS key skipped");
                    None
                }
            })
            .collect();
        Ok(Jwks { keys })
    }

    /// Whether a usable signing key has this kid; when not, the caller may
    /// fetch the JWKS again before giving up.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key the token names by kid, or with no kid the only key for its
    /// algorithm. Several keys may share a kid if their types differ, so
    /// the one matching the algorithm wins.
    fn select(&self, kid: Option<&str>, alg: Alg) -> Result<&PublicKey, JwtError> {
        let Some(kid) = kid else {
            let mut candidates = self.keys.iter().filter(|k| k.key.alg() == alg);
            return match (candidates.next(), candidates.next()) {
                (Some(only), None) => Ok(&only.key),
                _ => Err(JwtError::UnknownKey(None)),
            };
        };
        let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid));
        let first = named
            .clone()
            .next()
            .ok_or_else(|| JwtError::UnknownKey(Some(quoted(kid))))?;
        match named.find(|k| k.key.alg() == alg) {
            Some(jwk) => Ok(&jwk.key),
            None => Err(JwtError::KeyTypeMismatch {
                kid: quoted(kid),
                key: first.key.alg(),
                token: alg,
            }),
        }
    }
}

type Skipped = (Option<String>, &'static str);

fn usable_key(value: Value) -> Result<Jwk, Skipped> {
    let raw: RawJwk = serde_json::from_value(value).map_err(|_| (None, "not a JWK object"))?;
    let kid = raw.kid.clone();
    let skip = |why| (kid.clone(), why);
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(skip("not for signatures (use)"));
    }
    if raw
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return Err(skip("not for verification (key_ops)"));
    }
    let key = match raw.kty.as_deref() {
        Some("RSA") => rsa_key(&raw),
        Some("EC") => ec_key(&raw),
        _ => Err("key type is neither RSA nor EC"),
    }
    .map_err(skip)?;
    // A key bound to another algorithm must not verify this one (RFC 7517 §4.4).
    if raw.alg.as_deref().is_some_and(|a| a != key.alg().as_str()) {
        return Err(skip("bound to an algorithm Hub does not accept"));
    }
    Ok(Jwk { kid, key })
}

fn b64_field(value: &Option<String>, missing: &'static str) -> Result<Vec<u8>, &'static str> {
    let text = value.as_deref().ok_or(missing)?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| "a key parameter is not base64url")
}

fn rsa_key(raw: &RawJwk) -> Result<PublicKey, &'static str> {
    let n = rsa_uint(&b64_field(&raw.n, "RSA key without n")?);
    let e = rsa_uint(&b64_field(&raw.e, "RSA key without e")?);
    let key =
        rsa::PublicKey::new_with_size_limits(n, e, MIN_RSA_BITS..=rsa::PublicKey::MAX_SIZE).map_err(|e| match e {
            rsa::Error::ModulusTooSmall => "RSA key shorter than 2048 bits",
            _ => "RSA key parameters are invalid",
        })?;
    Ok(PublicKey::Rsa(rsa::pkcs1v15::VerifyingKey::new(key)))
}

/// A JWK integer (big-endian, public). Leading zero bytes, which some
/// providers leave in `n`, would otherwise widen the number's precision.
fn rsa_uint(bytes: &[u8]) -> rsa::BoxedUint {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    rsa::BoxedUint::from_be_slice_vartime(&bytes[start..])
}

fn ec_key(raw: &RawJwk) -> Result<PublicKey, &'static str> {
    if raw.crv.as_deref() != Some("P-256") {
        return Err("EC key on a curve other than P-256");
    }
    let x = b64_field(&raw.x, "EC key without x")?;
    let y = b64_field(&raw.y, "EC key without y")?;
    if x.len() != 32 || y.len() != 32 {
        return Err("EC coordinates are not 32 bytes");
    }
    // SEC1 uncompressed form, which is checked to be a point on the curve.
    let sec1 = [&[0x04][..], &x, &y].concat();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| "EC point is not on P-256")?;
    Ok(PublicKey::Ec(key))
}

// ---------------------------------------------------------------------------
// Token

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    /// RFC 7515 §4.1.11: extensions the verifier must understand; Hub
    /// understands none, so any `crit` refuses the token.
    crit: Option<Value>,
}

/// The three parts of a compact JWS, the header decoded.
struct Compact<'a> {
    header: Header,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn split(token: &str) -> Result<Compact<'_>, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed("longer than 16 KiB"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(JwtError::Malformed(if parts.len() == 5 {
            "it is encrypted (JWE), which Hub does not accept"
        } else {
            "not three dot-separated parts"
        }));
    };
    let header: Header = serde_json::from_slice(&b64(header, "the header is not base64url")?)
        .map_err(|_| JwtError::Malformed("the header is not a JSON object"))?;
    if header.crit.is_some() {
        return Err(JwtError::Malformed(
            "the header has critical extensions (crit) Hub does not understand",
        ));
    }
    let signing_input = &token[..token.len() - signature.len() - 1];
    Ok(Compact {
        header,
        signing_input,
        payload,
        signature,
    })
}

fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Malformed(what))
}

/// The kid in the token's header, without verifying anything, so the caller
/// can fetch the JWKS again when it does not know the key.
pub fn header_kid(token: &str) -> Result<Option<String>, JwtError> {
    Ok(split(token)?.header.kid)
}

/// Verifies an ID token's signature and claims, in the order of OpenID
/// Connect Core §3.1.3.7: algorithm, key, signature, then claims (the
/// payload is not even parsed before the signature holds).
pub fn verify_id_token(token: &str, jwks: &Jwks, expected: &Expected) -> Result<IdToken, JwtError> {
    let compact = split(token)?;
    let alg_name = compact
        .header
        .alg
        .as_deref()
        .ok_or(JwtError::Malformed("the header has no alg"))?;
    let alg = Alg::parse(alg_name).ok_or_else(|| JwtError::UnsupportedAlg(quoted(alg_name)))?;
    let key = jwks.select(compact.header.kid.as_deref(), alg)?;
    let signature = b64(compact.signature, "the signature is not base64url")?;
    key.verify(compact.signing_input.as_bytes(), &signature)?;
    let claims: Map<String, Value> = serde_json::from_slice(&b64(compact.payload, "the payload is not base64url")?)
        .map_err(|_| JwtError::Malformed("the payload is not a JSON object"))?;
    check_claims(&Claims(&claims), expected)
}

// ---------------------------------------------------------------------------
// Claims

/// Typed reads of the payload: a claim of the wrong JSON type is refused
/// rather than read as absent.
struct Claims<'a>(&'a Map<String, Value>);

impl<'a> Claims<'a> {
    fn string(&self, name: &'static str) -> Result<Option<&'a str>, JwtError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(JwtError::Claim(name, "is not a string".into())),
        }
    }

    fn required_string(&self, name: &'static str) -> Result<&'a str, JwtError> {
        self.string(name)?
            .ok_or_else(|| JwtError::Claim(name, "is missing".into()))
    }

    /// A NumericDate (RFC 7519 §2): seconds, possibly fractional.
    fn time(&self, name: &'static str) -> Result<Option<i64>, JwtError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
                .map(Some)
                .ok_or_else(|| JwtError::Claim(name, "is not a time in seconds".into())),
            Some(_) => Err(JwtError::Claim(name, "is not a number".into())),
        }
    }

    fn required_time(&self, name: &'static str) -> Result<i64, JwtError> {
        self.time(name)?
            .ok_or_else(|| JwtError::Claim(name, "is missing".into()))
    }

    /// `aud` is one string or an array of strings (RFC 7519 §4.1.3).
    fn audiences(&self) -> Result<Vec<&'a str>, JwtError> {
        let bad = || JwtError::Claim("aud", "is neither a string nor an array of strings".into());
        match self.0.get("aud") {
            None => Err(JwtError::Claim("aud", "is missing".into())),
            Some(Value::String(s)) => Ok(vec![s.as_str()]),
            Some(Value::Array(items)) => items.iter().map(|v| v.as_str().ok_or_else(bad)).collect(),
            Some(_) => Err(bad()),
        }
    }

    /// Some providers send `"true"`/`"false"` strings instead of booleans.
    fn email_verified(&self) -> Result<bool, JwtError> {
        match self.0.get("email_verified") {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" => Ok(true),
            Some(Value::String(s)) if s == "false" => Ok(false),
            Some(_) => Err(JwtError::Claim("email_verified", "is neither true nor false".into())),
        }
    }
}

fn check_claims(claims: &Claims, expected: &Expected) -> Result<IdToken, JwtError> {
    check_issuer(claims, expected)?;
    check_audience(claims, expected)?;
    check_times(claims, expected)?;
    check_nonce(claims, expected)?;
    Ok(IdToken {
        sub: subject(claims)?.to_owned(),
        email: claims.string("email")?.map(str::to_owned),
        email_verified: claims.email_verified()?,
        name: claims.string("name")?.map(str::to_owned),
    })
}

fn check_issuer(claims: &Claims, expected: &Expected) -> Result<(), JwtError> {
    if claims.required_string("iss")? != expected.issuer {
        return Err(JwtError::Claim(
            "iss",
            format!("is not the configured issuer {:?}", expected.issuer),
        ));
    }
    Ok(())
}

/// `aud` must contain this client; with several audiences `azp` must name
/// this client, and if `azp` is there at all it must (§3.1.3.7 items 3–5).
fn check_audience(claims: &Claims, expected: &Expected) -> Result<(), JwtError> {
    let audiences = claims.audiences()?;
    if !audiences.contains(&expected.client_id) {
        return Err(JwtError::Claim(
            "aud",
            format!("does not include this client ({:?})", expected.client_id),
        ));
    }
    match claims.string("azp")? {
        Some(azp) if azp != expected.client_id => Err(JwtError::Claim("azp", "names another client".into())),
        None if audiences.len() > 1 => Err(JwtError::Claim(
            "azp",
            "is missing though aud names several clients".into(),
        )),
        _ => Ok(()),
    }
}

fn check_times(claims: &Claims, expected: &Expected) -> Result<(), JwtError> {
    let (now, leeway) = (expected.now_s, expected.leeway_s);
    let exp = claims.required_time("exp")?;
    if exp <= now - leeway {
        return Err(JwtError::Claim("exp", format!("has passed ({} s ago)", now - exp)));
    }
    let iat = claims.required_time("iat")?;
    if iat > now + leeway {
        return Err(JwtError::Claim(
            "iat",
            format!("is {} s in the future (is the clock right?)", iat - now),
        ));
    }
    if let Some(nbf) = claims.time("nbf")? {
        if nbf > now + leeway {
            return Err(JwtError::Claim("nbf", format!("is {} s in the future", nbf - now)));
        }
    }
    Ok(())
}

fn check_nonce(claims: &Claims, expected: &Expected) -> Result<(), JwtError> {
    let nonce = claims.required_string("nonce")?;
    if !bool::from(nonce.as_bytes().ct_eq(expected.nonce.as_bytes())) {
        return Err(JwtError::Claim("nonce", "does not match this sign-in's".into()));
    }
    Ok(())
}

fn subject<'a>(claims: &Claims<'a>) -> Result<&'a str, JwtError> {
    let sub = claims.required_string("sub")?;
    if sub.is_empty() {
        return Err(JwtError::Claim("sub", "is empty".into()));
    }
    if sub.len() > MAX_SUB_BYTES {
        return Err(JwtError::Claim("sub", "is longer than 255 bytes".into()));
    }
    Ok(sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys and tokens made by PyJWT + `cryptography` (make_fixtures.py
    /// beside the file), so a bug shared by signer and verifier cannot hide.
    const FIXTURES: &str = include_str!("../../tests/fixtures/jwt/tokens.json");

    struct Fixtures {
        doc: Value,
    }

    impl Fixtures {
        fn load() -> Fixtures {
            Fixtures {
                doc: serde_json::from_str(FIXTURES).expect("tokens.json parses"),
            }
        }

        fn jwks(&self, name: &str) -> Jwks {
            Jwks::parse(self.doc[name].to_string().as_bytes()).expect("fixture JWKS parses")
        }

        fn token(&self, name: &str) -> &str {
            self.doc["tokens"][name]
                .as_str()
                .unwrap_or_else(|| panic!("no fixture token {name}"))
        }

        fn expected(&self) -> Expected<'_> {
            Expected {
                issuer: self.doc["issuer"].as_str().unwrap(),
                client_id: self.doc["client_id"].as_str().unwrap(),
                nonce: self.doc["nonce"].as_str().unwrap(),
                now_s: self.doc["now"].as_i64().unwrap(),
                leeway_s: DEFAULT_LEEWAY_S,
            }
        }

        fn verify(&self, name: &str) -> Result<IdToken, JwtError> {
            verify_id_token(self.token(name), &self.jwks("jwks"), &self.expected())
        }
    }

    fn ada(email_verified: bool) -> IdToken {
        IdToken {
            sub: "user-123".into(),
            email: Some("ada@example.test".into()),
            email_verified,
            name: Some("Ada Lovelace".into()),
        }
    }

    #[test]
    fn good_tokens_verify_and_yield_the_person() {
        let f = Fixtures::load();
        for name in [
            "rs256_good",
            "es256_good",
            "rs256_no_kid",
            "es256_no_kid",
            "aud_array_with_azp",
            "aud_array_single",
            "email_verified_string_true",
            "expired_within_leeway",
        ] {
            assert_eq!(f.verify(name), Ok(ada(true)), "{name}");
        }
        assert_eq!(f.verify("email_verified_string_false"), Ok(ada(false)));
    }

    #[test]
    fn profile_claims_are_optional() {
        let f = Fixtures::load();
        let token = f.verify("minimal_claims").unwrap();
        assert_eq!(
            token,
            IdToken {
                sub: "user-123".into(),
                email: None,
                email_verified: false,
                name: None
            }
        );
    }

    #[test]
    fn each_claim_violation_is_refused_naming_the_claim() {
        let f = Fixtures::load();
        for (name, claim) in [
            ("wrong_iss", "iss"),
            ("wrong_aud", "aud"),
            ("aud_array_missing_client", "aud"),
            ("aud_array_without_azp", "azp"),
            ("azp_wrong", "azp"),
            ("wrong_nonce", "nonce"),
            ("missing_nonce", "nonce"),
            ("expired", "exp"),
            ("missing_exp", "exp"),
            ("iat_future", "iat"),
            ("missing_iat", "iat"),
            ("nbf_future", "nbf"),
            ("missing_sub", "sub"),
            ("empty_sub", "sub"),
            ("email_verified_garbage", "email_verified"),
        ] {
            match f.verify(name) {
                Err(JwtError::Claim(which, _)) => assert_eq!(which, claim, "{name}"),
                other => panic!("{name}: expected a {claim} claim error, got {other:?}"),
            }
        }
    }

    #[test]
    fn tampered_signatures_are_refused() {
        let f = Fixtures::load();
        for name in [
            "rs256_bad_signature",
            "es256_bad_signature",
            "rs256_payload_swapped",
            // A valid ECDSA signature in DER, not JOSE's raw r||s.
            "es256_der_signature",
        ] {
            assert_eq!(f.verify(name), Err(JwtError::BadSignature), "{name}");
        }
    }

    #[test]
    fn algorithms_other_than_rs256_and_es256_are_refused() {
        let f = Fixtures::load();
        for (name, alg) in [
            ("alg_none", "none"),
            ("hs256_with_rsa_public_key", "HS256"),
            ("rs384", "RS384"),
        ] {
            assert_eq!(f.verify(name), Err(JwtError::UnsupportedAlg(alg.into())), "{name}");
        }
    }

    #[test]
    fn a_key_never_verifies_another_algorithm() {
        let f = Fixtures::load();
        assert_eq!(
            f.verify("es256_kid_rsa_key"),
            Err(JwtError::KeyTypeMismatch {
                kid: "rsa-1".into(),
                key: Alg::Rs256,
                token: Alg::Es256
            })
        );
        assert_eq!(
            f.verify("rs256_kid_ec_key"),
            Err(JwtError::KeyTypeMismatch {
                kid: "ec-1".into(),
                key: Alg::Es256,
                token: Alg::Rs256
            })
        );
    }

    #[test]
    fn keys_that_are_not_usable_for_signatures_are_skipped() {
        let f = Fixtures::load();
        let jwks = f.jwks("jwks");
        assert!(jwks.has_kid("rsa-1") && jwks.has_kid("ec-1"));
        for (name, kid) in [
            ("unknown_kid", "rotated-away"),
            ("kid_enc_key", "rsa-enc"),
            ("kid_small_key", "rsa-small"),
            ("kid_rs384_key", "rsa-384"),
            ("kid_oct_key", "hmac-1"),
        ] {
            assert!(!jwks.has_kid(kid), "{kid}");
            assert_eq!(f.verify(name), Err(JwtError::UnknownKey(Some(kid.into()))), "{name}");
        }
        assert!(!jwks.has_kid("ec-384") && !jwks.has_kid("ed-1"));
        assert_eq!(
            format!("{jwks:?}"),
            r#"[(Some("rsa-1"), Rs256), (Some("ec-1"), Es256)]"#
        );
    }

    #[test]
    fn a_token_without_kid_needs_exactly_one_candidate_key() {
        let f = Fixtures::load();
        let two = f.jwks("jwks_two_rsa");
        assert_eq!(
            verify_id_token(f.token("rs256_no_kid"), &two, &f.expected()),
            Err(JwtError::UnknownKey(None))
        );
        // With its kid the same key is found among the two.
        assert_eq!(
            verify_id_token(f.token("rs256_good"), &two, &f.expected()),
            Ok(ada(true))
        );
    }

    #[test]
    fn header_kid_tells_the_caller_which_key_to_look_for() {
        let f = Fixtures::load();
        assert_eq!(header_kid(f.token("unknown_kid")), Ok(Some("rotated-away".into())));
        assert_eq!(header_kid(f.token("rs256_no_kid")), Ok(None));
        assert_eq!(
            header_kid("not a token"),
            Err(JwtError::Malformed("not three dot-separated parts"))
        );
    }

    #[test]
    fn critical_header_extensions_are_refused() {
        let f = Fixtures::load();
        assert!(matches!(f.verify("crit_header"), Err(JwtError::Malformed(m)) if m.contains("crit")));
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_key_is_used() {
        let f = Fixtures::load();
        let good = f.token("rs256_good");
        let (head, rest) = good.split_once('.').unwrap();
        let cases = [
            (String::new(), "not three dot-separated parts"),
            (format!("{good}.x"), "not three dot-separated parts"),
            (
                format!("{good}.x.y"),
                "it is encrypted (JWE), which Hub does not accept",
            ),
            (format!("{head}=.{rest}"), "the header is not base64url"),
            (
                format!("{}.{rest}", URL_SAFE_NO_PAD.encode("[1]")),
                "the header is not a JSON object",
            ),
            (
                format!("{}.{rest}", URL_SAFE_NO_PAD.encode(r#"{"kid":"rsa-1"}"#)),
                "the header has no alg",
            ),
            (format!("{good}!"), "the signature is not base64url"),
            ("a".repeat(MAX_TOKEN_BYTES + 1), "longer than 16 KiB"),
        ];
        for (token, why) in cases {
            assert_eq!(
                verify_id_token(&token, &f.jwks("jwks"), &f.expected()),
                Err(JwtError::Malformed(why))
            );
        }
    }

    #[test]
    fn a_jwks_that_is_not_a_key_set_is_an_error_but_odd_keys_are_skipped() {
        assert!(matches!(Jwks::parse(b"<html>"), Err(JwtError::Jwks(_))));
        assert!(matches!(Jwks::parse(br#"{"keys":{}}"#), Err(JwtError::Jwks(_))));
        let jwks = Jwks::parse(
            br#"{"keys":[42,{"kty":"RSA","kid":"bad","n":"!!","e":"AQAB"},{"kty":"EC","crv":"P-256","kid":"off-curve","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE"}]}"#,
        )
        .unwrap();
        assert!(jwks.is_empty());
    }

    #[test]
    fn errors_say_what_failed_without_echoing_the_token() {
        let f = Fixtures::load();
        for name in [
            "wrong_iss",
            "expired",
            "unknown_kid",
            "rs256_bad_signature",
            "hs256_with_rsa_public_key",
        ] {
            let message = f.verify(name).unwrap_err().to_string();
            let token = f.token(name);
            for part in token.split('.').filter(|p| p.len() > 8) {
                assert!(!message.contains(part), "{name}: {message}");
            }
            assert!(message.starts_with("the "), "{name}: {message}");
        }
        assert_eq!(
            f.verify("expired").unwrap_err().to_string(),
            "the ID token's exp claim has passed (3600 s ago)"
        );
    }
}
