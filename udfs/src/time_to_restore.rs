//! [`TimeToRestore`]: `time_to_restore(restore_time interval)`, the DORA
//! "time to restore service" aggregate.

use std::sync::{Arc, LazyLock};

use datafusion::logical_expr::AggregateUDF;

use crate::percentile::{DurationPercentile, DurationPercentileSpec};

/// `time_to_restore(restore_time interval) -> interval`
///
/// The median time to restore service: the median `restore_time` of the
/// incidents in the group (`incidents.restore_time`, resolved minus opened),
/// interpolated like PostgreSQL's `percentile_cont(0.5)`. NULL inputs
/// (incidents still open) are ignored, and a group without any gives NULL.
///
/// ```sql
/// > SELECT service, time_to_restore(restore_time) AS p50
///   FROM incidents
///   GROUP BY service;
/// +---------+-----------------+
/// | service | p50             |
/// +---------+-----------------+
/// | api     | 1 hours 15 mins |
/// +---------+-----------------+
/// ```
pub type TimeToRestore = DurationPercentile<TimeToRestoreSpec>;

/// Name, argument and documentation of [`TimeToRestore`], a median.
pub struct TimeToRestoreSpec;

impl DurationPercentileSpec for TimeToRestoreSpec {
    const NAME: &'static str = "time_to_restore";
    const ARGUMENTS: &'static str = "restore_time interval";
    const DESCRIPTION: &'static str = "Time to restore service: the median (interpolated like percentile_cont(0.5)) of the restore times of resolved incidents.";
    const SYNTAX: &'static str = "time_to_restore(restore_time)";
    const SQL_EXAMPLE: &'static str = "SELECT service, time_to_restore(restore_time) FROM incidents GROUP BY service;";
    const ARGUMENT_DOCS: &'static [(&'static str, &'static str)] =
        &[("restore_time", "Interval expression, e.g. incidents.restore_time (resolved_at - opened_at).")];
}

/// The `time_to_restore` aggregate, shared.
pub fn time_to_restore_udaf() -> Arc<AggregateUDF> {
    static UDAF: LazyLock<Arc<AggregateUDF>> = LazyLock::new(|| Arc::new(AggregateUDF::from(TimeToRestore::new())));
    Arc::clone(&UDAF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::median_aggregate;

    #[test]
    fn median_ignores_nulls() {
        median_aggregate::ignores_nulls(&TimeToRestore::new());
    }

    #[test]
    fn empty_and_all_null_are_null() {
        median_aggregate::empty_and_all_null_are_null(&TimeToRestore::new());
    }

    #[test]
    fn groups_accumulator_matches_median() {
        median_aggregate::groups_accumulator_matches_median(&TimeToRestore::new());
    }

    #[test]
    fn takes_exactly_one_interval() {
        median_aggregate::takes_exactly_one_interval(&TimeToRestore::new());
    }
}
