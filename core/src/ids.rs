//! Identifiers: time-ordered (48-bit milliseconds + 80 random bits, Crockford
//! base32, like ULIDs) behind a short type prefix: `usr_01JD…`, `call_01JD…`.

use crate::ports::Rng;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

pub fn new_id(prefix: &str, now_ms: i64, rng: &dyn Rng) -> String {
    let mut random = [0u8; 10];
    rng.fill(&mut random);
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU8, Ordering};

    pub struct CountingRng(pub AtomicU8);
    impl Rng for CountingRng {
        fn fill(&self, buf: &mut [u8]) {
            for b in buf {
                *b = self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
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
