//! What a redemption code looks like: `HUB-XXXX-XXXX-XXXX`, twelve symbols
//! of Crockford's base32 (no I, L, O or U, so nothing reads as something
//! else), 60 random bits. People type them, so input is forgiving: any case,
//! spaces and dashes anywhere, the `HUB` prefix optional, and O, I and L read
//! as 0, 1 and 1.

use crate::ports::{Rng, RngError};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const PREFIX: &str = "HUB";
const SYMBOLS: usize = 12;
/// What separates a code's keyed hash from other secrets' (`hash_secret`).
const HASH_PURPOSE: &str = "redemption-code";

/// A redemption code, in canonical form (its twelve symbols).
#[derive(Clone, PartialEq, Eq)]
pub struct RedemptionCode([u8; SYMBOLS]);

/// Only the hint: a code must not reach a log through a debug print.
impl std::fmt::Debug for RedemptionCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedemptionCode({})", self.hint())
    }
}

impl RedemptionCode {
    /// A fresh code: 60 bits from the platform's random source.
    pub fn generate(rng: &dyn Rng) -> Result<RedemptionCode, RngError> {
        let mut bytes = [0u8; 8];
        rng.fill(&mut bytes)?;
        let bits = u64::from_le_bytes(bytes);
        let mut symbols = [0u8; SYMBOLS];
        for (i, s) in symbols.iter_mut().enumerate() {
            *s = ALPHABET[((bits >> (5 * i)) & 31) as usize];
        }
        Ok(RedemptionCode(symbols))
    }

    /// The code a person typed, normalised; `None` if it cannot be one.
    pub fn parse(input: &str) -> Option<RedemptionCode> {
        if input.len() > 64 {
            return None;
        }
        let kept: Vec<u8> = input
            .bytes()
            .filter(|b| !b.is_ascii_whitespace() && *b != b'-')
            .map(|b| b.to_ascii_uppercase())
            .collect();
        let body = match kept.len() {
            n if n == SYMBOLS => &kept[..],
            n if n == SYMBOLS + PREFIX.len() && kept.starts_with(PREFIX.as_bytes()) => &kept[PREFIX.len()..],
            _ => return None,
        };
        let mut symbols = [0u8; SYMBOLS];
        for (s, b) in symbols.iter_mut().zip(body) {
            *s = symbol(*b)?;
        }
        Some(RedemptionCode(symbols))
    }

    /// `HUB-XXXX-XXXX-XXXX`.
    pub fn text(&self) -> String {
        let groups: Vec<&str> = self
            .0
            .chunks(4)
            .map(|g| std::str::from_utf8(g).unwrap_or_default())
            .collect();
        format!("{PREFIX}-{}", groups.join("-"))
    }

    /// What lists show: the last four symbols (`HUB-…-WXYZ`).
    pub fn hint(&self) -> String {
        let tail = std::str::from_utf8(&self.0[SYMBOLS - 4..]).unwrap_or_default();
        format!("{PREFIX}-…-{tail}")
    }

    /// The stored form: keyed with the master key's hashing secret, so a copy
    /// of the database cannot test guesses.
    pub fn hash(&self, key: &[u8; 32]) -> String {
        let canonical = std::str::from_utf8(&self.0).unwrap_or_default();
        crate::accounts::hash_secret(key, HASH_PURPOSE, canonical)
    }
}

/// The alphabet symbol a typed character stands for.
fn symbol(b: u8) -> Option<u8> {
    let b = match b {
        b'O' => b'0',
        b'I' | b'L' => b'1',
        other => other,
    };
    ALPHABET.contains(&b).then_some(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::tests::CountingRng;
    use std::sync::atomic::AtomicU8;

    struct NoRandomness;
    impl Rng for NoRandomness {
        fn fill(&self, _: &mut [u8]) -> Result<(), RngError> {
            Err(RngError("no entropy".into()))
        }
    }

    fn code(text: &str) -> RedemptionCode {
        RedemptionCode::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn generated_codes_are_typable_and_read_back() {
        let rng = CountingRng(AtomicU8::new(1));
        let a = RedemptionCode::generate(&rng).unwrap();
        let b = RedemptionCode::generate(&rng).unwrap();
        assert_ne!(a, b);
        let text = a.text();
        assert_eq!(text.len(), 18, "{text}");
        assert!(text.starts_with("HUB-"), "{text}");
        let body: String = text[4..].chars().filter(|c| *c != '-').collect();
        assert!(body.bytes().all(|c| ALPHABET.contains(&c)), "{text}");
        assert!(code(&text) == a);
        assert_eq!(a.hint(), format!("HUB-…-{}", &text[14..]));
    }

    #[test]
    fn sixty_bits_each_symbol_from_five() {
        // All ones: every symbol is the last of the alphabet; the top 4 bits are unused.
        struct Ones;
        impl Rng for Ones {
            fn fill(&self, buf: &mut [u8]) -> Result<(), RngError> {
                buf.fill(0xFF);
                Ok(())
            }
        }
        assert_eq!(RedemptionCode::generate(&Ones).unwrap().text(), "HUB-ZZZZ-ZZZZ-ZZZZ");
    }

    #[test]
    fn a_failed_random_source_is_an_error() {
        assert!(RedemptionCode::generate(&NoRandomness).is_err());
    }

    #[test]
    fn input_is_normalised() {
        let want = code("HUB-AB12-CD34-EF56");
        for typed in [
            "hub-ab12-cd34-ef56",
            "  HUB AB12 CD34 EF56 ",
            "ab12cd34ef56",
            "AB12-CD34-EF56",
            "HUBAB12CD34EF56",
            "h u b - a b 1 2 - c d 3 4 - e f 5 6",
            "\tHub-Ab12-Cd34-Ef56\n",
        ] {
            assert!(code(typed) == want, "{typed}");
        }
        // Letters that look like digits read as them.
        assert!(code("HUB-OOOO-IIII-LLLL") == code("HUB-0000-1111-1111"));
        assert!(code("hub-oi1l-0000-0000") == code("HUB-0111-0000-0000"));
    }

    #[test]
    fn what_cannot_be_a_code_is_refused() {
        for bad in [
            "",
            "HUB-",
            "HUB-AB12-CD34-EF5",
            "HUB-AB12-CD34-EF567",
            "HUB-AB12-CD34-EFU6",
            "XYZ-AB12-CD34-EF56",
            "HUB_AB12_CD34_EF56",
            "HUB-AB12-CD34-EF5é",
            &"A".repeat(65),
        ] {
            assert!(RedemptionCode::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn hashes_are_keyed_and_canonical() {
        let key = [3u8; 32];
        let a = code("HUB-AB12-CD34-EF56");
        assert_eq!(a.hash(&key), code("ab12 cd34 ef56").hash(&key));
        assert_ne!(a.hash(&key), a.hash(&[4u8; 32]));
        assert_ne!(a.hash(&key), code("HUB-AB12-CD34-EF57").hash(&key));
        assert_ne!(
            a.hash(&key),
            crate::accounts::hash_secret(&key, "session", "AB12CD34EF56")
        );
    }
}
