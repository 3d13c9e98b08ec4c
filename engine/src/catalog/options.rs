//! The `leadline.*` session settings: which snapshot a session reads
//! (`leadline.as_of`) and how incidents are attributed
//! (`leadline.attribution_window`), validated when set.

use std::any::Any;

use datafusion::catalog::Session;
use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::common::{DataFusionError, Result as DfResult, plan_err};

use crate::error::{Error, ValueProblem};
use crate::event::parse_timestamp;
use crate::project::DEFAULT_ATTRIBUTION_WINDOW;

/// `SET leadline.as_of` / `SET leadline.attribution_window`, validated when set.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadlineOptions {
    /// Ingestion time to read the log as of (µs UTC); `None` = now.
    pub as_of: Option<i64>,
    /// Inferred attribution window in µs; `None` = unbounded.
    pub attribution_window: Option<i64>,
    as_of_text: String,
    window_text: String,
}

impl Default for LeadlineOptions {
    fn default() -> Self {
        Self {
            as_of: None,
            attribution_window: DEFAULT_ATTRIBUTION_WINDOW,
            as_of_text: String::new(),
            window_text: describe_window(DEFAULT_ATTRIBUTION_WINDOW),
        }
    }
}

/// A window as `SHOW` prints it: `unbounded`, or in its largest whole unit
/// up to hours (PostgreSQL prints `24:00:00`, not `1 day`, for 24 hours).
fn describe_window(micros: Option<i64>) -> String {
    let Some(us) = micros else { return "unbounded".into() };
    let units = [(3_600_000_000, "hour"), (60_000_000, "minute"), (1_000_000, "second")];
    match units.iter().find(|(size, _)| us != 0 && us % size == 0) {
        Some((size, unit)) => {
            let n = us / size;
            format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
        }
        None => format!("{us} microseconds"),
    }
}

impl LeadlineOptions {
    /// The options a session has (defaults if it never set any).
    pub fn of(state: &dyn Session) -> LeadlineOptions {
        state.config_options().extensions.get::<LeadlineOptions>().cloned().unwrap_or_default()
    }
}

impl ConfigExtension for LeadlineOptions {
    const PREFIX: &'static str = "leadline";
}

impl ExtensionOptions for LeadlineOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }
    fn set(&mut self, key: &str, value: &str) -> DfResult<()> {
        let value = value.trim();
        match key {
            "as_of" => {
                if value.is_empty() || value.eq_ignore_ascii_case("now") || value.eq_ignore_ascii_case("default") {
                    self.as_of = None;
                    self.as_of_text.clear();
                } else {
                    let as_of = parse_timestamp("leadline.as_of", value)
                        .map_err(|m| DataFusionError::from(Error::value(ValueProblem::InvalidDatetime, m)))?;
                    self.as_of = Some(as_of);
                    self.as_of_text = value.to_string();
                }
            }
            "attribution_window" => {
                if value.eq_ignore_ascii_case("default") {
                    *self = Self { as_of: self.as_of, as_of_text: self.as_of_text.clone(), ..Self::default() };
                } else if value.eq_ignore_ascii_case("unbounded") {
                    self.attribution_window = None;
                    self.window_text = "unbounded".into();
                } else {
                    self.attribution_window = Some(parse_interval_micros(value)?);
                    self.window_text = value.to_string();
                }
            }
            _ => {
                return plan_err!(
                    "unrecognized configuration parameter \"leadline.{key}\" (leadline has as_of and attribution_window)"
                );
            }
        }
        Ok(())
    }
    fn entries(&self) -> Vec<ConfigEntry> {
        vec![
            ConfigEntry {
                key: "leadline.as_of".into(),
                value: (!self.as_of_text.is_empty()).then(|| self.as_of_text.clone()),
                description: "Read every table and metric as the log was at this ingestion time (unset: now)",
            },
            ConfigEntry {
                key: "leadline.attribution_window".into(),
                value: Some(self.window_text.clone()),
                description: "How long before an incident a deployment may be inferred as its cause ('unbounded' for no limit)",
            },
        ]
    }
}

