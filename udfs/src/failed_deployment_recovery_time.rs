//! [`FailedDeploymentRecoveryTime`]:
//! `failed_deployment_recovery_time(recovery_time interval)`, the DORA
//! "failed deployment recovery time" aggregate.

use std::sync::{Arc, LazyLock};

use datafusion::logical_expr::AggregateUDF;

use crate::percentile::{DurationPercentile, DurationPercentileSpec};

/// `failed_deployment_recovery_time(recovery_time interval) -> interval`
///
/// The median failed deployment recovery time: the median `recovery_time`
/// of the failed deployments in the group (`deployments.recovery_time`),
/// interpolated like PostgreSQL's `percentile_cont(0.5)`. NULL inputs
/// (deployments that did not fail, or are not yet recovered) are ignored,
/// and a group without any gives NULL.
///
/// ```sql
/// > SELECT service, failed_deployment_recovery_time(recovery_time) AS p50
///   FROM deployments
///   GROUP BY service;
/// +---------+-----------------+
/// | service | p50             |
/// +---------+-----------------+
/// | api     | 1 hours 15 mins |
/// +---------+-----------------+
/// ```
pub type FailedDeploymentRecoveryTime = DurationPercentile<FailedDeploymentRecoveryTimeSpec>;

/// Name, argument and documentation of [`FailedDeploymentRecoveryTime`], a
/// median.
pub struct FailedDeploymentRecoveryTimeSpec;

impl DurationPercentileSpec for FailedDeploymentRecoveryTimeSpec {
    const NAME: &'static str = "failed_deployment_recovery_time";
    const ARGUMENTS: &'static str = "recovery_time interval";
    const DESCRIPTION: &'static str = "Failed deployment recovery time: the median (interpolated like percentile_cont(0.5)) of the recovery times of failed deployments.";
    const SYNTAX: &'static str = "failed_deployment_recovery_time(recovery_time)";
    const SQL_EXAMPLE: &'static str =
        "SELECT service, failed_deployment_recovery_time(recovery_time) FROM deployments GROUP BY service;";
    const ARGUMENT_DOCS: &'static [(&'static str, &'static str)] =
        &[("recovery_time", "Interval expression, e.g. deployments.recovery_time.")];
}

/// The `failed_deployment_recovery_time` aggregate, shared.
pub fn failed_deployment_recovery_time_udaf() -> Arc<AggregateUDF> {
    static UDAF: LazyLock<Arc<AggregateUDF>> =
        LazyLock::new(|| Arc::new(AggregateUDF::from(FailedDeploymentRecoveryTime::new())));
    Arc::clone(&UDAF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::median_aggregate;

    #[test]
    fn median_ignores_nulls() {
        median_aggregate::ignores_nulls(&FailedDeploymentRecoveryTime::new());
    }

    #[test]
    fn empty_and_all_null_are_null() {
        median_aggregate::empty_and_all_null_are_null(&FailedDeploymentRecoveryTime::new());
    }

    #[test]
    fn groups_accumulator_matches_median() {
        median_aggregate::groups_accumulator_matches_median(&FailedDeploymentRecoveryTime::new());
    }

    #[test]
    fn takes_exactly_one_interval() {
        median_aggregate::takes_exactly_one_interval(&FailedDeploymentRecoveryTime::new());
    }
}
