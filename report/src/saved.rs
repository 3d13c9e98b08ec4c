//! A saved query as a report: its rows, and a line chart of the columns a
//! [`ChartSpec`] names (`x=COL,y=COL[,series=COL]`).

use std::collections::BTreeMap;
use std::str::FromStr;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit};
use leadline_engine::ReadSession;

use crate::Error;
use crate::chart::{LineChart, Series};
use crate::metric::Unit;
use crate::table;

/// Which result columns a saved query's chart plots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSpec {
    pub x: String,
    pub y: String,
    pub series: Option<String>,
}

impl FromStr for ChartSpec {
    type Err = Error;

    /// `x=COL,y=COL[,series=COL]`, in any order.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::Input(format!("--chart '{s}': {why} (expected x=COL,y=COL[,series=COL])"));
        let mut parts: BTreeMap<&str, &str> = BTreeMap::new();
        for part in s.split(',') {
            let (k, v) = part.split_once('=').ok_or_else(|| bad(format!("'{part}' is not KEY=COLUMN")))?;
            let (k, v) = (k.trim(), v.trim());
            if !matches!(k, "x" | "y" | "series") {
                return Err(bad(format!("unknown key '{k}'")));
            }
            if v.is_empty() {
                return Err(bad(format!("{k} names no column")));
            }
            if parts.insert(k, v).is_some() {
                return Err(bad(format!("{k} is given twice")));
            }
        }
        let need = |k: &str| parts.get(k).map(|v| v.to_string()).ok_or_else(|| bad(format!("{k}= is missing")));
        Ok(ChartSpec { x: need("x")?, y: need("y")?, series: parts.get("series").map(|v| v.to_string()) })
    }
}

/// A saved query's result.
pub struct SavedResult {
    pub name: String,
    pub sql: String,
    pub batches: Vec<RecordBatch>,
    pub columns: Vec<String>,
    pub cells: Vec<Vec<Option<String>>>,
    pub rows: usize,
    pub chart: Option<LineChart>,
}

pub async fn run(session: &ReadSession, name: &str, sql: &str, spec: Option<&ChartSpec>) -> Result<SavedResult, Error> {
    let frame = session.context().sql(sql).await.map_err(|e| Error::Input(format!("{name}: {e}")))?;
    let schema = frame.schema().inner().clone();
    let batches = frame.collect().await.map_err(|e| Error::Input(format!("{name}: {e}")))?;
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let batch = arrow::compute::concat_batches(&schema, &batches)?;
    let chart = spec.map(|s| chart(name, &batch, s)).transpose()?;
    Ok(SavedResult {
        name: name.to_string(),
        sql: sql.to_string(),
        cells: table::cells(&batches)?,
        rows: batch.num_rows(),
        batches,
        columns,
        chart,
    })
}

fn column<'a>(batch: &'a RecordBatch, role: &str, name: &str) -> Result<&'a ArrayRef, Error> {
    batch.column_by_name(name).ok_or_else(|| {
        let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        Error::Input(format!("--chart {role}={name}: the query has no such column (it has {})", names.join(", ")))
    })
}

/// The y values as numbers: numeric columns as they are, intervals in
/// seconds (so the chart reads them as durations).
fn y_values(col: &dyn Array, name: &str) -> Result<(Vec<Option<f64>>, Option<Unit>), Error> {
    match col.data_type() {
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let a = col.as_primitive::<IntervalMonthDayNanoType>();
            let secs = a
                .iter()
                .map(|v| v.and_then(|v| leadline_udfs::interval_to_nanos(v).ok()).map(|n| n as f64 / 1e9))
                .collect();
            Ok((secs, Some(Unit::Seconds)))
        }
        t if t.is_numeric() => {
            Ok((cast(col, &DataType::Float64)?.as_primitive::<Float64Type>().iter().collect(), None))
        }
        t => Err(Error::Input(format!("--chart y={name}: the column is {t}, not a number or an interval"))),
    }
}

