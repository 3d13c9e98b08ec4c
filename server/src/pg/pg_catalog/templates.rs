//! PostgreSQL's datetime templates (`YYYY-MM-DD HH24:MI:SS.US`, `Dy`, `Mon`,
//! `IYYY-IW` …) for `to_char`, `to_timestamp` and `to_date`, as PostgreSQL
//! documents them ("Template Patterns for Date/Time Formatting"). DataFusion's
//! own functions of those names take chrono's `%Y` templates, which is not
//! what clients send: Superset's time filters are
//! `TO_TIMESTAMP('2026-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')`.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Weekday};

use crate::pg::errors::PgError;

/// How a name is written: `MONTH`, `Month` or `month`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Upper,
    Capitalized,
    Lower,
}

/// One template pattern.
#[derive(Debug, Clone, PartialEq)]
enum Pattern {
    Hour24,
    Hour12,
    Minute,
    Second,
    SecondsOfDay,
    Millis,
    Micros,
    /// `AM`/`PM` (`dots`: `A.M.`); the case of the output.
    Meridiem {
        dots: bool,
        upper: bool,
    },
    Year4,
    Year3,
    Year2,
    Year1,
    IsoYear4,
    IsoYear3,
    IsoYear2,
    MonthName(Case),
    MonthAbbrev(Case),
    Month,
    DayName(Case),
    DayAbbrev(Case),
    DayOfYear,
    IsoDayOfYear,
    DayOfMonth,
    /// `D`: Sunday is 1.
    DayOfWeek,
    /// `ID`: Monday is 1.
    IsoDayOfWeek,
    WeekOfMonth,
    WeekOfYear,
    IsoWeek,
    Quarter,
    /// `TZ` / `tz`: the zone's abbreviation.
    Zone {
        upper: bool,
    },
    /// `OF`: the offset from UTC, `+02` or `+05:30`.
    Offset,
    ZoneHours,
    ZoneMinutes,
    /// Text copied as is (a separator, or `"quoted"` text).
    Literal(String),
}

/// A pattern and whether `FM` (fill mode: no padding) precedes it.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    pattern: Pattern,
    fill: bool,
}

/// The patterns by the text that names them, longest first where one name
/// starts another (`HH24` before `HH`). Names whose case shapes the output
/// are matched exactly; the others in any case, as PostgreSQL does.
const NAMES: &[(&str, bool)] = &[
    ("HH24", false),
    ("HH12", false),
    ("HH", false),
    ("MI", false),
    ("SSSSS", false),
    ("SSSS", false),
    ("SS", false),
    ("MS", false),
    ("US", false),
    ("A.M.", true),
    ("a.m.", true),
    ("P.M.", true),
    ("p.m.", true),
    ("AM", true),
    ("am", true),
    ("PM", true),
    ("pm", true),
    ("IYYY", false),
    ("IYY", false),
    ("IDDD", false),
    ("IW", false),
    ("ID", false),
    ("IY", false),
    ("YYYY", false),
    ("YYY", false),
    ("YY", false),
    ("Y", false),
    ("MONTH", true),
    ("Month", true),
    ("month", true),
    ("MON", true),
    ("Mon", true),
    ("mon", true),
    ("MM", false),
    ("DAY", true),
    ("Day", true),
    ("day", true),
    ("DY", true),
    ("Dy", true),
    ("dy", true),
    ("DDD", false),
    ("DD", false),
    ("D", false),
    ("WW", false),
    ("W", false),
    ("Q", false),
    ("TZH", false),
    ("TZM", false),
    ("TZ", true),
    ("tz", true),
    ("OF", false),
];

