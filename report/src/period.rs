//! The periods a report compares: whole buckets of its grain, the current
//! one and the one of the same number of buckets just before it.

use chrono::{DateTime, NaiveDate, Utc};
use leadline_udfs::{Grain, MICROS_PER_DAY, bucket_end, bucket_start, bucket_starts};

use crate::Error;

/// Buckets in the current period when `--from` and `--to` do not say:
/// six weeks (against the six before) or three months.
pub fn default_buckets(grain: Grain) -> usize {
    match grain {
        Grain::Month => 3,
        _ => 6,
    }
}

/// Whole buckets `[start, end)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    /// Bucket starts (µs UTC), oldest first.
    pub buckets: Vec<i64>,
    pub start: i64,
    /// Exclusive.
    pub end: i64,
}

impl Period {
    fn of(first: i64, last: i64, grain: Grain) -> Period {
        let buckets: Vec<i64> = bucket_starts(first, last, grain).collect();
        Period { start: first, end: bucket_end(last, grain), buckets }
    }

    pub fn days(&self) -> f64 {
        (self.end - self.start) as f64 / MICROS_PER_DAY as f64
    }

    /// The last bucket's start.
    pub fn last(&self) -> i64 {
        *self.buckets.last().unwrap_or(&self.start)
    }
}

/// The current period and the previous one of the same number of buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Periods {
    pub grain: Grain,
    pub current: Period,
    pub previous: Period,
}

impl Periods {
    /// `from`/`to` (µs UTC, either may be absent) widened to whole buckets,
    /// `to` inclusive; without `to`, the bucket of `newest` (the newest
    /// event), or of `from` if that is later; without `from`,
    /// [`default_buckets`] ending at `to`.
    pub fn new(grain: Grain, from: Option<i64>, to: Option<i64>, newest: i64) -> Result<Periods, Error> {
        // A --from past the newest event alone is a period of one bucket.
        let last = bucket_start(to.unwrap_or(newest.max(from.unwrap_or(newest))), grain);
        let first = match from {
            Some(f) => bucket_start(f, grain),
            None => back(last, default_buckets(grain) - 1, grain),
        };
        if first > last {
            return Err(Error::Input(format!(
                "--from ({}) is after --to ({})",
                crate::fmt::date(first),
                crate::fmt::date(last)
            )));
        }
        let current = Period::of(first, last, grain);
        let n = current.buckets.len();
        let previous_first = back(first, n, grain);
        let previous = Period::of(previous_first, bucket_start(first - 1, grain), grain);
        Ok(Periods { grain, current, previous })
    }

    /// Every bucket of both periods, oldest first.
    pub fn all_buckets(&self) -> Vec<i64> {
        self.previous.buckets.iter().chain(&self.current.buckets).copied().collect()
    }
}

/// The bucket `n` buckets before the one starting at `start`.
fn back(start: i64, n: usize, grain: Grain) -> i64 {
    (0..n).fold(start, |s, _| bucket_start(s - 1, grain))
}

/// A `--from`/`--to` value: a date (`2026-08-03`, 00:00 UTC) or an RFC 3339
/// timestamp with an offset.
pub fn parse_time(flag: &str, text: &str) -> Result<i64, Error> {
    let text = text.trim();
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros()).unwrap_or_default());
    }
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc).timestamp_micros()).map_err(|_| {
        Error::Input(format!("{flag} '{text}' is neither a date (2026-08-03) nor an RFC 3339 timestamp with an offset"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        parse_time("t", s).unwrap()
    }

    #[test]
    fn weeks_default_to_six_against_the_six_before() {
        let p = Periods::new(Grain::Week, None, None, at("2026-08-29T17:37:01Z")).unwrap();
        assert_eq!(p.current.buckets.len(), 6);
        assert_eq!(p.current.start, at("2026-07-20"));
        assert_eq!(p.current.end, at("2026-08-31"));
        assert_eq!(p.previous.start, at("2026-06-08"));
        assert_eq!(p.previous.end, p.current.start);
        assert_eq!(p.current.days(), 42.0);
        assert_eq!(p.all_buckets().len(), 12);
    }

    #[test]
    fn months_compare_the_same_number_of_months() {
        let p = Periods::new(Grain::Month, Some(at("2026-03-15")), Some(at("2026-04-02")), 0).unwrap();
        assert_eq!((p.current.start, p.current.end), (at("2026-03-01"), at("2026-05-01")));
        assert_eq!((p.previous.start, p.previous.end), (at("2026-01-01"), at("2026-03-01")));
        assert_eq!(p.previous.days(), 59.0);
    }

    #[test]
    fn bad_bounds_are_input_errors() {
        assert!(Periods::new(Grain::Week, Some(at("2026-05-01")), Some(at("2026-04-01")), 0).is_err());
        assert!(parse_time("--from", "2026-13-01").is_err());
        assert!(parse_time("--from", "2026-03-01 09:00:00").is_err());
        assert_eq!(at("2026-03-01T01:00:00+01:00"), at("2026-03-01"));
    }
}