/// Sort keys of x: numbers and times by value, anything else in the order
/// the rows give.
fn x_order(col: &dyn Array) -> Option<Vec<Option<f64>>> {
    let t = col.data_type();
    if t.is_numeric() {
        return cast(col, &DataType::Float64).ok().map(|a| a.as_primitive::<Float64Type>().iter().collect());
    }
    if t.is_temporal() {
        let a = cast(col, &DataType::Int64).ok()?;
        return Some(a.as_primitive::<Int64Type>().iter().map(|v| v.map(|v| v as f64)).collect());
    }
    None
}

/// A column's cells as display text.
fn texts(col: &ArrayRef) -> Result<Vec<Option<String>>, Error> {
    let batch = RecordBatch::try_from_iter([("c", col.clone())])?;
    Ok(table::cells(&[batch])?.into_iter().map(|mut row| row.pop().flatten()).collect())
}

fn chart(name: &str, batch: &RecordBatch, spec: &ChartSpec) -> Result<LineChart, Error> {
    let x = column(batch, "x", &spec.x)?;
    let (y, unit) = y_values(column(batch, "y", &spec.y)?.as_ref(), &spec.y)?;
    let x_text = texts(x)?;
    let series_text = match &spec.series {
        Some(s) => texts(column(batch, "series", s)?)?,
        None => vec![None; batch.num_rows()],
    };
    // The x categories, ordered.
    let mut xs: Vec<(Option<f64>, usize, String)> = Vec::new();
    let order = x_order(x.as_ref());
    for (row, cell) in x_text.iter().enumerate() {
        let label = cell.clone().unwrap_or_else(|| "NULL".into());
        if !xs.iter().any(|(_, _, l)| *l == label) {
            xs.push((order.as_ref().and_then(|o| o[row]), row, label));
        }
    }
    if order.is_some() {
        xs.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
    }
    let position: BTreeMap<&str, usize> = xs.iter().enumerate().map(|(i, (_, _, l))| (l.as_str(), i)).collect();
    let mut series: Vec<Series> = Vec::new();
    for (row, cell) in x_text.iter().enumerate() {
        let label = cell.as_deref().unwrap_or("NULL");
        let series_name = series_text[row]
            .clone()
            .unwrap_or_else(|| if spec.series.is_some() { "NULL".into() } else { spec.y.clone() });
        let i = match series.iter().position(|s| s.name == series_name) {
            Some(i) => i,
            None => {
                series.push(Series { name: series_name, values: vec![None; xs.len()], emphasis: false });
                series.len() - 1
            }
        };
        let slot = &mut series[i].values[position[label]];
        if slot.is_some() {
            return Err(Error::Chart(format!(
                "{name}: several rows have {}={label}{}; aggregate them in the query",
                spec.x,
                spec.series.as_ref().map_or(String::new(), |s| format!(" and {s}={}", series[i].name)),
            )));
        }
        *slot = y[row];
    }
    Ok(LineChart {
        title: match &spec.series {
            Some(s) => format!("{} by {} and {s}", spec.y, spec.x),
            None => format!("{} by {}", spec.y, spec.x),
        },
        x_labels: xs.into_iter().map(|(_, _, l)| l).collect(),
        series,
        unit,
        shade_from: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_specs_parse_or_say_why_not() {
        let s: ChartSpec = "x=week, y=deploys,series=service".parse().unwrap();
        assert_eq!(s, ChartSpec { x: "week".into(), y: "deploys".into(), series: Some("service".into()) });
        for bad in ["x=a", "x=a,y=", "x=a,y=b,z=c", "x=a,x=b,y=c", "week"] {
            let e = bad.parse::<ChartSpec>().unwrap_err().to_string();
            assert!(e.contains("expected x=COL,y=COL"), "{bad}: {e}");
        }
    }
}
