//! Usage analytics: calls, errors, tokens, credits and TTFB percentiles per
//! group over a time range.
//!
//! The call log is summed per UTC hour and per UTC day as it is written (the
//! `calls_roll_up` trigger of migration 0014), so a query reads the roll-ups
//! for every whole hour or day of its range that falls in one group, and the
//! call log only for the rest (the partial hours at its ends, or everything
//! when its groups do not line up with hours: a UTC offset of +05:30). Totals
//! are the same either way, to the nano-credit; a 90-day range reads a few
//! thousand roll-up rows per series instead of every call. Where old call-log
//! rows were deleted (`call_retention_days`), a part that is not a whole hour
//! is read from the roll-up of the hour it starts in.

use super::{rows, CallFilter, Row, Store};
use crate::metering::money::Credits;
use crate::ports::{DbError, Stmt};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// Later than any call (the year 10000): the end of a range without one.
const FOREVER: i64 = 253_402_300_800_000;

/// The TTFB histogram's buckets, by their upper bounds (exclusive, in ms):
/// bucket `k` holds `[TTFB_BOUNDS[k - 1], TTFB_BOUNDS[k])`, the first from 0,
/// and one more bucket holds everything from the last bound on. About ten
/// per decade, so from 10 ms on a percentile read from them is at most a
/// third above the exact one. Migration 0014's trigger uses the same bounds.
pub const TTFB_BOUNDS: [i64; 50] = [
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500, 600, 800,
    1000, 1200, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 15000, 20000, 25000, 30000, 40000, 50000,
    60000, 80000, 100000, 120000, 150000,
];
/// Buckets of the histogram: one per bound, and the one above the last.
pub const TTFB_BUCKETS: usize = TTFB_BOUNDS.len() + 1;

/// The histogram bucket of a time to first byte.
pub fn ttfb_bucket(ms: i64) -> usize {
    TTFB_BOUNDS.partition_point(|&bound| bound <= ms)
}

/// Summed figures: the call log's columns the roll-ups keep, as both name them.
const FIGURES: [&str; 10] = [
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "audio_ms",
    "characters",
    "video_seconds",
    "credits",
    "cache_saved",
];

/// How usage is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Hour,
    Day,
    Model,
    Provider,
    User,
    Team,
    App,
    Key,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<GroupBy> {
        Some(match s {
            "hour" => GroupBy::Hour,
            "day" => GroupBy::Day,
            "model" => GroupBy::Model,
            "provider" => GroupBy::Provider,
            "user" => GroupBy::User,
            "team" => GroupBy::Team,
            "app" => GroupBy::App,
            "key" => GroupBy::Key,
            _ => return None,
        })
    }

    /// The group of a row whose time is in `time` (a call's `created_at`, a
    /// roll-up's `bucket`); the roll-ups keep a missing dimension as ''.
    fn expr(self, time: &str, tz_minutes: i64) -> String {
        let off = tz_minutes * 60_000;
        match self {
            GroupBy::Hour => format!("(({time} + {off}) / {HOUR_MS}) * {HOUR_MS} - {off}"),
            GroupBy::Day => format!("(({time} + {off}) / {DAY_MS}) * {DAY_MS} - {off}"),
            GroupBy::Model => "model".into(),
            GroupBy::Provider => "COALESCE(provider, '')".into(),
            GroupBy::User => "COALESCE(user_id, '')".into(),
            // The key's team (fixed when it was made); '' for keys outside any team.
            GroupBy::Team => "COALESCE((SELECT team_id FROM api_keys WHERE api_keys.id = key_id), '')".into(),
            GroupBy::App => "COALESCE(app, '')".into(),
            GroupBy::Key => "COALESCE(key_id, '')".into(),
        }
    }

    /// Which roll-ups can answer for one of their buckets as a whole: those
    /// whose every bucket falls in a single group.
    fn grains(self, tz_minutes: i64) -> Grains {
        let whole_hours = tz_minutes % 60 == 0;
        match self {
            GroupBy::Hour => Grains {
                hourly: whole_hours,
                daily: false,
            },
            GroupBy::Day => Grains {
                hourly: whole_hours,
                daily: tz_minutes == 0,
            },
            _ => Grains {
                hourly: true,
                daily: true,
            },
        }
    }
}

