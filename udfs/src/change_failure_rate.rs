//! [`ChangeFailureRate`]: `change_failure_rate(failed boolean)`, the DORA
//! "change failure rate" aggregate.

use std::sync::{Arc, LazyLock};

use datafusion::logical_expr::AggregateUDF;

use crate::share::{BooleanShare, BooleanShareSpec};

/// `change_failure_rate(failed boolean) -> float8`
///
/// The share of deployments that failed: `count(failed = true) /
/// count(failed IS NOT NULL)`, in `[0, 1]`. NULL inputs are not counted, so
/// over the `deployments` table (where `failed` is NULL for deployments that
/// did not succeed) it is failed successful deployments ÷ successful
/// deployments. A group without any non-null input gives NULL, never 0.
///
/// ```sql
/// > SELECT service, change_failure_rate(failed) AS cfr
///   FROM deployments
///   WHERE environment = 'production'
///   GROUP BY service;
/// +---------+------+
/// | service | cfr  |
/// +---------+------+
/// | api     | 0.25 |
/// +---------+------+
/// ```
pub type ChangeFailureRate = BooleanShare<ChangeFailureRateSpec>;

/// Name, argument and documentation of [`ChangeFailureRate`].
pub struct ChangeFailureRateSpec;

impl BooleanShareSpec for ChangeFailureRateSpec {
    const NAME: &'static str = "change_failure_rate";
    const ARGUMENT: &'static str = "failed";
    const DESCRIPTION: &'static str =
        "Change failure rate: count of true values divided by count of non-null values; NULL when there are none.";
    const SQL_EXAMPLE: &'static str = "SELECT service, change_failure_rate(failed) FROM deployments GROUP BY service;";
    const ARGUMENT_DOC: &'static str = "Boolean expression, e.g. deployments.failed; NULL rows are not counted.";
}

/// The `change_failure_rate` aggregate, shared.
pub fn change_failure_rate_udaf() -> Arc<AggregateUDF> {
    static UDAF: LazyLock<Arc<AggregateUDF>> = LazyLock::new(|| Arc::new(AggregateUDF::from(ChangeFailureRate::new())));
    Arc::clone(&UDAF)
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::AggregateUDFImpl;

    use super::*;

    #[test]
    fn named_and_documented() {
        let udf = ChangeFailureRate::new();
        assert_eq!(udf.name(), "change_failure_rate");
        assert_eq!(udf.documentation().unwrap().syntax_example, "change_failure_rate(failed)");
    }
}