/// Parses a non-negative interval like `24 hours`, `90 minutes`, `1 day 02:00:00`
/// (PostgreSQL's style), into µs. Every step is checked: an interval too
/// long to count in µs is an error, never a wrapped or saturated number.
pub fn parse_interval_micros(text: &str) -> DfResult<i64> {
    let err = |problem, message: String| DataFusionError::from(Error::value(problem, message));
    let bad = || {
        err(
            ValueProblem::InvalidDatetime,
            format!("invalid interval '{text}': write e.g. '24 hours', '90 minutes' or 'unbounded'"),
        )
    };
    let overflow = || err(ValueProblem::IntervalOverflow, format!("interval field value out of range: '{text}'"));
    // A finite number of µs that fits an i64, or why not.
    let micros = |n: f64, per: f64| -> DfResult<i64> {
        if !n.is_finite() {
            return Err(bad());
        }
        let us = (n * per).round();
        // `as` saturates; 2^63 (`i64::MAX as f64`) itself does not fit.
        if us.abs() >= i64::MAX as f64 { Err(overflow()) } else { Ok(us as i64) }
    };
    let parts: Vec<&str> = text.split_whitespace().collect();
    if parts.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut i = 0;
    while i < parts.len() {
        let us = if parts[i].contains(':') {
            // `HH:MM:SS` on its own.
            let hms: Vec<&str> = parts[i].split(':').collect();
            let [h, m, s] = hms.as_slice() else { return Err(bad()) };
            let h: i64 =
                h.parse().map_err(|_| if h.bytes().all(|b| b.is_ascii_digit()) { overflow() } else { bad() })?;
            let m: i64 = m.parse().map_err(|_| bad())?;
            let s: f64 = s.parse().map_err(|_| bad())?;
            i += 1;
            h.checked_mul(3_600_000_000)
                .and_then(|h| h.checked_add(m.checked_mul(60_000_000)?))
                .and_then(|hm| hm.checked_add(micros(s, 1e6).ok()?))
                .ok_or_else(overflow)?
        } else {
            let n: f64 = parts[i].parse().map_err(|_| bad())?;
            let unit = parts.get(i + 1).ok_or_else(bad)?.to_ascii_lowercase();
            let per = match unit.as_str() {
                "us" | "microsecond" | "microseconds" => 1.0,
                "ms" | "millisecond" | "milliseconds" => 1e3,
                "s" | "sec" | "secs" | "second" | "seconds" => 1e6,
                "m" | "min" | "mins" | "minute" | "minutes" => 60e6,
                "h" | "hr" | "hrs" | "hour" | "hours" => 3600e6,
                "d" | "day" | "days" => 86_400e6,
                "w" | "week" | "weeks" => 7.0 * 86_400e6,
                _ => return Err(bad()),
            };
            i += 2;
            micros(n, per)?
        };
        total = total.checked_add(us).ok_or_else(overflow)?;
    }
    if total < 0 {
        return Err(err(
            ValueProblem::InvalidParameter,
            format!("the attribution window must not be negative: '{text}'"),
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_window_is_described_from_its_one_definition() {
        let o = LeadlineOptions::default();
        assert_eq!(o.attribution_window, Some(24 * 3_600_000_000));
        assert_eq!(o.entries()[1].value.as_deref(), Some("24 hours"));
        assert_eq!(describe_window(Some(90 * 60_000_000)), "90 minutes");
        assert_eq!(describe_window(Some(3_600_000_000)), "1 hour");
        assert_eq!(describe_window(Some(1_500)), "1500 microseconds");
        assert_eq!(describe_window(None), "unbounded");
    }

    #[test]
    fn settings_are_validated_when_set() {
        let mut o = LeadlineOptions::default();
        o.set("attribution_window", "1 day 02:00:00").unwrap();
        assert_eq!(o.attribution_window, Some(26 * 3_600_000_000));
        o.set("attribution_window", "unbounded").unwrap();
        assert_eq!(o.attribution_window, None);
        o.set("attribution_window", "default").unwrap();
        assert_eq!(o, LeadlineOptions::default());
        assert!(o.set("attribution_window", "-1 hours").is_err());
        assert!(o.set("attribution_window", "soon").is_err());
        assert!(o.set("as_of", "yesterday").is_err());
        o.set("as_of", "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(o.as_of, Some(1_767_225_600_000_000));
        o.set("as_of", "now").unwrap();
        assert_eq!(o.as_of, None);
        assert!(o.set("no_such", "1").is_err());
    }

    fn problem(text: &str) -> Option<ValueProblem> {
        match parse_interval_micros(text) {
            Err(DataFusionError::External(e)) => match e.downcast_ref::<Error>() {
                Some(Error::Value { problem, .. }) => Some(*problem),
                _ => None,
            },
            _ => None,
        }
    }

    /// Regression (issue 11): `'9999999999:00:00'` multiplied with overflow
    /// (a panic in a test build, a wrapped window in a release build).
    #[test]
    fn intervals_too_long_for_microseconds_are_errors_not_wrapped() {
        for text in [
            "9999999999:00:00",
            "99999999999999999999:00:00",
            "2562047789:00:00",
            "1e300 hours",
            "1e15 days",
            "9223372036854775807 us 1 us",
            "106751991 days 106751991 days",
        ] {
            assert_eq!(problem(text), Some(ValueProblem::IntervalOverflow), "{text}");
        }
        for text in ["nan hours", "inf days", "soon", "1:2", "x:00:00", "5"] {
            assert_eq!(problem(text), Some(ValueProblem::InvalidDatetime), "{text}");
        }
        assert_eq!(problem("-1 hours"), Some(ValueProblem::InvalidParameter));
        assert_eq!(parse_interval_micros("2562047788:00:00").unwrap(), 2_562_047_788 * 3_600_000_000);
        assert_eq!(parse_interval_micros("9223372036854774784 us").unwrap(), i64::MAX - 1023);
        assert_eq!(parse_interval_micros("1.5 hours 00:30:00").unwrap(), 2 * 3_600_000_000);
    }
}
