//! Exact money. Credits are integer nano-credits (10^-9); rates are nano-credits
//! per million tokens. Both leave Hub in JSON as decimal strings (`"4.05"`,
//! `"0.000000001"`), which every JSON parser keeps exact, and are read from a
//! decimal string or number's text, never through a float.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

const SCALE: i64 = 1_000_000_000;

/// The largest magnitude, in nano-credits, of any amount Hub accepts, keeps or
/// computes: a balance, a grant, a hold, a charge, a spend cap, a rate (one
/// billion credits, or credits per million tokens). Far beyond any real
/// account, and small enough that the sum of two such amounts stays inside
/// i64 (and inside SQLite's INTEGER, which silently turns an overflowing sum
/// into an inexact REAL).
pub const MAX_NANOS: i64 = 1_000_000_000 * SCALE;

/// An amount of credits, exact to the nano-credit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Credits(i64);

/// A price in credits per million units (tokens), exact to the nano-credit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a decimal number")]
    NotANumber,
    #[error("has more than 9 decimal places")]
    TooPrecise,
    #[error("is out of range (at most 1000000000 in magnitude)")]
    OutOfRange,
    #[error("must not be negative")]
    Negative,
}

fn parse_decimal(text: &str) -> Result<i64, MoneyError> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    // Accept plain decimals and the exponent forms JSON allows (1e-6, 2.5E3).
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(i) => {
            let exp: i32 = digits[i + 1..].parse().map_err(|_| MoneyError::NotANumber)?;
            (&digits[..i], exp)
        }
        None => (digits, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(MoneyError::NotANumber);
    }
    // All digits as one integer, with the decimal point `scale` places from the right.
    let all: String = format!("{int_part}{frac_part}");
    let all = all.trim_start_matches('0');
    // In i64: an exponent near i32::MIN or MAX must not overflow the subtraction.
    let mut scale = frac_part.len() as i64 - i64::from(exponent);
    let mut all = all.to_string();
    while scale > 9 && all.ends_with('0') {
        all.pop();
        scale -= 1;
    }
    if all.is_empty() {
        return Ok(0);
    }
    if scale > 9 {
        return Err(MoneyError::TooPrecise);
    }
    let shift = 9 - scale;
    if all.len() as i64 + shift > 19 {
        return Err(MoneyError::OutOfRange);
    }
    let base: i128 = all.parse().map_err(|_| MoneyError::OutOfRange)?;
    let value = base * 10i128.pow(shift as u32);
    if value > i128::from(MAX_NANOS) {
        return Err(MoneyError::OutOfRange);
    }
    let value = value as i64;
    Ok(if negative { -value } else { value })
}

fn format_decimal(v: i64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let sign = if v < 0 { "-" } else { "" };
    let abs = v.unsigned_abs();
    let int = abs / SCALE as u64;
    let frac = abs % SCALE as u64;
    if frac == 0 {
        return write!(f, "{sign}{int}");
    }
    let frac = format!("{frac:09}");
    write!(f, "{sign}{int}.{}", frac.trim_end_matches('0'))
}

macro_rules! decimal_type {
    ($t:ident) => {
        impl $t {
            pub const ZERO: $t = $t(0);

            pub const fn from_nanos(nanos: i64) -> Self {
                $t(nanos)
            }

            pub const fn nanos(self) -> i64 {
                self.0
            }

            /// Parses a decimal with at most nine places (`"0.15"`, `"2"`, `"1e-6"`).
            pub fn parse(text: &str) -> Result<Self, MoneyError> {
                parse_decimal(text).map($t)
            }

            /// Reads a JSON number or numeric string exactly.
            pub fn from_json(value: &serde_json::Value) -> Result<Self, MoneyError> {
                match value {
                    serde_json::Value::Number(n) => Self::parse(&n.to_string()),
                    serde_json::Value::String(s) => Self::parse(s),
                    _ => Err(MoneyError::NotANumber),
                }
            }

            /// As JSON: an exact decimal string. A JSON number would reach most
            /// clients as a binary float and lose the ninth decimal above a
            /// million credits.
            pub fn to_json(self) -> serde_json::Value {
                serde_json::Value::String(self.to_string())
            }

            /// As a JSON number, for the few fields a published client's schema
            /// types as a number (AIGNE's `aigneHubCredits`): an integer when
            /// whole, else the decimal's nearest double, exact to the nano-credit
            /// below a million credits (15 significant digits).
            pub fn to_json_number(self) -> serde_json::Value {
                if self.0 % SCALE == 0 {
                    return serde_json::Value::from(self.0 / SCALE);
                }
                let nearest: f64 = self.to_string().parse().unwrap_or(0.0);
                serde_json::Number::from_f64(nearest).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }

            pub fn is_negative(self) -> bool {
                self.0 < 0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                format_decimal(self.0, f)
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = serde_json::Value::deserialize(d)?;
                Self::from_json(&v).map_err(serde::de::Error::custom)
            }
        }
    };
}

decimal_type!(Credits);
decimal_type!(Rate);

impl Rate {
    /// The price of one unit (a rate is per million), as an exact decimal string.
    pub fn per_unit_string(self) -> String {
        let v = self.nanos() as i128;
        let sign = if v < 0 { "-" } else { "" };
        let abs = v.unsigned_abs();
        let scale = 1_000_000_000_000_000u128;
        let (int, frac) = (abs / scale, abs % scale);
        if frac == 0 {
            return format!("{sign}{int}");
        }
        let frac = format!("{frac:015}");
        format!("{sign}{int}.{}", frac.trim_end_matches('0'))
    }
}

