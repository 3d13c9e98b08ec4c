//! The metrics a DORA report shows: what each is called, how it reads, which
//! way is better, its tier (where SPEC §3 gives one), the `dora_quality`
//! counts that touch it and when a change is big enough to call.

/// How a metric's values are measured (values are f64 in these units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Deployments per day.
    PerDay,
    /// A duration, in seconds.
    Seconds,
    /// A share in [0, 1].
    Ratio,
}

/// A metric of the DORA report, in the order the report shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    DeploymentFrequency,
    LeadTime,
    ChangeFailureRate,
    TimeToRestore,
    RecoveryTime,
    ReworkRate,
}

/// Fewer samples than this in either period: the change is reported as too
/// few to call, never as a trend.
pub const MIN_SAMPLES: u64 = 5;
/// A duration or frequency must move by at least this share of its
/// previous value to be called improving or degrading.
pub const RELATIVE_THRESHOLD: f64 = 0.20;
/// A rate must move by at least this many percentage points (as a ratio):
/// the width of one DORA change-failure-rate tier.
pub const RATE_THRESHOLD: f64 = 0.05;

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::DeploymentFrequency,
        Metric::LeadTime,
        Metric::ChangeFailureRate,
        Metric::TimeToRestore,
        Metric::RecoveryTime,
        Metric::ReworkRate,
    ];

    /// A stable identifier (CSV and JSON keys; the HTML's chart ids).
    pub fn key(self) -> &'static str {
        match self {
            Metric::DeploymentFrequency => "deployment_frequency",
            Metric::LeadTime => "lead_time_p50",
            Metric::ChangeFailureRate => "change_failure_rate",
            Metric::TimeToRestore => "time_to_restore_p50",
            Metric::RecoveryTime => "failed_deployment_recovery_p50",
            Metric::ReworkRate => "rework_rate",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Metric::DeploymentFrequency => "Deployment frequency",
            Metric::LeadTime => "Lead time for changes (median)",
            Metric::ChangeFailureRate => "Change failure rate",
            Metric::TimeToRestore => "Time to restore (median)",
            Metric::RecoveryTime => "Failed deployment recovery time (median)",
            Metric::ReworkRate => "Deployment rework rate",
        }
    }

    /// One sentence: what the number is (SPEC v2 §2–§3; docs/metrics.md says more).
    pub fn definition(self) -> &'static str {
        match self {
            Metric::DeploymentFrequency => "Successful deployments divided by the days in the period.",
            Metric::LeadTime => {
                "Median time from a commit to the first successful deployment that shipped it to the environment \
                 (by deployment time; negative and unknown lead times excluded)."
            }
            Metric::ChangeFailureRate => {
                "Failed deployments (rolled back, or caused an incident) divided by successful deployments, \
                 by the deployment's finish time."
            }
            Metric::TimeToRestore => "Median time from an incident's opening to its resolution, by resolution time.",
            Metric::RecoveryTime => {
                "Median time from a failed deployment's finish to its last attributed incident's resolution \
                 (or its rollback), by the deployment's finish time."
            }
            Metric::ReworkRate => {
                "Deployments made because of an incident (a hotfix or roll-forward, named or inferred) divided by \
                 successful deployments (DORA 2024; no tier)."
            }
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Metric::DeploymentFrequency => Unit::PerDay,
            Metric::LeadTime | Metric::TimeToRestore | Metric::RecoveryTime => Unit::Seconds,
            Metric::ChangeFailureRate | Metric::ReworkRate => Unit::Ratio,
        }
    }

    pub fn higher_is_better(self) -> bool {
        self == Metric::DeploymentFrequency
    }

    /// The metric's name for `dora_tier` where SPEC §3 gives it a tier.
    pub fn tier_name(self) -> Option<&'static str> {
        match self {
            Metric::DeploymentFrequency => Some("deployment_frequency"),
            Metric::LeadTime => Some("lead_time"),
            Metric::ChangeFailureRate => Some("change_failure_rate"),
            Metric::TimeToRestore => Some("time_to_restore"),
            Metric::RecoveryTime | Metric::ReworkRate => None,
        }
    }

    /// The DORA 2023 tier bounds, as the report's legend prints them.
    pub fn tier_bounds(self) -> Option<&'static str> {
        match self {
            Metric::DeploymentFrequency => Some("elite ≥ 1/day · high ≥ 1/week · medium ≥ 1/month · low otherwise"),
            Metric::LeadTime => Some("elite < 1 day · high < 1 week · medium < 30 days · low otherwise"),
            Metric::ChangeFailureRate => Some("elite ≤ 5% · high ≤ 10% · medium ≤ 15% · low otherwise"),
            Metric::TimeToRestore => Some("elite < 1 hour · high < 1 day · medium < 1 week · low otherwise"),
            Metric::RecoveryTime | Metric::ReworkRate => None,
        }
    }

    /// What one sample is, for "too few" notes.
    pub fn sample_noun(self) -> &'static str {
        match self {
            Metric::DeploymentFrequency | Metric::ChangeFailureRate | Metric::ReworkRate => "deployments",
            Metric::LeadTime => "changes",
            Metric::TimeToRestore => "resolved incidents",
            Metric::RecoveryTime => "recovered failed deployments",
        }
    }

    /// The `dora_quality` counts that can move this number.
    pub fn quality_counts(self) -> &'static [&'static str] {
        match self {
            Metric::DeploymentFrequency => &[],
            Metric::LeadTime => &["unknown_commits", "negative_lead_times"],
            Metric::ChangeFailureRate => &["unattributed_incidents"],
            Metric::TimeToRestore => &["open_incidents", "orphan_resolves"],
            Metric::RecoveryTime => &["open_incidents", "unattributed_incidents"],
            Metric::ReworkRate => &["open_incidents"],
        }
    }

    /// The smallest change called improving or degrading, as printed.
    pub fn threshold_text(self) -> &'static str {
        match self.unit() {
            Unit::Ratio => "±5 pp",
            Unit::PerDay | Unit::Seconds => "±20%",
        }
    }
}
