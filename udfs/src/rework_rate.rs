//! [`ReworkRate`]: `rework_rate(rework boolean)`, DORA 2024's "deployment
//! rework rate" aggregate.

use std::sync::{Arc, LazyLock};

use datafusion::logical_expr::AggregateUDF;

use crate::share::{BooleanShare, BooleanShareSpec};

/// `rework_rate(rework boolean) -> float8`
///
/// The share of deployments that were rework (unplanned, made because of an
/// incident): `count(rework = true) / count(rework IS NOT NULL)`, in
/// `[0, 1]`. Over the `deployments` table `rework` is NULL for deployments
/// that did not succeed, so it is rework deployments ÷ successful
/// deployments. A group without any non-null input gives NULL, never 0.
///
/// ```sql
/// > SELECT service, rework_rate(rework) AS rework
///   FROM deployments
///   WHERE environment = 'production'
///   GROUP BY service;
/// +---------+--------+
/// | service | rework |
/// +---------+--------+
/// | api     | 0.5    |
/// +---------+--------+
/// ```
pub type ReworkRate = BooleanShare<ReworkRateSpec>;

/// Name, argument and documentation of [`ReworkRate`].
pub struct ReworkRateSpec;

impl BooleanShareSpec for ReworkRateSpec {
    const NAME: &'static str = "rework_rate";
    const ARGUMENT: &'static str = "rework";
    const DESCRIPTION: &'static str =
        "Deployment rework rate: count of true values divided by count of non-null values; NULL when there are none.";
    const SQL_EXAMPLE: &'static str = "SELECT service, rework_rate(rework) FROM deployments GROUP BY service;";
    const ARGUMENT_DOC: &'static str = "Boolean expression, e.g. deployments.rework; NULL rows are not counted.";
}

/// The `rework_rate` aggregate, shared.
pub fn rework_rate_udaf() -> Arc<AggregateUDF> {
    static UDAF: LazyLock<Arc<AggregateUDF>> = LazyLock::new(|| Arc::new(AggregateUDF::from(ReworkRate::new())));
    Arc::clone(&UDAF)
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::AggregateUDFImpl;

    use super::*;

    #[test]
    fn named_and_documented() {
        let udf = ReworkRate::new();
        assert_eq!(udf.name(), "rework_rate");
        assert_eq!(udf.documentation().unwrap().syntax_example, "rework_rate(rework)");
    }
}
