//! Calendar buckets (`day`, `week`, `month`) of UTC instants, used by
//! `deployment_frequency` and by the engine's `dora_metrics` to zero-fill
//! buckets.
//!
//! All times are microseconds since the Unix epoch, UTC. Weeks are ISO
//! weeks starting on Monday 00:00 UTC; months are calendar months in UTC
//! (so a February bucket lasts 28 or 29 days). The arithmetic is exact
//! (proleptic Gregorian calendar) for every `i64` instant; results that
//! would fall outside the `i64` range saturate.
//!
//! ```
//! use leadline_udfs::{Grain, bucket_end, bucket_start, days_in};
//!
//! // 2024-02-14T12:00:00Z
//! let ts = 1_707_912_000_000_000;
//! let start = bucket_start(ts, Grain::Month); // 2024-02-01T00:00:00Z
//! let end = bucket_end(start, Grain::Month); // 2024-03-01T00:00:00Z
//! assert_eq!(days_in(start, end), 29.0);
//! assert_eq!("Week".parse::<Grain>().unwrap(), Grain::Week);
//! ```

use std::fmt;
use std::str::FromStr;

use datafusion::common::{DataFusionError, plan_datafusion_err};

/// Microseconds in one day of 86 400 seconds.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The width of a metric bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grain {
    /// A UTC calendar day.
    Day,
    /// An ISO week, Monday 00:00 UTC to the next Monday.
    Week,
    /// A UTC calendar month.
    Month,
}

impl Grain {
    /// Every grain, finest first.
    pub const ALL: [Grain; 3] = [Grain::Day, Grain::Week, Grain::Month];

    /// The SQL spelling: `day`, `week` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Week => "week",
            Grain::Month => "month",
        }
    }
}

impl fmt::Display for Grain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Grain {
    type Err = DataFusionError;

    /// Parses `day`, `week` or `month`, ignoring ASCII case and surrounding
    /// whitespace; anything else is a planning error naming the valid grains.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Grain::ALL
            .into_iter()
            .find(|grain| grain.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| plan_datafusion_err!("unknown grain '{s}': expected one of 'day', 'week', 'month'"))
    }
}

/// Start (inclusive) of the bucket containing `ts_micros`.
pub fn bucket_start(ts_micros: i64, grain: Grain) -> i64 {
    let day = ts_micros.div_euclid(MICROS_PER_DAY);
    let start_day = match grain {
        Grain::Day => day,
        // 1970-01-01 was a Thursday: day 4 (1970-01-05) is a Monday.
        Grain::Week => day - (day + 3).rem_euclid(7),
        Grain::Month => {
            let (year, month, _) = civil_from_days(day);
            days_from_civil(year, month, 1)
        }
    };
    day_to_micros(start_day)
}

/// End (exclusive) of the bucket containing `start_micros`, i.e. the start
/// of the next bucket. Meant to be called with a [`bucket_start`], but any
/// instant inside the bucket gives the same answer.
pub fn bucket_end(start_micros: i64, grain: Grain) -> i64 {
    let start_day = bucket_start(start_micros, grain).div_euclid(MICROS_PER_DAY);
    let end_day = match grain {
        Grain::Day => start_day + 1,
        Grain::Week => start_day + 7,
        Grain::Month => {
            let (year, month, _) = civil_from_days(start_day);
            if month == 12 { days_from_civil(year + 1, 1, 1) } else { days_from_civil(year, month + 1, 1) }
        }
    };
    day_to_micros(end_day)
}

/// Length of `[start, end)` in days of 86 400 seconds (fractional).
pub fn days_in(start_micros: i64, end_micros: i64) -> f64 {
    (i128::from(end_micros) - i128::from(start_micros)) as f64 / MICROS_PER_DAY as f64
}

/// Start of every bucket from the one containing `from_micros` to the one
/// containing `to_micros`, both included, in order; empty if `to < from`.
pub fn bucket_starts(from_micros: i64, to_micros: i64, grain: Grain) -> impl Iterator<Item = i64> {
    let last = bucket_start(to_micros, grain);
    let first = (from_micros <= to_micros).then(|| bucket_start(from_micros, grain));
    std::iter::successors(first, move |&start| {
        let next = bucket_end(start, grain);
        (next > start && next <= last).then_some(next)
    })
}

