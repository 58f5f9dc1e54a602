//! Identifiers: time-ordered (48-bit milliseconds + 80 random bits, Crockford
//! base32, like ULIDs) behind a short type prefix: `usr_01JD…`, `call_01JD…`.

use crate::ports::Rng;
use std::sync::atomic::{AtomicU64, Ordering};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new id. Ids need to be unique, not secret: if the random source fails,
/// the bits come from a process-wide counter spread by a multiplier instead
/// (unique within this process and millisecond), and the failure is logged.
pub fn new_id(prefix: &str, now_ms: i64, rng: &dyn Rng) -> String {
    let mut random = [0u8; 10];
    if let Err(e) = rng.fill(&mut random) {
        tracing::warn!("{e}; id bits taken from a counter");
        random = counter_bits();
    }
    let mut value: u128 = (now_ms.max(0) as u128 & 0xFFFF_FFFF_FFFF) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= (*b as u128) << (8 * (9 - i));
    }
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    for i in (0..26).rev() {
        out.push(CROCKFORD[((value >> (i * 5)) & 31) as usize] as char);
    }
    out
}

fn counter_bits() -> [u8; 10] {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut out = [0u8; 10];
    out[2..].copy_from_slice(&n.to_be_bytes());
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ports::RngError;
    use std::sync::atomic::AtomicU8;

    pub struct CountingRng(pub AtomicU8);
    impl Rng for CountingRng {
        fn fill(&self, buf: &mut [u8]) -> Result<(), RngError> {
            for b in buf {
                *b = self.0.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
    }

    struct BrokenRng;
    impl Rng for BrokenRng {
        fn fill(&self, _: &mut [u8]) -> Result<(), RngError> {
            Err(RngError("gone".into()))
        }
    }

    #[test]
    fn ids_stay_unique_without_randomness() {
        let (a, b) = (new_id("req", 5, &BrokenRng), new_id("req", 5, &BrokenRng));
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 26);
    }

    #[test]
    fn ids_sort_by_time() {
        let rng = CountingRng(AtomicU8::new(200));
        let a = new_id("call", 1_000, &rng);
        let b = new_id("call", 1_001, &rng);
        assert!(a < b);
        assert_eq!(a.len(), 5 + 26);
        assert_ne!(new_id("x", 5, &rng), new_id("x", 5, &rng));
    }
}