fn pattern(name: &str) -> Pattern {
    let case = |s: &str| match s {
        _ if s.chars().all(|c| c.is_ascii_uppercase()) => Case::Upper,
        _ if s.chars().all(|c| c.is_ascii_lowercase()) => Case::Lower,
        _ => Case::Capitalized,
    };
    match name.to_ascii_uppercase().as_str() {
        "HH24" => Pattern::Hour24,
        "HH12" | "HH" => Pattern::Hour12,
        "MI" => Pattern::Minute,
        "SS" => Pattern::Second,
        "SSSS" | "SSSSS" => Pattern::SecondsOfDay,
        "MS" => Pattern::Millis,
        "US" => Pattern::Micros,
        "A.M." | "P.M." => Pattern::Meridiem { dots: true, upper: case(name) == Case::Upper },
        "AM" | "PM" => Pattern::Meridiem { dots: false, upper: case(name) == Case::Upper },
        "IYYY" => Pattern::IsoYear4,
        "IYY" => Pattern::IsoYear3,
        "IY" => Pattern::IsoYear2,
        "IDDD" => Pattern::IsoDayOfYear,
        "IW" => Pattern::IsoWeek,
        "ID" => Pattern::IsoDayOfWeek,
        "YYYY" => Pattern::Year4,
        "YYY" => Pattern::Year3,
        "YY" => Pattern::Year2,
        "Y" => Pattern::Year1,
        "MONTH" => Pattern::MonthName(case(name)),
        "MON" => Pattern::MonthAbbrev(case(name)),
        "MM" => Pattern::Month,
        "DAY" => Pattern::DayName(case(name)),
        "DY" => Pattern::DayAbbrev(case(name)),
        "DDD" => Pattern::DayOfYear,
        "DD" => Pattern::DayOfMonth,
        "D" => Pattern::DayOfWeek,
        "WW" => Pattern::WeekOfYear,
        "W" => Pattern::WeekOfMonth,
        "Q" => Pattern::Quarter,
        "TZH" => Pattern::ZoneHours,
        "TZM" => Pattern::ZoneMinutes,
        "TZ" => Pattern::Zone { upper: name == "TZ" },
        _ => Pattern::Offset,
    }
}

/// Splits a template into patterns and literal text.
fn compile(template: &str) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    let mut rest = template;
    let mut fill = false;
    let literal = |items: &mut Vec<Item>, s: &str| match items.last_mut() {
        Some(Item { pattern: Pattern::Literal(l), .. }) => l.push_str(s),
        _ => items.push(Item { pattern: Pattern::Literal(s.to_string()), fill: false }),
    };
    while !rest.is_empty() {
        if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("FM") {
            fill = true;
            rest = &rest[2..];
            continue;
        }
        let found = NAMES.iter().find(|(name, exact)| {
            rest.get(..name.len())
                .is_some_and(|head| if *exact { head == *name } else { head.eq_ignore_ascii_case(name) })
        });
        if let Some((name, _)) = found {
            items.push(Item { pattern: pattern(&rest[..name.len()]), fill });
            fill = false;
            rest = &rest[name.len()..];
            continue;
        }
        let mut chars = rest.chars();
        match chars.next() {
            // "text": copied as is; a backslash escapes a double quote in it.
            Some('"') => {
                let mut text = String::new();
                let mut escaped = false;
                let mut used = 1;
                for c in chars.by_ref() {
                    used += c.len_utf8();
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        c => {
                            text.push(c);
                            escaped = false;
                        }
                    }
                }
                literal(&mut items, &text);
                rest = &rest[used..];
            }
            Some('\\') if rest[1..].starts_with('"') => {
                literal(&mut items, "\"");
                rest = &rest[2..];
            }
            Some(c) => {
                literal(&mut items, &rest[..c.len_utf8()]);
                rest = &rest[c.len_utf8()..];
            }
            None => break,
        }
    }
    items
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

fn cased(s: &str, case: Case) -> String {
    match case {
        Case::Upper => s.to_ascii_uppercase(),
        Case::Lower => s.to_ascii_lowercase(),
        Case::Capitalized => s.to_string(),
    }
}

/// A zone as `to_char` shows it.
#[derive(Debug, Clone, Copy)]
pub struct ZoneLabel<'a> {
    /// `TZ`: `UTC`, `CET` … (PostgreSQL shows the offset when it knows no abbreviation).
    pub abbreviation: &'a str,
    pub offset_secs: i32,
}

