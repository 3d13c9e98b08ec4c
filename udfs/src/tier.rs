//! [`DoraTier`]: `dora_tier(metric text, value)`, the DORA 2023 performance
//! cluster of a metric value, and the pure [`tier`] it is built on.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::{DataType, Float64Type, IntervalMonthDayNanoType};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_datafusion_err, exec_err, internal_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::DOC_SECTION_DORA;
use crate::interval::interval_to_nanos;
use crate::percentile::INTERVAL;

const HOUR: f64 = 3_600.0;
const DAY: f64 = 24.0 * HOUR;
const WEEK: f64 = 7.0 * DAY;

/// A DORA metric, as named in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// `lead_time`: lead time for changes (a duration).
    LeadTime,
    /// `deployment_frequency`: deployments per day.
    DeploymentFrequency,
    /// `change_failure_rate`: a ratio in `[0, 1]`.
    ChangeFailureRate,
    /// `time_to_restore`: time to restore service (a duration).
    TimeToRestore,
    /// `failed_deployment_recovery_time` (a duration).
    FailedDeploymentRecoveryTime,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 5] = [
        Metric::LeadTime,
        Metric::DeploymentFrequency,
        Metric::ChangeFailureRate,
        Metric::TimeToRestore,
        Metric::FailedDeploymentRecoveryTime,
    ];

    /// The SQL name of the metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::LeadTime => "lead_time",
            Metric::DeploymentFrequency => "deployment_frequency",
            Metric::ChangeFailureRate => "change_failure_rate",
            Metric::TimeToRestore => "time_to_restore",
            Metric::FailedDeploymentRecoveryTime => "failed_deployment_recovery_time",
        }
    }

    /// Whether the metric is a duration (its [`tier`] value is in seconds).
    pub fn is_duration(self) -> bool {
        matches!(self, Metric::LeadTime | Metric::TimeToRestore | Metric::FailedDeploymentRecoveryTime)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Metric {
    type Err = DataFusionError;

    /// Parses a metric's SQL name, ignoring ASCII case and surrounding
    /// whitespace; anything else is an execution error naming the valid ones.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Metric::ALL.into_iter().find(|metric| metric.as_str().eq_ignore_ascii_case(wanted)).ok_or_else(|| {
            let valid: Vec<String> = Metric::ALL.iter().map(|metric| format!("'{metric}'")).collect();
            exec_datafusion_err!("unknown DORA metric '{s}': expected one of {}", valid.join(", "))
        })
    }
}

/// A DORA 2023 performance cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// `elite`
    Elite,
    /// `high`
    High,
    /// `medium`
    Medium,
    /// `low`
    Low,
}