/// One group of usage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageBucket {
    pub group: String,
    pub calls: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub cache_write_1h_tokens: i64,
    pub audio_ms: i64,
    pub characters: i64,
    pub video_seconds: i64,
    pub credits: Credits,
    /// What prompt caching saved (negative: cost more), summed.
    pub cache_saved: Credits,
    pub ttfb_p50_ms: Option<i64>,
    pub ttfb_p95_ms: Option<i64>,
}

impl UsageBucket {
    fn of(r: &Row) -> UsageBucket {
        let hist: Vec<i64> = (0..TTFB_BUCKETS).map(|k| r.i64(&format!("h{k}"))).collect();
        UsageBucket {
            group: r.str("g"),
            calls: r.i64("calls"),
            errors: r.i64("errors"),
            input_tokens: r.i64("input_tokens"),
            output_tokens: r.i64("output_tokens"),
            cache_read_tokens: r.i64("cache_read_tokens"),
            cache_write_tokens: r.i64("cache_write_tokens"),
            cache_write_1h_tokens: r.i64("cache_write_1h_tokens"),
            audio_ms: r.i64("audio_ms"),
            characters: r.i64("characters"),
            video_seconds: r.i64("video_seconds"),
            credits: Credits::from_nanos(r.i64("credits")),
            cache_saved: Credits::from_nanos(r.i64("cache_saved")),
            ttfb_p50_ms: percentile(&hist, 0.5),
            ttfb_p95_ms: percentile(&hist, 0.95),
        }
    }
}

/// The `p` percentile of a TTFB histogram: the upper bound of the bucket
/// holding the value of rank ⌈p·n⌉ (the last bucket, unbounded, answers its
/// lower bound).
fn percentile(hist: &[i64], p: f64) -> Option<i64> {
    let n: i64 = hist.iter().sum();
    if n <= 0 {
        return None;
    }
    let rank = ((p * n as f64).ceil() as i64).clamp(1, n);
    let mut seen = 0;
    for (k, count) in hist.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(TTFB_BOUNDS[k.min(TTFB_BOUNDS.len() - 1)]);
        }
    }
    None
}

/// Which roll-ups a grouping may read whole buckets of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grains {
    hourly: bool,
    daily: bool,
}

/// Where a part of a range is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Calls,
    Hourly,
    Daily,
}

impl Source {
    fn table(self) -> &'static str {
        match self {
            Source::Calls => "calls",
            Source::Hourly => "usage_hourly",
            Source::Daily => "usage_daily",
        }
    }

    /// A row's time: a call's, or its roll-up bucket's start.
    fn time(self) -> &'static str {
        match self {
            Source::Calls => "created_at",
            _ => "bucket",
        }
    }
}

/// Rows of `source` whose time is in `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Part {
    source: Source,
    from: i64,
    to: i64,
}

fn floor_to(t: i64, grain: i64) -> i64 {
    t - t.rem_euclid(grain)
}

fn ceil_to(t: i64, grain: i64) -> i64 {
    floor_to(t, grain) + if t.rem_euclid(grain) == 0 { 0 } else { grain }
}

/// The parts `[from, to)` is read from: whole days and hours from the
/// roll-ups where `grains` allows, the rest from the call log. Call-log rows
/// made before `logged_from` may have been deleted; a part before it (up to
/// the next whole hour) is read from the hourly roll-up instead, each hour
/// placed where it starts (the part's ends rounded down to the hour).
fn plan(from: i64, to: i64, grains: Grains, logged_from: i64) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut push = |source: Source, from: i64, to: i64| {
        if from < to {
            parts.push(Part { source, from, to });
        }
    };
    let (h0, h1) = (ceil_to(from, HOUR_MS), floor_to(to, HOUR_MS));
    if !grains.hourly || h0 >= h1 {
        logged(&mut push, from, to, logged_from);
        return parts;
    }
    logged(&mut push, from, h0, logged_from);
    let (d0, d1) = (ceil_to(h0, DAY_MS), floor_to(h1, DAY_MS));
    if grains.daily && d0 < d1 {
        push(Source::Hourly, h0, d0);
        push(Source::Daily, d0, d1);
        push(Source::Hourly, d1, h1);
    } else {
        push(Source::Hourly, h0, h1);
    }
    logged(&mut push, h1, to, logged_from);
    parts
}