#[cfg(test)]
impl ZoneLabel<'static> {
    pub const UTC: ZoneLabel<'static> = ZoneLabel { abbreviation: "UTC", offset_secs: 0 };
}

/// `to_char(timestamp, template)`: `t` is the local time in `zone`.
pub fn format(t: NaiveDateTime, zone: ZoneLabel<'_>, template: &str) -> String {
    let mut out = String::new();
    let number = |out: &mut String, n: i64, width: usize, fill: bool| {
        if fill {
            out.push_str(&n.to_string());
        } else if n < 0 {
            out.push_str(&format!("-{:0width$}", -n));
        } else {
            out.push_str(&format!("{n:0width$}"));
        }
    };
    // Full names are padded to the longest name (9) unless in fill mode.
    let name = |out: &mut String, s: String, fill: bool| {
        if fill { out.push_str(&s) } else { out.push_str(&format!("{s:<9}")) }
    };
    let iso = t.iso_week();
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    for Item { pattern, fill } in compile(template) {
        match pattern {
            Pattern::Hour24 => number(&mut out, t.hour().into(), 2, fill),
            Pattern::Hour12 => number(&mut out, hour12.into(), 2, fill),
            Pattern::Minute => number(&mut out, t.minute().into(), 2, fill),
            Pattern::Second => number(&mut out, t.second().into(), 2, fill),
            Pattern::SecondsOfDay => number(&mut out, t.num_seconds_from_midnight().into(), 0, true),
            Pattern::Millis => number(&mut out, (t.nanosecond() / 1_000_000).into(), 3, fill),
            Pattern::Micros => number(&mut out, (t.nanosecond() / 1_000).into(), 6, fill),
            Pattern::Meridiem { dots, upper } => {
                let pm = t.hour() >= 12;
                let s = match (pm, dots) {
                    (false, false) => "AM",
                    (true, false) => "PM",
                    (false, true) => "A.M.",
                    (true, true) => "P.M.",
                };
                out.push_str(&if upper { s.to_string() } else { s.to_ascii_lowercase() });
            }
            Pattern::Year4 => number(&mut out, t.year().into(), 4, fill),
            Pattern::Year3 => number(&mut out, (t.year() % 1000).into(), 3, fill),
            Pattern::Year2 => number(&mut out, (t.year() % 100).into(), 2, fill),
            Pattern::Year1 => number(&mut out, (t.year() % 10).into(), 1, fill),
            Pattern::IsoYear4 => number(&mut out, iso.year().into(), 4, fill),
            Pattern::IsoYear3 => number(&mut out, (iso.year() % 1000).into(), 3, fill),
            Pattern::IsoYear2 => number(&mut out, (iso.year() % 100).into(), 2, fill),
            Pattern::MonthName(case) => name(&mut out, cased(MONTHS[t.month0() as usize], case), fill),
            Pattern::MonthAbbrev(case) => out.push_str(&cased(&MONTHS[t.month0() as usize][..3], case)),
            Pattern::Month => number(&mut out, t.month().into(), 2, fill),
            Pattern::DayName(case) => {
                name(&mut out, cased(DAYS[t.weekday().num_days_from_sunday() as usize], case), fill)
            }
            Pattern::DayAbbrev(case) => {
                out.push_str(&cased(&DAYS[t.weekday().num_days_from_sunday() as usize][..3], case))
            }
            Pattern::DayOfYear => number(&mut out, t.ordinal().into(), 3, fill),
            Pattern::IsoDayOfYear => {
                let day = (iso.week() - 1) * 7 + t.weekday().number_from_monday();
                number(&mut out, day.into(), 3, fill)
            }
            Pattern::DayOfMonth => number(&mut out, t.day().into(), 2, fill),
            Pattern::DayOfWeek => number(&mut out, t.weekday().number_from_sunday().into(), 1, fill),
            Pattern::IsoDayOfWeek => number(&mut out, t.weekday().number_from_monday().into(), 1, fill),
            Pattern::WeekOfMonth => number(&mut out, (t.day0() / 7 + 1).into(), 1, fill),
            Pattern::WeekOfYear => number(&mut out, (t.ordinal0() / 7 + 1).into(), 2, fill),
            Pattern::IsoWeek => number(&mut out, iso.week().into(), 2, fill),
            Pattern::Quarter => number(&mut out, (t.month0() / 3 + 1).into(), 1, fill),
            Pattern::Zone { upper } => {
                let abbreviation = if upper { zone.abbreviation.to_string() } else { zone.abbreviation.to_lowercase() };
                out.push_str(&abbreviation)
            }
            Pattern::Offset => {
                let (sign, secs) =
                    if zone.offset_secs < 0 { ('-', -zone.offset_secs) } else { ('+', zone.offset_secs) };
                out.push_str(&format!("{sign}{:02}", secs / 3600));
                if secs % 3600 != 0 {
                    out.push_str(&format!(":{:02}", secs % 3600 / 60));
                }
            }
            Pattern::ZoneHours => {
                let sign = if zone.offset_secs < 0 { '-' } else { '+' };
                out.push_str(&format!("{sign}{:02}", zone.offset_secs.abs() / 3600));
            }
            Pattern::ZoneMinutes => out.push_str(&format!("{:02}", zone.offset_secs.abs() % 3600 / 60)),
            Pattern::Literal(s) => out.push_str(&s),
        }
    }
    out
}

