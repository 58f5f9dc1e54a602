//! Time as integer milliseconds since the Unix epoch, and its ISO-8601 text.

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The starts of the UTC day and month holding `ms`, in milliseconds.
pub fn day_and_month_start(ms: i64) -> (i64, i64) {
    let days = ms.div_euclid(86_400_000);
    let (y, m, _) = civil_from_days(days);
    (days * 86_400_000, days_from_civil(y, m, 1) * 86_400_000)
}

/// The start of the UTC month after the one holding `ms`, in milliseconds.
pub fn next_month_start(ms: i64) -> i64 {
    let (y, m, _) = civil_from_days(ms.div_euclid(86_400_000));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(y, m, 1) * 86_400_000
}

/// A duration as OpenAI's rate-limit headers write it (Go's notation):
/// `12ms`, `1s`, `1.5s`, `6m0s`, `1h0m0s`.
pub fn go_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (secs, frac) = (ms / 1000, ms % 1000);
    let s = secs % 60;
    let seconds = match frac {
        0 => format!("{s}s"),
        f => format!("{s}.{}s", format!("{f:03}").trim_end_matches('0')),
    };
    match (secs / 3600, secs % 3600 / 60) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// `2026-11-27T06:11:15.123Z`
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Parses `2026-11-27`, `2026-11-27T06:11:15Z`, `…15.5+02:00`, or integer epoch milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = text[0..4].parse().ok()?;
    let mo: u32 = text[5..7].parse().ok()?;
    let d: u32 = text[8..10].parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    if b.len() == 10 {
        return Some(ms);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 {
        return None;
    }
    let h: i64 = text[11..13].parse().ok()?;
    let mi: i64 = text[14..16].parse().ok()?;
    let s: i64 = text[17..19].parse().ok()?;
    ms += (h * 3600 + mi * 60 + s) * 1000;
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        let digits = &frac[..n];
        let millis: String = digits.chars().chain("000".chars()).take(3).collect();
        ms += millis.parse::<i64>().ok()?;
        rest = &frac[n..];
    }
    match rest {
        "" | "Z" | "z" => Some(ms),
        tz => Some(ms - parse_offset_minutes(tz)? * 60_000),
    }
}

/// `+02:00`, `-0530`, `+2` or plain minutes (`120`) to minutes east of UTC.
pub fn parse_offset_minutes(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return text.parse::<i64>().ok().filter(|m| m.abs() <= 14 * 60),
    };
    let (h, m) = if let Some((h, m)) = rest.split_once(':') {
        (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?)
    } else if rest.len() == 4 {
        (rest[..2].parse().ok()?, rest[2..].parse().ok()?)
    } else {
        (rest.parse().ok()?, 0)
    };
    let total = h * 60 + m;
    (total <= 14 * 60 && m < 60).then_some(sign * total)
}

/// An IANA time zone (`Europe/Berlin`, `UTC`), with the tz database built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(chrono_tz::Tz);

impl Zone {
    pub const UTC: Zone = Zone(chrono_tz::UTC);

    /// A zone by its IANA name, exactly as the tz database spells it.
    pub fn parse(name: &str) -> Option<Zone> {
        name.parse::<chrono_tz::Tz>().ok().map(Zone)
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The local date (year, month, day, days since Monday) at `ms`.
    pub fn local_date(self, ms: i64) -> Option<(i32, u32, u32, u32)> {
        use chrono::{Datelike, TimeZone};
        let local = self.0.timestamp_millis_opt(ms).single()?;
        Some((
            local.year(),
            local.month(),
            local.day(),
            local.weekday().num_days_from_monday(),
        ))
    }

    /// The first instant of a local date: its midnight, or, where a clock
    /// change skips midnight, the first time that exists that day.
    pub fn start_of_day(self, year: i32, month: u32, day: u32) -> Option<i64> {
        use chrono::{NaiveDate, TimeZone};
        let date = NaiveDate::from_ymd_opt(year, month, day)?;
        // Clock changes move at most a few hours; the first valid quarter hour is the day's start.
        (0..24 * 4).find_map(|q| {
            let t = date.and_hms_opt(q / 4, q % 4 * 15, 0)?;
            self.0.from_local_datetime(&t).earliest().map(|d| d.timestamp_millis())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_openai_writes_them() {
        let cases = [
            (0, "0ms"),
            (12, "12ms"),
            (1_000, "1s"),
            (1_500, "1.5s"),
            (60_000, "1m0s"),
            (360_000, "6m0s"),
            (90_250, "1m30.25s"),
            (3_600_000, "1h0m0s"),
        ];
        for (ms, text) in cases {
            assert_eq!(go_duration(ms), text);
        }
    }

    #[test]
    fn the_next_month_starts_on_its_first() {
        let dec = parse_time("2025-12-31T23:59:59Z").unwrap();
        assert_eq!(next_month_start(dec), parse_time("2026-01-01T00:00:00Z").unwrap());
        let feb = parse_time("2028-02-29T12:00:00Z").unwrap();
        assert_eq!(next_month_start(feb), parse_time("2028-03-01T00:00:00Z").unwrap());
    }

    #[test]
    fn day_and_month_starts_in_utc() {
        let t = parse_time("2026-11-27T09:30:00Z").unwrap();
        let (day, month) = day_and_month_start(t);
        assert_eq!(iso8601(day), "2026-11-27T00:00:00.000Z");
        assert_eq!(iso8601(month), "2026-11-01T00:00:00.000Z");
        let (_, march) = day_and_month_start(parse_time("2024-03-01T00:00:00Z").unwrap());
        assert_eq!(iso8601(march), "2024-03-01T00:00:00.000Z");
    }

    #[test]
    fn formats_and_parses() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_795_760_475_123), "2026-11-27T06:21:15.123Z");
        assert_eq!(parse_time("2026-11-27T06:21:15.123Z"), Some(1_795_760_475_123));
        assert_eq!(parse_time("2026-11-27"), Some(1_795_737_600_000));
        assert_eq!(parse_time("2026-11-27T08:21:15+02:00"), Some(1_795_760_475_000));
        assert_eq!(parse_time("1795760475123"), Some(1_795_760_475_123));
        assert_eq!(parse_time("2026-13-01"), None);
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_offset_minutes("-05:30"), Some(-330));
        assert_eq!(parse_offset_minutes("120"), Some(120));
        assert_eq!(parse_offset_minutes("+99"), None);
        for ms in [0, 951_782_400_000, 4_102_444_800_000, -86_400_000] {
            assert_eq!(parse_time(&iso8601(ms)), Some(ms));
        }
    }

    #[test]
    fn local_midnights_follow_the_zone() {
        let tokyo = Zone::parse("Asia/Tokyo").unwrap();
        assert_eq!(
            iso8601(tokyo.start_of_day(2026, 12, 1).unwrap()),
            "2026-11-30T15:00:00.000Z"
        );
        assert_eq!(
            tokyo.local_date(parse_time("2026-11-30T15:00:00Z").unwrap()),
            Some((2026, 12, 1, 1))
        );
        // Santiago's clocks skip from 00:00 to 01:00 on 2026-09-06: that day starts at 01:00 local.
        let santiago = Zone::parse("America/Santiago").unwrap();
        assert_eq!(
            iso8601(santiago.start_of_day(2026, 9, 6).unwrap()),
            "2026-09-06T04:00:00.000Z"
        );
        assert_eq!(Zone::parse("Mars/Olympus"), None);
        assert_eq!(Zone::parse("UTC").unwrap().name(), "UTC");
    }
}
