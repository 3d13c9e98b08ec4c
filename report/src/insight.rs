//! Comparing a metric between two periods without misleading: a change is
//! called improving or degrading only when both periods have enough
//! samples and it passes the metric's threshold, and every such call cites
//! both values, the change and the threshold. A change from zero is "new",
//! never a percentage.

use crate::fmt;
use crate::metric::{MIN_SAMPLES, Metric, RATE_THRESHOLD, RELATIVE_THRESHOLD, Unit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No value in either period.
    NoData,
    /// Fewer than [`MIN_SAMPLES`] samples in a period.
    TooFew,
    /// From zero (or from no value) to a value.
    New,
    /// Within the threshold.
    Steady,
    Improving,
    Degrading,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::NoData => "no data",
            Verdict::TooFew => "too few samples",
            Verdict::New => "new",
            Verdict::Steady => "steady",
            Verdict::Improving => "improving",
            Verdict::Degrading => "degrading",
        }
    }
}

/// One metric of one scope, this period against the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub metric: Metric,
    pub current: Option<f64>,
    pub previous: Option<f64>,
    pub current_samples: u64,
    pub previous_samples: u64,
    pub current_tier: Option<String>,
    pub previous_tier: Option<String>,
    pub verdict: Verdict,
    /// Whether the change would pass the threshold (or is from zero),
    /// whatever the samples: a "too few" call is worth saying only then.
    pub notable: bool,
}

impl Comparison {
    pub fn new(
        metric: Metric,
        (current, current_samples, current_tier): (Option<f64>, u64, Option<String>),
        (previous, previous_samples, previous_tier): (Option<f64>, u64, Option<String>),
    ) -> Comparison {
        let from_zero = matches!((previous, current), (None | Some(0.0), Some(c)) if c != 0.0);
        let passes = match (previous, current) {
            (Some(p), Some(c)) if p != 0.0 => match metric.unit() {
                Unit::Ratio => (c - p).abs() >= RATE_THRESHOLD - 1e-12,
                Unit::PerDay | Unit::Seconds => ((c - p) / p).abs() >= RELATIVE_THRESHOLD - 1e-12,
            },
            _ => false,
        };
        let verdict = if current.is_none() && previous.is_none() {
            Verdict::NoData
        } else if current_samples < MIN_SAMPLES || previous_samples < MIN_SAMPLES {
            Verdict::TooFew
        } else if from_zero {
            Verdict::New
        } else if !passes {
            Verdict::Steady
        } else {
            let up = current > previous;
            if up == metric.higher_is_better() { Verdict::Improving } else { Verdict::Degrading }
        };
        Comparison {
            metric,
            current,
            previous,
            current_samples,
            previous_samples,
            current_tier,
            previous_tier,
            verdict,
            notable: from_zero || passes,
        }
    }

    /// The change column: `+7h 32m (+124%)`, `−9.1 pp`, `new`, `±0`, or
    /// empty when a value is missing.
    pub fn change(&self) -> String {
        let unit = self.metric.unit();
        match (self.previous, self.current) {
            (None | Some(0.0), Some(c)) if c != 0.0 => "new".into(),
            (Some(p), Some(c)) if p == c => "±0".into(),
            (Some(p), Some(c)) => match unit {
                Unit::Ratio => fmt::difference(unit, c - p),
                _ => {
                    let share = (c - p) / p * 100.0;
                    format!(
                        "{} ({}{:.0}%)",
                        fmt::difference(unit, c - p),
                        if share < 0.0 { "−" } else { "+" },
                        share.abs()
                    )
                }
            },
            _ => String::new(),
        }
    }