/// A datetime read by [`parse`]: the local time, and the offset from UTC
/// when the input gave one (`OF`, `TZH:TZM`, `TZ`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parsed {
    pub local: NaiveDateTime,
    pub offset_secs: Option<i32>,
}

/// The fields a template reads; what it does not read takes PostgreSQL's
/// default (year 1, January, the 1st, midnight).
#[derive(Default)]
struct Fields {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    day_of_year: Option<u32>,
    iso_year: Option<i32>,
    iso_week: Option<u32>,
    iso_day: Option<u32>,
    hour: u32,
    hour12: bool,
    pm: Option<bool>,
    minute: u32,
    second: u32,
    micros: u32,
    seconds_of_day: Option<u32>,
    offset_secs: Option<i32>,
}

fn bad_value(value: &str, pattern: &str) -> PgError {
    let shown: String = value.chars().take(20).collect();
    PgError::new("22007", format!("invalid value \"{shown}\" for \"{pattern}\""))
}

fn out_of_range(input: &str) -> PgError {
    PgError::new("22008", format!("date/time field value out of range: \"{input}\""))
}

/// Reads the input at `rest`, advancing it.
struct Reader<'a> {
    rest: &'a str,
}

impl Reader<'_> {
    fn skip_spaces(&mut self) {
        self.rest = self.rest.trim_start();
    }

    /// Up to `max` digits (a leading `-` too if `signed`).
    fn number(&mut self, max: usize, signed: bool, what: &str) -> Result<(i64, usize), PgError> {
        self.skip_spaces();
        let negative = signed && self.rest.starts_with('-');
        let start = usize::from(negative);
        let digits = self.rest[start..].chars().take(max).take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad_value(self.rest, what));
        }
        let text = &self.rest[start..start + digits];
        let n: i64 = text.parse().map_err(|_| bad_value(self.rest, what))?;
        self.rest = &self.rest[start + digits..];
        Ok((if negative { -n } else { n }, digits))
    }

    /// One of `names` (in any case; the full name or, if `abbrev`, its first three letters).
    fn name(&mut self, names: &[&str], abbrev: bool, what: &str) -> Result<usize, PgError> {
        self.skip_spaces();
        let found = names.iter().position(|n| {
            let n = if abbrev { &n[..3] } else { n };
            self.rest.get(..n.len()).is_some_and(|head| head.eq_ignore_ascii_case(n))
        });
        let Some(i) = found else { return Err(bad_value(self.rest, what)) };
        self.rest = &self.rest[if abbrev { 3 } else { names[i].len() }..];
        Ok(i)
    }

    fn any_of(&mut self, options: &[&str]) -> Option<usize> {
        self.skip_spaces();
        let i = options.iter().position(|o| self.rest.get(..o.len()).is_some_and(|h| h.eq_ignore_ascii_case(o)))?;
        self.rest = &self.rest[options[i].len()..];
        Some(i)
    }

    /// `+05`, `-03:30`, `+0530`.
    fn offset(&mut self, what: &str) -> Result<i32, PgError> {
        self.skip_spaces();
        let negative = self.rest.starts_with('-');
        if self.rest.starts_with(['+', '-']) {
            self.rest = &self.rest[1..];
        }
        let (hours, _) = self.number(2, false, what)?;
        let minutes = if self.rest.starts_with(':') {
            self.rest = &self.rest[1..];
            self.number(2, false, what)?.0
        } else if self.rest.starts_with(|c: char| c.is_ascii_digit()) {
            self.number(2, false, what)?.0
        } else {
            0
        };
        let secs = (hours * 3600 + minutes * 60) as i32;
        Ok(if negative { -secs } else { secs })
    }
}