/// `[from, to)` from the call log, or, before `logged_from` (rounded up to
/// the hour), from the hourly roll-up.
fn logged(push: &mut impl FnMut(Source, i64, i64), from: i64, to: i64, logged_from: i64) {
    if from >= to {
        return;
    }
    let whole = ceil_to(logged_from, HOUR_MS);
    if from < whole {
        push(
            Source::Hourly,
            floor_to(from, HOUR_MS),
            floor_to(to.min(whole), HOUR_MS),
        );
    }
    push(Source::Calls, from.max(whole), to);
}

/// Whether a call's `ttfb_ms` is in bucket `k` (NULL when it has none).
fn in_ttfb_bucket(k: usize) -> String {
    match (k.checked_sub(1).map(|i| TTFB_BOUNDS[i]), TTFB_BOUNDS.get(k)) {
        (None, Some(upper)) => format!("ttfb_ms < {upper}"),
        (Some(lower), Some(upper)) => format!("ttfb_ms >= {lower} AND ttfb_ms < {upper}"),
        (Some(lower), None) => format!("ttfb_ms >= {lower}"),
        (None, None) => unreachable!("the histogram has bounds"),
    }
}

/// The SELECT of one source's parts, grouped by `g`, its columns named as
/// the outer query sums them.
fn select(source: Source, parts: &[Part], g: &str, filter: &str) -> String {
    let time = source.time();
    let ranges: Vec<String> = parts
        .iter()
        .map(|p| format!("({time} >= {} AND {time} < {})", p.from, p.to))
        .collect();
    let mut columns = vec![format!("{g} AS g")];
    match source {
        Source::Calls => {
            columns.push("COUNT(*) AS calls".into());
            columns.push("SUM(status = 'failed') AS errors".into());
        }
        _ => {
            columns.push("SUM(calls) AS calls".into());
            columns.push("SUM((status = 'failed') * calls) AS errors".into());
        }
    }
    columns.extend(FIGURES.iter().map(|f| format!("SUM({f}) AS {f}")));
    for k in 0..TTFB_BUCKETS {
        columns.push(match source {
            Source::Calls => format!("SUM({}) AS h{k}", in_ttfb_bucket(k)),
            _ => format!("SUM(h{k}) AS h{k}"),
        });
    }
    format!(
        "SELECT {} FROM {} WHERE {filter} AND ({}) GROUP BY g",
        columns.join(", "),
        source.table(),
        ranges.join(" OR ")
    )
}

