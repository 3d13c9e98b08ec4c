//! How report values read: times in UTC, durations in their two largest
//! units, rates in percent, frequencies per day.

use chrono::{DateTime, Utc};

use crate::metric::Unit;

/// A missing value (no sample in the period).
pub const NONE: &str = "–";

fn datetime(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// `2026-08-03`
pub fn date(micros: i64) -> String {
    datetime(micros).format("%Y-%m-%d").to_string()
}

/// `2026-08-29 17:37 UTC`
pub fn utc(micros: i64) -> String {
    datetime(micros).format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A bucket's short axis label: `Aug 3` (weeks) or `Aug 2026` (months).
pub fn bucket_label(micros: i64, grain: leadline_udfs::Grain) -> String {
    let fmt = if grain == leadline_udfs::Grain::Month { "%b %Y" } else { "%b %-d" };
    datetime(micros).format(fmt).to_string()
}

/// `4h 17m`, `1d 4h`, `17m 19s`, `45s`.
pub fn duration(seconds: f64) -> String {
    let sign = if seconds < 0.0 { "−" } else { "" };
    let s = seconds.abs().round() as u64;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let text = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    };
    format!("{sign}{text}")
}

/// A metric value as the report prints it.
pub fn value(unit: Unit, v: Option<f64>) -> String {
    match v {
        None => NONE.to_string(),
        Some(v) => match unit {
            Unit::PerDay => format!("{}/day", number(v)),
            Unit::Seconds => duration(v),
            Unit::Ratio => percent(v),
        },
    }
}

/// `13.7%` (one decimal).
pub fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

/// Three significant digits, at most two decimals: `2.14`, `0.357`, `12.5`.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A signed difference in the metric's unit: `+7h 32m`, `−0.52/day`, `+9.1 pp`.
pub fn difference(unit: Unit, d: f64) -> String {
    let sign = if d < 0.0 { "−" } else { "+" };
    let a = d.abs();
    match unit {
        Unit::PerDay => format!("{sign}{}/day", number(a)),
        Unit::Seconds => format!("{sign}{}", duration(a)),
        Unit::Ratio => format!("{sign}{:.1} pp", a * 100.0),
    }
}

/// Escapes text for HTML (and SVG) content and attribute values.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a Markdown table cell.
pub fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_people_write_them() {
        assert_eq!(duration(4.0 * 3600.0 + 17.0 * 60.0 + 12.0), "4h 17m");
        assert_eq!(duration(86_400.0 + 4.0 * 3600.0), "1d 4h");
        assert_eq!(duration(17.0 * 60.0 + 19.0), "17m 19s");
        assert_eq!(duration(45.4), "45s");
        assert_eq!(value(Unit::Ratio, Some(0.13725)), "13.7%");
        assert_eq!(value(Unit::PerDay, Some(2.142857)), "2.14/day");
        assert_eq!(value(Unit::Seconds, None), NONE);
        assert_eq!(difference(Unit::Ratio, -0.0912), "−9.1 pp");
        assert_eq!(difference(Unit::Seconds, 3600.0 * 7.5), "+7h 30m");
        assert_eq!(html("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