/// `to_timestamp(text, template)` / `to_date`: reads `input` by `template`.
/// A value the template does not find is 22007; a field out of range 22008.
pub fn parse(input: &str, template: &str) -> Result<Parsed, PgError> {
    let mut r = Reader { rest: input };
    let mut f = Fields::default();
    let two = |n: i64| -> i32 { if n < 70 { 2000 + n as i32 } else { 1900 + n as i32 } };
    for Item { pattern, .. } in compile(template) {
        match pattern {
            Pattern::Literal(text) => {
                // A separator in the template matches any one separator in
                // the input (or none); spaces match any run of spaces.
                for c in text.chars() {
                    if c.is_whitespace() {
                        r.skip_spaces();
                    } else if let Some(next) = r.rest.chars().next()
                        && !next.is_ascii_alphanumeric()
                    {
                        r.rest = &r.rest[next.len_utf8()..];
                    } else if c.is_ascii_alphanumeric() && r.rest.starts_with(c) {
                        r.rest = &r.rest[c.len_utf8()..];
                    }
                }
            }
            Pattern::Hour24 => f.hour = r.number(2, false, "HH24")?.0 as u32,
            Pattern::Hour12 => {
                f.hour = r.number(2, false, "HH12")?.0 as u32;
                f.hour12 = true;
            }
            Pattern::Minute => f.minute = r.number(2, false, "MI")?.0 as u32,
            Pattern::Second => f.second = r.number(2, false, "SS")?.0 as u32,
            Pattern::SecondsOfDay => f.seconds_of_day = Some(r.number(5, false, "SSSS")?.0 as u32),
            // Fractions: `.5` read by MS is 500 ms, as PostgreSQL reads it.
            Pattern::Millis => {
                let (n, digits) = r.number(3, false, "MS")?;
                f.micros = (n * 10_i64.pow(3 - digits as u32) * 1000) as u32;
            }
            Pattern::Micros => {
                let (n, digits) = r.number(6, false, "US")?;
                f.micros = (n * 10_i64.pow(6 - digits as u32)) as u32;
            }
            Pattern::Meridiem { dots, .. } => {
                let options: &[&str] = if dots { &["A.M.", "P.M."] } else { &["AM", "PM"] };
                let i = r.any_of(options).ok_or_else(|| bad_value(r.rest, options[0]))?;
                f.pm = Some(i == 1);
                f.hour12 = true;
            }
            Pattern::Year4 => f.year = Some(r.number(4, true, "YYYY")?.0 as i32),
            Pattern::Year3 => f.year = Some(2000 + r.number(3, false, "YYY")?.0 as i32),
            Pattern::Year2 => f.year = Some(two(r.number(2, false, "YY")?.0)),
            Pattern::Year1 => f.year = Some(2000 + r.number(1, false, "Y")?.0 as i32),
            Pattern::IsoYear4 => f.iso_year = Some(r.number(4, true, "IYYY")?.0 as i32),
            Pattern::IsoYear3 => f.iso_year = Some(2000 + r.number(3, false, "IYY")?.0 as i32),
            Pattern::IsoYear2 => f.iso_year = Some(two(r.number(2, false, "IY")?.0)),
            Pattern::MonthName(_) => f.month = Some(r.name(&MONTHS, false, "MONTH")? as u32 + 1),
            Pattern::MonthAbbrev(_) => f.month = Some(r.name(&MONTHS, true, "MON")? as u32 + 1),
            Pattern::Month => f.month = Some(r.number(2, false, "MM")?.0 as u32),
            // A day's name is read and checked, but the date decides the day.
            Pattern::DayName(_) => {
                r.name(&DAYS, false, "DAY")?;
            }
            Pattern::DayAbbrev(_) => {
                r.name(&DAYS, true, "DY")?;
            }
            Pattern::DayOfYear => f.day_of_year = Some(r.number(3, false, "DDD")?.0 as u32),
            Pattern::IsoDayOfYear => {
                let n = r.number(3, false, "IDDD")?.0 as u32;
                f.iso_week = Some((n.max(1) - 1) / 7 + 1);
                f.iso_day = Some((n.max(1) - 1) % 7 + 1);
            }
            Pattern::DayOfMonth => f.day = Some(r.number(2, false, "DD")?.0 as u32),
            Pattern::DayOfWeek => {
                r.number(1, false, "D")?;
            }
            Pattern::IsoDayOfWeek => f.iso_day = Some(r.number(1, false, "ID")?.0 as u32),
            Pattern::WeekOfMonth => {
                r.number(1, false, "W")?;
            }
            Pattern::WeekOfYear => {
                let week = r.number(2, false, "WW")?.0 as u32;
                f.day_of_year.get_or_insert((week.max(1) - 1) * 7 + 1);
            }
            Pattern::IsoWeek => f.iso_week = Some(r.number(2, false, "IW")?.0 as u32),
            Pattern::Quarter => {
                r.number(1, false, "Q")?;
            }
            Pattern::Zone { .. } => {
                let i = r.any_of(&["UTC", "GMT", "Z"]).ok_or_else(|| bad_value(r.rest, "TZ"))?;
                let _ = i;
                f.offset_secs = Some(0);
            }
            Pattern::Offset => f.offset_secs = Some(r.offset("OF")?),
            Pattern::ZoneHours => f.offset_secs = Some(r.offset("TZH")? / 60 * 60),
            Pattern::ZoneMinutes => {
                let m = r.number(2, false, "TZM")?.0 as i32 * 60;
                let h = f.offset_secs.unwrap_or(0);
                f.offset_secs = Some(if h < 0 { h - m } else { h + m });
            }
        }
    }
    let date = date_of(&f).ok_or_else(|| out_of_range(input))?;
    let mut hour = f.hour;
    if f.hour12 {
        if !(1..=12).contains(&hour) {
            return Err(PgError::new(
                "22008",
                format!("hour \"{hour}\" is invalid for the 12-hour clock (use HH24 for the 24-hour clock)"),
            ));
        }
        hour = hour % 12 + if f.pm == Some(true) { 12 } else { 0 };
    }
    let time = match f.seconds_of_day {
        Some(s) => NaiveTime::from_num_seconds_from_midnight_opt(s, f.micros * 1000),
        None => NaiveTime::from_hms_micro_opt(hour, f.minute, f.second, f.micros),
    }
    .ok_or_else(|| out_of_range(input))?;
    Ok(Parsed { local: date.and_time(time), offset_secs: f.offset_secs })
}