impl Store {
    /// Calls, errors, tokens, credits and TTFB percentiles per group, over
    /// the filter's range (see the module's documentation for where each
    /// part of it is read from).
    pub async fn usage(
        &self,
        filter: &CallFilter,
        group_by: GroupBy,
        tz_minutes: i64,
    ) -> Result<Vec<UsageBucket>, DbError> {
        let (from, to) = (filter.from.unwrap_or(0), filter.to.unwrap_or(FOREVER));
        if from >= to {
            return Ok(Vec::new());
        }
        let logged_from = self.calls_whole_since().await?;
        let parts = plan(from, to, group_by.grains(tz_minutes), logged_from);
        let mut params = Vec::new();
        let dimensions = CallFilter {
            from: None,
            to: None,
            ..filter.clone()
        };
        let clause = dimensions.where_clause(&mut params);
        let selects: Vec<String> = [Source::Calls, Source::Hourly, Source::Daily]
            .into_iter()
            .filter_map(|source| {
                let mine: Vec<Part> = parts.iter().filter(|p| p.source == source).copied().collect();
                (!mine.is_empty()).then(|| select(source, &mine, &group_by.expr(source.time(), tz_minutes), &clause))
            })
            .collect();
        let mut sums = vec![
            "g".to_string(),
            "SUM(calls) AS calls".into(),
            "SUM(errors) AS errors".into(),
        ];
        sums.extend(FIGURES.iter().map(|f| format!("SUM({f}) AS {f}")));
        sums.extend((0..TTFB_BUCKETS).map(|k| format!("SUM(h{k}) AS h{k}")));
        let sql = format!(
            "SELECT {} FROM ({}) GROUP BY g ORDER BY g",
            sums.join(", "),
            selects.join(" UNION ALL ")
        );
        let r = self.db.query(Stmt::new(sql, params)).await?;
        Ok(rows(&r).map(|r| UsageBucket::of(&r)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a whole day
    const ALL: Grains = Grains {
        hourly: true,
        daily: true,
    };

    fn part(source: Source, from: i64, to: i64) -> Part {
        Part { source, from, to }
    }

    #[test]
    fn ttfb_buckets_follow_the_bounds() {
        assert_eq!(ttfb_bucket(0), 0);
        assert_eq!(ttfb_bucket(1), 1);
        assert_eq!(ttfb_bucket(7), 6);
        assert_eq!(ttfb_bucket(8), 7);
        assert_eq!(ttfb_bucket(149_999), 49);
        assert_eq!(ttfb_bucket(150_000), 50);
        assert_eq!(ttfb_bucket(i64::MAX), TTFB_BUCKETS - 1);
        assert!(TTFB_BOUNDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn percentiles_are_the_upper_bound_of_their_bucket() {
        let mut hist = [0i64; TTFB_BUCKETS];
        for ms in 1..=100 {
            hist[ttfb_bucket(ms)] += 1;
        }
        // The 50th value (50 ms) is in [50, 60); the 95th (95) in [80, 100).
        assert_eq!(percentile(&hist, 0.5), Some(60));
        assert_eq!(percentile(&hist, 0.95), Some(100));
        let mut one = [0i64; TTFB_BUCKETS];
        one[ttfb_bucket(400_000)] = 1;
        assert_eq!(percentile(&one, 0.95), Some(150_000));
        assert_eq!(percentile(&[0; TTFB_BUCKETS], 0.5), None);
    }

    #[test]
    fn whole_days_and_hours_come_from_the_roll_ups_and_the_ends_from_the_log() {
        let from = T - 2 * HOUR_MS - 600_000; // 21:50 the day before
        let to = T + 3 * DAY_MS + HOUR_MS + 5; // 01:00:00.005, three days on
        assert_eq!(
            plan(from, to, ALL, 0),
            vec![
                part(Source::Calls, from, T - 2 * HOUR_MS),
                part(Source::Hourly, T - 2 * HOUR_MS, T),
                part(Source::Daily, T, T + 3 * DAY_MS),
                part(Source::Hourly, T + 3 * DAY_MS, T + 3 * DAY_MS + HOUR_MS),
                part(Source::Calls, T + 3 * DAY_MS + HOUR_MS, to),
            ]
        );
        // Days at +02:00 are not UTC days: hours only.
        let hours = GroupBy::Day.grains(120);
        assert_eq!(
            plan(T, T + 2 * DAY_MS, hours, 0),
            vec![part(Source::Hourly, T, T + 2 * DAY_MS)]
        );
        // A range within an hour is read from the log.
        assert_eq!(plan(T + 5, T + 10, ALL, 0), vec![part(Source::Calls, T + 5, T + 10)]);
    }

    #[test]
    fn offsets_that_are_not_whole_hours_read_the_log_while_it_lasts() {
        let grains = GroupBy::Hour.grains(330);
        assert_eq!(
            grains,
            Grains {
                hourly: false,
                daily: false
            }
        );
        assert_eq!(plan(T, T + DAY_MS, grains, 0), vec![part(Source::Calls, T, T + DAY_MS)]);
        // Rows before 10:20 were deleted: the hours before 11:00 come from the roll-up.
        let logged_from = T + 10 * HOUR_MS + 1_200_000;
        assert_eq!(
            plan(T, T + DAY_MS, grains, logged_from),
            vec![
                part(Source::Hourly, T, T + 11 * HOUR_MS),
                part(Source::Calls, T + 11 * HOUR_MS, T + DAY_MS),
            ]
        );
    }

    #[test]
    fn pruned_ends_round_down_to_the_hour() {
        let from = T + 1_800_000; // 00:30
        let to = T + 5 * HOUR_MS + 1_800_000; // 05:30
        assert_eq!(
            plan(from, to, ALL, FOREVER),
            vec![
                part(Source::Hourly, T, T + HOUR_MS),
                part(Source::Hourly, T + HOUR_MS, T + 5 * HOUR_MS),
            ]
        );
    }

    #[test]
    fn an_open_range_is_read_from_the_roll_ups() {
        assert_eq!(plan(0, FOREVER, ALL, T), vec![part(Source::Daily, 0, FOREVER)]);
    }
}