impl Credits {
    /// The largest amount Hub keeps anywhere (see `MAX_NANOS`).
    pub const MAX: Credits = Credits(MAX_NANOS);

    /// A computed amount, clamped into ±`MAX` (a charge or a hold that large
    /// can never be covered, so clamping changes no decision).
    pub fn from_nanos_saturating(nanos: i128) -> Self {
        Credits(nanos.clamp(-i128::from(MAX_NANOS), i128::from(MAX_NANOS)) as i64)
    }

    pub fn saturating_sub(self, other: Credits) -> Credits {
        Credits::from_nanos_saturating(i128::from(self.0) - i128::from(other.0))
    }

    pub fn saturating_add(self, other: Credits) -> Credits {
        Credits::from_nanos_saturating(i128::from(self.0) + i128::from(other.0))
    }

    /// Whether this amount is one Hub may keep (a balance, a grant).
    pub fn in_range(self) -> bool {
        (-MAX_NANOS..=MAX_NANOS).contains(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        assert_eq!(Credits::parse("1").unwrap().nanos(), 1_000_000_000);
        assert_eq!(Credits::parse("0.1").unwrap().nanos(), 100_000_000);
        assert_eq!(Credits::parse("0.000000001").unwrap().nanos(), 1);
        assert_eq!(Credits::parse("-2.5").unwrap().nanos(), -2_500_000_000);
        assert_eq!(Credits::parse("1e-6").unwrap().nanos(), 1_000);
        assert_eq!(Credits::parse("2.5E3").unwrap().nanos(), 2_500_000_000_000);
        assert_eq!(Credits::parse("0.1000000000").unwrap().nanos(), 100_000_000);
        assert_eq!(Credits::parse("0").unwrap().nanos(), 0);
        assert_eq!(Credits::parse("0.0000000001"), Err(MoneyError::TooPrecise));
        assert_eq!(Credits::parse("abc"), Err(MoneyError::NotANumber));
        assert_eq!(Credits::parse("1.2.3"), Err(MoneyError::NotANumber));
        assert_eq!(Credits::parse(""), Err(MoneyError::NotANumber));
        assert_eq!(Credits::parse("99999999999999999999"), Err(MoneyError::OutOfRange));
        assert_eq!(Credits::parse("1000000000").unwrap(), Credits::MAX);
        assert_eq!(Credits::parse("-1000000000").unwrap().nanos(), -MAX_NANOS);
        assert_eq!(Credits::parse("1000000000.000000001"), Err(MoneyError::OutOfRange));
        assert_eq!(Credits::parse("9223372036"), Err(MoneyError::OutOfRange));
        assert_eq!(Credits::parse("-9223372036.854775808"), Err(MoneyError::OutOfRange));
        assert_eq!(Rate::parse("1e10"), Err(MoneyError::OutOfRange));
        assert_eq!(Credits::parse("1e-2147483648"), Err(MoneyError::TooPrecise));
        assert_eq!(Credits::parse("1e2147483647"), Err(MoneyError::OutOfRange));
        assert_eq!(Credits::parse("0e2147483647").unwrap(), Credits::ZERO);
    }

    #[test]
    fn per_unit_prices_are_exact_strings() {
        assert_eq!(Rate::parse("2.5").unwrap().per_unit_string(), "0.0000025");
        assert_eq!(
            Rate::parse("0.000000001").unwrap().per_unit_string(),
            "0.000000000000001"
        );
        assert_eq!(Rate::parse("3000000").unwrap().per_unit_string(), "3");
        assert_eq!(Rate::parse("0").unwrap().per_unit_string(), "0");
    }

    #[test]
    fn formats_without_trailing_zeros() {
        assert_eq!(Credits::from_nanos(1_500_000_000).to_string(), "1.5");
        assert_eq!(Credits::from_nanos(1).to_string(), "0.000000001");
        assert_eq!(Credits::from_nanos(-1).to_string(), "-0.000000001");
        assert_eq!(Credits::from_nanos(7_000_000_000).to_string(), "7");
    }

    #[test]
    fn json_round_trip_is_exact() {
        let c = Credits::parse("1234567.123456789").unwrap();
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(text, "\"1234567.123456789\"", "money leaves as an exact decimal string");
        for n in [
            1i64,
            7,
            100_000_001,
            123_456_789_012,
            -5,
            999_999_999_999_999,
            Credits::MAX.nanos(),
            -Credits::MAX.nanos(),
        ] {
            let c = Credits::from_nanos(n);
            let back: Credits = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(back, c, "{n}");
        }
        assert_eq!(
            serde_json::to_string(&Credits::from_nanos(5_000_000_000)).unwrap(),
            "\"5\""
        );
        assert_eq!(
            serde_json::to_string(&Rate::parse("0.15").unwrap()).unwrap(),
            "\"0.15\""
        );
        let back: Credits = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
        // Numbers are still accepted on the way in.
        let back: Credits = serde_json::from_str("4.05e-6").unwrap();
        assert_eq!(back.nanos(), 4_050);
    }

    #[test]
    fn json_numbers_for_schemas_that_want_them() {
        assert_eq!(Credits::parse("2").unwrap().to_json_number(), serde_json::json!(2));
        assert_eq!(
            Credits::parse("999999.123456789").unwrap().to_json_number().to_string(),
            "999999.123456789"
        );
    }
}
