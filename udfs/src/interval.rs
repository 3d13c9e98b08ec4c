//! Conversions between `Interval(MonthDayNano)` values and a plain count of
//! nanoseconds.
//!
//! Every duration leadline aggregates (lead time, restore time, recovery
//! time) is an exact length of time, so the aggregates work on `i64`
//! nanoseconds and only turn the result back into an interval at the end.
//!
//! ```
//! use leadline_udfs::{interval_to_nanos, nanos_to_interval};
//!
//! // 1 day 2 hours, as PostgreSQL prints `timestamptz - timestamptz`.
//! let nanos = 26 * 3_600_000_000_000_i64;
//! let interval = nanos_to_interval(nanos);
//! assert_eq!((interval.months, interval.days), (0, 1));
//! assert_eq!(interval.nanoseconds, 2 * 3_600_000_000_000);
//! assert_eq!(interval_to_nanos(interval).unwrap(), nanos);
//! ```

use arrow::datatypes::IntervalMonthDayNano;
use datafusion::common::{Result, exec_err};

/// Nanoseconds in one day of 86 400 seconds.
pub const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// Turns a signed number of nanoseconds into an interval normalised the way
/// PostgreSQL prints the difference of two timestamps: whole days (truncated
/// toward zero) plus the remaining nanoseconds, with the same sign, and no
/// months.
///
/// `-90000 s` gives `-1 days -01:00:00` (days = -1, nanoseconds = -1 h).
pub fn nanos_to_interval(nanos: i64) -> IntervalMonthDayNano {
    // |i64::MAX / NANOS_PER_DAY| = 106 751, which always fits in an i32.
    let days = (nanos / NANOS_PER_DAY) as i32;
    IntervalMonthDayNano::new(0, days, nanos % NANOS_PER_DAY)
}

/// Length of an interval in nanoseconds, counting a day as 86 400 seconds.
///
/// An interval with a month component has no fixed length (28 to 31 days),
/// so it is an error, as is a length that does not fit in an `i64`
/// (about ±292 years).
pub fn interval_to_nanos(interval: IntervalMonthDayNano) -> Result<i64> {
    if interval.months != 0 {
        return exec_err!(
            "interval with {} month(s) has no exact length; express durations in days, hours, minutes or seconds",
            interval.months
        );
    }
    match i64::from(interval.days)
        .checked_mul(NANOS_PER_DAY)
        .and_then(|day_nanos| day_nanos.checked_add(interval.nanoseconds))
    {
        Some(nanos) => Ok(nanos),
        None => exec_err!(
            "interval of {} days and {} ns is too long to measure in nanoseconds",
            interval.days,
            interval.nanoseconds
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000_000;

    #[test]
    fn normalises_into_days_and_remainder() {
        assert_eq!(nanos_to_interval(0), IntervalMonthDayNano::ZERO);
        assert_eq!(nanos_to_interval(HOUR), IntervalMonthDayNano::new(0, 0, HOUR));
        assert_eq!(nanos_to_interval(NANOS_PER_DAY), IntervalMonthDayNano::new(0, 1, 0));
        assert_eq!(nanos_to_interval(3 * NANOS_PER_DAY + 5 * HOUR + 7), IntervalMonthDayNano::new(0, 3, 5 * HOUR + 7));
    }

    #[test]
    fn negative_truncates_toward_zero() {
        assert_eq!(nanos_to_interval(-(25 * HOUR)), IntervalMonthDayNano::new(0, -1, -HOUR));
        assert_eq!(nanos_to_interval(-HOUR), IntervalMonthDayNano::new(0, 0, -HOUR));
    }

    #[test]
    fn extremes_round_trip() {
        for nanos in [i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1, 1, -1] {
            assert_eq!(interval_to_nanos(nanos_to_interval(nanos)).unwrap(), nanos);
        }
    }

    #[test]
    fn to_nanos_accepts_mixed_signs() {
        // `1 day -1 hour` is 23 hours.
        let interval = IntervalMonthDayNano::new(0, 1, -HOUR);
        assert_eq!(interval_to_nanos(interval).unwrap(), 23 * HOUR);
    }

    #[test]
    fn months_are_rejected() {
        let err = interval_to_nanos(IntervalMonthDayNano::new(1, 0, 0)).unwrap_err();
        assert!(err.to_string().contains("month"), "{err}");
    }

    #[test]
    fn overflow_is_an_error() {
        let err = interval_to_nanos(IntervalMonthDayNano::new(0, i32::MAX, 0)).unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
        assert!(interval_to_nanos(IntervalMonthDayNano::new(0, 106_751, i64::MAX)).is_err());
    }
}