/// Microseconds at 00:00 UTC of `day` (days since 1970-01-01), saturating.
fn day_to_micros(day: i64) -> i64 {
    let micros = i128::from(day) * i128::from(MICROS_PER_DAY);
    micros.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Proleptic Gregorian `(year, month, day)` of a day since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400;
    (if month <= 2 { year + 1 } else { year }, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;

    /// Microseconds of an RFC 3339 timestamp.
    fn ts(s: &str) -> i64 {
        string_to_timestamp_nanos(s).unwrap() / 1000
    }

    #[test]
    fn parses_grains_case_insensitively() {
        assert_eq!("day".parse::<Grain>().unwrap(), Grain::Day);
        assert_eq!(" WEEK ".parse::<Grain>().unwrap(), Grain::Week);
        assert_eq!("Month".parse::<Grain>().unwrap(), Grain::Month);
        let err = "quarter".parse::<Grain>().unwrap_err().to_string();
        assert!(err.contains("unknown grain 'quarter'") && err.contains("'week'"), "{err}");
        for grain in Grain::ALL {
            assert_eq!(grain.to_string().parse::<Grain>().unwrap(), grain);
        }
    }

    #[test]
    fn day_buckets() {
        let t = ts("2024-03-03T23:30:00Z");
        assert_eq!(bucket_start(t, Grain::Day), ts("2024-03-03T00:00:00Z"));
        assert_eq!(bucket_end(bucket_start(t, Grain::Day), Grain::Day), ts("2024-03-04T00:00:00Z"));
        // Exactly midnight starts its own day.
        assert_eq!(bucket_start(ts("2024-03-04T00:00:00Z"), Grain::Day), ts("2024-03-04T00:00:00Z"));
        // Before the epoch, still floors (not truncates).
        assert_eq!(bucket_start(ts("1969-12-31T12:00:00Z"), Grain::Day), ts("1969-12-31T00:00:00Z"));
    }

    #[test]
    fn week_of_a_sunday_late_evening() {
        // Sunday 2024-03-03 23:30 UTC belongs to the week of Monday 2024-02-26.
        let sunday = ts("2024-03-03T23:30:00Z");
        let start = bucket_start(sunday, Grain::Week);
        assert_eq!(start, ts("2024-02-26T00:00:00Z"));
        assert_eq!(bucket_end(start, Grain::Week), ts("2024-03-04T00:00:00Z"));
        assert_eq!(days_in(start, bucket_end(start, Grain::Week)), 7.0);
        // Monday 00:00 starts the next one.
        assert_eq!(bucket_start(ts("2024-03-04T00:00:00Z"), Grain::Week), ts("2024-03-04T00:00:00Z"));
    }

    #[test]
    fn week_of_a_timestamp_with_an_offset() {
        // Monday 01:30 at +02:00 is still Sunday 23:30 UTC.
        let t = ts("2024-03-04T01:30:00+02:00");
        assert_eq!(t, ts("2024-03-03T23:30:00Z"));
        assert_eq!(bucket_start(t, Grain::Week), ts("2024-02-26T00:00:00Z"));
        // Sunday 22:00 at -05:00 is Monday 03:00 UTC.
        let t = ts("2024-03-03T22:00:00-05:00");
        assert_eq!(bucket_start(t, Grain::Week), ts("2024-03-04T00:00:00Z"));
        assert_eq!(bucket_start(t, Grain::Day), ts("2024-03-04T00:00:00Z"));
    }

    #[test]
    fn weeks_around_the_epoch() {
        // 1970-01-01 (Thursday) is in the week of Monday 1969-12-29.
        assert_eq!(bucket_start(0, Grain::Week), ts("1969-12-29T00:00:00Z"));
        assert_eq!(bucket_start(-1, Grain::Week), ts("1969-12-29T00:00:00Z"));
    }

    #[test]
    fn february_of_a_leap_year() {
        let start = bucket_start(ts("2024-02-29T23:59:59.999999Z"), Grain::Month);
        assert_eq!(start, ts("2024-02-01T00:00:00Z"));
        let end = bucket_end(start, Grain::Month);
        assert_eq!(end, ts("2024-03-01T00:00:00Z"));
        assert_eq!(days_in(start, end), 29.0);

        let start = bucket_start(ts("2023-02-10T00:00:00Z"), Grain::Month);
        assert_eq!(days_in(start, bucket_end(start, Grain::Month)), 28.0);
        // 1900 is not a leap year, 2000 is.
        let start = bucket_start(ts("1900-02-10T00:00:00Z"), Grain::Month);
        assert_eq!(days_in(start, bucket_end(start, Grain::Month)), 28.0);
        let start = bucket_start(ts("2000-02-10T00:00:00Z"), Grain::Month);
        assert_eq!(days_in(start, bucket_end(start, Grain::Month)), 29.0);
    }

    #[test]
    fn december_rolls_into_the_next_year() {
        let start = bucket_start(ts("2023-12-31T23:00:00Z"), Grain::Month);
        assert_eq!(start, ts("2023-12-01T00:00:00Z"));
        assert_eq!(bucket_end(start, Grain::Month), ts("2024-01-01T00:00:00Z"));
        assert_eq!(bucket_end(ts("2023-12-15T00:00:00Z"), Grain::Month), ts("2024-01-01T00:00:00Z"));
    }

    #[test]
    fn days_in_is_fractional() {
        assert_eq!(days_in(0, MICROS_PER_DAY / 2), 0.5);
        assert_eq!(days_in(i64::MIN, i64::MAX), (u64::MAX as f64) / MICROS_PER_DAY as f64);
    }

    #[test]
    fn civil_round_trip() {
        for day in (-800_000..800_000).step_by(7) {
            let (y, m, d) = civil_from_days(day);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn extremes_saturate_without_panicking() {
        for grain in Grain::ALL {
            for t in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1] {
                let start = bucket_start(t, grain);
                let end = bucket_end(start, grain);
                assert!(start <= end, "{grain} {t}");
            }
        }
    }

    #[test]
    fn bucket_starts_enumerates_every_bucket() {
        let from = ts("2024-01-31T10:00:00Z");
        let to = ts("2024-04-01T00:00:00Z");
        let months: Vec<i64> = bucket_starts(from, to, Grain::Month).collect();
        assert_eq!(
            months,
            [
                ts("2024-01-01T00:00:00Z"),
                ts("2024-02-01T00:00:00Z"),
                ts("2024-03-01T00:00:00Z"),
                ts("2024-04-01T00:00:00Z"),
            ]
        );
        assert_eq!(bucket_starts(from, from, Grain::Week).count(), 1);
        assert_eq!(bucket_starts(to, from, Grain::Day).count(), 0);
        assert_eq!(bucket_starts(from, to, Grain::Day).count(), 62);
        assert_eq!(bucket_starts(i64::MAX - 1, i64::MAX, Grain::Month).count(), 1);
    }
}