    /// The insight sentence, for the calls worth making: improving,
    /// degrading, new, or a notable change with too few samples.
    pub fn sentence(&self, scope: &str) -> Option<String> {
        let unit = self.metric.unit();
        let (cur, prev) = (fmt::value(unit, self.current), fmt::value(unit, self.previous));
        let title = self.metric.title();
        let tier = match (&self.previous_tier, &self.current_tier) {
            (Some(a), Some(b)) if a != b => format!("; tier {a} → {b}"),
            _ => String::new(),
        };
        Some(match self.verdict {
            Verdict::Improving | Verdict::Degrading => format!(
                "{scope}: {title} {}: {prev} → {cur} ({}; threshold {}){tier}.",
                self.verdict.as_str(),
                self.change(),
                self.metric.threshold_text()
            ),
            Verdict::New => {
                format!("{scope}: {title} is new: {prev} → {cur} (a change from zero has no percentage){tier}.")
            }
            Verdict::TooFew if self.notable => format!(
                "{scope}: {title} moved {prev} → {cur}, but from too few {} to call a trend \
                 ({} now, {} before; at least {MIN_SAMPLES} in each period).",
                self.metric.sample_noun(),
                self.current_samples,
                self.previous_samples
            ),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(metric: Metric, cur: Option<f64>, cs: u64, prev: Option<f64>, ps: u64) -> Comparison {
        Comparison::new(metric, (cur, cs, None), (prev, ps, None))
    }

    #[test]
    fn a_change_from_zero_is_new_never_a_percentage() {
        let c = cmp(Metric::ChangeFailureRate, Some(0.12), 25, Some(0.0), 20);
        assert_eq!(c.verdict, Verdict::New);
        assert_eq!(c.change(), "new");
        let s = c.sentence("svc-a").unwrap();
        assert!(s.contains("0.0% → 12.0%") && !s.contains("100%"), "{s}");
    }

    #[test]
    fn calls_cite_both_values_the_change_and_the_threshold() {
        let c = cmp(Metric::LeadTime, Some(4.0 * 3600.0), 30, Some(2.0 * 3600.0), 30);
        assert_eq!(c.verdict, Verdict::Degrading);
        assert_eq!(
            c.sentence("All services").unwrap(),
            "All services: Lead time for changes (median) degrading: 2h 0m → 4h 0m (+2h 0m (+100%); threshold ±20%)."
        );
        let c = cmp(Metric::DeploymentFrequency, Some(2.0), 84, Some(1.0), 42);
        assert_eq!(c.verdict, Verdict::Improving);
        let c = Comparison::new(
            Metric::ChangeFailureRate,
            (Some(0.09), 40, Some("high".into())),
            (Some(0.16), 40, Some("low".into())),
        );
        assert_eq!(c.verdict, Verdict::Improving);
        let s = c.sentence("svc-a").unwrap();
        assert!(s.contains("16.0% → 9.0% (−7.0 pp; threshold ±5 pp); tier low → high"), "{s}");
    }

    #[test]
    fn small_changes_are_steady_and_said_nothing_of() {
        let c = cmp(Metric::ChangeFailureRate, Some(0.12), 40, Some(0.10), 40);
        assert_eq!(c.verdict, Verdict::Steady);
        assert_eq!(c.sentence("x"), None);
        let c = cmp(Metric::TimeToRestore, Some(110.0), 9, Some(100.0), 9);
        assert_eq!(c.verdict, Verdict::Steady);
    }

    #[test]
    fn too_few_samples_are_said_not_trended() {
        let c = cmp(Metric::LeadTime, Some(9000.0), 3, Some(1000.0), 40);
        assert_eq!(c.verdict, Verdict::TooFew);
        let s = c.sentence("svc-b").unwrap();
        assert!(s.contains("too few changes") && s.contains("3 now, 40 before"), "{s}");
        // A small change with few samples is not worth a sentence.
        assert_eq!(cmp(Metric::LeadTime, Some(1001.0), 3, Some(1000.0), 40).sentence("x"), None);
        assert_eq!(cmp(Metric::LeadTime, None, 0, None, 0).verdict, Verdict::NoData);
    }
}