impl Tier {
    /// The lowercase name: `elite`, `high`, `medium` or `low`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Elite => "elite",
            Tier::High => "high",
            Tier::Medium => "medium",
            Tier::Low => "low",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The DORA 2023 tier of `value` for `metric`. Durations (lead time, time
/// to restore, failed deployment recovery time) are in seconds, deployment
/// frequency in deployments per day, change failure rate as a ratio.
///
/// | metric | elite | high | medium | low |
/// |---|---|---|---|---|
/// | lead time | < 1 day | < 1 week | < 30 days | otherwise |
/// | deployment frequency | ≥ 1 | ≥ 1/7 | ≥ 1/30 | otherwise |
/// | change failure rate | ≤ 0.05 | ≤ 0.10 | ≤ 0.15 | otherwise |
/// | time to restore, recovery time | < 1 hour | < 1 day | < 1 week | otherwise |
///
/// A NaN value is `low`.
pub fn tier(metric: Metric, value: f64) -> Tier {
    let below = |elite: f64, high: f64, medium: f64| {
        if value < elite {
            Tier::Elite
        } else if value < high {
            Tier::High
        } else if value < medium {
            Tier::Medium
        } else {
            Tier::Low
        }
    };
    match metric {
        Metric::LeadTime => below(DAY, WEEK, 30.0 * DAY),
        Metric::TimeToRestore | Metric::FailedDeploymentRecoveryTime => below(HOUR, DAY, WEEK),
        Metric::DeploymentFrequency => {
            if value >= 1.0 {
                Tier::Elite
            } else if value >= 1.0 / 7.0 {
                Tier::High
            } else if value >= 1.0 / 30.0 {
                Tier::Medium
            } else {
                Tier::Low
            }
        }
        Metric::ChangeFailureRate => {
            if value <= 0.05 {
                Tier::Elite
            } else if value <= 0.10 {
                Tier::High
            } else if value <= 0.15 {
                Tier::Medium
            } else {
                Tier::Low
            }
        }
    }
}

/// `dora_tier(metric text, value float8 | interval) -> text`
///
/// The DORA 2023 performance cluster (`elite`, `high`, `medium`, `low`) of a
/// metric value; NULL when the value (or the metric) is NULL. `metric` is
/// one of `lead_time`, `deployment_frequency`, `change_failure_rate`,
/// `time_to_restore`, `failed_deployment_recovery_time`. Durations may be
/// given as an interval or as float8 seconds.
///
/// ```sql
/// > SELECT dora_tier('lead_time', lead_time(lead_time)) AS lt,
///          dora_tier('change_failure_rate', 0.05)      AS cfr
///   FROM changes;
/// +------+-------+
/// | lt   | cfr   |
/// +------+-------+
/// | high | elite |
/// +------+-------+
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DoraTier {
    signature: Signature,
}

impl Default for DoraTier {
    fn default() -> Self {
        Self::new()
    }
}

impl DoraTier {
    /// A new `dora_tier` implementation.
    pub fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

/// The `dora_tier` function, shared.
pub fn dora_tier_udf() -> Arc<ScalarUDF> {
    static UDF: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::from(DoraTier::new())));
    Arc::clone(&UDF)
}

impl ScalarUDFImpl for DoraTier {
    fn name(&self) -> &str {
        "dora_tier"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [metric, value] = arg_types else {
            return plan_err!("dora_tier takes 2 arguments (metric text, value), got {}", arg_types.len());
        };
        let metric = match metric {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => DataType::Utf8,
            other => {
                return plan_err!("the metric argument of dora_tier must be text, got {other}");
            }
        };
        let value = match value {
            DataType::Interval(_) | DataType::Duration(_) => INTERVAL,
            DataType::Null => DataType::Float64,
            numeric if numeric.is_numeric() => DataType::Float64,
            other => {
                return plan_err!("the value argument of dora_tier must be a number or an interval, got {other}");
            }
        };
        Ok(vec![metric, value])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let all_scalar = args.args.iter().all(|arg| matches!(arg, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [metrics, values] = arrays.as_slice() else {
            return internal_err!("dora_tier expects 2 arguments, got {}", arrays.len());
        };
        let tiers = tiers(metrics, values)?;
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&tiers, 0)?))
        } else {
            Ok(ColumnarValue::Array(tiers))
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_DORA,
                "DORA 2023 performance cluster (elite, high, medium, low) of a metric value; NULL for a NULL value.",
                "dora_tier(metric, value)",
            )
            .with_sql_example("SELECT dora_tier('lead_time', lead_time(lead_time)) FROM changes;")
            .with_argument(
                "metric",
                "'lead_time', 'deployment_frequency', 'change_failure_rate', 'time_to_restore' or 'failed_deployment_recovery_time'.",
            )
            .with_argument(
                "value",
                "The metric value: float8 (durations in seconds, frequency per day, rate in [0, 1]) or interval for durations.",
            )
            .build()
        });
        Some(&DOCUMENTATION)
    }
}