fn date_of(f: &Fields) -> Option<NaiveDate> {
    if let (Some(year), Some(week)) = (f.iso_year, f.iso_week) {
        let day = Weekday::try_from(u8::try_from(f.iso_day.unwrap_or(1).checked_sub(1)?).ok()?).ok()?;
        return NaiveDate::from_isoywd_opt(year, week, day);
    }
    let year = f.year.or(f.iso_year).unwrap_or(1);
    match (f.day_of_year, f.month, f.day) {
        (Some(doy), None, None) => NaiveDate::from_yo_opt(year, doy),
        (_, month, day) => NaiveDate::from_ymd_opt(year, month.unwrap_or(1), day.unwrap_or(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        match NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f") {
            Ok(t) => t,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn to_char_follows_postgres_templates() {
        let t = at("2026-03-02 09:05:07.123456");
        let f = |template: &str| format(t, ZoneLabel::UTC, template);
        assert_eq!(f("YYYY-MM-DD HH24:MI:SS.US"), "2026-03-02 09:05:07.123456");
        assert_eq!(f("YYYY-MM-DD HH24:MI:SS.MS"), "2026-03-02 09:05:07.123");
        assert_eq!(f("Dy, DD Mon YYYY"), "Mon, 02 Mar 2026");
        assert_eq!(f("Day|FMDay|DAY|day"), "Monday   |Monday|MONDAY   |monday   ");
        assert_eq!(f("Month|FMMonth|MON|mon"), "March    |March|MAR|mar");
        assert_eq!(f("IYYY-IW"), "2026-10");
        assert_eq!(f("HH12:MI AM|hh12 pm|a.m."), "09:05 AM|09 am|a.m.");
        assert_eq!(f("FMDD/FMMM/YY Q D ID DDD WW W"), "2/3/26 1 2 1 061 09 1");
        assert_eq!(f("TZ tz OF"), "UTC utc +00");
        assert_eq!(f("\"week\" IW \"of\" YYYY"), "week 10 of 2026");
        assert_eq!(format(at("2026-03-02 21:00:00"), ZoneLabel::UTC, "HH12 PM"), "09 PM");
        let ist = ZoneLabel { abbreviation: "+0530", offset_secs: 19_800 };
        assert_eq!(format(t, ist, "OF TZH:TZM"), "+05:30 +05:30");
    }

    #[test]
    fn to_timestamp_reads_postgres_templates() -> Result<(), PgError> {
        let p = |input: &str, template: &str| parse(input, template).map(|p| p.local);
        assert_eq!(p("2026-01-01 00:00:00.000000", "YYYY-MM-DD HH24:MI:SS.US")?, at("2026-01-01 00:00:00"));
        assert_eq!(p("2026-03-02 09:05:07.5", "YYYY-MM-DD HH24:MI:SS.MS")?, at("2026-03-02 09:05:07.5"));
        assert_eq!(p("05 Dec 2000", "DD Mon YYYY")?, at("2000-12-05 00:00:00"));
        assert_eq!(p("Monday, March 2 2026 9:05 pm", "Day, Month DD YYYY HH12:MI AM")?, at("2026-03-02 21:05:00"));
        assert_eq!(p("2026-10", "IYYY-IW")?, at("2026-03-02 00:00:00"));
        assert_eq!(p("20260302", "YYYYMMDD")?, at("2026-03-02 00:00:00"));
        assert_eq!(p("2026-061", "YYYY-DDD")?, at("2026-03-02 00:00:00"));
        let with_offset = parse("2026-03-02 09:00 +05:30", "YYYY-MM-DD HH24:MI OF")?;
        assert_eq!(with_offset.offset_secs, Some(19_800));
        Ok(())
    }

    #[test]
    fn input_the_template_does_not_fit_is_22007_and_bad_fields_22008() {
        let code = |input: &str, template: &str| match parse(input, template) {
            Ok(p) => panic!("{input} / {template} gave {p:?}"),
            Err(e) => e.parts().0,
        };
        assert_eq!(code("abc", "YYYY-MM-DD"), "22007");
        assert_eq!(code("2026-Foo-01", "YYYY-Mon-DD"), "22007");
        assert_eq!(code("2026-02-30", "YYYY-MM-DD"), "22008");
        assert_eq!(code("2026-01-01 25:00", "YYYY-MM-DD HH24:MI"), "22008");
        assert_eq!(code("13:00 PM", "HH12:MI AM"), "22008");
    }
}