/// Row-by-row tiers of `(metrics, values)`, arrays as coerced by
/// [`DoraTier::coerce_types`] (`Utf8`; `Float64` or `Interval(MonthDayNano)`).
fn tiers(metrics: &ArrayRef, values: &ArrayRef) -> Result<ArrayRef> {
    let Some(metrics) = metrics.as_string_opt::<i32>() else {
        return internal_err!("dora_tier expects a Utf8 metric, got {}", metrics.data_type());
    };
    let seconds = |row: usize| -> Result<Option<(f64, bool)>> {
        if values.is_null(row) {
            return Ok(None);
        }
        if let Some(floats) = values.as_primitive_opt::<Float64Type>() {
            Ok(Some((floats.value(row), false)))
        } else if let Some(intervals) = values.as_primitive_opt::<IntervalMonthDayNanoType>() {
            let nanos = interval_to_nanos(intervals.value(row))?;
            Ok(Some((nanos as f64 / 1e9, true)))
        } else {
            internal_err!("dora_tier expects a Float64 or interval value, got {}", values.data_type())
        }
    };
    let tiers = (0..metrics.len())
        .map(|row| {
            if metrics.is_null(row) {
                return Ok(None);
            }
            let metric: Metric = metrics.value(row).parse()?;
            match seconds(row)? {
                None => Ok(None),
                Some((_, true)) if !metric.is_duration() => {
                    exec_err!("dora_tier('{metric}', ...) expects a float8 value, got an interval")
                }
                Some((value, _)) => Ok(Some(tier(metric, value).as_str())),
            }
        })
        .collect::<Result<StringArray>>()?;
    Ok(Arc::new(tiers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, IntervalMonthDayNanoArray};
    use arrow::datatypes::{Field, IntervalMonthDayNano};
    use datafusion::config::ConfigOptions;

    #[test]
    fn lead_time_boundaries() {
        assert_eq!(tier(Metric::LeadTime, DAY - 1.0), Tier::Elite);
        assert_eq!(tier(Metric::LeadTime, DAY), Tier::High);
        assert_eq!(tier(Metric::LeadTime, WEEK), Tier::Medium);
        assert_eq!(tier(Metric::LeadTime, 30.0 * DAY - 0.001), Tier::Medium);
        assert_eq!(tier(Metric::LeadTime, 30.0 * DAY), Tier::Low);
        assert_eq!(tier(Metric::LeadTime, 0.0), Tier::Elite);
    }

    #[test]
    fn deployment_frequency_boundaries() {
        assert_eq!(tier(Metric::DeploymentFrequency, 1.0), Tier::Elite);
        assert_eq!(tier(Metric::DeploymentFrequency, 0.999), Tier::High);
        // As deployment_frequency computes them: 1 per week, 4 per 28 days.
        assert_eq!(tier(Metric::DeploymentFrequency, 1.0 / 7.0), Tier::High);
        assert_eq!(tier(Metric::DeploymentFrequency, 4.0 / 28.0), Tier::High);
        assert_eq!(tier(Metric::DeploymentFrequency, 1.0 / 7.0 - 1e-12), Tier::Medium);
        assert_eq!(tier(Metric::DeploymentFrequency, 1.0 / 30.0), Tier::Medium);
        assert_eq!(tier(Metric::DeploymentFrequency, 1.0 / 31.0), Tier::Low);
        assert_eq!(tier(Metric::DeploymentFrequency, 0.0), Tier::Low);
    }

    #[test]
    fn change_failure_rate_boundaries() {
        assert_eq!(tier(Metric::ChangeFailureRate, 0.0), Tier::Elite);
        assert_eq!(tier(Metric::ChangeFailureRate, 0.05), Tier::Elite);
        assert_eq!(tier(Metric::ChangeFailureRate, 1.0 / 20.0), Tier::Elite);
        assert_eq!(tier(Metric::ChangeFailureRate, 0.050001), Tier::High);
        assert_eq!(tier(Metric::ChangeFailureRate, 0.10), Tier::High);
        assert_eq!(tier(Metric::ChangeFailureRate, 0.15), Tier::Medium);
        assert_eq!(tier(Metric::ChangeFailureRate, 3.0 / 20.0), Tier::Medium);
        assert_eq!(tier(Metric::ChangeFailureRate, 0.16), Tier::Low);
        assert_eq!(tier(Metric::ChangeFailureRate, f64::NAN), Tier::Low);
    }

    #[test]
    fn restore_and_recovery_boundaries() {
        for metric in [Metric::TimeToRestore, Metric::FailedDeploymentRecoveryTime] {
            assert_eq!(tier(metric, HOUR - 1.0), Tier::Elite);
            assert_eq!(tier(metric, HOUR), Tier::High);
            assert_eq!(tier(metric, DAY), Tier::Medium);
            assert_eq!(tier(metric, WEEK), Tier::Low);
        }
    }

    #[test]
    fn metric_names() {
        for metric in Metric::ALL {
            assert_eq!(metric.as_str().parse::<Metric>().unwrap(), metric);
        }
        assert_eq!("Lead_Time".parse::<Metric>().unwrap(), Metric::LeadTime);
        let err = "mttr".parse::<Metric>().unwrap_err().to_string();
        assert!(err.contains("unknown DORA metric 'mttr'"), "{err}");
        assert!(err.contains("'failed_deployment_recovery_time'"), "{err}");
        assert!(err.starts_with("Execution error"), "{err}");
    }

    fn invoke(args: Vec<ColumnarValue>, rows: usize) -> Result<ColumnarValue> {
        let arg_fields = args.iter().map(|arg| Arc::new(Field::new("a", arg.data_type(), true))).collect();
        DoraTier::new().invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("t", DataType::Utf8, true)),
            config_options: Arc::new(ConfigOptions::default()),
        })
    }

    fn text(s: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.to_string())))
    }

    fn interval(days: i32, nanos: i64) -> ScalarValue {
        ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(0, days, nanos)))
    }

    fn scalar_tier(metric: &str, value: ScalarValue) -> Result<ScalarValue> {
        match invoke(vec![text(metric), ColumnarValue::Scalar(value)], 1)? {
            ColumnarValue::Scalar(tier) => Ok(tier),
            ColumnarValue::Array(_) => panic!("scalar inputs give a scalar"),
        }
    }

    #[test]
    fn scalar_calls() {
        let utf8 = |s: &str| ScalarValue::Utf8(Some(s.to_string()));
        assert_eq!(scalar_tier("lead_time", interval(1, 0)).unwrap(), utf8("high"));
        assert_eq!(scalar_tier("lead_time", interval(0, 3_600_000_000_000)).unwrap(), utf8("elite"));
        assert_eq!(scalar_tier("lead_time", ScalarValue::Float64(Some(86_400.0))).unwrap(), utf8("high"));
        assert_eq!(scalar_tier("time_to_restore", interval(0, 3_600_000_000_000)).unwrap(), utf8("high"));
        assert_eq!(scalar_tier("change_failure_rate", ScalarValue::Float64(Some(0.05))).unwrap(), utf8("elite"));
        assert_eq!(scalar_tier("lead_time", ScalarValue::IntervalMonthDayNano(None)).unwrap(), ScalarValue::Utf8(None));
        assert_eq!(scalar_tier("change_failure_rate", ScalarValue::Float64(None)).unwrap(), ScalarValue::Utf8(None));
    }

    #[test]
    fn errors() {
        let err = scalar_tier("velocity", ScalarValue::Float64(Some(1.0))).unwrap_err().to_string();
        assert!(err.contains("expected one of 'lead_time'"), "{err}");
        let err = scalar_tier("change_failure_rate", interval(1, 0)).unwrap_err().to_string();
        assert!(err.contains("expects a float8 value"), "{err}");
        let months = ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(1, 0, 0)));
        assert!(scalar_tier("lead_time", months).is_err());
    }

    #[test]
    fn array_calls_mix_metrics_and_nulls() {
        let metrics: ArrayRef = Arc::new(StringArray::from(vec![
            Some("deployment_frequency"),
            Some("change_failure_rate"),
            None,
            Some("deployment_frequency"),
        ]));
        let values: ArrayRef = Arc::new(Float64Array::from(vec![Some(2.0), Some(0.2), Some(0.0), None]));
        let ColumnarValue::Array(result) =
            invoke(vec![ColumnarValue::Array(metrics), ColumnarValue::Array(values)], 4).unwrap()
        else {
            panic!("array inputs give an array");
        };
        let expected: ArrayRef = Arc::new(StringArray::from(vec![Some("elite"), Some("low"), None, None]));
        assert_eq!(&result, &expected);

        let intervals: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![
            IntervalMonthDayNano::new(0, 0, 59 * 60_000_000_000),
            IntervalMonthDayNano::new(0, 30, 0),
        ]));
        let ColumnarValue::Array(result) =
            invoke(vec![text("time_to_restore"), ColumnarValue::Array(intervals)], 2).unwrap()
        else {
            panic!("array inputs give an array");
        };
        let expected: ArrayRef = Arc::new(StringArray::from(vec!["elite", "low"]));
        assert_eq!(&result, &expected);
    }

    #[test]
    fn coercion() {
        let udf = DoraTier::new();
        assert_eq!(
            udf.coerce_types(&[DataType::Utf8View, DataType::Int32]).unwrap(),
            vec![DataType::Utf8, DataType::Float64]
        );
        assert_eq!(
            udf.coerce_types(&[DataType::Utf8, DataType::Duration(arrow::datatypes::TimeUnit::Second)]).unwrap(),
            vec![DataType::Utf8, INTERVAL]
        );
        assert!(udf.coerce_types(&[DataType::Utf8, DataType::Boolean]).is_err());
        assert!(udf.coerce_types(&[DataType::Int32, DataType::Float64]).is_err());
        assert!(udf.coerce_types(&[DataType::Utf8]).is_err());
    }
}
